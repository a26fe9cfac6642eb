"""Feedback and audit persistence (SQLAlchemy 2; SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from cds.store.database import engine_url
from cds.store.records import (
    AuditRecord,
    FeedbackResult,
    StoreUnavailable,
    UnknownCard,
    audit_records,
    feedback_key,
)
from cds.store.store import Store

if TYPE_CHECKING:
    from cds.settings import Settings

__all__ = [
    "AuditRecord",
    "FeedbackResult",
    "Store",
    "StoreUnavailable",
    "UnknownCard",
    "audit_records",
    "feedback_key",
    "open_store",
]

log = logging.getLogger("cds.store")


def open_store(settings: Settings) -> Store:
    """The store the settings describe, migrated if the database is up (retried later if not)."""
    if settings.audit_hmac_key is not None:
        key = settings.audit_hmac_key.get_secret_value().encode()
    else:
        # Settings.check() requires a key in production; elsewhere hashes are only comparable within this run.
        key = secrets.token_bytes(32)
        log.warning("CDS_AUDIT_HMAC_KEY is not set: patient hashes in the audit use a random key for this process")
    store = Store.open(
        settings.database_url.get_secret_value(),
        key,
        timeout_seconds=settings.database_timeout_seconds,
        queue_limit=settings.audit_queue_limit,
        spool_dir=spool_dir(settings),
        feedback_per_card_limit=settings.feedback_per_card_limit,
    )
    attach_gap_recorder(store)
    return store


def attach_gap_recorder(store: Store) -> None:
    """Coverage telemetry: this worker's unrecognised codes go to the store (cds.store.gaps)."""
    # Imported on use: the FHIR layer imports prometheus-client, which `cds serve` sets up first.
    from cds.fhir.gaps import GAPS
    from cds.store.gaps import GapRecorder

    # Written only once the store has migrated its schema: Alembic's context is process-global, so the
    # recorder's thread never migrates itself (the hook path and `ensure_schema` do).
    store.gap_recorder = GapRecorder(store.engine, GAPS, ready=lambda: store.migrated).start()


def spool_dir(settings: Settings) -> Path | None:
    """Where audit records wait when the database refuses them; None for a throwaway in-memory database."""
    if not settings.audit_spool:
        return None
    if settings.audit_spool_dir is not None:
        return settings.audit_spool_dir
    url = make_url(engine_url(settings.database_url.get_secret_value()))
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return None
        return Path(url.database).expanduser().resolve().parent / "audit-spool"
    return Path("data") / "audit-spool"
