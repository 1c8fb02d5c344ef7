"""Synthesized songs: exact grid, stems, silence, sections, files, and musically correct content."""

import json
import time

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from cratedig.errors import ParameterError
from cratedig.synth import STEMS, default_sections, demo_library, synthesize_song, write_song
from cratedig.theory import Key

SR = 22050

# Krumhansl-Kessler key profiles (C major / C minor), for the "does it sound in key" check.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def kk_key(chroma: np.ndarray) -> Key:
    scores = {}
    for mode, prof in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for t in range(12):
            scores[Key(t, mode)] = np.corrcoef(chroma, np.roll(prof, t))[0, 1]
    return max(scores, key=scores.__getitem__)


@pytest.fixture(scope="module")
def song():
    return synthesize_song(tempo=128.0, key=Key.parse("D minor"), bars=24, lead_in=0.75, seed=3)


@pytest.fixture(scope="module")
def waltz():
    return synthesize_song(
        tempo=140.0, key=Key.parse("Bb major"), meter=3, bars=16, lead_in=0.5, seed=5
    )


def test_deterministic():
    kw = dict(tempo=100.0, key=Key.parse("F# minor"), bars=8, lead_in=0.3, seed=7)
    a, b = synthesize_song(**kw), synthesize_song(**kw)
    assert np.array_equal(a.audio, b.audio)
    assert all(np.array_equal(a.stems[k], b.stems[k]) for k in STEMS)
    assert a.sections == b.sections
    c = synthesize_song(**{**kw, "seed": 8})
    assert not np.array_equal(a.audio, c.audio)


