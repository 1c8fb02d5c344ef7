"""Rendering a pair: beats land on the query's beats, the key is the intended one, peaks and
lengths are safe, bad parameters are refused clearly. Songs are synthesized with exact truth."""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.errors import ParameterError
from cratedig.render.engine import (
    DCBlocker,
    RenderCache,
    beat_time_map,
    cache_key,
    limit_true_peak,
    loudness_db,
    remove_dc,
    render_pair,
    stretch_shift,
)
from cratedig.synth import Song, synthesize_song
from cratedig.theory import Key

SR = 22050
SECTIONS = [("verse", 4), ("chorus", 8)]  # drums throughout, so every beat has an onset


def cut(song: Song, first_bar: int, bars: int, *, pad: float = 0.0):
    """Audio of ``bars`` bars from ``first_bar`` (``pad`` s wider each side), beats relative."""
    start = song.downbeats[first_bar]
    end = song.downbeats[first_bar + bars] if first_bar + bars < song.bars else song.duration
    lo, hi = int(round((start - pad) * song.sr)), int(round((end + pad) * song.sr))
    beats = song.beats[(song.beats >= start - 1e-6) & (song.beats < end - 1e-6)]
    return song.audio[lo:hi], beats - (start - pad), lo, hi


@pytest.fixture(scope="module")
def query_song() -> Song:
    return synthesize_song(
        tempo=124.0, key=Key.parse("A minor"), bars=12, sr=SR, seed=11, sections=SECTIONS
    )


@pytest.fixture(scope="module")
def cand_song() -> Song:
    # A different song, 118 BPM, G minor: it needs +5.1 % and +2 semitones to sit on the query.
    return synthesize_song(
        tempo=118.0, key=Key.parse("G minor"), bars=12, sr=SR, seed=12, sections=SECTIONS
    )


@pytest.fixture(scope="module")
def half_song() -> Song:
    # Half-time: one 63 BPM beat spans two query beats (tempo_ratio 2.0, stretch -1.6 %).
    return synthesize_song(
        tempo=63.0, key=Key.parse("G minor"), bars=10, sr=SR, seed=13, sections=[("chorus", 10)]
    )


@pytest.fixture(scope="module")
def query_segment(query_song):
    audio, beats, _, _ = cut(query_song, 2, 8)
    return audio, beats


def _onsets_near(y: np.ndarray, times: np.ndarray, radius: float = 0.04) -> np.ndarray:
    """First sample above a quarter of the local peak within ``radius`` of each time."""
    out = []
    for t in times:
        lo = max(int(round((t - radius) * SR)), 0)
        env = np.abs(y[lo : int(round((t + radius) * SR))])
        out.append((lo + int(np.flatnonzero(env > 0.25 * env.max())[0])) / SR)
    return np.array(out)


# -- the acceptance test: re-analyse the rendered partner ------------------------------
@pytest.mark.parametrize(
    ("which", "tempo_ratio", "first_bar", "bars"), [("cand", 1.0, 4, 8), ("half", 2.0, 4, 4)]
)
def test_partner_beats_and_key_after_render(
    query_song, cand_song, half_song, query_segment, which, tempo_ratio, first_bar, bars
):
    from cratedig.analysis.pipeline import analyze_signal

    song = cand_song if which == "cand" else half_song
    q, q_beats = query_segment
    c, c_beats, _, _ = cut(song, first_bar, bars, pad=0.3)
    out = render_pair(q, SR, q_beats, c, c_beats, semitones=2, tempo_ratio=tempo_ratio)

    assert out.mix.shape == q.shape and out.partner.shape == q.shape
    assert 20 * np.log10(np.abs(out.mix).max()) < -0.9  # the -1 dBTP ceiling holds
    expected = 124.0 / (song.tempo * tempo_ratio) - 1.0
    assert out.stretch == pytest.approx(expected, abs=0.002)

    partner = analyze_signal(out.partner, sr=SR)
    # A 4-bar phrase from a tonic bar reads as the song's key: G minor, +2 -> A minor; and
    # whatever the source excerpt reads as, the render moves it by exactly +2.
    assert partner.key == Key.parse("A minor")
    assert partner.key == analyze_signal(c, sr=SR).key.transpose(2)
    assert partner.tempo == pytest.approx(124.0, rel=0.02)
    error = np.array([np.min(np.abs(partner.beats - b)) for b in q_beats])
    assert error.max() < 0.020, f"beats off by up to {error.max() * 1000:.1f} ms"


def _click_track(bpm: float, beats: int, start: float) -> tuple[np.ndarray, np.ndarray]:
    """Decaying 1 kHz clicks starting exactly on each beat."""
    times = start + np.arange(beats) * 60.0 / bpm
    y = np.zeros(int((times[-1] + 1.0) * SR), np.float32)
    k = np.arange(300)
    for t in times:
        i = int(round(t * SR))
        y[i : i + 300] += np.exp(-k / 40) * np.sin(2 * np.pi * 1000 * k / SR)
    return y, times


