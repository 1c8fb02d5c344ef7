"""Two songs tuned 40 cents apart: the match says so, and the render meets the query's tuning.

The candidate is a synthesized song played 40 cents sharp (resampled, as a record played fast
or a tracker module with sharp samples is); the query is at A440. Without the correction the
partner layer of the render would sound 40 cents out of tune against the query, whatever
semitone shift the matcher names.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from cratedig import workflows
from cratedig.library import repository as repo
from cratedig.library.db import open_library
from cratedig.library.ingest import ingest
from cratedig.synth import synthesize_song
from cratedig.theory import Key, tuning_correction

SR = 22050
SHARP = 40.0  # cents


def _cents_off(y: np.ndarray, sr: int) -> float:
    """Tuning of ``y`` in cents off A440 by librosa (an estimator independent of ours)."""
    import librosa

    return 100.0 * float(librosa.estimate_tuning(y=y.astype(np.float32), sr=sr))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuninglib")
    music = root / "music"
    music.mkdir()
    q = synthesize_song(tempo=120.0, key=Key.parse("A minor"), bars=16, sr=SR, seed=61)
    c = synthesize_song(tempo=117.0, key=Key.parse("A minor"), bars=16, sr=SR, seed=62)
    # Played 2^(40/1200) faster: 40 cents sharp and 2.3 % quicker (117 -> 119.7 BPM).
    sharp = soxr.resample(c.audio, SR, SR / 2 ** (SHARP / 1200.0))
    sf.write(music / "query.wav", q.audio, SR)
    sf.write(music / "sharp.wav", sharp, SR)
    url = f"sqlite:///{root / 'lib.db'}"
    with open_library(url) as lib:
        assert ingest(lib, music).analysed == 2
        with lib.reader() as s:
            files = repo.known_files(s)
            ids = {n: files[str(music / f"{n}.wav")].track_id for n in ("query", "sharp")}
            analyses = {n: repo.load_analysis(s, t) for n, t in ids.items()}
    return {"url": url, "ids": ids, "analyses": analyses}


def test_the_analysis_hears_the_tunings(library):
    a = library["analyses"]
    assert abs(a["query"].tuning) < 8.0
    assert abs(a["sharp"].tuning - SHARP) < 8.0


def test_match_names_the_tuning_correction(library):
    a = library["analyses"]
    with open_library(library["url"]) as lib:
        result = workflows.match(lib, a["query"], top=3)
    cands = [c for m in result.matches for c in m.candidates]
    assert cands, "the two songs share key and tempo: there must be suggestions"
    want = tuning_correction(a["query"].tuning, a["sharp"].tuning)
    assert want == pytest.approx(-SHARP, abs=10.0)
    for c in cands:
        assert c["track_id"] == library["ids"]["sharp"]
        assert c["cents"] == pytest.approx(want)
        assert "cents apart" in c["reason"]


def test_render_meets_the_query_tuning(library):
    """The partner layer alone, re-measured by librosa: within 12 cents of the query's tuning
    (it starts 40 cents sharp), with the correction said in the render's metadata."""
    a = library["analyses"]
    q_seg = next(s for s in a["query"].segments if s.bars >= 4 and s.start > 1.0)
    c_seg = next(s for s in a["sharp"].segments if s.bars >= 4 and s.start > 1.0)
    with open_library(library["url"]) as lib:
        pair = workflows.render_pair(lib, q_seg.id, c_seg.id, use_cache=False)
    assert pair.info["tuning_cents"] == pytest.approx(-SHARP, abs=10.0)
    assert pair.tuning_cents == pair.info["tuning_cents"]
    with open_library(library["url"]) as lib:  # rendered, then read back from the cache
        workflows.render_pair(lib, q_seg.id, c_seg.id)
        cached = workflows.render_pair(lib, q_seg.id, c_seg.id)
    assert cached.cached and cached.to_json()["tuning_cents"] == pair.tuning_cents
    assert pair.info["semitones"] == pytest.approx(
        round(pair.semitones) + pair.info["tuning_cents"] / 100.0
    )
    partner = pair.partner if pair.partner.ndim == 1 else pair.partner.mean(axis=0)
    query = sf.read(a["query"].path, dtype="float32")[0]
    lo, hi = int(q_seg.start * SR), int(q_seg.end * SR)
    q_cents = _cents_off(query[lo:hi], SR)
    before = _cents_off(sf.read(a["sharp"].path, dtype="float32")[0], SR)
    after = _cents_off(partner, pair.sr)
    assert abs(before - q_cents) > 30.0  # the test's premise: 40 cents apart as written
    assert abs(after - q_cents) < 12.0, (q_cents, before, after)


def test_cli_shows_the_correction(library):
    """`cratedig match` prints the cents beside the semitones, e.g. ``+0 st -40 ct``."""
    import re

    from typer.testing import CliRunner

    from cratedig.cli import app

    path = library["analyses"]["query"].path
    r = CliRunner().invoke(app, ["match", path, "--db", library["url"], "--top", "1"])
    assert r.exit_code == 0, r.output
    shown = [int(x) for x in re.findall(r"st ([+-]\d+) ct", r.output)]
    assert shown and all(abs(x + SHARP) <= 10 for x in shown), r.output
