"""Alembic environment for the feedback/audit store.

Used two ways: by ``cds.store.migrate`` at start (the open connection is passed
in ``config.attributes["connection"]``), and by developers through
``alembic -c cds/store/alembic.ini ...`` (URL from CDS_DATABASE_URL).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from cds.store.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from cds.settings import load_settings
    from cds.store.database import engine_url

    url = config.get_main_option("sqlalchemy.url") or engine_url(load_settings().database_url.get_secret_value())
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
