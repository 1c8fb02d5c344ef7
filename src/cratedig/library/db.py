"""Opening the library database: URL resolution, engine set-up, migrations, error translation.

Where the library lives: ``--db`` flag > ``CRATEDIG_DB`` > ``<data dir>/library.db`` (SQLite),
the data dir being ``CRATEDIG_DATA`` or the user's data directory (``platformdirs``).

SQLite runs in WAL mode (readers never block the one writer), with foreign keys on and a busy
timeout, and with real ``BEGIN`` statements so that transactions and DDL are atomic (pysqlite's
default would open transactions lazily and commit DDL implicitly). PostgreSQL URLs may be given
as ``postgresql://...``; they are run through psycopg 3.

Every database error that a user can cause (read-only file, full disk, server down, locked)
becomes a :class:`~cratedig.library.errors.LibraryError` with one clear line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cratedig.library.errors import (
    DatabaseReadOnly,
    DatabaseUnavailable,
    DiskFull,
    LibraryError,
)

log = logging.getLogger("cratedig.library")

ENV_DB = "CRATEDIG_DB"
ENV_DATA = "CRATEDIG_DATA"
DEFAULT_DB_NAME = "library.db"
#: Seconds a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT = 60.0
#: PostgreSQL: seconds to wait for a connection (a frozen or unreachable server fails here
#: instead of hanging) and the longest statement the server runs for us (``0``: no limit);
#: override with ``CRATEDIG_DB_CONNECT_TIMEOUT`` / ``CRATEDIG_DB_STATEMENT_TIMEOUT``.
PG_CONNECT_TIMEOUT = 10.0
PG_STATEMENT_TIMEOUT = 300.0
ENV_CONNECT_TIMEOUT = "CRATEDIG_DB_CONNECT_TIMEOUT"
ENV_STATEMENT_TIMEOUT = "CRATEDIG_DB_STATEMENT_TIMEOUT"
#: Seconds between two tries of a library lock held by another process.
LOCK_POLL = 0.2

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# An arbitrary constant: the PostgreSQL advisory lock that serialises concurrent migrations.
_PG_MIGRATION_LOCK = 0x63726174


def data_dir() -> Path:
    """The folder for the default database and model artefacts (``CRATEDIG_DATA`` or the
    user's data directory)."""
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("cratedig", appauthor=False))


