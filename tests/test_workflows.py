"""The application layer: library updates (with cancel), queries off the library, renders of a
file that is not in the library (CLI: `match FILE` then `render --query FILE`), ratings."""

from __future__ import annotations

import json
import threading

import pytest
import soundfile as sf
from typer.testing import CliRunner

from cratedig import workflows
from cratedig.analysis.rhythm import GridHint
from cratedig.cli import app
from cratedig.errors import ParameterError
from cratedig.library.db import open_library
from cratedig.library.ingest import IngestInterrupted
from cratedig.synth import synthesize_song
from cratedig.theory import Key
from cratedig.workflows import ScanCancelled

SR = 22050


@pytest.fixture(scope="module")
def crate(tmp_path_factory):
    root = tmp_path_factory.mktemp("wf")
    for name, tempo, seed in (("a.wav", 124.0, 81), ("b.wav", 125.0, 82)):
        song = synthesize_song(tempo=tempo, key=Key.parse("A minor"), bars=16, sr=SR, seed=seed)
        (root / "music").mkdir(exist_ok=True)
        sf.write(root / "music" / name, song.audio, SR)
    query = synthesize_song(tempo=123.0, key=Key.parse("A minor"), bars=16, sr=SR, seed=83)
    sf.write(root / "query.wav", query.audio, SR)
    url = f"sqlite:///{root / 'lib.db'}"
    with open_library(url) as lib:
        events = []
        update = workflows.update_library(
            lib, root / "music", progress=lambda e, **d: events.append(e)
        )
        assert update.ingest.analysed == 2 and update.segments > 0
        assert events[0] == "planned" and events[-2:] == ["index", "clusters"]
        assert {"index", "clusters"} <= set(update.to_json())
    return {"root": root, "url": url}


def test_a_cancelled_update_stops_between_files(crate, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with open_library(f"sqlite:///{tmp_path / 'c.db'}") as lib:
        with pytest.raises(ScanCancelled):
            workflows.update_library(lib, crate["root"] / "music", cancel=cancel)
        assert workflows.list_tracks(lib) == ([], 0)
        # Cancelled after the first file: that one is stored whole, the other is not started.
        cancel.clear()

        def progress(event, **details):
            if event == "done":
                cancel.set()

        with pytest.raises(IngestInterrupted) as exc:
            workflows.update_library(lib, crate["root"] / "music", cancel=cancel,
                                     progress=progress)  # fmt: skip
        assert exc.value.report.analysed == 1
        assert workflows.list_tracks(lib)[1] == 1


def test_match_and_render_a_file_not_in_the_library(crate, tmp_path):
    q = crate["root"] / "query.wav"
    runner = CliRunner()
    r = runner.invoke(app, ["match", str(q), "--db", crate["url"], "--json", "--top", "1"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["query"]["in_library"] is False
    qseg, cand = next(
        (sm["query_segment"], sm["candidates"][0]) for sm in m["matches"] if sm["candidates"]
    )
    out = tmp_path / "pair.wav"
    # Without the file the query's segments are unknown; with --query it renders.
    r = runner.invoke(app, ["render", qseg, cand["segment"], "-o", str(out), "--db", crate["url"]])
    assert r.exit_code != 0 and "not in the library" in str(r.exception)
    r = runner.invoke(app, ["render", qseg, cand["segment"], "-o", str(out), "--db", crate["url"],
                            "--query", str(q), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    seg = next(s for s in m["query"]["segments"] if s["id"] == qseg)
    info = sf.info(out)
    assert info.frames / info.samplerate == pytest.approx(seg["end"] - seg["start"], abs=0.02)


def test_resolve_query_and_list_tracks(crate):
    with open_library(crate["url"]) as lib:
        rows, total = workflows.list_tracks(lib)
        assert total == 2 and all(0 <= r["energy"] <= 1 for r in rows)
        a, in_lib = workflows.resolve_query(lib, rows[0]["track_id"][:6])
        assert in_lib and a.track_id == rows[0]["track_id"] and a.path.endswith(".wav")
        assert workflows.list_tracks(lib, text="b.wav")[1] == 1
        assert (
            workflows.list_tracks(lib, limit=1, offset=1)[0][0]["track_id"] == rows[1]["track_id"]
        )
        with pytest.raises(ParameterError, match="neither an audio file"):
            workflows.resolve_query(lib, "nothing-like-this")
        # a tempo the user knows: the track is analysed again from its file at that tempo
        hinted, in_lib = workflows.resolve_query(
            lib, rows[0]["track_id"][:6], hint=GridHint(bpm=62.0)
        )
        assert in_lib and hinted.tempo == pytest.approx(62.0, rel=0.02)
        assert hinted.estimates["tempo"]["confidence"] == 1.0
        as_file, in_lib = workflows.resolve_query(lib, hinted.path, hint=GridHint(bpm=62.0))
        assert in_lib and as_file.tempo == pytest.approx(62.0, rel=0.02)
        # a bar line the user hears: the query's bars start there
        at = float(hinted.beats[3])
        barred, _ = workflows.resolve_query(lib, rows[0]["track_id"], hint=GridHint(downbeat=at))
        assert min(abs(barred.downbeats - at)) < 0.02 and barred.segments[0].start <= at + 0.02
        with pytest.raises(ParameterError, match="tempo"):
            workflows.resolve_query(lib, rows[0]["track_id"][:6], hint=GridHint(bpm=1000.0))
        assert workflows.track_detail(lib, "0" * 16) is None
        with pytest.raises(ParameterError, match="offset"):
            workflows.list_tracks(lib, offset=-1)


def test_rate_checks_its_input(crate):
    with open_library(crate["url"]) as lib:
        rows, _ = workflows.list_tracks(lib)
        q, c = f"{rows[0]['track_id']}_0", f"{rows[1]['track_id']}_1"
        rid = workflows.rate(lib, q, c, 3, semitones=-2, tempo_ratio=0.5, comment="ok")
        got = {r.id: r for r in workflows.list_ratings(lib)}[rid]
        assert (got.score, got.semitones, got.tempo_ratio, got.comment) == (3, -2, 0.5, "ok")
        for bad in (
            dict(score=0), dict(score=6), dict(score=2.5), dict(score=True),
            dict(semitones=13), dict(tempo_ratio=1.5), dict(comment="x" * 3000),
            dict(offset_beats=17), dict(offset_beats=1.5), dict(offset_beats=True),
        ):  # fmt: skip
            kwargs = {"score": 3, **bad}
            score = kwargs.pop("score")
            with pytest.raises(ParameterError):
                workflows.rate(lib, q, c, score, **kwargs)
        with pytest.raises(ParameterError, match="not a segment id"):
            workflows.rate(lib, "abc", c, 3)
        with pytest.raises(ParameterError, match="not in the library"):
            workflows.rate(lib, q, f"{rows[1]['track_id']}_99", 3)