def test_seam_beats_are_sample_accurate_and_pieces_beat_one_stretch():
    """Clicks at 118 BPM onto a 124 BPM grid: per beat every click lands within 1.5 ms, per
    bar the downbeats do and the beats between them within 5 ms; one constant stretch drifts."""
    c, c_beats = _click_track(118.0, 40, start=0.3)
    q_beats = np.arange(32) * 60.0 / 124.0
    q = np.zeros(int(32 * 60.0 / 124.0 * SR), np.float32)
    bias = np.median(_onsets_near(c, c_beats) - c_beats)

    def error(piece_beats):
        out = render_pair(q, SR, q_beats, c, c_beats, semitones=0, piece_beats=piece_beats)
        return np.abs(_onsets_near(out.partner, q_beats) - bias - q_beats)

    per_beat, per_bar, constant = error(1), error(4), error(None)
    # (Rubber Band renders a click's attack ~0.6 ms early whatever the map: hence 1.5 ms.)
    assert per_beat.max() < 0.0015
    assert per_bar[::4].max() < 0.0015 and per_bar.max() < 0.005
    assert constant.max() > 0.010  # Rubber Band's drift over 15 s: the reason for pieces


def test_stereo_query_and_candidate(query_segment, cand_song):
    q, q_beats = query_segment
    c, c_beats, _, _ = cut(cand_song, 2, 2, pad=0.2)
    q2, n = q[: int(4 * 60 / 124 * 2 * SR)], int(4 * 60 / 124 * 2 * SR)
    stereo = np.stack([q2, 0.5 * q2])
    out = render_pair(stereo, SR, q_beats[:8], c, c_beats, semitones=-1)
    assert out.mix.shape == (2, n) and out.partner.shape == (2, n)
    np.testing.assert_allclose(out.partner[0], out.partner[1], atol=1e-6)  # mono candidate
    out = render_pair(q2, SR, q_beats[:8], np.stack([c, c]), c_beats, semitones=1)
    assert out.mix.shape == (n,)
    out = render_pair(stereo, SR, q_beats[:8], np.stack([c, -c]), c_beats, semitones=0)
    assert out.partner.shape == (2, n)
    assert np.abs(out.partner[0] + out.partner[1]).max() < 1e-3 * np.abs(out.partner).max()


def test_loudness_is_matched_and_reported(query_segment, cand_song):
    q, q_beats = query_segment
    c, c_beats, _, _ = cut(cand_song, 2, 8, pad=0.3)
    out = render_pair(q, SR, q_beats, 0.1 * c, c_beats, semitones=0)
    assert out.loudness_method == "bs1770"
    assert out.gain_db > 15  # a quiet candidate is brought up
    assert loudness_db(out.partner, SR)[0] == pytest.approx(loudness_db(q, SR)[0], abs=1.0)
    meta = out.metadata()
    assert meta["samples"] == len(q) and len(meta["pieces"]) == len(out.speeds)
    assert all(0.5 <= p["speed"] <= 2.0 for p in meta["pieces"])


def test_silent_candidate_is_quiet_not_boosted(query_segment):
    q, q_beats = query_segment
    silent = np.zeros(len(q) + SR, np.float32)
    out = render_pair(q, SR, q_beats, silent, q_beats, semitones=3)
    assert out.gain_db == 0.0
    assert np.all(np.isfinite(out.mix)) and np.abs(out.partner).max() == 0.0
    # The mix is the query (its DC offset out) at mix_gain_db, limited only if needed.
    np.testing.assert_allclose(out.mix, remove_dc(q, SR) * 10 ** (-3 / 20), atol=1e-5)


def _below(y: np.ndarray, hz: float) -> np.ndarray:
    """``y`` low-passed at ``hz`` (what a woofer makes of a DC step: a thump)."""
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(2, hz, fs=SR, output="sos"), np.asarray(y, np.float64))


