"""A key in the file's tags picks among the keys the audio allows (``tonal.follow_tag_key``):
an A minor / C major alternation tagged C major is read in C major, the audio's A minor kept as
the runner-up; a tag the audio does not allow (a fifth or a tritone from what plays) is not
followed; a clear song is never talked out of its key."""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.analysis.pipeline import analyze_signal
from cratedig.analysis.tonal import TAG_KEY_MARGIN, KeyEstimate, follow_tag_key
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


def _chord(midis: list[int], seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    env = np.minimum(1.0, np.exp(-1.5 * t) + 0.3)
    out = np.zeros_like(t)
    for m in midis:
        f = 440.0 * 2 ** ((m - 69) / 12)
        out += sum(0.5**h * np.sin(2 * np.pi * f * (h + 1) * t) for h in range(4))
    return out * env


@pytest.fixture(scope="module")
def am_c() -> np.ndarray:
    """A minor and C major triads in turn, a second each: either key is a fair reading."""
    y = np.concatenate([_chord(c, 1.0) for _ in range(12) for c in ([57, 60, 64], [60, 64, 67])])
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def test_the_tag_picks_between_readings_the_audio_allows(am_c) -> None:
    own = analyze_signal(am_c, sr=SR)
    assert own.key.camelot in ("8A", "8B")
    other = "8B" if own.key.camelot == "8A" else "8A"
    a = analyze_signal(am_c, sr=SR, tags={"key": other})
    assert a.key.camelot == other
    k = a.estimates["key"]
    assert k["tags"] == {"key": other, "used": True, "heard": own.key.camelot, "source": "tags"}
    assert Key.parse(k["alternative"]).camelot == own.key.camelot  # the audio's own, runner-up
    # not "unclear": the tag names it and the audio allows it (the matcher weighs its relations)
    assert k["confidence"] >= 0.6 and a.key_clarity >= 0.6


@pytest.mark.parametrize("tag", ["9B", "7A", "2A"])  # G major, D minor, D# minor
def test_a_tag_the_audio_does_not_allow_is_not_followed(am_c, tag) -> None:
    own = analyze_signal(am_c, sr=SR)
    a = analyze_signal(am_c, sr=SR, tags={"key": tag})
    assert a.key == own.key
    assert a.estimates["key"]["tags"]["used"] is False
    assert a.estimates["key"]["confidence"] == own.estimates["key"]["confidence"]


def test_a_clear_song_keeps_its_key_whatever_the_tag() -> None:
    song = synthesize_song(tempo=124.0, key=Key.parse("A minor"), bars=8, seed=5, sr=SR)
    for tag in ("8B", "9A", "8A"):  # relative, fifth, itself
        a = analyze_signal(song.audio, sr=SR, tags={"key": tag})
        assert a.key == Key.parse("A minor")
        assert a.estimates["key"]["tags"]["used"] is (tag == "8A")


def test_follow_tag_key_margin_and_bad_tags() -> None:
    scores = np.zeros(24)
    best, near, far = Key.parse("A minor"), Key.parse("C major"), Key.parse("E major")
    scores[best.index] = 3.0
    scores[near.index] = 3.0 - 0.9 * TAG_KEY_MARGIN
    scores[far.index] = 3.0 - 1.1 * TAG_KEY_MARGIN
    est = KeyEstimate(key=best, clarity=1.0, scores=scores)
    moved, info = follow_tag_key(est, near.camelot)
    assert moved.key == near and info is not None and info.used and info.heard == "8A"
    assert np.argsort(moved.scores)[-2] == best.index
    kept, info = follow_tag_key(est, far.camelot)
    assert kept is est and info is not None and not info.used
    assert follow_tag_key(est, "13C") == (est, None)


def test_analyze_says_where_the_key_came_from(tmp_path, am_c) -> None:
    import soundfile as sf
    from typer.testing import CliRunner

    from cratedig.audio.tags import write_tags
    from cratedig.cli import app

    path = tmp_path / "loop.flac"
    sf.write(path, am_c, SR, format="FLAC")
    own = analyze_signal(am_c, sr=SR).key.camelot
    other = "C" if own == "8A" else "Am"
    write_tags(path, {"key": other})
    r = CliRunner().invoke(app, ["analyze", str(path)], catch_exceptions=False)
    shown = " ".join(r.stdout.split())
    assert r.exit_code == 0, r.output
    tagged = Key.parse(other).camelot
    assert f"key {tagged} from the file's key tag; the audio alone reads {own}" in shown
    r = CliRunner().invoke(app, ["analyze", str(path), "--ignore-tags"], catch_exceptions=False)
    assert f"({own}," in r.stdout and "key tag" not in r.stdout
