"""Stems: a ``<name>.stems/`` folder beside a track, and NI ``.stem.mp4`` streams."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cratedig.audio.decode import decode
from cratedig.errors import AudioError
from cratedig.library import repository as repo
from cratedig.library.db import open_library
from cratedig.library.ingest import ingest
from cratedig.library.scan import NI_STEM_NAMES, scan_folder
from cratedig.synth import synthesize_song
from cratedig.theory import Key

SR = 22050


@pytest.fixture(scope="module")
def song():
    return synthesize_song(tempo=122.0, key=Key.parse("G minor"), bars=8, seed=41, sr=SR)


def _stems_folder(root: Path, song) -> Path:
    mix = root / "tune.flac"
    sf.write(mix, song.audio, SR)
    d = root / "tune.stems"
    d.mkdir()
    for name, y in song.stems.items():
        sf.write(d / f"{name}.wav", y, SR)
    return mix


def test_stems_folder_is_recorded_not_ingested(song, tmp_path, db_url):
    music = tmp_path / "music"
    music.mkdir()
    _stems_folder(music, song)
    other = synthesize_song(tempo=128.0, key=Key.parse("C major"), bars=8, seed=42, sr=SR)
    sf.write(music / "plain.wav", other.audio, SR)

    scanned = {Path(f.path).name: f for f in scan_folder(music).files}
    assert set(scanned) == {"tune.flac", "plain.wav"}  # stem files are not tracks
    assert {st.name for st in scanned["tune.flac"].stems} == set(song.stems)
    assert scanned["plain.wav"].stems == ()

    with open_library(db_url) as lib:
        report = ingest(lib, music)
        assert report.analysed == 2 and report.stems == 1
        with lib.reader() as s:
            tid = repo.known_files(s)[str(music / "tune.flac")].track_id
            stems = repo.stems_of(s, tid)
        assert sorted(st.name for st in stems) == sorted(song.stems)
        assert all(Path(st.path).exists() and st.stream is None for st in stems)
        # Stems added later to an unchanged track are picked up; removed ones forgotten.
        again = ingest(lib, music)
        assert again.analysed == 0 and again.stems == 0
        (music / "tune.stems" / "lead.wav").unlink()
        third = ingest(lib, music)
        assert third.stems == 1
        with lib.reader() as s:
            assert "lead" not in {st.name for st in repo.stems_of(s, tid)}


def test_ni_stem_mp4_streams(song, tmp_path, sqlite_url):
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is required (the CI installs it)")
    music = tmp_path / "music"
    music.mkdir()
    parts = [song.audio] + [
        song.stems[n]
        for n in ("drums", "bass", "chords", "lead")  # NI order: drums, bass, other, vocals
    ]
    inputs = []
    for i, y in enumerate(parts):
        p = tmp_path / f"s{i}.wav"
        sf.write(p, y, SR)
        inputs += ["-i", str(p)]
    maps = [a for i in range(len(parts)) for a in ("-map", str(i))]
    out = music / "track.stem.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *inputs, *maps, "-c:a", "aac", "-b:a", "128k", str(out)],
        check=True,
    )
    (found,) = scan_folder(music).files
    assert [st.name for st in found.stems] == list(NI_STEM_NAMES)
    assert [st.stream for st in found.stems] == [1, 2, 3, 4]
    # Stream 0 is the mix; stream 1 the drums: the drums alone carry less energy than the mix.
    mix = decode(out, sr=SR).samples
    drums = decode(out, sr=SR, stream=1).samples
    assert abs(len(mix) - len(drums)) < SR // 10
    n = min(len(mix), len(drums))
    assert np.corrcoef(mix[:n], drums[:n])[0, 1] < 0.9
    with pytest.raises(AudioError, match="no audio stream 9"):
        decode(out, sr=SR, stream=9)
    with open_library(sqlite_url) as lib:
        report = ingest(lib, music)
        assert report.analysed == 1 and report.stems == 1
        with lib.reader() as s:
            tid = repo.known_files(s)[str(out)].track_id
            assert {st.stream for st in repo.stems_of(s, tid)} == {1, 2, 3, 4}
