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
from cratedig.library.duplicates import Copy, edit_candidates, find_edits, find_groups
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
    # Edits, kept beside the songs they come from: an extended mix of a (its middle 8 bars
    # played twice) and a radio edit of c (8 bars of its middle cut out), an MP3.
    bar = int(4 * 60 / 122.0 * SR)
    sf.write(music / "a (extended).flac", np.r_[a.audio[: 10 * bar], a.audio[2 * bar :]], SR)
    sf.write(tmp_path / "c_edit.wav", np.r_[c.audio[: 4 * bar], c.audio[12 * bar :]], SR)
    for src, dst, args in (
        ("a.wav", "sub/a.mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("a.wav", "a (radio).ogg", ["-af", "volume=-6dB", "-c:a", "libvorbis"]),
        ("b.flac", "sub/b_8k.wav", ["-ar", "8000"]),
        ("../c_edit.wav", "c (radio edit).mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
    ):
        subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-i", str(music / src), *args,
                        str(music / dst)], check=True)  # fmt: skip
    db = db_url  # SQLite and PostgreSQL: the fingerprint column and its queries
    ingested = json.loads(_run("ingest", music, "--db", db, "--json"))
    # The ingest says which files it took are recordings it holds already (each pair once).
    said = {
        tuple(sorted(p.split("music/")[1] for p in (c["path"], c["same_as_path"]))): c["edit"]
        for c in ingested["same_recording"]
    }
    assert said == {
        ("a (radio).ogg", "a.wav"): False,
        ("a (radio).ogg", "sub/a.mp3"): False,
        ("a.wav", "sub/a.mp3"): False,
        ("b.flac", "sub/b_8k.wav"): False,
        # the edits, of another length: against every file of their recording
        ("a (extended).flac", "a (radio).ogg"): True,
        ("a (extended).flac", "a.wav"): True,
        ("a (extended).flac", "sub/a.mp3"): True,
        ("c (radio edit).mp3", "c.flac"): True,
    }
    assert len(ingested["same_recording"]) == 8
    # A second file of a held recording, ingested alone later: said, and only it.
    sf.write(music / "sub" / "b again.wav", 0.5 * sf.read(music / "b.flac")[0], SR)
    again = json.loads(_run("ingest", music, "--db", db, "--json"))
    assert again["analysed"] == 1
    assert {c["path"].split("music/")[1] for c in again["same_recording"]} == {"sub/b again.wav"}
    assert len(again["same_recording"]) == 2  # b.flac and its 8 kHz copy
    (music / "sub" / "b again.wav").unlink()
    _run("ingest", music, "--db", db, "--json")  # forgets it
    report = json.loads(_run("duplicates", "--db", db, "--json"))
    assert report["tracks"] == 9 and report["without_fingerprint"] == 0
    groups = sorted(
        ([c["path"].split("music/")[1] for c in g["copies"]] for g in report["groups"]),
        key=len,
    )
    # the lossless full-band copy first, then by quality
    assert groups == [["b.flac", "sub/b_8k.wav"], ["a.wav", "a (radio).ogg", "sub/a.mp3"]]
    for g in report["groups"]:
        assert g["keep"] == g["copies"][0]["track_id"]
        assert all(p["ber"] <= 0.3 for p in g["pairs"]) and len(g["pairs"]) >= len(g["copies"]) - 1
    # The edits are listed apart, each against the copy to keep of its recording (a.wav
    # stands for the MP3 and the OGG); no copy to spare.
    edits = sorted(
        (e["shorter"]["path"].split("music/")[1], e["longer"]["path"].split("music/")[1])
        for e in report["edits"]
    )
    assert edits == [("a.wav", "a (extended).flac"), ("c (radio edit).mp3", "c.flac")]
    assert all(e["ber"] <= 0.17 for e in report["edits"])
    # the radio edit's two halves lie at two offsets in c (the extended mix holds a whole
    # at one offset: its last 14 bars)
    assert [e["pieces"] >= 2 for e in report["edits"]] == [False, True]
    human = " ".join(_run("duplicates", "--db", db).split())
    assert "2 recordings held more than once (3 copies to spare) among 9 tracks" in human
    assert "keep" in human and "band-limited to 4.0 kHz" in human
    # and as families of versions, shortest first (a's edit against the copy kept of a)
    versions = [[c["path"].split("music/")[1] for c in f] for f in report["versions"]]
    assert versions == [["a.wav", "a (extended).flac"], ["c (radio edit).mp3", "c.flac"]]
    assert (
        "2 recordings held in edited versions (a radio edit, an extended mix...; all kept, "
        "match never pairs them)" in human
    )
    assert "c (radio edit).mp3" in human and "is heard inside" not in human
    # An edit ingested later: the ingest's table counts it apart from copies, and names it.
    y = sf.read(music / "b.flac")[0]
    sf.write(music / "b (edit).flac", np.r_[y[: len(y) // 3], y[2 * len(y) // 3 :]], SR)
    said = " ".join(_run("ingest", music, "--db", db).split())
    assert "edits 1 (an edit of a recording the library holds" in said, said
    assert "same recording" not in said  # an edit, not a copy
    assert "an edit " in said and "b (edit).flac ~ " in said


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


def test_edits_are_found_by_shared_keys_whatever_their_length():
    """A radio edit, an extended mix and a loop cut from a track share runs of exact frame
    pairs with it at one offset each: they, and only they, are compared; a track that only
    repeats its own loop (frames found many times) or shares a few frames by chance is not."""
    rng = np.random.default_rng(6)
    on = np.uint16(1 << 15)
    song = rng.integers(0, 1 << 16, 4000, dtype=np.uint16) | on
    other = rng.integers(0, 1 << 16, 4000, dtype=np.uint16) | on
    loop = rng.integers(0, 1 << 16, 80, dtype=np.uint16) | on
    third = rng.integers(0, 1 << 16, 4000, dtype=np.uint16) | on
    flips = rng.random((len(song), 15)) < 0.04  # an MP3: one bit in 25 flipped
    noisy = song ^ (flips * (1 << np.arange(15))).sum(axis=1).astype(np.uint16)
    prints = [
        song,
        np.r_[noisy[:1500], noisy[2600:]],  # a radio edit, an MP3 of it
        np.r_[song[:3000], song[1000:]],  # an extended mix
        song[2000:2350],  # a 16 s loop
        other,
        np.tile(loop, 50),  # a loop repeated: its keys are found too often to say anything
        np.r_[third[:6], song[:6], third[6:]],  # six frames of the song by chance
    ]
    pairs = edit_candidates(prints)
    assert {(0, 1), (0, 2), (0, 3)} <= set(pairs)
    assert not {p for p in pairs if 4 in p or 5 in p or 6 in p}

    def track(i: int, fp: np.ndarray) -> dict:
        return {"track_id": f"t{i}", "path": f"/m/{i}", "format": "FLAC", "sample_rate": 44100,
                "duration": len(fp) / 21.5, "tempo": 120.0, "quality": {}, "fingerprint": fp}  # fmt: skip

    edits, compared = find_edits([track(i, fp) for i, fp in enumerate(prints)])
    assert compared == len(pairs)
    found = {(e.shorter.track_id, e.longer.track_id): e.overlap for e in edits}
    assert set(found) >= {("t1", "t0"), ("t0", "t2"), ("t3", "t0")}
    # the loop is heard inside the song (a ninth of it), the radio edit is the song edited
    inside = {(e.shorter.track_id, e.longer.track_id): e.inside for e in edits}
    assert inside[("t3", "t0")] and not inside[("t1", "t0")] and not inside[("t0", "t2")]
    assert found[("t1", "t0")].edit  # (the extended mix agrees with the song at one offset
    # over 3/4 of it: the one-offset rule already holds it)
    assert not found[("t3", "t0")].edit  # the loop lies whole at one offset


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