@pytest.mark.parametrize("fixture", ["song", "waltz"])
def test_beat_grid(fixture, request):
    s = request.getfixturevalue(fixture)
    spb = 60.0 / s.tempo
    assert len(s.beats) == s.bars * s.meter
    assert s.beats[0] == pytest.approx(s.lead_in)
    np.testing.assert_allclose(np.diff(s.beats), spb, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(s.downbeats, s.beats[:: s.meter])
    np.testing.assert_allclose(np.diff(s.downbeats), s.meter * spb, atol=1e-9)
    # The audio ends at the last bar's end plus a release tail shorter than one beat.
    end = s.lead_in + len(s.beats) * spb
    assert end <= s.duration < end + spb


@pytest.mark.parametrize("fixture", ["song", "waltz"])
def test_stems_sum_to_mix(fixture, request):
    s = request.getfixturevalue(fixture)
    assert set(s.stems) == set(STEMS)
    assert s.audio.dtype == np.float32 and s.audio.ndim == 1
    for x in s.stems.values():
        assert x.dtype == np.float32 and x.shape == s.audio.shape
        assert np.max(np.abs(x)) > 0.01
    np.testing.assert_allclose(sum(s.stems.values()), s.audio, atol=1e-6)
    assert 0.5 < np.max(np.abs(s.audio)) <= 0.9
    assert np.all(np.isfinite(s.audio))


def test_lead_in_is_exact_silence(song):
    start = round(song.lead_in * song.sr)
    assert np.all(song.audio[:start] == 0)
    assert all(np.all(x[:start] == 0) for x in song.stems.values())
    # The first kick starts on the first beat's sample.
    assert song.stems["drums"][start] != 0
    assert np.max(np.abs(song.audio[start : start + song.sr // 50])) > 0.05
    s0 = synthesize_song(tempo=120.0, key=Key.parse("C"), bars=4)
    assert s0.lead_in == 0.0 and s0.stems["drums"][0] != 0


def test_sections_tile_the_song(song):
    labels = [lab for _, _, lab in song.sections]
    assert labels == [lab for lab, _ in default_sections(24)]
    assert {"intro", "chorus", "break"} <= set(labels)
    assert song.sections[0][0] == pytest.approx(song.lead_in)
    assert song.sections[-1][1] == pytest.approx(song.lead_in + len(song.beats) * 60 / song.tempo)
    for (_, end, _), (start, _, _) in zip(song.sections, song.sections[1:], strict=False):
        assert end == pytest.approx(start)
    for start, _, _ in song.sections:
        assert np.min(np.abs(song.downbeats - start)) < 1e-9


def test_default_sections():
    for bars in (1, 4, 7, 8, 12, 15, 16, 17, 21, 24, 32, 40, 64, 100):
        secs = default_sections(bars)
        assert sum(b for _, b in secs) == bars
        assert all(b >= 1 for _, b in secs)
        assert all(a != b for (a, _), (b, _) in zip(secs, secs[1:], strict=False))
    assert [lab for lab, _ in default_sections(16)][0] == "intro"


def test_sections_differ_in_energy_and_instrumentation(song):
    sr = song.sr

    def rms(x, sec):
        a, b = round(sec[0] * sr), round(sec[1] * sr)
        return float(np.sqrt(np.mean(x[a:b].astype(np.float64) ** 2)))

    secs = {lab: (st, en) for st, en, lab in song.sections}
    assert rms(song.audio, secs["chorus"]) > 1.3 * rms(song.audio, secs["intro"])
    assert rms(song.stems["drums"], secs["break"]) < 1e-3  # a break has no drums
    assert rms(song.stems["lead"], secs["intro"]) < 1e-3  # the intro has no lead
    assert rms(song.stems["lead"], secs["chorus"]) > 0.01


def test_custom_sections_and_no_drums():
    s = synthesize_song(
        tempo=96.0, key=Key.parse("G"), bars=8, drums=False, sections=[("intro", 2), ("chorus", 6)]
    )
    assert [lab for _, _, lab in s.sections] == ["intro", "chorus"]
    assert s.sections[1][0] == pytest.approx(s.downbeats[2])
    assert not np.any(s.stems["drums"])
    assert len(s.beats) == 32


@pytest.mark.parametrize("meter", [2, 5, 6, 7])
@pytest.mark.parametrize("bars", [1, 3, 9])
def test_other_meters_and_lengths_do_not_crash(meter, bars):
    s = synthesize_song(
        tempo=110.0, key=Key.parse("Eb minor"), meter=meter, bars=bars, sr=8000, seed=bars
    )
    assert len(s.downbeats) == bars and len(s.beats) == bars * meter
    assert np.all(np.isfinite(s.audio)) and np.max(np.abs(s.audio)) <= 0.9


def test_bad_parameters():
    k = Key.parse("C")
    for kw in (
        dict(tempo=0.0),
        dict(tempo=120.0, meter=1),
        dict(tempo=120.0, meter=4, bars=0),
        dict(tempo=120.0, lead_in=-1.0),
        dict(tempo=120.0, sections=[("verse", 3)]),
        dict(tempo=120.0, progression=[1, 8]),
        dict(tempo=120.0, progression=[]),
    ):
        with pytest.raises(ParameterError):
            synthesize_song(key=k, **{"bars": 4, **kw})
    with pytest.raises(ParameterError):
        synthesize_song(tempo=120.0, key="C", bars=4)


@pytest.mark.parametrize(
    ("key", "meter", "seed"),
    [("A minor", 4, 0), ("E major", 4, 1), ("C minor", 4, 4), ("Bb major", 3, 3)],
)
def test_chroma_establishes_the_key(key, meter, seed):
    k = Key.parse(key)
    s = synthesize_song(tempo=120.0, key=k, meter=meter, bars=16, seed=seed)
    chroma = librosa.feature.chroma_stft(y=s.audio, sr=s.sr, tuning=0.0).sum(axis=1)
    share = chroma / chroma.sum()
    # The key's seven pitch classes hold more energy than those of any other major scale ...
    in_scale = [share[[(p + t) % 12 for p in k.scale]].sum() for t in range(12)]
    assert int(np.argmax(in_scale)) == 0, np.round(in_scale, 3)
    assert in_scale[0] > 0.62  # uniform would be 7/12 = 0.583; drums are pitchless noise
    # ... the harmonic stems alone are clearly in key ...
    tonal = s.audio - s.stems["drums"]
    t_chroma = librosa.feature.chroma_stft(y=tonal, sr=s.sr, n_fft=8192, tuning=0.0).sum(axis=1)
    assert t_chroma[list(k.scale)].sum() / t_chroma.sum() > 0.72
    # ... and a plain key-profile correlation names the key, mode included.
    assert kk_key(chroma) == k


def test_progression_one_chord_per_bar():
    k = Key.parse("C major")
    s = synthesize_song(
        tempo=120.0, key=k, bars=4, progression=[1, 4, 5, 6], sections=[("chorus", 4)]
    )
    bar = int(round(60 / s.tempo * s.meter * s.sr))
    expect = [{0, 4, 7}, {5, 9, 0}, {7, 11, 2}, {9, 0, 4}]
    for b, triad in enumerate(expect):
        x = s.stems["chords"][b * bar + bar // 8 : (b + 1) * bar].astype(np.float64)
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / s.sr)
        ok = (f > 100) & (f < 2000)
        pcs = np.round(69 + 12 * np.log2(f[ok] / 440)).astype(int) % 12
        chroma = np.bincount(pcs, spec[ok], 12)
        assert set(np.argsort(chroma)[-3:].tolist()) == triad, (
            b,
            np.round(chroma / chroma.max(), 2),
        )
    # Bass plays the chord roots in 55..110 Hz.
    x = s.stems["bass"][:bar].astype(np.float64)
    spec = np.abs(np.fft.rfft(x))
    f = np.fft.rfftfreq(len(x), 1 / s.sr)
    assert 55 <= f[np.argmax(spec)] <= 110
    assert f[np.argmax(spec)] == pytest.approx(65.41, abs=1.0)  # C2


@pytest.mark.parametrize("fixture", ["song", "waltz"])
def test_kick_onsets_on_beats(fixture, request):
    s = request.getfixturevalue(fixture)
    sr, hop = s.sr, 128
    # Low band of the drum stem: the kick alone.
    sos = scipy.signal.butter(4, 120, "lowpass", fs=sr, output="sos")
    low = scipy.signal.sosfilt(sos, s.stems["drums"]).astype(np.float32)
    env = librosa.onset.onset_strength(y=low, sr=sr, hop_length=hop)
    kicks = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop, units="time")
    drum_bars = [(st, en) for st, en, lab in s.sections if lab != "break"]
    kicks = kicks[[any(st - 0.05 <= t < en for st, en in drum_bars) for t in kicks]]
    assert len(kicks) >= s.bars // 2
    # Every kick onset is within 30 ms of a beat, and every downbeat with drums has a kick.
    assert np.max(np.min(np.abs(kicks[:, None] - s.beats[None, :]), axis=1)) < 0.03
    dbs = [d for d in s.downbeats if any(st <= d < en for st, en in drum_bars) and d > 0.1]
    assert np.max(np.min(np.abs(np.array(dbs)[:, None] - kicks[None, :]), axis=1)) < 0.03
    # The full mix's onset envelope peaks at the beats too.
    env = librosa.onset.onset_strength(y=s.audio, sr=sr, hop_length=hop)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop, units="time")
    beats = [b for b in s.beats if any(st <= b < en for st, en in drum_bars)]
    assert np.max(np.min(np.abs(np.array(beats)[:, None] - onsets[None, :]), axis=1)) < 0.03


def test_write_song_and_stems(song, tmp_path):
    write_song(song, tmp_path / "a" / "song.flac", stems_dir=tmp_path / "stems")
    y, sr = sf.read(tmp_path / "a" / "song.flac", dtype="float32")
    assert sr == song.sr and y.shape == song.audio.shape
    assert np.max(np.abs(y - song.audio)) < 1e-3  # 16-bit
    for name in STEMS:
        x, _ = sf.read(tmp_path / "stems" / f"{name}.wav", dtype="float32")
        assert np.max(np.abs(x - song.stems[name])) < 1e-3
    with pytest.raises(ParameterError):
        write_song(song, tmp_path / "song.xyz")


def test_demo_library(tmp_path):
    truth = demo_library(tmp_path / "lib", n=4, seed=1, seconds=6.0, sr=SR)
    assert len(truth) == 4
    assert json.loads((tmp_path / "lib" / "truth.json").read_text()) == truth
    assert {t["path"].rsplit(".", 1)[1] for t in truth} == {"wav", "flac", "ogg"}
    assert 3 in {t["meter"] for t in truth} and 4 in {t["meter"] for t in truth}
    assert {t["mode"] for t in truth} == {"major", "minor"}
    for t in truth:
        assert set(t) == {"path", "tempo", "key", "mode", "camelot", "meter", "lead_in"}
        assert 85 <= t["tempo"] <= 175
        k = Key.parse(f"{t['key']} {t['mode']}")
        assert k.camelot == t["camelot"]
        y, sr = sf.read(t["path"], dtype="float32")
        assert sr == SR
        bar = t["meter"] * 60 / t["tempo"]
        assert 6.0 - bar <= len(y) / sr - t["lead_in"] <= 6.0 + 2 * bar
    # Tagged as a DJ's files are, with the true BPM and key.
    from cratedig.audio.tags import read_tags

    for i, t in enumerate(truth):
        tags = read_tags(t["path"])
        assert tags["artist"] == "cratedig demo" and tags["title"] == f"Demo {i + 1:02d}"
        assert tags["bpm"] == t["tempo"] and tags["key"] == t["camelot"], (tags, t)
    # Deterministic from the seed.
    again = demo_library(tmp_path / "lib2", n=4, seed=1, seconds=6.0, sr=SR)
    assert [{**t, "path": None} for t in again] == [{**t, "path": None} for t in truth]
    assert np.array_equal(sf.read(again[0]["path"])[0], sf.read(truth[0]["path"])[0])


def test_fast_enough():
    key = Key.parse("A minor")
    synthesize_song(tempo=120.0, key=key, bars=2)  # warm up
    t0 = time.perf_counter()
    s = synthesize_song(tempo=120.0, key=key, bars=15, seed=1)  # 30 s
    assert time.perf_counter() - t0 < 1.5  # typically ~0.15 s
    assert s.duration == pytest.approx(30.0, abs=0.5)
