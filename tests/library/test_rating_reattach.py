"""Ratings survive re-analysis: re-attached to the segment covering the rated span, or orphaned
with the reason, never lost and never pointing at other music (both backends, real ingests)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import replace

import pytest
from alembic import command
from sqlalchemy import select, update
from typer.testing import CliRunner

from cratedig import ANALYSIS_VERSION
from cratedig.cli import app
from cratedig.library import ingest as ingest_module
from cratedig.library import repository as repo
from cratedig.library.db import _alembic_config, open_library
from cratedig.library.schema import RatingRow, TrackRow
from cratedig.render.service import suggested_transform
from cratedig.synth import synthesize_song, write_song
from cratedig.theory import Key

SR = 22050


def run(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def two_songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reattach")
    for name, tempo, key, seed in (("a", 120.0, "A minor", 31), ("b", 122.0, "C major", 32)):
        song = synthesize_song(tempo=tempo, key=Key.parse(key), bars=16, seed=seed, sr=SR)
        write_song(song, root / f"{name}.wav")
    return root


@pytest.fixture
def library(two_songs, tmp_path, db_url):
    music = tmp_path / "music"
    shutil.copytree(two_songs, music)
    run("ingest", music, "--db", db_url, "--json")
    with open_library(db_url) as lib:
        tracks = {t["path"].rsplit("/", 1)[-1]: t["track_id"] for t in lib_tracks(lib)}
    return {"db": db_url, "music": music, "a": tracks["a.wav"], "b": tracks["b.wav"]}


def lib_tracks(lib):
    from cratedig import workflows

    return workflows.list_tracks(lib)[0]


def spans(db, track_id):
    with open_library(db) as lib, lib.reader() as s:
        return {
            sid: (start, end) for sid, start, end in repo.segment_spans(s, [track_id])[track_id]
        }


def ratings(db, *extra):
    return json.loads(run("ratings", "--db", db, "--json", *extra))["ratings"]


def resegmented(analysis, *, beat):
    """The same track cut differently, as a new analysis version might: the first phrase split
    in two (every later id moves up by one) and every later boundary a beat later."""
    first, rest = analysis.segments[0], analysis.segments[1:]
    mid = (first.start + first.end) / 2
    cut = [replace(first, end=mid), replace(first, start=mid)]
    last_end = analysis.duration
    for seg in rest:
        cut.append(replace(seg, start=seg.start + beat, end=min(seg.end + beat, last_end)))
    tid = analysis.track_id
    return replace(
        analysis,
        segments=[replace(s, id=f"{tid}_{i}", index=i) for i, s in enumerate(cut)],
    )


def truncated(analysis):
    """A re-analysis that keeps only the first phrase (the rest of the track lost)."""
    return replace(analysis, segments=analysis.segments[:1])


def reingest_with(db, music, track_id, monkeypatch, change):
    """Mark ``track_id`` stale and ingest again: the real ingest path re-analyses it, with the
    pipeline's analysis passed through ``change``."""
    real = ingest_module.analyse_decoded
    monkeypatch.setattr(
        ingest_module, "analyse_decoded", lambda a, p, **kw: change(real(a, p, **kw))
    )
    with open_library(db) as lib, lib.transaction() as s:
        s.execute(
            update(TrackRow)
            .where(TrackRow.id == track_id)
            .values(analysis_version=ANALYSIS_VERSION - 1)
        )
    report = json.loads(run("ingest", music, "--db", db, "--json"))
    monkeypatch.setattr(ingest_module, "analyse_decoded", real)
    assert report["analysed"] == 1, report


def test_a_rating_follows_its_music_through_a_resegmenting_reanalysis(library, monkeypatch):
    db, music, a, b = library["db"], library["music"], library["a"], library["b"]
    q, c = f"{a}_1", f"{b}_2"
    before_b = spans(db, b)
    rid = json.loads(run("rate", q, c, 4, "--db", db, "--json", "-m", "lifts"))["id"]
    (r,) = ratings(db)
    assert r["id"] == rid and r["state"] == "attached" and r["orphaned"] == []
    assert r["candidate_track"] == b and r["query_track"] == a
    assert r["candidate_span"] == pytest.approx(before_b[c], abs=1e-3)
    # `rate` without --semitones/--ratio stores the transform the matcher suggests.
    with open_library(db) as lib, lib.reader() as s:
        segs = {x.id: x for x in repo.load_segments(s, segment_ids=[q, c])}
    assert (r["semitones"], r["tempo_ratio"]) == suggested_transform(segs[q], segs[c])

    # The same audio re-analysed the same way: nothing moves, nothing is logged.
    reingest_with(db, music, b, monkeypatch, lambda x: x)
    (r,) = ratings(db)
    assert (r["candidate_segment"], r["state"], r["reattachments"]) == (c, "attached", [])

    beat = 60.0 / 122.0
    reingest_with(db, music, b, monkeypatch, lambda x: resegmented(x, beat=beat))
    after_b = spans(db, b)
    (r,) = ratings(db)
    # Old id b_2 now names other music (the old b_1 a beat later); the rating follows b_2's music.
    assert r["candidate_segment"] == f"{b}_3" and r["state"] == "reattached"
    old_start, old_end = before_b[c]
    new_start, new_end = after_b[f"{b}_3"]
    assert new_start == pytest.approx(old_start + beat, abs=1e-3)
    cover = (min(new_end, old_end) - max(new_start, old_start)) / (old_end - old_start)
    assert cover >= 0.5
    (move,) = r["reattachments"]
    assert (move["side"], move["from"], move["to"]) == ("candidate", c, f"{b}_3")
    assert move["cover"] == pytest.approx(cover, abs=1e-3)
    assert r["candidate_span"] == pytest.approx(before_b[c], abs=1e-3)  # what was rated
    assert r["query_segment"] == q and r["score"] == 4 and r["comment"] == "lifts"


