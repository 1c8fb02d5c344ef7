"""Slices: every phrase as a file whose samples are exactly the source region, with a sidecar."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import soundfile as sf

from cratedig.audio.decode import decode
from cratedig.library import repository as repo
from cratedig.library.db import open_library
from cratedig.library.errors import DiskFull
from cratedig.library.ingest import export_slices, ingest
from cratedig.library.slices import MANIFEST, sample_bounds, slice_path, write_track_slices
from cratedig.synth import synthesize_song
from cratedig.theory import Key

PCM_SOURCES = ("one.wav", "two.flac", "five.aiff")  # integer PCM: bit-exact in FLAC
QUANTUM = 2.0**-23  # one step of 24-bit PCM


def _analyses(db_url):
    with open_library(db_url) as lib, lib.reader() as s:
        return [repo.load_analysis(s, t.track_id) for t in repo.query_tracks(s)]


def _check_slices(db_url, slices, fmt="flac", exact=PCM_SOURCES):
    n_slices = 0
    for a in _analyses(db_url):
        src = decode(a.path, sr=a.sample_rate, mono=False, allow_silent=True).samples
        manifest = json.loads((slices / a.track_id / MANIFEST).read_text())
        assert manifest["analysis_version"] == a.analysis_version
        assert len(manifest["slices"]) == len(a.segments) > 0
        for seg in a.segments:
            path = slice_path(slices, seg.id, fmt)
            side = json.loads(path.with_suffix(".json").read_text())
            got, sr = sf.read(str(path), dtype="float32", always_2d=True)
            lo, hi = sample_bounds(seg.start, seg.end, sr, src.shape[1])
            want = src[:, lo:hi].T
            assert sr == a.sample_rate and got.shape == want.shape == (hi - lo, a.channels)
            if a.path.endswith(exact):
                assert np.array_equal(got, want), f"{path} differs from {a.path}[{lo}:{hi}]"
            else:  # lossy or float source in a PCM container: within one 24-bit step
                np.testing.assert_allclose(got, want, rtol=0, atol=QUANTUM)
            assert (side["id"], side["track_id"], side["index"]) == (seg.id, a.track_id, seg.index)
            assert (side["start_sample"], side["end_sample"], side["frames"]) == (lo, hi, hi - lo)
            assert side["source"] == a.path and side["sample_rate"] == sr
            assert side["camelot"] == seg.key.camelot and side["bars"] == seg.bars
            assert side["start"] == pytest.approx(seg.start, abs=1e-3)
            n_slices += 1
    return n_slices


def test_ingest_writes_slices_that_equal_the_source_exactly(db_url, music, tmp_path):
    slices = tmp_path / "slices"
    with open_library(db_url) as lib:
        report = ingest(lib, music, slices_dir=slices)
    assert report.slice_errors == [] and report.slices > 0
    assert _check_slices(db_url, slices) == report.slices


def test_export_slices_later_gives_the_same_slices_and_resumes(db_url, music, tmp_path):
    during, later = tmp_path / "during", tmp_path / "later"
    with open_library(db_url) as lib:
        ingest(lib, music, slices_dir=during)
        first = export_slices(lib, later)
        again = export_slices(lib, later)
        forced = export_slices(lib, later, force=True)
    assert first.errors == [] and first.tracks == 6 and first.skipped == 0
    assert (again.tracks, again.skipped) == (0, 6)
    assert forced.tracks == 6
    names = sorted(p.relative_to(during) for p in during.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(later) for p in later.rglob("*") if p.is_file())
    for name in names:
        if name.suffix == ".flac":
            a, _ = sf.read(str(during / name), dtype="float32")
            b, _ = sf.read(str(later / name), dtype="float32")
            assert np.array_equal(a, b)
        elif name.name != MANIFEST:
            assert json.loads((during / name).read_text()) == json.loads((later / name).read_text())


def test_a_float_source_is_exact_in_wav_slices(sqlite_url, music, tmp_path):
    with open_library(sqlite_url) as lib:
        ingest(lib, music)
        report = export_slices(lib, tmp_path / "wav", fmt="wav")
    assert report.errors == []
    # WAV slices keep the source's subtype (float stays float): every source is exact,
    # lossy ones included (their decoded samples are stored as they are).
    _check_slices(
        sqlite_url,
        tmp_path / "wav",
        fmt="wav",
        exact=(*PCM_SOURCES, "six.wav", "three.ogg", "four.mp3"),
    )


def test_unchanged_tracks_get_their_missing_slices(sqlite_url, music):
    inside = music / "slices"  # inside the music folder: not scanned as music
    with open_library(sqlite_url) as lib:
        ingest(lib, music)
        report = ingest(lib, music, slices_dir=inside)
        again = ingest(lib, music, slices_dir=inside)
    assert report.unchanged == 6 and report.analysed == 0 and report.slices > 0
    assert (again.scanned, again.unchanged, again.slices) == (6, 6, 0)
    _check_slices(sqlite_url, inside)


def test_a_source_changed_since_analysis_is_not_cut(sqlite_url, music, tmp_path):
    with open_library(sqlite_url) as lib:
        ingest(lib, music)
        song = synthesize_song(tempo=90.0, key=Key.parse("E minor"), bars=8, sr=22050, seed=9)
        sf.write(str(music / "a" / "one.wav"), song.audio, 22050, subtype="PCM_16")
        report = export_slices(lib, tmp_path / "s")
    assert report.tracks == 5 and len(report.errors) == 1
    assert "changed since it was analysed" in report.errors[0][1]


def test_slices_replace_a_longer_older_set(sqlite_url, music, tmp_path):
    with open_library(sqlite_url) as lib:
        ingest(lib, music)
    a = next(x for x in _analyses(sqlite_url) if len(x.segments) > 1)
    out = tmp_path / "s"
    write_track_slices(a, out)
    a.segments = a.segments[:1]
    write_track_slices(a, out)
    files = sorted(p.name for p in (out / a.track_id).iterdir())
    assert files == sorted([f"{a.track_id}_0.flac", f"{a.track_id}_0.json", MANIFEST])


def test_a_full_disk_while_slicing_stops_the_ingest(sqlite_url, music, tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("cratedig.library.slices._atomic_write", full)
    with open_library(sqlite_url) as lib:
        with pytest.raises(DiskFull, match="no space left"):
            ingest(lib, music, slices_dir=tmp_path / "s")
        with lib.reader() as s:
            assert repo.library_stats(s).tracks == 0  # the track whose slices failed: not saved
