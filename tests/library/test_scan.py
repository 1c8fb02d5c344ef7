"""Scanning: recursive, audio only, hidden and vanished entries skipped, symlink loops safe."""

from __future__ import annotations

import os

import pytest

from cratedig.library.errors import LibraryError
from cratedig.library.scan import is_audio_name, scan_folder


def test_scan_finds_audio_recursively_and_ignores_the_rest(tmp_path):
    for name in (
        "a.wav",
        "sub/b.FLAC",
        "sub/deeper/c.mp3",
        "d.m4a",
        "notes.txt",
        "cover.jpg",
        ".hidden.wav",
        "._a.wav",
        ".git/e.wav",
        "f.wav.part",
    ):
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 10)
    found = scan_folder(tmp_path)
    rel = [os.path.relpath(f.path, tmp_path) for f in found.files]
    assert rel == ["a.wav", "d.m4a", "sub/b.FLAC", "sub/deeper/c.mp3"]
    assert all(f.size == 10 and f.mtime_ns > 0 for f in found.files)
    assert found.unreadable == []


def test_scan_survives_a_symlink_loop_and_follows_folder_links(tmp_path):
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "x.ogg").write_bytes(b"x")
    (tmp_path / "music" / "loop").symlink_to(tmp_path / "music")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "y.aiff").write_bytes(b"y")
    (tmp_path / "music" / "link").symlink_to(tmp_path / "other")
    (tmp_path / "music" / "dangling.wav").symlink_to(tmp_path / "nowhere.wav")
    names = sorted(os.path.basename(f.path) for f in scan_folder(tmp_path / "music").files)
    assert names == ["x.ogg", "y.aiff"]


def test_scan_of_one_file_and_of_nothing(tmp_path):
    (tmp_path / "one.wav").write_bytes(b"x")
    assert len(scan_folder(tmp_path / "one.wav").files) == 1
    with pytest.raises(LibraryError, match="no such folder"):
        scan_folder(tmp_path / "missing")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(LibraryError, match="neither"):
        scan_folder(tmp_path / "readme.txt")


@pytest.mark.parametrize(
    ("name", "audio"),
    [("a.wav", True), ("A.MP3", True), ("x.opus", True), ("x.txt", False), (".x.wav", False)],
)
def test_audio_names(name, audio):
    assert is_audio_name(name) is audio