def resolve_db_url(db: str | os.PathLike[str] | None = None) -> str:
    """The database URL to use: ``db`` > ``CRATEDIG_DB`` > the default SQLite file.

    Parameters
    ----------
    db : str or path-like, optional
        A SQLAlchemy URL (``sqlite:///lib.db``, ``postgresql://user@host/db``) or a plain file
        path, which means a SQLite database there.

    Returns
    -------
    str
        A SQLAlchemy URL; ``postgresql://`` is given the psycopg 3 driver.

    Examples
    --------
    >>> resolve_db_url("postgresql://dj@localhost/crate")
    'postgresql+psycopg://dj@localhost/crate'
    >>> resolve_db_url("/tmp/lib.db")
    'sqlite:////tmp/lib.db'
    """
    raw = os.fspath(db) if db is not None else os.environ.get(ENV_DB) or None
    if raw is None:
        return f"sqlite:///{data_dir() / DEFAULT_DB_NAME}"
    if "://" not in raw:
        return f"sqlite:///{Path(raw).expanduser().absolute()}"
    for prefix in ("postgresql://", "postgres://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def display_url(url: str | URL) -> str:
    """``url`` with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL (None for in-memory or other databases)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    name = u.database
    if name.startswith("file:"):  # URI form: sqlite:///file:/path/lib.db?mode=ro&uri=true
        name = name[len("file:") :]
    return Path(name)


def _seconds_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise DatabaseUnavailable(f"${name}={raw!r} must be a number of seconds") from None
    if not value >= 0:
        raise DatabaseUnavailable(f"${name}={raw!r} must be a number of seconds >= 0")
    return value


def create_library_engine(url: str, *, create: bool = True) -> Engine:
    """A SQLAlchemy engine for ``url`` with cratedig's connection settings.

    Parameters
    ----------
    url : str
    create : bool
        SQLite: create the database file (and its folder) when missing; if False, a missing
        file is an error and nothing is created.

    Raises
    ------
    DatabaseUnavailable
        For a malformed URL, an unknown dialect, a missing driver, or (``create=False``) a
        SQLite file that does not exist.
    """
    shown = display_url(url)
    try:
        u = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUnavailable(f"{url!r} is not a database URL or path") from exc
    backend = u.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        path = sqlite_path(u)
        if path is not None and not create and not path.exists():
            raise DatabaseUnavailable(f"no library at {path} (`cratedig ingest FOLDER` creates it)")
        if path is not None and "mode=ro" not in str(u):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(
                    f"cannot create the folder for {path}: {exc.strerror or exc}"
                ) from exc
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
    elif backend == "postgresql":
        kwargs["pool_pre_ping"] = True
        connect = _seconds_from_env(ENV_CONNECT_TIMEOUT, PG_CONNECT_TIMEOUT)
        statement = _seconds_from_env(ENV_STATEMENT_TIMEOUT, PG_STATEMENT_TIMEOUT)
        kwargs["connect_args"] = {
            # libpq: whole seconds, at least 2 (0 would mean "wait forever").
            "connect_timeout": max(2, int(round(connect))) if connect else 0,
            "options": f"-c statement_timeout={int(statement * 1000)}",
            # A server or link that died mid-transaction is noticed within a minute.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
    try:
        engine = create_engine(u, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseUnavailable(
            f"no driver for {shown} ({exc}); for PostgreSQL install psycopg[binary]"
        ) from exc
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Take transaction control away from pysqlite; the "begin" hook below emits BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")
            cur.execute("PRAGMA foreign_keys = ON")
            mode = cur.execute("PRAGMA journal_mode").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                try:
                    cur.execute("PRAGMA journal_mode = WAL")
                except sqlite3.OperationalError as exc:  # read-only file: keep its mode
                    log.debug("cannot switch to WAL: %s", exc)
            # WAL + NORMAL: a crash of the process loses nothing committed; a power cut may
            # lose the last transactions but never corrupts the file.
            cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def translate_error(exc: BaseException, url: str) -> LibraryError:
    """The :class:`LibraryError` a user should see for a database (or OS) error."""
    shown = display_url(url)
    if isinstance(exc, LibraryError):
        return exc
    if isinstance(exc, OSError):
        import errno

        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull(f"no space left on device ({exc.filename or shown})")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return DatabaseReadOnly(f"{exc.filename or shown} is read-only ({exc.strerror})")
        return LibraryError(f"{exc.filename or shown}: {exc.strerror or exc}")
    orig = getattr(exc, "orig", None) or exc
    message = " ".join(str(orig).split())[:300]
    sqlstate = getattr(orig, "sqlstate", None)
    lowered = message.lower()
    if sqlstate in ("53100",) or "disk is full" in lowered or "no space left" in lowered:
        return DiskFull(f"database {shown} is out of disk space: {message}")
    if sqlstate == "25006" or "readonly database" in lowered or "read-only" in lowered:
        return DatabaseReadOnly(f"database {shown} is read-only: {message}")
    if "database is locked" in lowered:
        return LibraryError(
            f"database {shown} is locked by another process (is another ingest running?)"
        )
    if (
        "unable to open database" in lowered
        or "connection" in lowered
        or (sqlstate or "").startswith("08")
        or sqlstate in ("28000", "28P01", "3D000")
    ):
        return DatabaseUnavailable(f"cannot open database {shown}: {message}")
    return LibraryError(f"database {shown}: {message}")


@contextmanager
def db_errors(url: str) -> Iterator[None]:
    """Turn database and OS errors raised inside the block into :class:`LibraryError`."""
    try:
        yield
    except (DBAPIError, OSError) as exc:
        raise translate_error(exc, url) from exc
    except SQLAlchemyError as exc:
        raise LibraryError(f"database {display_url(url)}: {exc}") from exc


def _alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    # configparser interpolates '%': escape it in the path.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest migration shipped with this version of cratedig."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _check_known_revision(engine: Engine, revision: str | None) -> None:
    """Refuse a database whose schema is newer than this cratedig (a revision it lacks)."""
    if revision is None:
        return
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        known = ScriptDirectory.from_config(_alembic_config()).get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise LibraryError(
            f"database {display_url(engine.url)} has schema {revision!r}, newer than this "
            f"cratedig {_version()} knows: upgrade cratedig to use it"
        )


def _version() -> str:
    from cratedig import __version__

    return __version__


def migrate(engine: Engine) -> bool:
    """Bring the schema to the newest revision; returns whether anything was run.

    Concurrent callers are serialised (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
    PostgreSQL) and the whole upgrade is one transaction on both.
    """
    from alembic import command

    head = head_revision()
    current = schema_revision(engine)
    if current == head:
        return False
    _check_known_revision(engine, current)
    with engine.connect().execution_options(sqlite_immediate=True) as conn:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            from alembic.runtime.migration import MigrationContext

            # Another process may have migrated while we waited for the lock.
            if MigrationContext.configure(conn).get_current_revision() == head:
                return False
            log.info("migrating %s to %s", display_url(engine.url), head)
            command.upgrade(_alembic_config(conn), "head")
    return True


@contextmanager
def _file_lock(path: Path, what: str) -> Iterator[None]:
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        # A read-only folder: whoever could write the database could create this; go on.
        log.debug("cannot create lock %s (%s): not locking", path, exc)
        yield
        return
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    log.warning("waiting for another %s to finish", what)
                    told = True
                time.sleep(LOCK_POLL)
        yield
    finally:
        os.close(fd)  # releases the lock


class Library:
    """An open library database: the one way the rest of cratedig touches it.

    Use :meth:`transaction` for writes (one commit or nothing) and :meth:`reader` for reads;
    both turn database errors into :class:`~cratedig.library.errors.LibraryError`.

    Parameters
    ----------
    url : str
        A resolved SQLAlchemy URL (see :func:`resolve_db_url`).
    engine : Engine
        The engine for ``url``.
    """

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def shown_url(self) -> str:
        """The URL with its password hidden."""
        return display_url(self.url)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error.

        On SQLite the transaction takes the write lock at once (``BEGIN IMMEDIATE``): a
        transaction that read first and then tried to write could fail at once with "database
        is locked" when another process wrote in between; waiting for the lock up front lets the
        busy timeout queue concurrent writers instead.
        """
        with db_errors(self.url), self.engine.connect() as conn:
            conn.execution_options(sqlite_immediate=True)
            with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                yield session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A session for reading (rolled back at the end)."""
        with db_errors(self.url), self._sessions() as session:
            yield session

    @property
    def artefact_dir(self) -> Path:
        """Where files derived from this database live (match index, cluster model).

        Beside a SQLite file: ``<file>.d/``; for a server database (or SQLite in memory),
        ``<data dir>/artefacts/<backend>-<host>-<port>-<database>/``. Not created here.
        """
        path = sqlite_path(self.url)
        if path is not None:
            return Path(f"{path}.d")
        u = make_url(self.url)
        parts = [u.get_backend_name(), u.host or "local", str(u.port or ""), u.database or "mem"]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(p for p in parts if p))
        if u.database == ":memory:" or not u.database:
            name += f"-{os.getpid()}-{id(self):x}"  # in-memory: private to this object
        return data_dir() / "artefacts" / name

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the library-wide lock ``name`` (``"ingest"``, ``"clusters"``) for the block,
        across processes and machines sharing the database; waits while another holds it.

        SQLite: ``flock`` on ``<db>.<name>.lock`` beside the database file. PostgreSQL: a
        session advisory lock, on a connection of its own (released if the process dies).
        An in-memory database has no other users: nothing to lock.
        """
        path = sqlite_path(self.url)
        if self.dialect == "sqlite":
            if path is None:
                yield
                return
            with _file_lock(Path(f"{path}.{name}.lock"), f"{name} on {self.shown_url}"):
                yield
            return
        if self.dialect != "postgresql":
            yield
            return
        key = int.from_bytes(hashlib.blake2b(f"cratedig:{name}".encode(), digest_size=8).digest(),
                             "big", signed=True)  # fmt: skip
        with db_errors(self.url), self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            told = False
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if not told:
                    log.warning("waiting for another %s on %s to finish", name, self.shown_url)
                    told = True
                time.sleep(LOCK_POLL)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    def size_bytes(self) -> int:
        """Bytes the database occupies (file + WAL for SQLite, ``pg_database_size``)."""
        if self.dialect == "sqlite":
            path = sqlite_path(self.url)
            if path is None:
                return 0
            return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        if self.dialect == "postgresql":
            with self.reader() as s:
                return int(
                    s.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
                )
        return 0

    def close(self) -> None:
        """Release every connection (checkpointing SQLite's WAL)."""
        self.engine.dispose()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_library(
    db: str | os.PathLike[str] | None = None, *, migrate_schema: bool = True, create: bool = True
) -> Library:
    """Open (creating and migrating when needed) the library database.

    Parameters
    ----------
    db : str or path-like, optional
        URL or SQLite path; see :func:`resolve_db_url`.
    migrate_schema : bool
        Run pending migrations (True) or only check that there are none.
    create : bool
        Create a missing SQLite database (True); False for commands that only read, so that
        a mistyped ``--db`` creates no folder and no file.

    Returns
    -------
    Library

    Raises
    ------
    DatabaseUnavailable, DatabaseReadOnly, DiskFull, LibraryError
        With one line saying what is wrong with which database.

    Examples
    --------
    >>> with open_library("sqlite:///:memory:") as lib:
    ...     lib.dialect
    'sqlite'
    """
    url = resolve_db_url(db)
    engine = create_library_engine(url, create=create)
    try:
        with db_errors(url):
            if migrate_schema:
                migrate(engine)
            elif (current := schema_revision(engine)) != head_revision():
                _check_known_revision(engine, current)
                raise LibraryError(
                    f"database {display_url(url)} needs migrating; run `cratedig ingest` on it"
                )
    except BaseException:
        engine.dispose()
        raise
    return Library(url, engine)
