"""The feedback and audit store the web layer calls.

* ``record_issued(records)`` writes the audit records of a hook's answer
  *before* the answer is sent (write-ahead, ADR 0008): once an EHR has a card,
  every worker knows it, and a kill -9 cannot lose it. If the database is down
  the records go to a durable spool file (appended and fsynced) and, failing
  that, to a bounded in-memory queue; a writer thread moves them to the
  database when it is back. The hook answer is never refused for the audit;
  failures are logged and counted (``cds_store_errors_total{operation="audit"}``).
* ``submit(records)`` only queues (the background path; kept for callers that
  must not block at all).
* ``record_feedback(...)`` stores feedback idempotently on (card, outcome,
  timestamp), bounded per card, in one transaction and returns only after
  commit, with one result per item; if the database is down it raises
  ``StoreUnavailable`` (the app answers 503 with Retry-After).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from cds.hooks.models import Feedback
from cds.store.database import close_engine, create_store_engine, migrate
from cds.store.group_commit import GroupCommit
from cds.store.models import CardAudit, CardRule, CardState, CardSuggestion, FeedbackRecord, table_of
from cds.store.records import (
    FEEDBACK_ACCEPTED,
    FEEDBACK_DUPLICATE,
    FEEDBACK_OVER_LIMIT,
    FEEDBACK_UNKNOWN_CARD,
    FEEDBACK_UNKNOWN_SUGGESTION,
    AuditRecord,
    FeedbackResult,
    StoreUnavailable,
    feedback_key,
)
from cds.store.spool import AuditSpool

log = logging.getLogger("cds.store")

MIGRATION_RETRY_SECONDS = 5.0
AUDIT_RETRY_SECONDS = 5.0  # while records are queued, the writer tries again this often


@functools.cache
def _audit_inserts(backend: str) -> tuple[Insert, Insert, Insert, Insert]:
    """The audit's four idempotent inserts (card_audit, card_state, card_rule, card_suggestion), built once:
    a replayed spool or a retried write inserts nothing twice."""
    insert = postgresql.insert if backend == "postgresql" else sqlite.insert
    return (
        insert(table_of(CardAudit)).on_conflict_do_nothing(index_elements=["card_uuid"]),
        insert(table_of(CardState)).on_conflict_do_nothing(),
        insert(table_of(CardRule)).on_conflict_do_nothing(),
        insert(table_of(CardSuggestion)).on_conflict_do_nothing(),
    )


def _count_error(operation: str) -> None:
    # Imported on use: `cds serve` imports this package (for its CLI) before it sets up multiprocess
    # metrics, and prometheus-client must not be imported before that.
    from cds.observability import metrics

    metrics.STORE_ERRORS.labels(operation).inc()


class Store:
    def __init__(
        self,
        engine: Engine,
        patient_key: bytes,
        queue_limit: int = 1000,
        clock: Any = lambda: datetime.now(UTC),
        spool_dir: Path | None = None,
        feedback_per_card_limit: int = 20,
    ) -> None:
        self.engine = engine
        self.spool = None
        if spool_dir is not None:
            # One folder per database, so records spooled for one database are never replayed into another.
            database = hashlib.sha256(engine.url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
            self.spool = AuditSpool(spool_dir / database, queue_limit * 100)
        self.feedback_per_card_limit = feedback_per_card_limit
        self._patient_key = patient_key
        self._clock = clock
        self._pending: deque[AuditRecord] = deque()
        self._queue_limit = queue_limit
        self._lock = threading.Lock()
        self._migrated = False
        self._last_migration_attempt = float("-inf")
        self.audit_failures = 0
        self.audit_dropped = 0
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._stopping = False
        self._writing = 0  # records taken from the queue by a write in progress
        self.gap_recorder: Any = None  # cds.store.gaps.GapRecorder, when open_store attached one
        # Hook answers audited at the same time share one transaction (group commit, ADR 0015).
        self.audit_commits: GroupCommit[AuditRecord] = GroupCommit(self._write_audit)

    @classmethod
    def open(
        cls,
        url: str,
        patient_key: bytes,
        timeout_seconds: float = 2.0,
        queue_limit: int = 1000,
        spool_dir: Path | None = None,
        feedback_per_card_limit: int = 20,
    ) -> Store:
        store = cls(
            create_store_engine(url, timeout_seconds),
            patient_key,
            queue_limit,
            spool_dir=spool_dir,
            feedback_per_card_limit=feedback_per_card_limit,
        )
        store.ensure_schema()
        if store.spool is not None and store.spool.count():
            # Records spooled by a process that ended (a crash, a kill -9): move them in now.
            store._ensure_writer()
            store._wake.set()
        return store

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @property
    def migrated(self) -> bool:
        """Whether this store's schema is known to be at head (read by threads that must not migrate)."""
        return self._migrated

    # ------------------------------------------------------------------ schema

    def ensure_schema(self) -> bool:
        """Apply migrations once; if the database is down, try again on a later call (at most every few s)."""
        if self._migrated:
            return True
        now = time.monotonic()
        if now - self._last_migration_attempt < MIGRATION_RETRY_SECONDS:
            return False
        self._last_migration_attempt = now
        try:
            migrate(self.engine)
        except (SQLAlchemyError, OSError) as exc:  # OSError: the SQLite folder or lock file is unusable
            log.error("store migrations not applied, database unavailable (%s); will retry", type(exc).__name__)
            return False
        self._migrated = True
        return True

    def _ready(self) -> None:
        if not self.ensure_schema():
            raise StoreUnavailable("the database is unavailable")

    # ------------------------------------------------------------------ audit

    def patient_hash(self, patient_id: Any) -> str | None:
        if not isinstance(patient_id, str) or not patient_id:
            return None
        return hmac.new(self._patient_key, patient_id.encode(), hashlib.sha256).hexdigest()

    def record_issued(self, records: Sequence[AuditRecord]) -> None:
        """Write-ahead: the records are in the database (or the durable spool) when this returns.

        Called before the hook's answer is sent. It never raises: if neither the database nor
        the spool takes the records they are queued in memory (as ``submit``) and counted.
        Callers at the same time are committed together (``GroupCommit``): each returns once the
        transaction holding its records committed; if it failed, each spools its own records.
        """
        if not records:
            return
        try:
            self._ready()
            self.audit_commits.commit(list(records))
            return
        except (SQLAlchemyError, StoreUnavailable, OSError) as exc:
            self.audit_failures += 1
            _count_error("audit")
            log.error("audit write failed (%s): spooling %d card record(s)", type(exc).__name__, len(records))
        if self.spool is not None:
            try:
                if self.spool.append(records):
                    self._ensure_writer()
                    self._wake.set()
                    return
                log.error("audit spool is full; keeping the records in memory")
            except OSError as exc:
                log.error("audit spool unusable (%s); keeping the records in memory", type(exc).__name__)
        self.submit(records)

    def _ensure_writer(self) -> None:
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="cds-audit-writer", daemon=True)
                self._writer.start()

    def submit(self, records: Iterable[AuditRecord]) -> None:
        """Queue audit records for the writer thread; returns at once and never raises.

        The hook's answer does not wait for the database: the records are written
        by a background thread, and kept (up to ``queue_limit``) while the database
        is down.
        """
        with self._lock:
            for record in records:
                if len(self._pending) >= self._queue_limit:
                    self._pending.popleft()
                    self.audit_dropped += 1
                    _count_error("audit-dropped")
                self._pending.append(record)
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="cds-audit-writer", daemon=True)
                self._writer.start()
        self._wake.set()

    def flush(self) -> bool:
        """Write every spooled and queued audit record now; False if the database refused (they stay)."""
        with self._write_lock:
            if self.spool is not None:
                try:
                    self._ready()
                    self.spool.replay(self._write_audit)
                except (SQLAlchemyError, StoreUnavailable, OSError) as exc:
                    self.audit_failures += 1
                    _count_error("audit")
                    log.error("audit spool not replayed (%s); kept on disk", type(exc).__name__)
                    return False
            with self._lock:
                batch = list(self._pending)
                self._pending.clear()
                self._writing = len(batch)
            if not batch:
                return True
            try:
                self._ready()
                self._write_audit(batch)
                with self._lock:
                    self._writing = 0
                return True
            except (SQLAlchemyError, StoreUnavailable) as exc:
                with self._lock:
                    self._writing = 0
                    # Back in front of anything queued meanwhile, oldest dropped beyond the limit.
                    self._pending.extendleft(reversed(batch))
                    while len(self._pending) > self._queue_limit:
                        self._pending.popleft()
                        self.audit_dropped += 1
                        _count_error("audit-dropped")
                    queued = len(self._pending)
                self.audit_failures += 1
                _count_error("audit")
                log.error("audit write failed (%s): %d card record(s) queued in memory", type(exc).__name__, queued)
                return False

    @property
    def pending_audit_records(self) -> int:
        """Audit records not yet written: spooled, queued, or being written right now."""
        spooled = 0
        if self.spool is not None:
            try:
                spooled = self.spool.count()
            except OSError:
                spooled = 0
        with self._lock:
            return len(self._pending) + self._writing + spooled

    def _write_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(timeout=AUDIT_RETRY_SECONDS)
            self._wake.clear()
            if self._pending or (self.spool is not None and self.spool.count()):
                self.flush()

    def _write_audit(self, records: list[AuditRecord]) -> None:
        """One transaction, one executemany per table. A statement per row rebuilt and re-keyed for
        SQLAlchemy's cache each time cost more than the database's work (issue 20)."""
        audits: list[dict[str, Any]] = []
        states: list[dict[str, Any]] = []
        rules: list[dict[str, Any]] = []
        suggestions: list[dict[str, Any]] = []
        for record in records:
            audits.append(
                {
                    "card_uuid": record.card_uuid,
                    "service_id": record.service_id,
                    "hook": record.hook,
                    "hook_instance": record.hook_instance,
                    "ruleset_version": record.ruleset_version,
                    "indicator": record.indicator,
                    "patient_hash": record.patient_hash,
                    "issued_at": record.issued_at,
                }
            )
            if record.card_family is not None:
                states.append(
                    {
                        "card_uuid": record.card_uuid,
                        "card_family": record.card_family,
                        "band": record.band,
                        "findings": orjson.dumps(list(record.findings)).decode(),
                    }
                )
            rules += ({"card_uuid": record.card_uuid, "rule_id": rule_id} for rule_id in record.rule_ids)
            suggestions += (
                {"card_uuid": record.card_uuid, "suggestion_uuid": suggestion} for suggestion in record.suggestion_uuids
            )
        statements = _audit_inserts(self.backend)
        with self.engine.begin() as connection:  # card_audit first: the others refer to it
            for statement, rows in zip(statements, (audits, states, rules, suggestions), strict=True):
                if rows:
                    connection.execute(statement, rows)

    # ------------------------------------------------------------------ feedback

    def record_feedback(
        self, service_id: str, items: Sequence[Feedback], client_iss: str | None = None
    ) -> FeedbackResult:
        """Store each item that names a card (and suggestions) this service issued; one result per item.

        Items are independent: an unknown card refuses that item only. A card keeps at most
        ``feedback_per_card_limit`` feedback rows, so one client cannot inflate the report.
        StoreUnavailable when the database is down (nothing is stored then).
        """
        if self._pending or self.spool is not None:
            self.flush()  # a card audited during an outage becomes known before its feedback is checked
        insert = postgresql.insert if self.backend == "postgresql" else sqlite.insert
        now = self._clock()
        result = FeedbackResult()
        try:
            self._ready()
            with self.engine.begin() as connection:
                cards = {str(i.card) for i in items}
                known = {
                    row.card_uuid: row.service_id
                    for row in connection.execute(
                        select(CardAudit.card_uuid, CardAudit.service_id).where(CardAudit.card_uuid.in_(cards))
                    )
                }
                suggestions: dict[str, set[str]] = {}
                for row in connection.execute(
                    select(CardSuggestion.card_uuid, CardSuggestion.suggestion_uuid).where(
                        CardSuggestion.card_uuid.in_(cards)
                    )
                ):
                    suggestions.setdefault(row.card_uuid, set()).add(row.suggestion_uuid)
                per_card: dict[str, int] = {
                    row.card_uuid: row.n
                    for row in connection.execute(
                        select(FeedbackRecord.card_uuid, func.count().label("n"))
                        .where(FeedbackRecord.card_uuid.in_(cards))
                        .group_by(FeedbackRecord.card_uuid)
                    )
                }
                for index, item in enumerate(items):
                    card = str(item.card)
                    if known.get(card) != service_id:
                        result.statuses.append(FEEDBACK_UNKNOWN_CARD)
                        result.problems.append(
                            f"feedback[{index}].card: no card with this uuid was issued by this service"
                        )
                        continue
                    unknown = [
                        s_index
                        for s_index, accepted in enumerate(item.acceptedSuggestions or ())
                        if str(accepted.id) not in suggestions.get(card, set())
                    ]
                    if unknown:
                        result.statuses.append(FEEDBACK_UNKNOWN_SUGGESTION)
                        result.problems.append(
                            "; ".join(
                                f"feedback[{index}].acceptedSuggestions[{s}].id: not a suggestion of that card"
                                for s in unknown
                            )
                        )
                        continue
                    key = feedback_key(service_id, item)
                    duplicate = connection.execute(
                        select(FeedbackRecord.id).where(FeedbackRecord.dedup_key == key)
                    ).first()
                    if duplicate is not None:
                        result.statuses.append(FEEDBACK_DUPLICATE)
                        continue
                    if per_card.get(card, 0) >= self.feedback_per_card_limit:
                        result.statuses.append(FEEDBACK_OVER_LIMIT)
                        result.problems.append(
                            f"feedback[{index}]: this card already has {self.feedback_per_card_limit} feedback items"
                        )
                        continue
                    reason = item.overrideReason
                    coding = reason.reason if reason else None
                    inserted = connection.execute(
                        insert(table_of(FeedbackRecord))
                        .values(
                            dedup_key=key,
                            card_uuid=card,
                            outcome=item.outcome,
                            accepted_suggestions=orjson.dumps([str(s.id) for s in item.acceptedSuggestions]).decode()
                            if item.acceptedSuggestions
                            else None,
                            override_system=coding.system if coding else None,
                            override_code=coding.code if coding else None,
                            override_display=coding.display if coding else None,
                            override_comment=reason.userComment if reason else None,
                            outcome_timestamp=item.outcomeTimestamp,
                            received_at=now,
                            client_iss=client_iss,
                        )
                        .on_conflict_do_nothing(index_elements=["dedup_key"])
                        .returning(FeedbackRecord.id)  # rowcount is not reliable across drivers; a row back means new
                    )
                    if inserted.first() is None:  # another worker stored it meanwhile
                        result.statuses.append(FEEDBACK_DUPLICATE)
                    else:
                        result.statuses.append(FEEDBACK_ACCEPTED)
                        per_card[card] = per_card.get(card, 0) + 1
        except SQLAlchemyError as exc:
            _count_error("feedback")
            log.error("feedback not stored, database unavailable (%s)", type(exc).__name__)
            raise StoreUnavailable("the database is unavailable") from None
        except StoreUnavailable:
            _count_error("feedback")
            raise
        return result

    # ------------------------------------------------------------------ health

    def status(self) -> dict[str, Any]:
        state = "ok"
        try:
            if not self.ensure_schema():
                state = "unavailable"
            else:
                with self.engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            state = "unavailable"
        return {
            "status": state,
            "backend": self.backend,
            "pending_audit_records": self.pending_audit_records,
            "audit_write_failures": self.audit_failures,
            "audit_records_dropped": self.audit_dropped,
        }

    def close(self) -> None:
        """Stop the writer after a last attempt to write what is queued."""
        self._stopping = True
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=5)
        self.flush()
        if self.gap_recorder is not None:
            self.gap_recorder.close()
        close_engine(self.engine)
