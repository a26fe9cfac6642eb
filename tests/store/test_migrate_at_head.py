"""Migrations at start (docs/adr/0014-cold-start.md): a database already at the newest revision is not
handed to Alembic; a new or older one is migrated by Alembic as before."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from cds.store.database import HEAD_REVISION, alembic_config, at_head, close_engine, create_store_engine, migrate


@pytest.fixture
def engine(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'cds.sqlite3'}")
    yield engine
    close_engine(engine)


def test_the_head_revision_is_alembics_head():
    # A new migration under migrations/versions must move HEAD_REVISION with it.
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_a_new_database_is_migrated_by_alembic_and_then_is_at_head(engine):
    assert not at_head(engine)
    migrate(engine)
    assert at_head(engine)
    assert {"card_audit", "card_snooze", "alembic_version"} <= set(inspect(engine).get_table_names())


def test_a_database_at_head_is_not_handed_to_alembic(engine, monkeypatch):
    migrate(engine)
    runs = []
    monkeypatch.setattr(command, "upgrade", lambda *args, **kwargs: runs.append(args))
    migrate(engine)
    assert runs == []


def test_an_older_database_is_upgraded(engine):
    migrate(engine)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002_snooze")
    assert not at_head(engine)
    assert "terminology_gap" not in inspect(engine).get_table_names()
    migrate(engine)
    assert at_head(engine)
    assert "terminology_gap" in inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
