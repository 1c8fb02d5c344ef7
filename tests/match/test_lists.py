"""Training lists mined from stems (`cratedig.match.lists`): the matcher's own candidates,
labelled by the stems alone."""

from __future__ import annotations

import numpy as np
import pytest

from cratedig.learn.pairs import split_stems
from cratedig.match.lists import COPY_SHIFTS, list_features, mined_lists, rule_score_of
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


@pytest.fixture(scope="module")
def songs():
    specs = (("a", 118.0, "A minor", 96), ("b", 121.0, "F major", 97), ("c", 120.0, "D minor", 98))
    return {
        name: synthesize_song(tempo=tempo, key=Key.parse(key), bars=16, seed=seed, sr=SR).stems
        for name, tempo, key, seed in specs
    }


@pytest.fixture(scope="module")
def lists(songs):
    out = mined_lists(songs, sr=SR)
    assert out is not None
    return out


def test_every_list_holds_its_partner_and_the_matchers_rivals(lists, songs):
    queries = np.unique(lists.queries)
    assert len(queries) >= len(songs)  # every song's lead phrases found their band
    assert set(np.unique(lists.songs)) == set(songs)
    for q in queries:
        rows = lists.queries == q
        song = lists.songs[rows][0]
        assert (lists.songs[rows] == song).all()
        assert lists.y[rows].any() and not lists.y[rows].all()
        # a partner is the song's own band, never another song's or a transposed copy
        assert (lists.candidate_songs[rows & (lists.y == 1)] == song).all()
        assert set(lists.kinds[rows & (lists.y == 1)]) == {"partner"}
    kinds = set(lists.kinds[lists.y == 0])
    assert {f"copy +{k} st" for k in COPY_SHIFTS} <= kinds and "other song" in kinds
    # Every row is a candidate the rules accept, with the rule score the ranker reads.
    rule = lists.X[:, lists.names.index("rule")]
    assert (rule > 0).all() and np.isfinite(lists.X).all()
    # the transposed copies of the band are there to lose: the rule alone may put a fourth
    # above the partner, the labels never do
    copies = np.char.startswith(lists.kinds.astype(str), "copy")
    assert copies.any() and not lists.y[copies].any()


def test_a_song_without_a_partner_layer_to_find_gives_no_lists():
    stems = synthesize_song(tempo=120.0, key=Key.parse("C major"), bars=8, seed=5, sr=SR).stems
    silent = {"lead": np.zeros_like(stems["lead"]), "band": stems["chords"]}
    assert mined_lists({"x": silent}, sr=SR) is None  # a silent lead has no phrase to pair
    query, partner = split_stems(silent)
    assert not query.any() and partner.any()


def test_rule_score_is_read_back_as_the_ranker_saw_it():
    assert rule_score_of({"score": 0.3, "rule_score": 0.6}) == 0.6
    # records written before ``rule_score``: the tempo-doubt weight is divided out
    legacy = {"score": 0.45, "doubts": ["partner tempo uncertain: 120 or 90, confidence 0.80"]}
    assert rule_score_of(legacy) == pytest.approx(0.5)
    assert rule_score_of({"score": 0.7}) == 0.7


def test_list_features_read_the_records_rule_score(lists, songs):
    from cratedig.analysis.pipeline import analyze_signal

    # one real record list from the matcher: features computed twice agree
    assert lists.names[0] in ("energy", "harmonic")
    query, _ = split_stems(next(iter(songs.values())))
    qa = analyze_signal(query, sr=SR)
    seg = qa.segments[0]
    rec = {
        "segment": "s",
        "terms": {"harmonic": 0.8, "rhythm": 0.5, "tempo": 1.0, "key": 1.0, "energy": 0.7,
                  "spectral": 0.6, "shift": 1.0, "transposition": 1.0},
        "stretch": 0.01, "semitones": 0, "tempo_ratio": 1.0, "key_relation": "same",
        "score": 0.42, "rule_score": 0.61, "coverage": 1.0,
    }  # fmt: skip
    X, names = list_features([rec], seg, {"s": seg})
    assert X[0, names.index("rule")] == pytest.approx(0.61)


def test_a_library_s_stems_mined_in_worker_processes_the_same_and_a_bad_stem_skipped(tmp_path):
    """`cratedig train --workers 2`: the songs are decoded and analysed in worker processes
    (the lists come out the same as in this process); a song whose stem file is damaged is
    left out with its reason, and the others still teach."""
    from cratedig import workflows
    from cratedig.compute import ProcessPoolExecutor
    from cratedig.library.db import open_library
    from cratedig.synth import write_song

    music = tmp_path / "music"
    specs = (("x", 118.0, "A minor", 96), ("y", 121.0, "F major", 97), ("z", 120.0, "D minor", 98))
    for name, tempo, key, seed in specs:
        song = synthesize_song(tempo=tempo, key=Key.parse(key), bars=16, seed=seed, sr=SR)
        write_song(song, music / f"{name}.wav", stems_dir=music / f"{name}.stems")
    with open_library(f"sqlite:///{tmp_path / 'lib.db'}") as lib:
        workflows.update_library(lib, music)
        here = workflows.stem_training_lists(lib)
        # Kept beside the database: a retrain with the same stems reads the lists back.
        again = workflows.stem_training_lists(lib)
        assert here is not None and again is not None and not here.cached and again.cached
        assert np.array_equal(here.X, again.X) and np.array_equal(here.queries, again.queries)
        assert len(list(lib.artefact_dir.glob("train-lists-*.npz"))) == 1
        damaged = next((music / "z.stems").glob("lead.*"))
        damaged.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 3)
        skipped: list[tuple[str, str]] = []
        events: list[tuple[str, dict]] = []
        with ProcessPoolExecutor(2) as pool:
            there = workflows.stem_training_lists(
                lib, executor=pool, on_skip=lambda t, r: skipped.append((t, r)),
                progress=lambda event, **d: events.append((event, d)),
            )  # fmt: skip
    assert here is not None and there is not None
    assert not there.cached  # a stem file changed: made afresh
    assert len(skipped) == 1 and skipped[0][1]  # the damaged song, with a reason
    # what `cratedig train`'s progress bar hears: the songs planned, then each one's outcome
    assert events[0] == ("planned", {"total": 3})
    done = sorted((d["path"], d["status"]) for e, d in events[1:] if e == "done")
    assert len(done) == 3 and (skipped[0][0], "failed") in done
    bad = skipped[0][0]
    assert bad in set(here.songs) and bad not in set(there.songs)
    assert set(there.songs) == set(here.songs) - {bad}
    # the other songs' lists are the same rows, whichever process analysed them (the damaged
    # song's accompaniment is gone from the candidates too)
    keep = (here.songs != bad) & (here.candidate_songs != bad)
    assert np.array_equal(here.y[keep], there.y)
    assert np.allclose(here.X[keep], there.X)


def test_a_damaged_lists_cache_is_made_again(tmp_path, songs, lists):
    from cratedig.match.lists import load_lists, save_lists

    path = tmp_path / "train-lists-x.npz"
    save_lists(lists, path, failed={"q": "unreadable"})
    back, failed = load_lists(path)
    assert back.cached and failed == {"q": "unreadable"}
    assert np.array_equal(back.X, lists.X) and back.names == lists.names
    assert np.array_equal(back.kinds, lists.kinds)
    path.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises((ValueError, OSError)):
        load_lists(path)
