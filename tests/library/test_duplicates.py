"""`cratedig duplicates`: the recordings a library holds more than once, by fingerprint, with
the best-sounding copy to keep named first; songs made from a song (transposed) are not
copies of it."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from cratedig.cli import app
from cratedig.library.duplicates import Copy, find_groups
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050
#: ffmpeg is required (the README's install line): it makes the encoded copies.
FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


def _run(*args: object) -> str:
    r = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_copies_are_grouped_with_the_best_copy_first_and_partners_stay_apart(tmp_path, db_url):
    from pedalboard import time_stretch

    music = tmp_path / "music"
    (music / "sub").mkdir(parents=True)
    a = synthesize_song(tempo=122.0, key=Key.parse("E minor"), bars=16, seed=81, sr=SR)
    b = synthesize_song(tempo=98.0, key=Key.parse("Bb major"), bars=12, seed=82, sr=SR)
    c = synthesize_song(tempo=122.0, key=Key.parse("G major"), bars=16, seed=83, sr=SR)
    sf.write(music / "a.wav", a.audio, SR)
    sf.write(music / "b.flac", b.audio, SR)
    sf.write(music / "c.flac", c.audio, SR)
    up2 = time_stretch(a.audio[None], SR, stretch_factor=1.0, pitch_shift_in_semitones=2.0)[0]
    sf.write(music / "a_up2.flac", up2, SR)  # a partner made from a, not a copy of it
    for src, dst, args in (
        ("a.wav", "sub/a.mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("a.wav", "a (radio).ogg", ["-af", "volume=-6dB", "-c:a", "libvorbis"]),
        ("b.flac", "sub/b_8k.wav", ["-ar", "8000"]),
    ):
        subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-i", str(music / src), *args,
                        str(music / dst)], check=True)  # fmt: skip
    db = db_url  # SQLite and PostgreSQL: the fingerprint column and its queries
    ingested = json.loads(_run("ingest", music, "--db", db, "--json"))
    # The ingest says which files it took are recordings it holds already (each pair once).
    said = {
        tuple(sorted(p.split("music/")[1] for p in (c["path"], c["same_as_path"])))
        for c in ingested["same_recording"]
    }
    assert said == {("a (radio).ogg", "a.wav"), ("a (radio).ogg", "sub/a.mp3"),
                    ("a.wav", "sub/a.mp3"), ("b.flac", "sub/b_8k.wav")}  # fmt: skip
    assert len(ingested["same_recording"]) == 4
    # A second file of a held recording, ingested alone later: said, and only it.
    sf.write(music / "sub" / "b again.wav", 0.5 * sf.read(music / "b.flac")[0], SR)
    again = json.loads(_run("ingest", music, "--db", db, "--json"))
    assert again["analysed"] == 1
    assert {c["path"].split("music/")[1] for c in again["same_recording"]} == {"sub/b again.wav"}
    assert len(again["same_recording"]) == 2  # b.flac and its 8 kHz copy
    (music / "sub" / "b again.wav").unlink()
    _run("ingest", music, "--db", db, "--json")  # forgets it
    report = json.loads(_run("duplicates", "--db", db, "--json"))
    assert report["tracks"] == 7 and report["without_fingerprint"] == 0
    groups = sorted(
        ([c["path"].split("music/")[1] for c in g["copies"]] for g in report["groups"]),
        key=len,
    )
    # the lossless full-band copy first, then by quality
    assert groups == [["b.flac", "sub/b_8k.wav"], ["a.wav", "a (radio).ogg", "sub/a.mp3"]]
    for g in report["groups"]:
        assert g["keep"] == g["copies"][0]["track_id"]
        assert all(p["ber"] <= 0.3 for p in g["pairs"]) and len(g["pairs"]) >= len(g["copies"]) - 1
    human = " ".join(_run("duplicates", "--db", db).split())
    assert "2 recordings held more than once (3 copies to spare) among 7 tracks" in human
    assert "keep" in human and "band-limited to 4.0 kHz" in human


def test_only_copies_of_one_length_and_tempo_are_compared():
    rng = np.random.default_rng(5)
    fp = rng.integers(0, 1 << 16, 600, dtype=np.uint16) | np.uint16(1 << 15)

    def track(i: str, duration: float, tempo: float) -> dict:
        return {"track_id": i, "path": f"/m/{i}", "format": "FLAC", "sample_rate": 44100,
                "duration": duration, "tempo": tempo, "quality": {}, "fingerprint": fp}  # fmt: skip

    groups, compared = find_groups(
        [track("x", 60.0, 120.0), track("y", 61.5, 60.2), track("z", 64.0, 120.0),
         track("w", 60.5, 131.0), {**track("v", 60.0, 120.0), "fingerprint": fp[:0]}]
    )  # fmt: skip
    # x-y (an octave within 2 %) are compared and grouped; z is 4 s longer, w 9 % faster, v
    # has no fingerprint: none of them is compared.
    assert compared == 1 and [[c.track_id for c in g.copies] for g in groups] == [["x", "y"]]


def test_the_copy_to_keep_is_lossless_then_widest_then_highest_rate():
    def c(fmt: str, **q) -> Copy:
        return Copy("id", "/p", fmt, 44100, 100.0, q)

    flac = c("FLAC", declared="lossless", bandwidth_hz=21000.0)
    fake = c("FLAC", declared="lossless", fake_lossless=True, bandwidth_hz=16000.0)
    mp3_320 = c("MP3", declared="320 kbps", bitrate_kbps=320.0, bandwidth_hz=20000.0)
    mp3_128 = c("MP3", declared="128 kbps", bitrate_kbps=128.0, bandwidth_hz=16000.0)
    order = sorted([mp3_128, fake, mp3_320, flac], key=lambda x: tuple(-v for v in x.rank()))
    # a FLAC made from an MP3 sounds like that MP3 and is larger: the honest MP3 is kept
    assert order == [flac, mp3_320, mp3_128, fake]
    assert flac.summary == "FLAC, lossless, full band"
    assert fake.summary == "FLAC, lossless, lossy inside, band-limited to 16.0 kHz"
