"""The library under abuse: any file name, ghost tracks, broken artefacts, two ingests at once,
odd databases and slice folders. Each test names the defect it guards against (issue 12)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from cratedig.cli import app
from cratedig.errors import OutputError
from cratedig.library import repository as repo
from cratedig.library.db import open_library
from cratedig.library.errors import DatabaseUnavailable, LibraryError, SliceError
from cratedig.library.ingest import export_slices, ingest, prune
from cratedig.library.schema import ModelRow
from cratedig.match.store import index_path, sync_index
from cratedig.synth import synthesize_song
from cratedig.theory import Key

from .conftest import copy_tracks

runner = CliRunner()
THREE = ["one.wav", "two.flac", "six.wav"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def three(track_files, tmp_path) -> Path:
    return copy_tracks(track_files, tmp_path / "music", THREE)


# -- file names ---------------------------------------------------------------------------------

BAD = os.fsdecode(b"caf\xe9 \xff")  # Latin-1 bytes, not UTF-8: lone surrogates in Python


def test_names_that_are_not_utf8_are_ingested_and_failures_recorded(db_url, three):
    good = three / f"{BAD}.wav"
    shutil.move(three / "six.wav", good)
    broken = three / f"{BAD} broken.mp3"
    broken.write_bytes(b"\xff\xfb" + os.urandom(4000))
    with open_library(db_url) as lib:
        first = ingest(lib, three)
        again = ingest(lib, three)
        with lib.reader() as s:
            files = repo.known_files(s)
            errors = repo.known_errors(s)
    assert first.analysed == 3 and [p for p, _ in first.failed] == [str(broken)]
    assert again.unchanged == 3 and again.failed_before == 1
    # Stored losslessly: the same bytes come back, and the file is found by them.
    assert str(good) in files and os.fsencode(str(good)).endswith(b"caf\xe9 \xff.wav")
    assert str(broken) in errors


def test_analyze_goes_on_past_a_bad_name_and_escapes_names(track_files, tmp_path):
    a = tmp_path / "a.wav"
    shutil.copy(track_files / "a" / "one.wav", a)
    bad = tmp_path / f"{BAD}.wav"
    shutil.copy(a, bad)
    evil = tmp_path / "evil\x1b[2J\x1b]0;pwned\x07.wav"
    r = cli("analyze", "--json", a, bad, evil, a)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.exit_code == 0 and len(lines) == 4
    assert "track_id" in lines[1] and lines[2]["error"] == "no such file"
    r = cli("analyze", evil)
    assert "\x1b" not in r.output and "\\x1b[2J" in r.output
    r = cli("analyze", bad)
    assert "caf\\xe9 \\xff.wav" in r.output


# -- ghost tracks -------------------------------------------------------------------------------


def test_deleted_and_replaced_files_leave_the_library_and_the_index(db_url, three):
    with open_library(db_url) as lib:
        ingest(lib, three)
        sync_index(lib)
        with lib.reader() as s:
            files = repo.known_files(s)
    deleted = files[str(three / "a" / "one.wav")].track_id
    replaced = files[str(three / "six.wav")].track_id
    (three / "a" / "one.wav").unlink()
    song = synthesize_song(tempo=100.0, key=Key.parse("B minor"), bars=8, sr=22050, seed=9)
    sf.write(three / "six.wav", song.audio, 22050, subtype="FLOAT")

    # Before any ingest: match never suggests the deleted file's track, never a path "".
    r = cli("match", three / "a" / "two.flac", "--db", db_url, "--json", "--top", "20")
    assert r.exit_code == 0, r.output
    cands = [c for m in json.loads(r.stdout)["matches"] for c in m["candidates"]]
    assert all(c["path"] and os.path.exists(c["path"]) for c in cands)
    assert deleted not in {c["track_id"] for c in cands}

    with open_library(db_url) as lib:
        report = ingest(lib, three)
        index, _ = sync_index(lib)
        with lib.reader() as s:
            st = repo.library_stats(s)
    assert sorted(report.gone_tracks) == sorted([deleted, replaced])
    assert (st.tracks, st.files, st.missing_tracks) == (2, 2, 0)
    assert not {deleted, replaced} & set(index.track_ids.astype(str).tolist())
    stats = json.loads(cli("stats", "--db", db_url, "--json").stdout)
    assert stats["tracks"] == stats["files"] == 2


def test_prune_drops_ghosts_anywhere_in_the_library(sqlite_url, three):
    with open_library(sqlite_url) as lib:
        ingest(lib, three)
    shutil.rmtree(three / "a")
    with open_library(sqlite_url) as lib, lib.reader() as s:
        assert repo.library_stats(s).tracks == 3  # recorded, not yet known to be gone
    r = cli("prune", "--db", sqlite_url, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out["files"]) == 2 and len(out["tracks"]) == 2 and out["index"]["segments"] > 0
    with open_library(sqlite_url) as lib:
        assert prune(lib).tracks == []
        with lib.reader() as s:
            assert repo.library_stats(s).tracks == 1


# -- derived files repair themselves ------------------------------------------------------------


@pytest.fixture
def indexed(sqlite_url, three):
    with open_library(sqlite_url) as lib:
        ingest(lib, three)
    r = cli("index", "--db", sqlite_url)  # writes the index; clusters need more segments
    assert r.exit_code == 0, r.output
    return sqlite_url


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_a_damaged_index_is_rebuilt_with_one_warning(indexed, three, damage, caplog):
    with open_library(indexed) as lib:
        p = index_path(lib)
        good_segments = len(sync_index(lib)[0])
    data = p.read_bytes()
    p.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"PK\x03\x04x"}[damage]
    )
    for args in (["match", three / "a" / "two.flac", "--json"], ["index"], ["ingest", three]):
        caplog.clear()
        r = cli(*args, "--db", indexed)
        assert r.exit_code == 0, (args, r.output)
        assert "unreadable" in caplog.text and "rebuilding" in caplog.text
        p.write_bytes(b"")
    with open_library(indexed) as lib:
        assert len(sync_index(lib)[0]) == good_segments


def test_a_damaged_cluster_model_is_refitted_with_one_warning(sqlite_url, track_files, caplog):
    with open_library(sqlite_url) as lib:
        ingest(lib, track_files)
    assert cli("clusters", "--db", sqlite_url).exit_code == 0
    with open_library(sqlite_url) as lib:
        [model] = list(lib.artefact_dir.glob("clusters-v*.npz"))
    model.write_bytes(b"")
    r = cli("clusters", "--db", sqlite_url, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"]["fitted"] is True
    assert "cluster model" in caplog.text and "refitting" in caplog.text


def test_an_artefact_folder_that_is_a_file_is_one_line(indexed):
    folder = Path(indexed.removeprefix("sqlite:///") + ".d")
    shutil.rmtree(folder)
    folder.write_text("in the way")
    r = cli("index", "--rebuild", "--db", indexed)
    assert r.exit_code == 1 and isinstance(r.exception, OutputError)
    assert "a file is in the way" in str(r.exception)


def test_disk_full_while_writing_the_index_is_one_line(indexed, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("cratedig.match.index.np.savez", full)
    r = cli("index", "--rebuild", "--db", indexed)
    assert r.exit_code == 1 and isinstance(r.exception, OutputError)
    assert "no space left on device" in str(r.exception)


# -- databases ----------------------------------------------------------------------------------


def test_a_database_from_a_newer_cratedig_is_refused_in_one_line(sqlite_url):
    with open_library(sqlite_url) as lib, lib.transaction() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(LibraryError, match="newer than this cratedig"):
        open_library(sqlite_url)
    with pytest.raises(LibraryError, match="newer than this cratedig"):
        open_library(sqlite_url, migrate_schema=False)


def test_reading_commands_create_no_database(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    for command in ("stats", "tracks"):
        r = cli(command, "--db", f"sqlite:///{missing}")
        assert r.exit_code == 1 and isinstance(r.exception, DatabaseUnavailable)
        assert "no library at" in str(r.exception)
    assert not (tmp_path / "no").exists()


def test_two_concurrent_ingests_analyse_each_track_once(tmp_path, track_files):
    db = tmp_path / "shared.db"
    cmd = [sys.executable, "-m", "cratedig.cli", "ingest", str(track_files), "--db", str(db),
           "--json"]  # fmt: skip
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in "ab"]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()
        reports.append(json.loads(out))
    assert sorted(r["analysed"] for r in reports) == [0, 6]
    assert sorted(r["unchanged"] for r in reports) == [0, 6]
    # Both refreshed the clusters after their ingest: one model, fitted once.
    assert sorted(r["clusters"]["fitted"] for r in reports) == [False, True]
    with open_library(f"sqlite:///{db}") as lib, lib.reader() as s:
        assert s.scalar(select(func.count()).select_from(ModelRow)) == 1


def test_a_frozen_postgresql_server_times_out(monkeypatch):
    # A server that accepts the connection and then never answers (a frozen postmaster).
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        monkeypatch.setenv("CRATEDIG_DB_CONNECT_TIMEOUT", "2")
        t0 = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="cannot open database"):
            open_library(f"postgresql://dj:secret@127.0.0.1:{port}/crate")
        assert time.monotonic() - t0 < 15


def test_postgresql_sessions_have_a_statement_timeout(pg_admin_url, monkeypatch):
    from cratedig.library.db import create_library_engine, resolve_db_url

    monkeypatch.setenv("CRATEDIG_DB_STATEMENT_TIMEOUT", "0.5")
    engine = create_library_engine(resolve_db_url(pg_admin_url))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "500ms"
            with pytest.raises(Exception, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(3)"))
    finally:
        engine.dispose()


# -- slices -------------------------------------------------------------------------------------


def test_slices_to_a_path_that_is_a_file_fail_up_front(sqlite_url, three, tmp_path):
    with open_library(sqlite_url) as lib:
        ingest(lib, three)
    f = tmp_path / "slices"
    f.write_text("a file")
    r = cli("export-slices", f, "--db", sqlite_url)
    assert r.exit_code == 1 and isinstance(r.exception, SliceError)
    assert "is a file, not a folder" in str(r.exception)
    with open_library(sqlite_url) as lib, pytest.raises(SliceError):
        ingest(lib, three, slices_dir=f / "sub")


def test_a_rerun_rewrites_truncated_slices_and_deleted_sidecars(sqlite_url, three, tmp_path):
    out = tmp_path / "slices"
    with open_library(sqlite_url) as lib:
        ingest(lib, three)
        first = export_slices(lib, out)
        assert first.tracks == 3 and export_slices(lib, out).skipped == 3
        slices = sorted(out.rglob("*.flac"))
        slices[0].write_bytes(slices[0].read_bytes()[:100])
        slices[-1].with_suffix(".json").unlink()
        again = export_slices(lib, out)
    assert again.tracks == 2 and again.skipped == 1
    y, _ = sf.read(slices[0])
    assert len(y) > 1000 and slices[-1].with_suffix(".json").exists()


# -- small things -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "-1", "0"])
def test_max_duration_must_be_positive(track_files, tmp_path, value):
    r = cli("analyze", track_files / "a" / "one.wav", "--max-duration", value)
    assert r.exit_code == 1 and "--max-duration" in str(r.exception)
    r = cli("ingest", track_files, "--max-duration", value, "--db", tmp_path / "x.db")
    assert r.exit_code == 1 and "--max-duration" in str(r.exception)


def test_version():
    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.startswith("cratedig ")


def test_the_umask_is_respected_for_index_files(indexed):
    with open_library(indexed) as lib:
        mode = index_path(lib).stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_an_unreadable_file_is_reported_and_the_batch_goes_on(track_files, tmp_path, monkeypatch):
    import builtins
    import importlib

    a = tmp_path / "a.wav"
    locked = tmp_path / "locked.wav"
    for p in (a, locked):
        shutil.copy(track_files / "a" / "one.wav", p)
    real_open = builtins.open

    def guarded(file, *args, **kwargs):  # as for a file an ACL or a FUSE mount refuses
        if os.fspath(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_open(file, *args, **kwargs)

    dec = importlib.import_module("cratedig.audio.decode")
    monkeypatch.setattr(dec, "open", guarded, raising=False)
    r = cli("analyze", "--json", locked, a)
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.exit_code == 0 and len(rows) == 2
    assert rows[0] == {"path": str(locked), "error": "cannot read (Permission denied)"}
    assert "track_id" in rows[1]