def test_a_partner_with_a_dc_offset_neither_thumps_nor_eats_the_headroom(query_segment, cand_song):
    """Tracker modules with biased samples carry DC (0.29 of full scale in one real module):
    the layers lose it before they are summed, so the partner's fade-in is no 10 ms step and
    the limiter works as hard as on the same music without DC."""
    q, q_beats = query_segment
    c, c_beats, _, _ = cut(cand_song, 2, 8, pad=0.3)
    offset = np.float32(0.3)
    clean = render_pair(q, SR, q_beats, c, c_beats, semitones=2)
    biased = render_pair(q + offset, SR, q_beats, c + offset, c_beats, semitones=2)
    old = render_pair(q + offset, SR, q_beats, c + offset, c_beats, semitones=2, dc_cutoff_hz=None)
    clean_sub = _below(clean.partner, 20.0)
    # Without the fix the offsets stay in the mix and the partner steps up at its entry.
    assert abs(float(old.mix.mean())) > 0.1
    assert np.abs(_below(old.partner, 20.0) - clean_sub).max() > 0.1
    # With it: no DC, no sub-20 Hz step, and the limiter and the partner's gain as without DC.
    assert abs(float(biased.mix.mean())) < 2e-3 and abs(float(biased.partner.mean())) < 2e-3
    assert np.abs(_below(biased.partner, 20.0) - clean_sub).max() < 0.01
    assert biased.limiter_db == pytest.approx(clean.limiter_db, abs=0.5)
    assert old.limiter_db < clean.limiter_db - 1.0  # the constant cost the old render headroom
    assert biased.gain_db == pytest.approx(clean.gain_db, abs=0.3)
    np.testing.assert_allclose(biased.mix, clean.mix, atol=0.02)


def test_remove_dc_keeps_the_bass_and_the_blocker_streams():
    t = np.arange(3 * SR) / SR
    sub = (0.5 * np.sin(2 * np.pi * 40.0 * t)).astype(np.float32)
    out = remove_dc(sub + np.float32(0.25), SR)
    # A 40 Hz sub-bass passes (the corner is 5 Hz), inside the edges' mirror padding.
    core = slice(SR // 2, -SR // 2)
    assert 20 * np.log10(np.std(out[core]) / np.std(sub[core])) == pytest.approx(0.0, abs=0.05)
    assert abs(float(out.mean())) < 1e-3
    # The causal blocker over blocks equals one pass over the whole, and settles on the first
    # sample's level: a song that opens at 0.25 does not thump.
    y = np.stack([sub + np.float32(0.25), -sub + np.float32(0.1)])
    whole = DCBlocker(SR)(y)
    hp = DCBlocker(SR)
    blocks = np.concatenate([hp(b) for b in np.array_split(y, 7, axis=1)], axis=1)
    np.testing.assert_allclose(blocks, whole, atol=1e-5)
    tenths = whole[:, : whole.shape[1] // 2205 * 2205].reshape(2, -1, 2205).mean(axis=2)
    # Every 0.1 s (four periods of the sub) sits at zero; the first holds the filter's own
    # settling on the sine's onset (-27 dB of it), no step of 0.25.
    assert np.abs(tenths[:, 0]).max() < 0.03 and np.abs(tenths[:, 1:]).max() < 0.005
    with pytest.raises(ParameterError, match="dc_cutoff_hz"):
        render_pair(sub, SR, np.arange(0, 3, 0.5), sub, np.arange(0, 3, 0.5), semitones=0,
                    dc_cutoff_hz=0.0)  # fmt: skip


def test_short_candidate_leaves_the_rest_silent(query_segment, cand_song):
    q, q_beats = query_segment
    c, c_beats, _, _ = cut(cand_song, 2, 2)  # two bars under eight
    out = render_pair(q, SR, q_beats, c, c_beats, semitones=0)
    start, end = out.coverage
    assert start == 0.0 and end == pytest.approx(q_beats[8], abs=0.01)
    assert np.abs(out.partner[int((end + 0.01) * SR) :]).max() == 0.0
    assert len(out.mix) == len(q)


def test_beat_time_map_pairs_the_coarser_grid():
    t, s = beat_time_map([0.1, 0.6, 1.1], [0.0, 0.25, 0.5, 0.75, 1.0], tempo_ratio=0.5, duration=2)
    np.testing.assert_allclose(t, [0.0, 0.1, 0.6, 1.1, 2.0])
    np.testing.assert_allclose(s, [-0.1, 0.0, 0.5, 1.0, 1.9])


def test_stretch_shift_shapes():
    y = np.sin(2 * np.pi * 220 * np.arange(SR) / SR).astype(np.float32)
    assert stretch_shift(y, SR, ratio=0.8, semitones=0).shape == (27562,)
    assert stretch_shift(np.stack([y, y]), SR, ratio=1.25, semitones=-2).shape == (2, 17640)


# -- bad parameters -----------------------------------------------------------------------------
def _call(**kw):
    q = np.zeros(SR * 4, np.float32)
    beats = np.arange(8) * 0.5
    args = {"query": q, "query_sr": SR, "query_beats": beats, "candidate": q,
            "cand_beats": beats, "semitones": 0}  # fmt: skip
    args.update(kw)
    return render_pair(**args)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"semitones": 13}, r"semitones=13 must be within -12\.\.\+12"),
        ({"tempo_ratio": 3.0}, r"tempo_ratio=3\.0 must be one of"),
        ({"query_beats": []}, r"query_beats is empty"),
        ({"cand_beats": [0.0, 0.5, 0.4]}, r"cand_beats must be strictly increasing"),
        ({"candidate_sr": 44100}, r"candidate_sr=44100 differs from query_sr=22050"),
        ({"cand_beats": np.arange(8) * 1.5}, r"need speed 3\.000, outside 0\.5\.\.2"),
        ({"query_sr": 0}, r"query_sr=0 must be a positive integer"),
        ({"candidate": np.zeros((SR, 2), np.float32)}, r"looks like \(n, channels\)"),
        ({"candidate": np.zeros(0, np.float32)}, r"candidate is empty"),
        ({"query": np.full(SR, np.nan, np.float32)}, r"query contains NaN"),
        ({"cand_beats": [0.0]}, r"need at least two beats"),
        ({"piece_beats": 0}, r"piece_beats=0 must be a positive integer or None"),
    ],
)
def test_bad_parameters_raise_clear_errors(kw, message):
    with pytest.raises(ParameterError, match=message):
        _call(**kw)


