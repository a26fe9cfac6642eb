"""Store tests run on SQLite and on PostgreSQL.

PostgreSQL comes from ``CDS_TEST_POSTGRES_URL`` (``.ci/run`` starts one on
loopback). Without it the PostgreSQL cases are skipped locally and fail in CI
(``CI`` set), so CI cannot pass without having run them. Each test gets a fresh
database, and a way to take it down and bring it back.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cds.store.database import engine_url


@dataclass
class Database:
    kind: str
    url: str
    _down: Any
    _up: Any

    def down(self) -> None:
        self._down()

    def up(self) -> None:
        self._up()


def _sqlite(tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "db" / "cds.sqlite3"
    parked = tmp_path / "parked"

    def down() -> None:
        # The storage disappears: the file is moved away and a directory stands in its place.
        parked.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            file = Path(f"{path}{suffix}")
            if file.exists():
                shutil.move(file, parked / file.name)
        path.mkdir()

    def up() -> None:
        path.rmdir()
        for file in parked.iterdir():
            shutil.move(file, path.parent / file.name)

    yield Database("sqlite", f"sqlite:///{path}", down, up)


def _postgres(request: pytest.FixtureRequest) -> Iterator[Database]:
    admin_url = os.environ.get("CDS_TEST_POSTGRES_URL")
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail("CDS_TEST_POSTGRES_URL is not set in CI: the PostgreSQL store tests must run (see .ci/run)")
        pytest.skip("no PostgreSQL (set CDS_TEST_POSTGRES_URL to run these)")
    admin = create_engine(engine_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"cds_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # a configured but unreachable server is a failure, not a skip
        pytest.fail(f"PostgreSQL at CDS_TEST_POSTGRES_URL is unavailable: {type(exc).__name__}: {exc}")
    url = make_url(engine_url(admin_url)).set(database=name).render_as_string(hide_password=False)

    def down() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )

    def up() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))

    try:
        yield Database("postgresql", url, down, up)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield from _sqlite(tmp_path)
    else:
        yield from _postgres(request)
