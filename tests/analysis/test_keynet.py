"""The learned key network: its input, its symmetry, its file, and what it hears in audio."""

import numpy as np
import pytest

from cratedig.analysis import keynet
from cratedig.analysis.frontend import compute_frontend
from cratedig.analysis.tonal import estimate_tuning
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


def frames_of(y: np.ndarray) -> np.ndarray:
    fe = compute_frontend(y, sr=SR)
    return keynet.pitch_frames(fe.tonal_mag, tuning=estimate_tuning(fe))


def tone(midis, seconds=2.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * 440.0 * 2 ** ((m - 69) / 12) * t) for m in midis)
    return (0.2 * y).astype(np.float32)


def test_a_note_lands_in_its_semitone_bin_and_a_detuned_one_is_corrected():
    x = frames_of(tone([57]))  # A3 = 220 Hz
    assert int(np.argmax(x.mean(axis=0))) == 57 - keynet.PITCH_LO
    # 30 cents sharp: with the tuning given, the same bin.
    t = np.arange(2 * SR) / SR
    sharp = (0.2 * np.sin(2 * np.pi * 220.0 * 2 ** (0.3 / 12) * t)).astype(np.float32)
    fe = compute_frontend(sharp, sr=SR)
    xs = keynet.pitch_frames(fe.tonal_mag, tuning=30.0)
    assert int(np.argmax(xs.mean(axis=0))) == 57 - keynet.PITCH_LO
    assert xs.max() == pytest.approx(np.log1p(keynet.GAIN))  # scaled by the loudest value


def test_transposing_the_input_moves_the_key_scores_with_it():
    # Tonic r reads the semitones r .. r + WINDOW - 1: moved up k semitones, the music is read
    # by tonic r + k exactly as tonic r read it before (a tonic that passes B starts its window
    # an octave lower, so it sees the music an octave higher in its window: not checked here).
    rng = np.random.default_rng(0)
    x = np.zeros((20, keynet.N_PITCH), dtype=np.float32)
    x[:, 14:40] = rng.random((20, 26), dtype=np.float32)  # content away from the edges
    z = keynet.key_logits(x)
    for k in (1, 3, 7):
        zk = keynet.key_logits(np.roll(x, k, axis=1))
        for mode in (0, 12):
            r = np.arange(12 - k)
            np.testing.assert_allclose(zk[mode + r + k], z[mode + r], rtol=1e-5, atol=1e-5)


def test_no_frames_give_no_opinion():
    assert not keynet.key_logits(np.zeros((0, keynet.N_PITCH), dtype=np.float32)).any()
    assert not keynet.key_prior(np.zeros((0, 2049), dtype=np.float32)).any()
    silent = keynet.pitch_frames(np.zeros((9, 2049), dtype=np.float32))
    assert silent.shape == (3, keynet.N_PITCH) and not silent.any()


def test_the_shipped_weights_load_without_pickle_and_a_foreign_file_is_refused(tmp_path):
    net = keynet.default_net()
    assert net is not None
    assert net.w1.shape[1] == keynet.WINDOW and net.version.startswith("keynet")
    bad = tmp_path / "bad.npz"
    np.savez(bad, w1=np.zeros((5, 4)), b1=np.zeros(4), w2=np.zeros((4, 2)), b2=np.zeros(2),
             w3=np.zeros((2, 2)), b3=np.zeros(2))  # fmt: skip
    with pytest.raises(ValueError, match="another input layout"):
        keynet.KeyNet.from_npz(bad)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, w1=np.array([object()], dtype=object))
    with pytest.raises(ValueError):  # object arrays need pickle, which is refused
        keynet.KeyNet.from_npz(pickled)


@pytest.mark.parametrize(
    ("key", "seed"), [("A minor", 3), ("E major", 4), ("F# minor", 5), ("Bb major", 6)]
)
def test_the_network_alone_names_the_key_of_a_synthesized_song(key, seed):
    song = synthesize_song(tempo=112.0, key=Key.parse(key), bars=16, seed=seed, sr=SR)
    z = keynet.key_logits(frames_of(song.audio))
    assert Key.from_index(int(np.argmax(z))) == Key.parse(key)


def test_a_missing_or_damaged_network_file_costs_one_warning_and_no_track(
    tmp_path, monkeypatch, caplog
):
    from cratedig.analysis import pipeline

    song = synthesize_song(tempo=120.0, key=Key.parse("C major"), bars=8, seed=1, sr=SR)
    damaged = tmp_path / "keynet.npz"
    damaged.write_bytes(b"PK\x03\x04 not really a zip archive")
    nan = tmp_path / "nan.npz"
    good = keynet.default_net()
    np.savez(nan, **{k: np.full_like(getattr(good, k), np.nan) for k in keynet._NAMES})
    for name in ("no-such-file.npz", str(damaged), str(nan)):
        monkeypatch.setattr(keynet, "MODEL_FILE", name)
        keynet.default_net.cache_clear()
        caplog.clear()
        try:
            with caplog.at_level("WARNING", logger="cratedig.analysis"):
                a = pipeline.analyze_signal(song.audio, sr=SR)
                pipeline.analyze_signal(song.audio, sr=SR)
        finally:
            keynet.default_net.cache_clear()
        warnings = [r for r in caplog.records if "key network unavailable" in r.getMessage()]
        assert len(warnings) == 1, name  # once, not per track
        assert str(a.key) == "C major"  # the profile cues alone still name it


def test_one_pass_over_a_track_gives_the_key_logits_of_any_span_of_it():
    song = synthesize_song(tempo=120.0, key=Key.parse("G minor"), bars=16, seed=2, sr=SR)
    x = frames_of(song.audio)
    evidence = keynet.KeyEvidence(x)
    np.testing.assert_allclose(evidence.logits(), keynet.key_logits(x), rtol=1e-4, atol=1e-4)
    for lo, hi in ((0, 10), (7, 30), (len(x) - 5, len(x) + 9)):  # the last span is clipped
        np.testing.assert_allclose(
            evidence.logits(lo, hi), keynet.key_logits(x[lo:hi]), rtol=1e-4, atol=1e-4
        )
    assert not evidence.logits(5, 5).any()  # an empty span has no opinion
    assert not keynet.prior_of(evidence.logits(5, 5)).any()
