"""The feedback and audit store the web layer calls.

* ``submit(records)`` queues the audit records of a hook's answer for a
  writer thread, so the answer never waits for the database. If the database
  is down the records stay in a bounded in-memory queue and are retried; the
  failure is logged and counted
  (``cds_store_errors_total{operation="audit"}``), the hook answer is never held up.
* ``record_feedback(...)`` stores feedback idempotently in one transaction and
  returns only after commit, so a 200 means stored; if the database is down it
  raises ``StoreUnavailable`` (the app answers 503 with Retry-After).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from cds.cards.snooze import card_state
from cds.hooks.models import Feedback
from cds.store.database import create_store_engine, migrate
from cds.store.models import CardAudit, CardRule, CardState, CardSuggestion, FeedbackRecord

log = logging.getLogger("cds.store")

MIGRATION_RETRY_SECONDS = 5.0
AUDIT_RETRY_SECONDS = 5.0  # while records are queued, the writer tries again this often


def _count_error(operation: str) -> None:
    # Imported on use: `cds serve` imports this package (for its CLI) before it sets up multiprocess
    # metrics, and prometheus-client must not be imported before that.
    from cds.observability import metrics

    metrics.STORE_ERRORS.labels(operation).inc()


class StoreUnavailable(Exception):
    """The database cannot be reached or written now; the message names no data."""


class UnknownCard(ValueError):
    """Feedback names a card (or suggestion) this service did not issue; ``problems`` say which item."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class AuditRecord:
    card_uuid: str
    service_id: str
    hook: str
    hook_instance: str
    ruleset_version: str
    indicator: str
    rule_ids: tuple[str, ...]
    suggestion_uuids: tuple[str, ...]
    patient_hash: str | None
    issued_at: datetime
    # For the snooze after an override (cds.store.snooze): the card's template, band and findings.
    card_family: str | None = None
    band: str | None = None
    findings: tuple[str, ...] = ()


def audit_records(
    service_id: str,
    hook: str,
    hook_instance: str,
    ruleset_version: str,
    cards: Sequence[Any],
    card_rules: Mapping[str, Sequence[str]],
    patient_hash: str | None,
    issued_at: datetime,
) -> list[AuditRecord]:
    """One record per card of a response (``cards`` are ``cds.hooks.models.Card``)."""
    return [
        AuditRecord(
            card_uuid=str(card.uuid),
            service_id=service_id,
            hook=hook,
            hook_instance=hook_instance,
            ruleset_version=ruleset_version,
            indicator=card.indicator,
            rule_ids=tuple(dict.fromkeys(card_rules.get(str(card.uuid), ()))),
            suggestion_uuids=tuple(str(s.uuid) for s in card.suggestions or ()),
            patient_hash=patient_hash,
            issued_at=issued_at,
            **dict(zip(("card_family", "band", "findings"), card_state(card), strict=True)),
        )
        for card in cards
    ]


def feedback_key(service_id: str, item: Feedback) -> str:
    """Identity of a feedback item: the same item posted again has the same key."""
    reason = item.overrideReason
    canonical = {
        "service": service_id,
        "card": str(item.card),
        "outcome": item.outcome,
        "accepted": sorted(str(s.id) for s in item.acceptedSuggestions or ()),
        "reason": [reason.reason.system, reason.reason.code] if reason and reason.reason else None,
        "comment": reason.userComment if reason else None,
        "at": item.outcomeTimestamp.astimezone(UTC).isoformat(),
    }
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Store:
    def __init__(
        self,
        engine: Engine,
        patient_key: bytes,
        queue_limit: int = 1000,
        clock: Any = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
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

    @classmethod
    def open(cls, url: str, patient_key: bytes, timeout_seconds: float = 2.0, queue_limit: int = 1000) -> Store:
        store = cls(create_store_engine(url, timeout_seconds), patient_key, queue_limit)
        store.ensure_schema()
        return store

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

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
        """Write every queued audit record now; False if the database refused (they stay queued)."""
        with self._write_lock:
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
        """Audit records not yet written: queued, or being written right now."""
        with self._lock:
            return len(self._pending) + self._writing

    def _write_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(timeout=AUDIT_RETRY_SECONDS)
            self._wake.clear()
            if self._pending:
                self.flush()

    def _write_audit(self, records: list[AuditRecord]) -> None:
        insert = postgresql.insert if self.backend == "postgresql" else sqlite.insert
        with self.engine.begin() as connection:
            for record in records:
                connection.execute(
                    insert(CardAudit.__table__)
                    .values(
                        card_uuid=record.card_uuid,
                        service_id=record.service_id,
                        hook=record.hook,
                        hook_instance=record.hook_instance,
                        ruleset_version=record.ruleset_version,
                        indicator=record.indicator,
                        patient_hash=record.patient_hash,
                        issued_at=record.issued_at,
                    )
                    .on_conflict_do_nothing(index_elements=["card_uuid"])
                )
                if record.card_family is not None:
                    connection.execute(
                        insert(CardState.__table__)
                        .values(
                            card_uuid=record.card_uuid,
                            card_family=record.card_family,
                            band=record.band,
                            findings=orjson.dumps(list(record.findings)).decode(),
                        )
                        .on_conflict_do_nothing()
                    )
                for rule_id in record.rule_ids:
                    connection.execute(
                        insert(CardRule.__table__).values(card_uuid=record.card_uuid, rule_id=rule_id).on_conflict_do_nothing()
                    )
                for suggestion in record.suggestion_uuids:
                    connection.execute(
                        insert(CardSuggestion.__table__)
                        .values(card_uuid=record.card_uuid, suggestion_uuid=suggestion)
                        .on_conflict_do_nothing()
                    )

    # ------------------------------------------------------------------ feedback

    def record_feedback(
        self, service_id: str, items: Sequence[Feedback], client_iss: str | None = None
    ) -> tuple[int, int]:
        """Store feedback items all or none; (stored, duplicates). UnknownCard or StoreUnavailable otherwise."""
        if self._pending:
            self.flush()  # a card audited during an outage becomes known before its feedback is checked
        insert = postgresql.insert if self.backend == "postgresql" else sqlite.insert
        now = self._clock()
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
                problems = []
                for index, item in enumerate(items):
                    card = str(item.card)
                    if known.get(card) != service_id:
                        problems.append(f"feedback[{index}].card: no card with this uuid was issued by this service")
                        continue
                    for s_index, accepted in enumerate(item.acceptedSuggestions or ()):
                        if str(accepted.id) not in suggestions.get(card, set()):
                            problems.append(
                                f"feedback[{index}].acceptedSuggestions[{s_index}].id: not a suggestion of that card"
                            )
                if problems:
                    raise UnknownCard(problems)
                stored = 0
                for item in items:
                    reason = item.overrideReason
                    coding = reason.reason if reason else None
                    result = connection.execute(
                        insert(FeedbackRecord.__table__)
                        .values(
                            dedup_key=feedback_key(service_id, item),
                            card_uuid=str(item.card),
                            outcome=item.outcome,
                            accepted_suggestions=orjson.dumps(
                                [str(s.id) for s in item.acceptedSuggestions]
                            ).decode()
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
                    stored += result.first() is not None
        except SQLAlchemyError as exc:
            _count_error("feedback")
            log.error("feedback not stored, database unavailable (%s)", type(exc).__name__)
            raise StoreUnavailable("the database is unavailable") from None
        except StoreUnavailable:
            _count_error("feedback")
            raise
        return stored, len(items) - stored

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
        self.engine.dispose()