def test_stretch_shift_rejects_out_of_range():
    y = np.zeros(SR, np.float32)
    with pytest.raises(ParameterError, match=r"ratio=3 must be within 0\.5\.\.2"):
        stretch_shift(y, SR, ratio=3, semitones=0)
    with pytest.raises(ParameterError, match=r"semitones=-12\.5"):
        stretch_shift(y, SR, ratio=1.0, semitones=-12.5)


# -- limiter and cache ---------------------------------------------------------------------------
def test_limiter_keeps_true_peak_below_ceiling(rng):
    loud = (rng.normal(size=(2, SR)) * 0.8).astype(np.float32)
    out, reduction = limit_true_peak(loud, SR, ceiling_db=-1.0)
    assert reduction < -6
    from scipy.signal import resample_poly

    true_peak = np.abs(resample_poly(out.astype(np.float64), 4, 1, axis=-1)).max()
    assert 20 * np.log10(true_peak) <= -1.0 + 1e-6
    quiet = loud * 0.05
    same, none = limit_true_peak(quiet, SR)
    assert none == 0.0 and np.array_equal(same, quiet)


def test_cache_key_is_stable_and_discriminating():
    a = cache_key("ab12_3", "cd34_0", {"semitones": 2, "tempo_ratio": 1.0, "stretch": 0.016})
    assert a == cache_key(
        "ab12_3", "cd34_0", {"stretch": 0.016, "tempo_ratio": 1, "semitones": 2.0}
    )
    assert a != cache_key(
        "ab12_3", "cd34_0", {"semitones": 1, "tempo_ratio": 1.0, "stretch": 0.016}
    )
    assert a != cache_key(
        "cd34_0", "ab12_3", {"semitones": 2, "tempo_ratio": 1.0, "stretch": 0.016}
    )
    assert len(a) == 32 and int(a, 16) >= 0
    with pytest.raises(ParameterError, match="not a str, number"):
        cache_key(object())


def test_render_cache_round_trip(tmp_path, rng):
    cache = RenderCache(tmp_path)
    key = cache_key("q_1", "c_2", 2, 1.0)
    assert cache.get(key) is None
    stereo = (rng.normal(size=(2, 1000)) * 0.3).astype(np.float32)
    path = cache.put(key, stereo, SR)
    assert path.exists() and path.parent.parent == tmp_path
    audio, sr = cache.get(key)
    assert sr == SR and np.array_equal(audio, stereo)
    mono_key = cache_key("q_1", "c_2", 2, 1.0, "mono")
    cache.put(mono_key, stereo[0], SR)
    audio, _ = cache.get(mono_key)
    assert audio.shape == (1000,) and np.array_equal(audio, stereo[0])
    assert not list(tmp_path.rglob(".*.wav"))  # no temporary file left behind
    with pytest.raises(ParameterError, match="32 hex digits"):
        cache.get("../../etc/passwd")


def test_streaming_limiter_equals_the_whole_array_limiter():
    from cratedig.render.engine import limit_true_peak, limit_true_peak_stream

    rng = np.random.default_rng(7)
    sr = 22050
    y = (rng.standard_normal((2, sr * 27)) * 0.7).astype(np.float32)
    y[:, sr * 13 : sr * 13 + 50] *= 6  # a burst right where blocks meet
    whole, red = limit_true_peak(y, sr)
    # Ragged input blocks, including empty ones.
    cuts = np.sort(rng.integers(0, y.shape[1], 9))
    pieces = [y[:, a:b] for a, b in zip([0, *cuts], [*cuts, y.shape[1]], strict=True)]
    lim = limit_true_peak_stream(pieces, sr)
    out = np.concatenate(list(lim), axis=1)
    assert out.shape == y.shape
    assert np.abs(out - whole).max() < 1e-4
    assert lim.reduction_db == pytest.approx(red, abs=0.01)
    assert np.abs(out).max() < 10 ** (-1 / 20)
