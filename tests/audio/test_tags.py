"""File tags: artist, title, album, genre, year, BPM and key from ID3 (MP3, WAV, AIFF), Vorbis
comments (FLAC, OGG) and MP4 atoms (M4A), written here with mutagen; bad tags never fail."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from cratedig.audio.tags import read_tags

SR = 22050
WANT = {
    "artist": "Ada Lovelace",
    "title": "Night Drive",
    "album": "Engines",
    "genre": "Techno",
    "year": "2024",
    "bpm": 128.0,
    "key": "8A",
}


def _tone(path, fmt=None):
    t = np.arange(SR) / SR
    sf.write(path, 0.2 * np.sin(2 * np.pi * 220 * t), SR, format=fmt)
    return path


def _id3(tags):
    from mutagen.id3 import TALB, TBPM, TCON, TDRC, TIT2, TKEY, TPE1

    tags.add(TPE1(encoding=3, text="Ada Lovelace"))
    tags.add(TIT2(encoding=3, text="Night Drive"))
    tags.add(TALB(encoding=3, text="Engines"))
    tags.add(TCON(encoding=3, text="Techno"))
    tags.add(TDRC(encoding=3, text="2024-03-01"))
    tags.add(TBPM(encoding=3, text="128"))
    tags.add(TKEY(encoding=3, text="Am"))


def test_id3_in_mp3_wav_and_aiff(tmp_path):
    from mutagen.aiff import AIFF
    from mutagen.mp3 import MP3
    from mutagen.wave import WAVE

    for name, cls, fmt in (("a.mp3", MP3, "MP3"), ("a.wav", WAVE, "WAV"), ("a.aiff", AIFF, "AIFF")):
        f = cls(_tone(tmp_path / name, fmt))
        f.add_tags()
        _id3(f.tags)
        f.save()
        assert read_tags(tmp_path / name) == WANT, name


def test_vorbis_comments_in_flac_and_ogg(tmp_path):
    from mutagen.flac import FLAC
    from mutagen.oggvorbis import OggVorbis

    for name, cls, fmt in (("a.flac", FLAC, "FLAC"), ("a.ogg", OggVorbis, "OGG")):
        f = cls(_tone(tmp_path / name, fmt))
        f["ARTIST"], f["TITLE"], f["ALBUM"], f["GENRE"] = (
            "Ada Lovelace",
            "Night Drive",
            "Engines",
            "Techno",
        )
        f["DATE"], f["BPM"], f["INITIALKEY"] = "2024", "128.0", "8A"
        f.save()
        assert read_tags(tmp_path / name) == WANT, name


def test_mp4_atoms_in_m4a(tmp_path):
    from mutagen.mp4 import MP4, MP4FreeForm

    src, out = _tone(tmp_path / "a.wav"), tmp_path / "a.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "aac", str(out)], check=True
    )
    f = MP4(out)
    f["\xa9ART"], f["\xa9nam"], f["\xa9alb"], f["\xa9gen"] = (
        "Ada Lovelace",
        "Night Drive",
        "Engines",
        "Techno",
    )
    f["\xa9day"], f["tmpo"] = "2024", [128]
    f["----:com.apple.iTunes:initialkey"] = [MP4FreeForm(b"1m")]  # Open Key 1m = 8A
    f.save()
    assert read_tags(out) == WANT


def test_what_the_tags_cannot_say_is_left_out(tmp_path):
    from mutagen.flac import FLAC

    f = FLAC(_tone(tmp_path / "odd.flac", "FLAC"))
    f["TITLE"] = "  Line\\x00one\\nline two  ".replace("\\x00", "\x00").replace("\\n", "\n")
    f["ARTIST"] = "   "
    f["BPM"], f["INITIALKEY"], f["DATE"] = "fast", "H#", "circa"
    f.save()
    assert read_tags(tmp_path / "odd.flac") == {"title": "Line one line two"}
    f["BPM"] = "900"
    f.save()
    assert "bpm" not in read_tags(tmp_path / "odd.flac")


def test_several_artists_read_as_one_and_long_text_is_cut(tmp_path):
    from mutagen.flac import FLAC

    from cratedig.audio.tags import MAX_TEXT

    f = FLAC(_tone(tmp_path / "duo.flac", "FLAC"))
    f["ARTIST"] = ["Ada", "Grace"]
    f["TITLE"] = ["First", "Second"]
    f["ALBUM"] = "x" * 5000
    f.save()
    tags = read_tags(tmp_path / "duo.flac")
    assert tags["artist"] == "Ada, Grace" and tags["title"] == "First"
    assert tags["album"] == "x" * MAX_TEXT


def test_no_tags_or_no_audio_file_is_an_empty_answer(tmp_path):
    assert read_tags(_tone(tmp_path / "plain.wav")) == {}
    (tmp_path / "notes.mp3").write_bytes(b"this is not audio at all" * 10)
    assert read_tags(tmp_path / "notes.mp3") == {}
    assert read_tags(tmp_path / "missing.flac") == {}
    truncated = tmp_path / "cut.flac"
    _tone(tmp_path / "whole.flac", "FLAC")
    truncated.write_bytes((tmp_path / "whole.flac").read_bytes()[:30])
    assert read_tags(truncated) == {}


def test_write_tags_round_trips_in_every_format_it_writes(tmp_path):
    from cratedig.audio.tags import write_tags
    from cratedig.errors import ParameterError

    given = {**WANT, "bpm": "128", "key": "Am"}
    for name, fmt in (("w.wav", "WAV"), ("w.aiff", "AIFF"), ("w.mp3", "MP3"), ("w.flac", "FLAC"),
                      ("w.ogg", "OGG")):  # fmt: skip
        write_tags(_tone(tmp_path / name, fmt), given)
        assert read_tags(tmp_path / name) == WANT, name
    with pytest.raises(ParameterError, match="tags are written to"):
        write_tags(tmp_path / "x.m4a", given)


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("Loops/Bass_Loop_124bpm_Am.wav", {"bpm": 124.0, "key": "8A"}),
        ("ESM_Bass_Loop_128_F#min.wav", {"bpm": 128.0, "key": "11A"}),
        ("128 BPM - F# minor - pad.flac", {"bpm": 128.0, "key": "11A"}),
        ("Drums_Am_126.wav", {"bpm": 126.0, "key": "8A"}),
        ("dm_90.wav", {"bpm": 90.0, "key": "7A"}),
        ("loop 87.5bpm Ebm.wav", {"bpm": 87.5, "key": "2A"}),
        ("bpm140_dnb_loop.wav", {"bpm": 140.0}),
        ("Piano_Loop_Gmaj.wav", {"key": "9B"}),
        ("Sonata in A major.flac", {"key": "11B"}),
        ("8A - 6 - Artist - Title.mp3", {"key": "8A"}),  # a key-renaming tool's prefix
        # a word, a take, a track number, a side: nothing
        ("I Am Legend.mp3", {}),
        ("DJ Am - Title.mp3", {}),
        ("Part A - Take 2.wav", {}),
        ("Track 12B.mp3", {}),
        ("Artist - Title (Original Mix).mp3", {}),
        ("KSHMR_Kick_01.wav", {}),
        ("loop_999bpm.wav", {}),  # no tempo
    ],
)
def test_what_a_files_name_says(name, said):
    from cratedig.audio.tags import name_tags

    assert name_tags(name) == said


def test_file_tags_take_the_name_where_the_tags_are_silent(tmp_path):
    from cratedig.audio.tags import file_tags, write_tags

    path = tmp_path / "Bass_Loop_124bpm_Am.flac"
    sf.write(path, np.zeros(2205, dtype=np.float32), 22050, format="FLAC")
    assert file_tags(path) == {"bpm": 124.0, "key": "8A", "from_name": ["bpm", "key"]}
    write_tags(path, {"title": "Bass", "bpm": "125"})
    assert file_tags(path) == {"title": "Bass", "bpm": 125.0, "key": "8A", "from_name": ["key"]}
    assert read_tags(path) == {"title": "Bass", "bpm": 125.0}
