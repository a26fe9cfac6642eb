"""SQLite connections are kept between store calls, and never outlive the file they opened (ADR 0015)."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError

from cds.store.database import close_engine, create_store_engine


def _engine_with_connect_count(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'cds.sqlite3'}")
    connects: list[object] = []
    event.listen(engine, "connect", lambda *_: connects.append(1))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (v INTEGER)"))
    return engine, connects


def test_a_connection_is_opened_once_and_kept_for_later_transactions(tmp_path):
    engine, connects = _engine_with_connect_count(tmp_path)
    try:
        for value in range(20):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
        assert len(connects) == 1  # the pragmas and the schema read are paid once, not per write
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 20
    finally:
        close_engine(engine)


@pytest.mark.parametrize("replacement", ["directory", "other-file", "nothing"])
def test_a_kept_connection_is_not_used_once_its_file_is_moved_away(tmp_path, replacement):
    engine, _ = _engine_with_connect_count(tmp_path)
    path = tmp_path / "cds.sqlite3"
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1)"))
        parked = tmp_path / "parked"
        parked.mkdir()
        for suffix in ("", "-wal", "-shm"):
            if (tmp_path / f"cds.sqlite3{suffix}").exists():
                shutil.move(tmp_path / f"cds.sqlite3{suffix}", parked / f"cds.sqlite3{suffix}")
        if replacement == "directory":
            path.mkdir()
        elif replacement == "other-file":
            path.write_bytes(b"")  # an empty file is a valid, empty SQLite database: no table t
        with pytest.raises(SQLAlchemyError), engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (2)"))
        # Nothing was written into the moved file behind the caller's back.
        moved = create_store_engine(f"sqlite:///{parked / 'cds.sqlite3'}")
        try:
            with moved.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 1
        finally:
            close_engine(moved)
    finally:
        close_engine(engine)
