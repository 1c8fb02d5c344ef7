"""Self-supervised pairs from synthesized stems: labels that follow the known truth."""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.errors import ParameterError
from cratedig.learn.pairs import (
    KINDS,
    NEGATIVES,
    OTHER_BARS,
    OTHER_SONG,
    POSITIVE,
    split_stems,
    stem_pairs,
)
from cratedig.match import SegmentBatch, score_candidates
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


@pytest.fixture(scope="module")
def pairs():
    songs = {
        name: synthesize_song(tempo=tempo, key=Key.parse(key), bars=16, seed=seed, sr=SR).stems
        for name, tempo, key, seed in (
            ("a", 120.0, "E minor", 51),
            ("b", 123.0, "G major", 52),
            ("c", 150.0, "C minor", 53),  # no tempo fit with a or b: never their negative
        )
    }
    return stem_pairs(songs, sr=SR, others_per_query=4, seed=1)


def test_every_kind_is_drawn_and_only_same_bars_is_positive(pairs):
    kinds = {p.kind for p in pairs}
    assert kinds == set(KINDS)
    assert all((p.label == 1) == (p.kind == POSITIVE) for p in pairs)
    positives = [p for p in pairs if p.label == 1]
    # One positive and one of each bent negative per query phrase.
    for kind in NEGATIVES:
        assert sum(p.kind == kind for p in pairs) == len(positives)
    for p in positives:
        assert p.candidate.bar == p.query.bar and p.candidate.bars == p.query.bars


def test_other_bars_negatives_are_the_own_accompaniment_under_other_chords(pairs):
    from cratedig.learn.pairs import SAME_CHORDS, chord_similarity

    others = [p for p in pairs if p.kind == OTHER_BARS]
    assert others
    positive = {p.query.id: p.candidate for p in pairs if p.kind == POSITIVE}
    for p in others:
        assert p.candidate.track_id == f"{p.song}-partner" and p.candidate.bar != p.query.bar
        assert chord_similarity(positive[p.query.id], p.candidate) < SAME_CHORDS
    # A phrase is its own chords' twin; a repeat of them is no negative.
    one = positive[others[0].query.id]
    assert chord_similarity(one, one) == pytest.approx(1.0)


def test_other_song_negatives_pass_the_tempo_rule(pairs):
    others = [p for p in pairs if p.kind == OTHER_SONG]
    assert others
    for p in others:
        assert not p.candidate.track_id.startswith(p.song)
        # Song c (150 BPM) fits neither 120 nor 123 at 1:1, 2:1 or 1:2 within 8 %.
        assert "c" not in (p.song, p.candidate.track_id[0])


def test_transposed_negatives_carry_the_transposed_key(pairs):
    by = {(p.song, p.query.index, p.kind): p.candidate for p in pairs if p.kind != OTHER_SONG}
    moved = 0
    for (song, i, kind), cand in by.items():
        if kind == "+5 st":
            own = by[(song, i, POSITIVE)]
            moved += (own.key.tonic + 5) % 12 == cand.key.tonic
    assert moved >= 0.6 * sum(k == "+5 st" for _, _, k in by)


def test_positives_outscore_their_bent_negatives_on_the_rules(pairs):
    """The labels agree with the rule score on easy synthesized songs (not a tautology: the
    labels come from how the audio was made, the scores from its features)."""
    wins = []
    for p in pairs:
        if p.label != 1:
            continue
        negs = [n for n in pairs if n.query is p.query and n.kind in NEGATIVES]
        q = SegmentBatch.from_segments([p.query], unit="beat")
        c = SegmentBatch.from_segments([p.candidate, *(n.candidate for n in negs)], unit="beat")
        s = score_candidates(q, c).score
        wins += [bool(s[0] > x) for x in s[1:]]
    assert np.mean(wins) >= 0.8


def test_split_stems_needs_a_lead_and_a_partner():
    y = np.zeros(100, np.float32)
    lead, rest = split_stems({"vocals": y + 1, "drums": y + 2, "bass": y + 3})
    assert lead[0] == 1 and rest[0] == 5
    with pytest.raises(ParameterError, match="need one of"):
        split_stems({"drums": y, "bass": y})
    with pytest.raises(ParameterError, match="need one of"):
        split_stems({"vocals": y})


def test_pairs_from_a_library_of_songs_with_stems(tmp_path):
    """Tracks ingested with `.stems/` folders yield pairs; a track without a lead is skipped."""
    from cratedig import workflows
    from cratedig.library.db import open_library
    from cratedig.synth import write_song

    music = tmp_path / "music"
    for name, tempo, key, seed in (("x", 118.0, "A minor", 61), ("y", 120.0, "F major", 62)):
        song = synthesize_song(tempo=tempo, key=Key.parse(key), bars=16, seed=seed, sr=SR)
        write_song(song, music / f"{name}.wav", stems_dir=music / f"{name}.stems")
    drums_only = music / "z.stems"
    song = synthesize_song(tempo=119.0, key=Key.parse("C major"), bars=16, seed=63, sr=SR)
    write_song(song, music / "z.wav")
    drums_only.mkdir()
    import soundfile as sf

    sf.write(drums_only / "drums.wav", song.stems["drums"], SR)
    sf.write(drums_only / "bass.wav", song.stems["bass"], SR)
    skipped: list[tuple[str, str]] = []
    with open_library(f"sqlite:///{tmp_path / 'lib.db'}") as lib:
        workflows.update_library(lib, music)
        pairs = workflows.stem_training_pairs(
            lib, others_per_query=3, on_skip=lambda t, r: skipped.append((t, r))
        )
    assert (
        len(skipped) == 1
        and "no vocal or lead stem to query with (its stems: bass, drums)" == skipped[0][1]
    )
    songs = {p.song for p in pairs}
    assert len(songs) == 2
    positives = sum(p.label for p in pairs)
    assert positives >= 4
    # 1 positive + 5 bent negatives + 3 other-song negatives per query phrase, and the own
    # accompaniment at other bars under other chords.
    assert sum(p.kind != OTHER_BARS for p in pairs) == 9 * positives
    assert any(p.kind == OTHER_BARS for p in pairs)

    # The training gate keeps a fake-lossless track out of the pairs.
    from cratedig.library.schema import TrackRow

    with open_library(f"sqlite:///{tmp_path / 'lib.db'}") as lib:
        x_id = next(p.song for p in pairs if p.query.features is not None)
        with lib.transaction() as s:
            s.get(TrackRow, x_id).quality = {"flags": ["fake_lossless"]}
        skipped.clear()
        gated = workflows.stem_training_pairs(
            lib, others_per_query=3, on_skip=lambda t, r: skipped.append((t, r))
        )
    assert (x_id, "kept out by the training gate: fake lossless") in [
        (t, r.replace("fake_lossless", "fake lossless")) for t, r in skipped
    ], skipped
    assert {p.song for p in gated} == songs - {x_id}
