"""Input quality: fake lossless, clipping, DC, fake stereo, silence, analysis confidence."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from cratedig.analysis.quality import assess_quality, bandwidth, silence_share
from cratedig.audio.decode import decode
from cratedig.audio.stats import SPECTRUM_N, SourceStatsAccumulator

SR = 44100


def _music(rng, seconds=8.0, channels=2):
    """Broadband stand-in for produced music: pink-ish noise bursts over a few tones."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    tones = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 330.0, 440.0)) * 0.05
    noise = rng.standard_normal((n, channels))
    # Tilt down ~3 dB/octave, as music does, but keep content up to Nyquist.
    b, a = signal.butter(1, 2000.0, fs=SR)
    noise = 0.3 * noise + 0.7 * signal.lfilter(b, a, noise, axis=0)
    env = (np.sin(2 * np.pi * 2.0 * t) > 0).astype(float)[:, None] * 0.5 + 0.5
    x = tones[:, None] + 0.1 * noise * env
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


def _write(tmp_path, name, x, sr=SR):
    p = tmp_path / name
    sf.write(str(p), x, sr, subtype="PCM_16")
    return p


def test_genuine_full_band_flac_is_not_fake(tmp_path, rng):
    q = assess_quality(decode(_write(tmp_path, "real.flac", _music(rng))))
    assert q["declared"] == "lossless"
    assert q["fake_lossless"] is False
    assert q["bandwidth_hz"] > 20_000
    assert "fake_lossless" not in q["flags"]


def test_a_brickwall_low_pass_at_16k_in_a_flac_is_fake_lossless(tmp_path, rng):
    sos = signal.ellip(12, 0.1, 90, 16_000, fs=SR, output="sos")
    x = signal.sosfiltfilt(sos, _music(rng), axis=0).astype(np.float32)
    q = assess_quality(decode(_write(tmp_path, "fake.flac", x)))
    assert q["fake_lossless"] is True
    assert abs(q["bandwidth_hz"] - 16_000) < 600
    assert q["cutoff_db"] >= 25
    assert q["effective"] == "128 kbps"
    assert "fake_lossless" in q["flags"] and "16" in q["reasons"]["fake_lossless"]


def test_a_gentle_natural_roll_off_is_not_a_cliff(rng):
    freqs = np.linspace(0, SR / 2, SPECTRUM_N // 2 + 1)
    spectrum = 1.0 / (1.0 + (freqs / 3000.0) ** 2)  # -12 dB/octave from 3 kHz, no cut
    bw, cliff = bandwidth(spectrum, SR)
    assert cliff < 25


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None and os.environ.get("CI") != "true",
    reason="needs ffmpeg (CI installs it, and fails here without it)",
)
def test_an_mp3_decoded_back_to_flac_is_caught(tmp_path, rng):
    src = _write(tmp_path, "src.wav", _music(rng, seconds=10))
    mp3, back = tmp_path / "x.mp3", tmp_path / "x.flac"
    for args in (["-i", str(src), "-b:a", "128k", str(mp3)], ["-i", str(mp3), str(back)]):
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)
    fake = assess_quality(decode(back))
    assert fake["fake_lossless"] is True and fake["bandwidth_hz"] < 19_000
    lossy = assess_quality(decode(mp3))
    assert lossy["declared"] == "128 kbps" and lossy["fake_lossless"] is False


def test_clipping_dc_offset_and_fake_stereo_are_flagged(tmp_path, rng):
    x = _music(rng, channels=1)[:, 0] * 3.0  # driven into the rails
    x = np.clip(x + 0.05, -1.0, 1.0)  # and off centre
    stereo = np.stack([x, x], axis=1)  # the same signal on both channels
    q = assess_quality(decode(_write(tmp_path, "hot.wav", stereo)))
    assert {"clipping", "dc_offset", "fake_stereo"} <= set(q["flags"])
    assert q["clipping"]["share"] > 0.001 and q["clipping"]["runs"] > 10
    assert q["dc_offset"] > 0.04
    assert q["level"] == "low"


def test_clean_audio_raises_no_signal_flag(tmp_path, rng):
    q = assess_quality(decode(_write(tmp_path, "clean.wav", _music(rng))))
    assert q["flags"] == [] and q["level"] == "ok"
    assert q["stereo"]["side_db"] > -60


def test_silence_share():
    y = np.zeros(22050 * 10, np.float32)
    y[: 22050 * 4] = 0.1
    assert silence_share(y) == pytest.approx(0.6, abs=0.02)


def test_accumulator_spectrum_does_not_depend_on_block_size(rng):
    x = _music(rng, seconds=4)
    whole, pieces = SourceStatsAccumulator(SR, 2), SourceStatsAccumulator(SR, 2)
    whole.update(x)
    for i in range(0, len(x), 50_000):
        pieces.update(x[i : i + 50_000])
    assert pieces.stats.frames == whole.stats.frames
    # Windows straddling a block edge are skipped: at most one per block lost.
    assert whole.stats.spectrum_windows - pieces.stats.spectrum_windows <= len(x) // 50_000 + 1
    assert pieces.stats.dc_offset == pytest.approx(whole.stats.dc_offset, abs=1e-3)


def test_analysis_confidence_on_a_song_with_a_beat(song_files):
    from cratedig.analysis.pipeline import analyze_file

    a = analyze_file(song_files[0])
    conf = a.quality["confidence"]
    assert conf["beat_strength"] > 0.2
    assert conf["tempo_stability"] > 0.95
    assert "no_stable_beat" not in a.quality["flags"]
    assert a.to_json()["quality"]["level"] in ("ok", "low")


def test_a_shallower_cliff_counts_only_where_encoders_put_their_low_pass():
    freqs = np.linspace(0, SR / 2, SPECTRUM_N // 2 + 1)

    def cut(at_hz, depth_db):
        return np.where(freqs < at_hz, 1.0, 10 ** (-depth_db / 10)) / (1 + freqs / 2000)

    band = (15_000.0, 19_300.0, 18.0)
    bw, cliff = bandwidth(cut(17_000, 21), SR, band=band)
    assert abs(bw - 17_000) < 300 and 18 <= cliff < 25
    bw, cliff = bandwidth(cut(20_800, 21), SR, band=band)  # a synthesiser's own roll-off
    assert cliff < 25 and not (15_000 <= bw <= 19_300 and cliff >= 18)
