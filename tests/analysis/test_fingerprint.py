"""The audio fingerprint tells the same recording in another file, and nothing else.

A song, its MP3 and AAC encodes, an 8 kHz copy, a quieter high-passed copy and a copy whose
first 7.3 s are cut are the same recording; other songs, and the song pitched by two semitones
or more or stretched by 6 %, are not (the matcher may suggest those as partners).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from cratedig.analysis.fingerprint import (
    SAME_MAX_BER,
    compare,
    edit_overlap,
    fingerprint,
    from_bytes,
    same_recording,
    to_bytes,
)
from cratedig.analysis.frontend import compute_frontend
from cratedig.analysis.pipeline import analyze_file
from cratedig.audio.decode import ANALYSIS_SR, decode
from cratedig.errors import ParameterError
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050
#: ffmpeg is required (the README's install line): it makes the encoded copies.
FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


def _print_of(y: np.ndarray, sr: int = SR) -> np.ndarray:
    return fingerprint(compute_frontend(y.astype(np.float32), sr=sr).mel_db)


@pytest.fixture(scope="module")
def song():
    return synthesize_song(tempo=118.0, key=Key.parse("D minor"), bars=24, seed=71, sr=SR)


def test_the_same_recording_is_told_through_codecs_level_rate_and_a_cut_start(song, tmp_path):
    wav = tmp_path / "song.wav"
    sf.write(wav, song.audio, SR)
    copies = {
        "song.mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
        "song.m4a": ["-c:a", "aac", "-b:a", "96k"],
        "song_8k.wav": ["-ar", "8000"],
        "song_quiet.flac": ["-af", "volume=-9dB,highpass=f=120"],
        "song_cut.ogg": ["-ss", "7.3", "-c:a", "libvorbis", "-q:a", "4"],
    }
    original = analyze_file(str(wav)).fingerprint
    assert original.dtype == np.uint16 and len(original) > 300
    for name, args in copies.items():
        out = tmp_path / name
        subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-i", str(wav), *args, str(out)],
                       check=True)  # fmt: skip
        copy = _print_of(decode(str(out), sr=ANALYSIS_SR).samples)
        o = same_recording(original, copy)
        assert o is not None and o.ber <= 0.25, (name, compare(original, copy))
        expected = -7.3 if name == "song_cut.ogg" else 0.0
        assert abs(o.offset - expected) < 0.15, (name, o)
    # stored and read back bit for bit
    assert np.array_equal(from_bytes(to_bytes(original)), original)
    assert len(from_bytes(None)) == 0


def test_other_songs_and_partners_made_from_the_song_are_not_the_same_recording(song, analyses):
    from pedalboard import time_stretch

    a = _print_of(song.audio)
    for semitones, stretch in ((2.0, 1.0), (-3.0, 1.0), (0.0, 1.06)):
        y = time_stretch(
            song.audio[None], SR, stretch_factor=stretch, pitch_shift_in_semitones=semitones
        )[0]
        b = _print_of(y)
        assert same_recording(a, b) is None, (semitones, stretch, compare(a, b))
    # Eight synthesized songs from one synthesizer (the same instruments): none is another.
    prints = [x.fingerprint for x in analyses]
    for x, y in itertools.combinations(prints, 2):
        assert same_recording(x, y) is None
        assert compare(x, y, min_seconds=10).ber > SAME_MAX_BER + 0.05


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    out, k = parts[0], int(0.01 * SR)
    ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)
    for p in parts[1:]:
        out = np.concatenate([out[:-k], out[-k:] * (1 - ramp) + p[:k] * ramp, p[k:]])
    return out


def test_edits_of_a_recording_are_the_same_recording_piece_by_piece(song, tmp_path):
    """A radio edit (the middle cut out), an extended mix (a part played twice), a re-edit
    (the halves swapped) and a loop cut from the song hold the song's audio at several
    offsets, or only part of it: found piece by piece, each is the same recording, the edits
    as such (``pieces`` > 1), with their offsets; an MP3 of an edit too."""
    y = song.audio.astype(np.float32)
    n = len(y)
    a = _print_of(y)
    edits = {
        "radio edit": _joined([y[: int(0.35 * n)], y[int(0.6 * n) :]]),
        "extended": _joined([y[: int(0.6 * n)], y[int(0.4 * n) :]]),
        "halves swapped": _joined([y[n // 2 :], y[: n // 2]]),
        "16 s loop": y[int(0.3 * n) : int(0.3 * n) + 16 * SR],
    }
    for name, z in edits.items():
        b = _print_of(z)
        whole = compare(a, b, min_seconds=0.8 * min(len(y), len(z)) / SR)
        o, share = edit_overlap(a, b)
        assert share >= 0.9, (name, o, share)
        s = same_recording(a, b)
        assert s is not None, (name, whole, o, share)
        if name == "16 s loop":  # all of it at one offset: a plain copy of a part
            assert s.pieces == 1 and abs(s.offset + 0.3 * n / SR) < 0.1, s  # 14.7 s early
        else:  # at no one offset do the two agree over most of the shorter
            assert whole.ber > SAME_MAX_BER and s.edit and s.pieces >= 2, (name, whole, s)
    # either way round; the offset named is the longer piece's: the edit's second part plays
    # 25 % of the song earlier than in the song
    radio = _print_of(edits["radio edit"])
    (o1, s1), (o2, s2) = edit_overlap(a, radio), edit_overlap(radio, a)
    assert s1 == s2 >= 0.9 and o1.offset == -o2.offset
    assert abs(o1.offset + 0.25 * n / SR) < 0.1, o1
    wav, mp3 = tmp_path / "edit.wav", tmp_path / "edit.mp3"
    sf.write(wav, edits["radio edit"], SR)
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame",
                    "-b:a", "128k", str(mp3)], check=True)  # fmt: skip
    o = same_recording(a, _print_of(decode(str(mp3), sr=ANALYSIS_SR).samples, sr=ANALYSIS_SR))
    assert o is not None and o.edit


def test_songs_that_share_their_drums_are_not_one_recording_piece_by_piece(analyses):
    """Two stems of one song that share its drums (lead + drums, and the rest + drums) agree
    only where the drums play alone; other songs nowhere."""
    song = synthesize_song(tempo=126.0, key=Key.parse("A minor"), bars=24, seed=73, sr=SR)
    st = song.stems
    lead = _print_of(st["lead"] + st["drums"])
    rest = _print_of(st["bass"] + st["chords"] + st["drums"])
    assert same_recording(lead, rest) is None
    assert edit_overlap(lead, rest)[1] < 0.5
    prints = [x.fingerprint for x in analyses]
    for x, y in itertools.combinations(prints, 2):
        assert edit_overlap(x, y)[1] < 0.2


def test_a_short_or_silent_print_is_the_same_as_nothing():
    silent = np.full((40, 2000), -100.0)
    fp = fingerprint(silent)
    assert len(fp) > 0 and not (fp & (1 << 15)).any()  # no frame sounds
    assert same_recording(fp, fp) is None
    assert len(fingerprint(np.zeros((40, 10)))) == 0
    assert compare(np.zeros(0, np.uint16), fp).seconds == 0.0
    assert edit_overlap(fp, fp) == (edit_overlap(fp[:0], fp)[0], 0.0)
    with pytest.raises(ParameterError, match="shape"):
        fingerprint(np.zeros((12, 100)))