def test_a_rating_without_its_music_is_orphaned_with_the_reason_and_restored(library, monkeypatch):
    db, music, a, b = library["db"], library["music"], library["a"], library["b"]
    rid = json.loads(run("rate", f"{a}_2", f"{b}_1", 2, "--db", db, "--json"))["id"]
    keep = json.loads(run("rate", f"{a}_0", f"{b}_0", 5, "--db", db, "--json"))["id"]

    reingest_with(db, music, a, monkeypatch, truncated)
    orphans = ratings(db, "--orphaned")
    assert [r["id"] for r in orphans] == [rid]
    (why,) = orphans[0]["orphaned"]
    assert why.startswith(f"query segment {a}_2") and "covers 50%" in why
    assert orphans[0]["query_segment"] == f"{a}_2"  # the old id kept, not pointed elsewhere
    states = {r["id"]: r["state"] for r in ratings(db)}
    assert states == {rid: "orphaned", keep: "attached"}
    table = run("ratings", "--db", db, "--orphaned")
    assert "orphaned" in table and f"{a}_2" in table and "1 orphaned ratings" in table
    rows = list(csv.DictReader(io.StringIO(run("ratings", "--db", db, "--csv"))))
    assert {r["id"]: r["state"] for r in rows} == {str(rid): "orphaned", str(keep): "attached"}
    assert float(rows[0]["query_end"]) > float(rows[0]["query_start"]) >= 0.0
    assert "covers 50%" in rows[0]["orphaned"]

    # The full analysis back: the orphan finds its music again, and says so.
    reingest_with(db, music, a, monkeypatch, lambda x: x)
    got = {r["id"]: r for r in ratings(db)}
    assert got[rid]["state"] == "reattached" and got[rid]["query_segment"] == f"{a}_2"
    assert got[rid]["reattachments"][-1]["restored"] is True
    assert ratings(db, "--orphaned") == []

    # The file deleted: its track leaves the library, its ratings stay, orphaned.
    (music / "b.wav").unlink()
    run("ingest", music, "--db", db, "--json")
    got = {r["id"]: r for r in ratings(db)}
    assert set(got) == {rid, keep}
    assert all(g["state"] == "orphaned" for g in got.values())
    assert all(f"candidate track {b} was removed" in g["orphaned"][0] for g in got.values())


def test_training_leaves_orphaned_ratings_out(library, monkeypatch):
    from cratedig import workflows

    db, music, a, b = library["db"], library["music"], library["a"], library["b"]
    run("rate", f"{a}_2", f"{b}_1", 1, "--db", db)
    reingest_with(db, music, a, monkeypatch, truncated)
    with open_library(db) as lib:
        assert workflows.list_ratings(lib, orphaned=False) == []
        assert [r.state for r in workflows.list_ratings(lib, orphaned=True)] == ["orphaned"]


def test_migration_0005_backfills_spans_and_orphans_what_no_longer_resolves(library):
    db, a, b = library["db"], library["a"], library["b"]
    segs_a, segs_b = spans(db, a), spans(db, b)
    with open_library(db) as lib, lib.transaction() as s:
        for q, c in ((f"{a}_0", f"{b}_1"), (f"{a}_1", f"{b}_99"), (f"{'f' * 16}_0", f"{b}_0")):
            s.add(
                RatingRow(
                    query_segment_id=q, candidate_segment_id=c, score=3, tempo_ratio=1.0,
                    semitones=0, analysis_version=ANALYSIS_VERSION, created_at=repo.now(),
                )
            )  # fmt: skip
    with open_library(db) as lib:
        with lib.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0004")
        with lib.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
        with lib.reader() as s:
            rows = list(s.scalars(select(RatingRow).order_by(RatingRow.id)))
    ok, gone, outside = rows
    assert [r.offset_beats for r in rows] == [0, 0, 0]  # migration 0006: rated as suggested
    assert (ok.state, ok.query_track_id, ok.candidate_track_id) == ("attached", a, b)
    assert (ok.query_start, ok.query_end) == pytest.approx(segs_a[f"{a}_0"])
    assert (ok.candidate_start, ok.candidate_end) == pytest.approx(segs_b[f"{b}_1"])
    assert gone.state == "orphaned" and gone.candidate_track_id == b
    assert "migration 0005" in (gone.candidate_orphaned or "") and gone.query_orphaned is None
    # A query matched on the fly (its track not in the library) is not an orphan.
    assert outside.state == "attached" and outside.query_track_id == "f" * 16
    assert outside.query_start is None and outside.candidate_start is not None
