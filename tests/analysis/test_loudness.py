"""Our once-per-track BS.1770 loudness agrees with pyloudnorm's reference implementation."""

import numpy as np
import pyloudnorm
import pytest

from cratedig.analysis.loudness import SILENCE_LUFS, loudness_blocks


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_matches_pyloudnorm(rng, sr):
    t = np.arange(int(12 * sr)) / sr
    # Music-like: a tone, noise, and a level change halfway (so the relative gate matters).
    y = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))
    y[len(y) // 2 :] *= 0.1
    ours = loudness_blocks(y, sr).integrated()
    ref = pyloudnorm.Meter(sr).integrated_loudness(y)
    assert ours == pytest.approx(ref, abs=0.1)


def test_segment_loudness_matches_cut_signal(rng):
    sr = 22050
    y = 0.1 * rng.standard_normal(20 * sr)
    y[8 * sr :] *= 4.0
    blocks = loudness_blocks(y, sr)
    for start, end in [(0.0, 8.0), (8.0, 20.0), (2.5, 14.3)]:
        cut = y[int(start * sr) : int(end * sr)]
        ref = pyloudnorm.Meter(sr).integrated_loudness(cut)
        assert blocks.integrated(start, end) == pytest.approx(ref, abs=0.5)


def test_silence_is_floor():
    assert loudness_blocks(np.zeros(22050 * 3), 22050).integrated() == SILENCE_LUFS


def test_sine_reference_level():
    # BS.1770: a 0 dBFS 997 Hz sine on one channel reads -3.01 LUFS.
    sr = 48000
    t = np.arange(5 * sr) / sr
    assert loudness_blocks(np.sin(2 * np.pi * 997 * t), sr).integrated() == pytest.approx(
        -3.01, abs=0.05
    )


def test_segment_rms_is_in_dbfs_through_the_whole_analysis():
    """A segment's ``rms_db`` is its RMS level in dBFS: a sine of amplitude 0.5 reads -9.03
    (it read 30.1 dB hot, "+20.9 dBFS", before the front end's frame RMS lost its factor of
    sqrt(N)), on a real song too: within a few dB of the phrase's integrated loudness."""
    from cratedig.analysis.features import rms_db
    from cratedig.analysis.frontend import compute_frontend
    from cratedig.analysis.pipeline import analyze_signal
    from cratedig.synth import synthesize_song
    from cratedig.theory import Key

    sr = 22050
    t = np.arange(6 * sr) / sr
    for amp in (0.5, 0.05):
        fe = compute_frontend((amp * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr=sr)
        level = float(rms_db(fe, np.array([1.0]), np.array([5.0]))[0])
        assert level == pytest.approx(20 * np.log10(amp / np.sqrt(2)), abs=0.05)
    song = synthesize_song(tempo=120.0, key=Key.parse("C major"), bars=16, seed=3, sr=sr)
    a = analyze_signal(song.audio, sr=sr)
    for seg in a.segments:
        assert seg.features.rms_db < 0.0  # a level in dBFS never exceeds full scale here
        assert seg.features.rms_db == pytest.approx(seg.features.loudness, abs=6.0)
