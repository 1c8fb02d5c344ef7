"""Opening the library: URL resolution, migrations on both backends, SQLite settings, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from cratedig.library.db import (
    head_revision,
    open_library,
    resolve_db_url,
    schema_revision,
)
from cratedig.library.errors import DatabaseUnavailable, LibraryError
from cratedig.library.schema import Base

TABLES = {"tracks", "files", "segments", "features", "ingest_errors", "ratings", "models"}


def test_url_resolution_flag_beats_env_beats_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CRATEDIG_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("CRATEDIG_DB", raising=False)
    assert resolve_db_url() == f"sqlite:///{tmp_path / 'data' / 'library.db'}"
    monkeypatch.setenv("CRATEDIG_DB", "postgresql://dj:pw@db/crate")
    assert resolve_db_url() == "postgresql+psycopg://dj:pw@db/crate"
    assert resolve_db_url("sqlite:///x.db") == "sqlite:///x.db"
    assert resolve_db_url(tmp_path / "lib.db") == f"sqlite:///{tmp_path / 'lib.db'}"


def test_default_library_lives_in_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CRATEDIG_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("CRATEDIG_DB", raising=False)
    with open_library() as lib:
        assert lib.dialect == "sqlite"
    assert (tmp_path / "data" / "library.db").exists()


def test_migrations_create_every_table_and_match_the_models(db_url):
    with open_library(db_url) as lib:
        assert schema_revision(lib.engine) == head_revision()
        assert TABLES <= set(inspect(lib.engine).get_table_names())
        with lib.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == [], f"schema.py and the migrations disagree: {diff}"
    # Opening again runs nothing and keeps the revision.
    with open_library(db_url) as lib:
        assert schema_revision(lib.engine) == head_revision()


def test_downgrading_keeps_every_track_s_rows(db_url, analyses):
    """Migrations that drop a column of ``tracks`` must not rebuild it: on SQLite a rebuilt
    table is dropped, and the drop cascades to every track's files and segments."""
    from alembic import command
    from sqlalchemy import func, select

    from cratedig.library import repository as repo
    from cratedig.library.db import _alembic_config
    from cratedig.library.schema import FileRow, SegmentRow

    with open_library(db_url) as lib:
        with lib.transaction() as s:
            repo.store_analysis(s, analyses[0])
            repo.record_file(s, path="/music/a.wav", track_id=analyses[0].track_id, size=1,
                             mtime_ns=1)  # fmt: skip

        def counts() -> tuple[int, int]:
            with lib.reader() as s:
                return (s.scalar(select(func.count()).select_from(SegmentRow)),
                        s.scalar(select(func.count()).select_from(FileRow)))  # fmt: skip

        before = counts()
        assert before[0] > 0 and before[1] == 1
        with lib.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0002")
        with lib.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
        assert counts() == before


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url):
    with open_library(sqlite_url) as lib, lib.reader() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert s.execute(text("PRAGMA busy_timeout")).scalar() >= 10_000


def test_transactions_are_atomic_on_sqlite(sqlite_url):
    # pysqlite's default would commit DDL and open transactions lazily; ours are real.
    with open_library(sqlite_url) as lib:
        with pytest.raises(LibraryError):
            with lib.transaction() as s:
                s.execute(
                    text(
                        "INSERT INTO models (kind, version, trained_at, parameters, "
                        "metrics) VALUES ('k', 1, '2026-01-01', '{}', '{}')"
                    )
                )
                s.execute(
                    text(
                        "INSERT INTO models (kind, version, trained_at, parameters, "
                        "metrics) VALUES ('k', 1, '2026-01-01', '{}', '{}')"
                    )
                )
        with lib.reader() as s:
            assert s.execute(text("SELECT count(*) FROM models")).scalar() == 0


def test_unreachable_databases_give_one_clear_line(tmp_path):
    with pytest.raises(DatabaseUnavailable, match="cannot open database"):
        open_library("postgresql://nobody@127.0.0.1:1/none")
    missing = tmp_path / "nope" / "lib.db"
    with pytest.raises(DatabaseUnavailable):
        open_library(f"sqlite:///file:{missing}?mode=ro&uri=true")
    assert not os.path.exists(Path(missing).parent)


def test_a_bad_url_is_a_clear_error():
    with pytest.raises(DatabaseUnavailable, match="no driver|not a database URL"):
        open_library("nosuchdb://x/y")
