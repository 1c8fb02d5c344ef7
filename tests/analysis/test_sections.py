"""Sections: boundaries on the phrase grid with a confidence, labels a DJ can use, groups."""

import mir_eval
import numpy as np
import pytest

from cratedig.analysis.frontend import compute_frontend
from cratedig.analysis.pipeline import analyze_signal
from cratedig.analysis.structure import BarCues, bar_cues, segment_structure
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050

DANCE = [("intro", 4), ("drop", 8), ("break", 8), ("drop", 8), ("outro", 4)]
SONG = [("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("outro", 4)]


def _analysed(form, seed, key, tempo):
    song = synthesize_song(
        tempo=tempo,
        key=Key.parse(key),
        bars=sum(b for _, b in form),
        seed=seed,
        sr=SR,
        sections=form,
    )
    return song, analyze_signal(song.audio, sr=SR)


@pytest.fixture(scope="module")
def dance():
    return _analysed(DANCE, 31, "F minor", 140.0)


@pytest.fixture(scope="module")
def song_form():
    return _analysed(SONG, 32, "D major", 132.0)


def _f_measure(song, analysis, window):
    end = len(song.audio) / SR
    ref = np.array([[s, e] for s, e, _ in song.sections])
    ref[-1, 1] = end
    est = np.array([[s.start, s.end] for s in analysis.sections])
    est[-1, 1] = end
    return mir_eval.segment.detection(ref, est, window=window, trim=True)[2]


def _label_at(analysis, t):
    return next(s.label for s in analysis.sections if s.start - 1e-6 <= t < s.end)


@pytest.mark.parametrize("which", ["dance", "song_form"])
def test_boundaries_on_the_true_bar_lines(which, request):
    song, a = request.getfixturevalue(which)
    assert _f_measure(song, a, 0.5) >= 0.99, [(s.bar, s.label) for s in a.sections]


@pytest.mark.parametrize("which", ["dance", "song_form"])
def test_labels_follow_what_plays(which, request):
    song, a = request.getfixturevalue(which)
    for start, end, truth in song.sections:
        assert _label_at(a, 0.5 * (start + end)) == truth, [(s.bar, s.label) for s in a.sections]


def test_repeated_material_shares_a_group(dance, song_form):
    _, a = dance
    groups = [s.group for s in a.sections]
    assert groups[1] == groups[3] and groups[1] != groups[2], groups
    _, b = song_form
    groups = [s.group for s in b.sections]
    assert groups[1] == groups[3] and groups[1] != groups[2], groups


def test_confidence_and_phrases_inside_sections(dance):
    _, a = dance
    assert a.sections[0].confidence == 1.0
    assert all(0.5 < s.confidence < 1.0 for s in a.sections[1:])
    phrase_bars = {seg.bar for seg in a.segments}
    assert {s.bar for s in a.sections} <= phrase_bars
    for s in a.sections:
        inside = [seg for seg in a.segments if s.bar <= seg.bar < s.bar + s.bars]
        assert sum(seg.bars for seg in inside) == s.bars
        assert all(seg.label == s.label for seg in inside)
    assert a.sections[0].to_json()["confidence"] == 1.0


def _cues(level, kick, low, bars_per_value=1):
    level = np.repeat(np.asarray(level, dtype=float), bars_per_value)
    kick = np.repeat(np.asarray(kick, dtype=float), bars_per_value)
    low = np.repeat(np.asarray(low, dtype=float), bars_per_value)
    n = len(level)
    timbre = np.stack([level, low, kick, level - low], axis=1)
    bands = np.stack([low, level, level - 3.0], axis=1)
    drums = np.stack([kick, kick], axis=1)
    return BarCues(timbre, bands, drums, np.full((n, 12), 1 / 12), level), n


def _layout(cues, n):
    s = segment_structure(cues, np.arange(n) * 2.0, np.arange(1, n + 1) * 2.0)
    return [(s.phrases[p][0], label) for p, _, label, _ in s.sections], s


def test_a_rising_drumroll_without_bass_before_the_drop_is_a_build():
    # 8 bars intro, 4 bars of build (drums without low end, rising), 16 bars drop, 8 bars outro.
    level = [-24.0] * 8 + [-20.0, -18.0, -16.0, -14.0] + [-10.0] * 16 + [-22.0] * 8
    kick = [-2.0] * 8 + [-4.0, -3.0, -2.0, -1.0] + [0.0] * 16 + [-2.0] * 8
    low = [-30.0] * 8 + [-40.0] * 4 + [-12.0] * 16 + [-28.0] * 8
    cues, n = _cues(level, kick, low)
    layout, s = _layout(cues, n)
    assert layout == [(0, "intro"), (8, "build"), (12, "drop"), (28, "outro")]
    assert [b for b, _ in s.phrases] == [0, 8, 12, 20, 28]


def test_no_break_before_the_first_drop():
    """A thin opening (a filtered kick intro, then pads without drums) before the first drop is
    the intro going on, and the part right before the drop its build-up; a breakdown after a
    drop stays a break."""
    # intro 8 (kick, no low end), 8 more bars of it, 8 drumless bars, drop 16, break 8,
    # drop 8, outro 8.
    level = [-22.0] * 16 + [-20.0] * 8 + [-10.0] * 16 + [-20.0] * 8 + [-10.0] * 8 + [-22.0] * 8
    kick = [-2.0] * 8 + [-6.0] * 8 + [-30.0] * 8 + [0.0] * 16 + [-30.0] * 8 + [0.0] * 8 + [-3.0] * 8
    low = [-30.0] * 16 + [-24.0] * 8 + [-12.0] * 16 + [-24.0] * 8 + [-12.0] * 8 + [-28.0] * 8
    cues, n = _cues(level, kick, low)
    layout, _ = _layout(cues, n)
    labels = [lab for _, lab in layout]
    assert "break" not in labels[: labels.index("drop")], layout
    assert labels[labels.index("drop") - 1] == "build", layout
    assert labels[labels.index("drop") + 1] == "break", layout


def test_a_track_without_a_peak_keeps_its_breaks():
    """The loudest sections have no drums, the drummed one is quieter: no peak, so the thin
    sections stay breaks (not an intro running to the end, nor a build)."""
    level = [-20.0] * 8 + [-14.0] * 16 + [-18.0] * 8 + [-14.0] * 8 + [-20.0] * 8
    kick = [-30.0] * 24 + [0.0] * 8 + [-30.0] * 16
    low = [-20.0] * 48
    cues, n = _cues(level, kick, low)
    layout, _ = _layout(cues, n)
    labels = [lab for _, lab in layout]
    assert labels[0] == "intro" and labels[1] == "break" and "intro" not in labels[1:], layout
    assert not {"build", "drop", "chorus"} & set(labels), layout


def test_a_synthesized_build_up_into_the_drop_is_a_build():
    """End to end on audio: a build (no kick or bass, a snare roll, the level rising) between
    the intro and the drop, and another after the breakdown."""
    form = [("intro", 8), ("build", 8), ("drop", 8), ("break", 8), ("build", 4), ("drop", 8)]
    song, a = _analysed(form, 41, "A minor", 128.0)
    labels = [_label_at(a, 0.5 * (st + en)) for st, en, _ in song.sections]
    assert labels == ["intro", "build", "drop", "break", "build", "drop"], [
        (s.bar, s.bars, s.label) for s in a.sections
    ]


def test_a_steady_track_is_one_section():
    rng = np.random.default_rng(5)
    level = -12.0 + rng.normal(0, 0.3, 32)
    cues, n = _cues(level, rng.normal(0, 0.3, 32), -15.0 + rng.normal(0, 0.3, 32))
    layout, s = _layout(cues, n)
    assert len(layout) == 1
    assert [b for b, _ in s.phrases] == [0, 8, 16, 24]


def test_a_break_off_the_eight_bar_grid_is_found():
    # intro 8, drop 12, break 4 (drumless), drop 8, outro 8: the break starts on bar 20.
    level = [-20.0] * 8 + [-10.0] * 12 + [-18.0] * 4 + [-10.0] * 8 + [-20.0] * 8
    kick = [-1.0] * 8 + [0.0] * 12 + [-30.0] * 4 + [0.0] * 8 + [-1.0] * 8
    low = [-25.0] * 8 + [-12.0] * 12 + [-24.0] * 4 + [-12.0] * 8 + [-25.0] * 8
    cues, n = _cues(level, kick, low)
    layout, _ = _layout(cues, n)
    assert layout == [(0, "intro"), (8, "drop"), (20, "break"), (24, "drop"), (32, "outro")]


def test_a_breakdown_keeps_its_bass_but_loses_the_hats_while_a_verse_only_thins_them():
    # intro 8, verse 8 (hats 5 dB down), chorus 8, breakdown 8 (bass notes keep the kick band
    # busy, hats 15 dB down), chorus 8, outro 8.
    n = 48
    level = np.repeat([-20.0, -14.0, -10.0, -12.0, -10.0, -20.0], 8)
    kick = np.repeat([-1.0, -1.0, 0.0, -1.5, 0.0, -1.0], 8)
    hats = np.repeat([-20.0, -5.0, 0.0, -15.0, 0.0, -20.0], 8)
    low = np.repeat([-25.0, -17.0, -12.0, -14.0, -12.0, -25.0], 8)
    cues = BarCues(
        np.stack([level, low, hats, level - low], axis=1),
        np.stack([low, level, hats], axis=1),
        np.stack([kick, hats], axis=1),
        np.full((n, 12), 1 / 12),
        level,
    )
    layout, _ = _layout(cues, n)
    assert [label for _, label in layout] == ["intro", "verse", "chorus", "break", "drop", "outro"]


def test_the_grid_follows_sections_that_start_two_bars_in():
    # A two-bar intro: every later section starts on bar 2, 10, 18... (4-bar grid phase 2).
    form = [("intro", 2), ("verse", 8), ("chorus", 8), ("break", 8), ("drop", 8), ("outro", 6)]
    song, a = _analysed(form, 41, "A minor", 124.0)
    assert [s.bar for s in a.sections] == [0, 2, 10, 18, 26, 34], [
        (s.bar, s.label) for s in a.sections
    ]
    assert _f_measure(song, a, 0.5) >= 0.99
    assert {s.bar for s in a.sections} <= {seg.bar for seg in a.segments}


def test_the_grid_phase_comes_from_novelty_peaks():
    # Cue changes on bars 6, 14, 22 (phase 2); the grid must not stay on bar 0.
    level = [-22.0] * 6 + [-10.0] * 8 + [-18.0] * 8 + [-10.0] * 8 + [-22.0] * 6
    kick = [-1.0] * 6 + [0.0] * 8 + [-30.0] * 8 + [0.0] * 8 + [-1.0] * 6
    low = [-25.0] * 6 + [-12.0] * 8 + [-24.0] * 8 + [-12.0] * 8 + [-25.0] * 6
    cues, n = _cues(level, kick, low)
    layout, _ = _layout(cues, n)
    assert [b for b, _ in layout] == [0, 6, 14, 22, 30], layout


def test_a_change_one_bar_off_the_grid_moves_its_boundary_there():
    # Changes on bars 8, 16 and 32 (the 4-bar grid) and on bar 25, one bar after a grid line
    # (a two-bar pattern, a pickup bar): that boundary lands on bar 25, not on the line at 24.
    level = [-20.0] * 8 + [-10.0] * 8 + [-16.0] * 9 + [-10.0] * 7 + [-20.0] * 8
    kick = [-1.0] * 8 + [0.0] * 8 + [-30.0] * 9 + [0.0] * 7 + [-1.0] * 8
    low = [-25.0] * 8 + [-12.0] * 8 + [-24.0] * 9 + [-12.0] * 7 + [-25.0] * 8
    cues, n = _cues(level, kick, low)
    layout, s = _layout(cues, n)
    assert [b for b, _ in layout] == [0, 8, 16, 25, 32], layout
    assert {b for b, _ in layout} <= {b for b, _ in s.phrases}


def test_flatness_and_texture_tell_noise_and_pulses_from_a_held_tone():
    # Bars 0-1 white noise, bars 2-3 a held 440 Hz tone, bars 4-5 the tone pulsed 4x a bar.
    rng = np.random.default_rng(3)
    t = np.arange(4 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    pulses = tone * (np.sin(2 * np.pi * 2.0 * t) > 0)
    y = np.concatenate([0.1 * rng.standard_normal(4 * SR), tone, pulses]).astype(np.float32)
    fe = compute_frontend(y, sr=SR)
    starts = np.arange(6) * 2.0
    cues = bar_cues(fe, np.full((6, 12), 1 / 12), starts, starts + 2.0)
    assert cues.flatness is not None and cues.texture is not None
    assert cues.flatness[:2].min() > cues.flatness[2:].max() + 10.0, cues.flatness
    # The pulsed tone's band swings by tens of dB within the bar, the held tone's hardly.
    band = int(np.argmax(cues.timbre[2]))
    assert cues.texture[4:, band].min() > cues.texture[2:4, band].max() + 6.0, cues.texture[:, band]


def test_a_drum_fill_ending_a_section_does_not_pull_the_boundary_a_bar_early():
    """Produced tracks end sections on a fill (here: snare sixteenths over the second half of
    the bar, the kick out). After a snare-less intro the fill bar sounds like the next
    section's drums; the section still starts on the line after it, where a DJ counts it."""
    form = [("intro", 8), ("verse", 16), ("chorus", 16), ("verse", 16), ("outro", 8)]
    song = synthesize_song(
        tempo=143.0, key=Key.parse("C major"), bars=64, seed=915, sr=SR, sections=form,
        lead_in=0.6, fills=True,
    )  # fmt: skip
    a = analyze_signal(song.audio, sr=SR)
    assert [s.bar for s in a.sections] == [0, 8, 24, 40, 56], [
        (s.bar, s.bars, s.label) for s in a.sections
    ]
    assert all(seg.bars % 4 == 0 for seg in a.segments), [seg.bars for seg in a.segments]


def test_a_section_that_starts_a_bar_before_the_grid_line_is_found_there():
    """A 7-bar intro: the drop starts on bar 7, one bar before the 4-bar grid line, and its
    opening already plays the drop (the fill before the break, on the other hand, stays in its
    bar: the break starts on the line)."""
    form = [("intro", 7), ("drop", 9), ("break", 8), ("drop", 8), ("outro", 8)]
    song = synthesize_song(
        tempo=128.0, key=Key.parse("D minor"), bars=40, seed=61, sr=SR, sections=form, fills=True
    )
    a = analyze_signal(song.audio, sr=SR)
    assert [s.bar for s in a.sections] == [0, 7, 16, 24, 32], [
        (s.bar, s.bars, s.label) for s in a.sections
    ]
