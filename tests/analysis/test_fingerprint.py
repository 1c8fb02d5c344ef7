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


def test_a_short_or_silent_print_is_the_same_as_nothing():
    silent = np.full((40, 2000), -100.0)
    fp = fingerprint(silent)
    assert len(fp) > 0 and not (fp & (1 << 15)).any()  # no frame sounds
    assert same_recording(fp, fp) is None
    assert len(fingerprint(np.zeros((40, 10)))) == 0
    assert compare(np.zeros(0, np.uint16), fp).seconds == 0.0
    with pytest.raises(ParameterError, match="shape"):
        fingerprint(np.zeros((12, 100)))
