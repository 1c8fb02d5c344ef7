"""A BPM in the file's tags picks the beat's level where the audio allows it
(``rhythm.follow_tag_tempo``): DJ programs write the tempo they settled on into the file, at
the level the DJ counts (half-time hip-hop at 90, not 180). A tag at a simple ratio of what the
audio says is followed, the audio's own reading kept as the runner-up; a tag related to nothing
heard is not followed and is reported; a tempo the user gives wins over the tag."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from cratedig.analysis.pipeline import analyze_signal
from cratedig.analysis.rhythm import GridHint
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


@pytest.fixture(scope="module")
def song():
    return synthesize_song(tempo=100.0, key=Key.parse("D minor"), bars=16, sr=SR, seed=5)


def _tags(a):
    return a.estimates["tempo"].get("tags")


def test_no_tag_no_record(song) -> None:
    a = analyze_signal(song.audio, sr=SR)
    assert a.tempo == pytest.approx(100.0, rel=0.01)
    assert _tags(a) is None


def test_a_tag_that_agrees_confirms_the_grid(song) -> None:
    own = analyze_signal(song.audio, sr=SR)
    a = analyze_signal(song.audio, sr=SR, tags={"bpm": 100.0})
    np.testing.assert_allclose(a.beats, own.beats)
    t = a.estimates["tempo"]
    assert t["confidence"] == 1.0 and t["alternative"] is None
    assert t["tags"] == {
        "bpm": 100.0,
        "relation": "1:1",
        "used": True,
        "heard": round(own.tempo, 2),
        "source": "tags",
    }


def test_a_half_time_tag_lays_the_grid_at_half_time(song) -> None:
    a = analyze_signal(song.audio, sr=SR, tags={"bpm": 50.0})
    assert a.tempo == pytest.approx(50.0, rel=0.02)
    beats = np.asarray(a.beats)
    # every other beat of the song, on its beats (either phase of the half-time pulse)
    f = max(mir_eval.beat.f_measure(song.beats[k::2], beats) for k in (0, 1))
    assert f > 0.9
    t = a.estimates["tempo"]
    assert t["tags"]["used"] and t["tags"]["relation"] == "1:2"
    assert t["alternative"] == pytest.approx(100.0, rel=0.01)  # what the audio alone said
    assert t["confidence"] == 1.0
    assert not any(d.startswith("tempo") for d in a.doubts())


def test_a_three_four_tag_is_a_reading_the_audio_allows(song) -> None:
    a = analyze_signal(song.audio, sr=SR, tags={"bpm": 75.0})
    assert a.tempo == pytest.approx(75.0, rel=0.02)
    assert _tags(a)["relation"] == "3:4" and _tags(a)["used"]


@pytest.mark.parametrize("bpm", [113.0, 87.0, 400.0])
def test_a_tag_related_to_nothing_heard_is_not_followed(song, bpm) -> None:
    own = analyze_signal(song.audio, sr=SR)
    a = analyze_signal(song.audio, sr=SR, tags={"bpm": bpm})
    np.testing.assert_allclose(a.beats, own.beats)
    assert a.tempo == own.tempo
    assert _tags(a)["used"] is False and _tags(a)["relation"] == "other"
    assert a.estimates["tempo"]["confidence"] == own.estimates["tempo"]["confidence"]


def test_the_users_tempo_wins_over_the_tag(song) -> None:
    a = analyze_signal(song.audio, sr=SR, tags={"bpm": 50.0}, hint=GridHint(bpm=100.0))
    assert a.tempo == pytest.approx(100.0, rel=0.01)
    assert _tags(a) is None


def test_a_bar_line_the_user_gives_is_laid_on_the_tags_grid(song) -> None:
    bar = float(song.downbeats[2])
    a = analyze_signal(song.audio, sr=SR, tags={"bpm": 50.0}, hint=GridHint(downbeat=bar))
    assert a.tempo == pytest.approx(50.0, rel=0.02)
    assert np.min(np.abs(np.asarray(a.downbeats) - bar)) < 0.05
    assert _tags(a)["used"]


def test_analyze_file_reads_the_tags_unless_told_not_to(tmp_path, song) -> None:
    import soundfile as sf

    from cratedig.analysis.pipeline import analyze_file
    from cratedig.audio.tags import write_tags

    path = tmp_path / "song.flac"
    sf.write(path, song.audio, SR, format="FLAC")
    write_tags(path, {"bpm": "50"})
    assert analyze_file(path).tempo == pytest.approx(50.0, rel=0.02)
    assert analyze_file(path, use_tags=False).tempo == pytest.approx(100.0, rel=0.01)
    assert analyze_file(path, tags={}).tempo == pytest.approx(100.0, rel=0.01)


def test_a_tag_at_the_right_level_but_a_wrong_tempo_is_not_followed(song) -> None:
    """A tag 3 % off (another edit of the track, a pitched copy): the level is the audio's but
    the tempo is not, so its beats would drift off the music within bars: not followed."""
    own = analyze_signal(song.audio, sr=SR)
    a = analyze_signal(song.audio, sr=SR, tags={"bpm": 103.0})
    assert a.tempo == own.tempo
    assert _tags(a)["relation"] == "1:1" and _tags(a)["used"] is False
    # a little off at half time (a rounded 50.6 for 50): within 2 %, followed, refined
    b = analyze_signal(song.audio, sr=SR, tags={"bpm": 50.6})
    assert _tags(b)["used"] and b.tempo == pytest.approx(50.0, rel=0.01)
