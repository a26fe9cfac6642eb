"""Engines and migrations: SQLite (a file, WAL) by default, PostgreSQL (psycopg 3) by URL."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool, StaticPool

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest revision under migrations/versions (tests/store/test_store.py checks it against Alembic's
# own head). A database already there is not handed to Alembic at start: importing Alembic and
# running its command API cost ~0.15 s of CPU of every cold start (docs/adr/0014-cold-start.md).
HEAD_REVISION = "0003_terminology_gaps"
# Serialises migrations when several workers start at once on one PostgreSQL database.
_MIGRATION_LOCK_ID = 0x63647331
# Kept SQLite connections per engine: the thread pool's concurrent store calls (audit rows, snooze
# writes, feedback, the JWT replay store) rarely need more; overflow connections are opened and closed.
SQLITE_POOL_SIZE = 8
SQLITE_POOL_OVERFLOW = 32
_FILE_IDENTITY = "cds_sqlite_file_identity"


def sqlite_file_identity(path: Path | str) -> tuple[int, int]:
    """(device, inode) of the regular file at ``path``; OSError when there is none (moved, deleted, a directory)."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(f"not a regular file: {path}")
    return info.st_dev, info.st_ino


def engine_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def create_store_engine(url: str, timeout_seconds: float = 2.0) -> Engine:
    url = engine_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            # One shared in-memory database for all threads (tests, throwaway demos).
            return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        path = Path(database).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        # The file is created once, here; every later connection opens it read-write only (mode=rw),
        # so a database file deleted under the running service is an error ("unavailable" in
        # /healthz, feedback 503, audit spooled) instead of a new empty database that looks fine.
        # One connection stays open for the engine's life: when the last connection to a WAL database
        # closes, SQLite checkpoints and removes the WAL, with fsyncs, which cost every short-lived
        # connection below several ms (the write-ahead audit opens one per hook answer).
        keeper: sqlite3.Connection | None
        try:
            keeper = sqlite3.connect(path, check_same_thread=False)
            keeper.execute("PRAGMA journal_mode=WAL")
            keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens the WAL index it keeps
        except sqlite3.Error:
            keeper = None  # unusable now (e.g. a directory in its place): the store reports itself unavailable
        # Pooled connections, each checked at checkout against the file now at the path: a new connection
        # costs ~0.5-1 ms before its first statement (the pragmas below, the schema read), paid by every
        # hook answer's audit row when connections were not kept (ADR 0015). A connection whose file was
        # moved, replaced or deleted is discarded and a new one opened (mode=rw: that fails when the file
        # is gone), so feedback is never acknowledged into a file that is no longer the database.
        engine = create_engine(
            url,  # for the dialect and the migration lock's path; connections come from the creator
            poolclass=QueuePool,
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=SQLITE_POOL_OVERFLOW,
            pool_timeout=timeout_seconds,
            creator=lambda: sqlite3.connect(
                f"{path.as_uri()}?mode=rw", uri=True, timeout=timeout_seconds, check_same_thread=False
            ),
        )
        engine.sqlite_keeper = keeper  # type: ignore[attr-defined]  # closed by close_engine
        busy_ms = int(timeout_seconds * 1000)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
            try:
                record.info[_FILE_IDENTITY] = sqlite_file_identity(path)
            except OSError:
                record.info[_FILE_IDENTITY] = None  # gone already: its checkout fails
            cursor = dbapi_connection.cursor()
            # WAL lets readers (reports, health) run while the service writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            # A commit is in the WAL file before the answer is sent, so a killed process loses nothing;
            # NORMAL leaves the fsync to checkpoints (only a power loss could drop the last commits), which
            # keeps the write-ahead audit from waiting on the disk for every hook answer (ADR 0008).
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        @event.listens_for(engine, "checkout")
        def _same_file(_dbapi: sqlite3.Connection, record: ConnectionPoolEntry, _proxy: object) -> None:
            try:
                current = sqlite_file_identity(path)
            except OSError:
                current = None
            if current is None or record.info.get(_FILE_IDENTITY) != current:
                # The pool discards its connections (all opened the old file) and opens a new one, which
                # fails if the file is gone.
                raise InvalidatePoolError("the SQLite database file at the path is not the one this connection opened")

        return engine
    connect_args = (
        {"connect_timeout": max(1, round(timeout_seconds))} if parsed.get_backend_name() == "postgresql" else {}
    )
    return create_engine(url, pool_pre_ping=True, pool_timeout=timeout_seconds, connect_args=connect_args)


def close_engine(engine: Engine) -> None:
    """Dispose of the engine's connections, the SQLite keeper connection included."""
    keeper = getattr(engine, "sqlite_keeper", None)
    if keeper is not None:
        keeper.close()
    engine.dispose()


def alembic_config() -> Config:
    """Alembic configuration from inside the package, so migrations run from an installed wheel."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# Alembic's command API sets module globals (alembic.context's proxy) for the length of a run, so
# two threads of one process migrating at once (the audit writer retrying while a request or
# another store migrates) break each other (KeyError: 'config'). One run at a time per process;
# the file and advisory locks below order processes.
_ALEMBIC_LOCK = threading.Lock()


def at_head(engine: Engine) -> bool:
    """True when the database's Alembic revision is ``HEAD_REVISION`` (one query; False on any doubt)."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).fetchall()
    except SQLAlchemyError:  # no table yet (a new database), or unreachable: Alembic decides
        return False
    return [tuple(row) for row in rows] == [(HEAD_REVISION,)]


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; several workers starting at once take turns."""
    if at_head(engine):
        return
    from alembic import command

    config = alembic_config()
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    with _ALEMBIC_LOCK, _sqlite_migration_lock(database), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def _sqlite_migration_lock(database: str | None) -> Iterator[None]:
    """An exclusive file lock beside a SQLite database file.

    SQLite's own locking makes a second migrating worker fail at once instead of
    waiting (a deferred transaction cannot upgrade its lock), so workers queue on a file lock.
    """
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
