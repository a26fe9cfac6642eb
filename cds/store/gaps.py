"""Coverage telemetry in the audit store: codes no value set recognised (issue 13 item 6, ADR 0005).

Each worker counts the codes it could not recognise in ``cds.fhir.gaps.GAPS``; ``GapRecorder``
adds what was seen since its last write to the table ``terminology_gap`` every few seconds (and
when the store closes), so the counts of every worker and every restart add up in one place.
``cds terminology gaps`` (without files) lists them.

What is stored is only what an informaticist needs to extend a value set: the code system, the
code, the resource type, how often, when the service first and last saw it, and the value set the
text layer recognised instead. Never a patient id or hash, a display, free text or a date of care.
A database that is down loses nothing: the counts wait in memory (bounded) for the next write.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Engine, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from cds.store.models import TerminologyGap

log = logging.getLogger("cds.store")

FLUSH_SECONDS = 30.0
T = TerminologyGap


@dataclass(frozen=True, slots=True)
class GapRow:
    """One code no value set recognised (the fields of ``cds.fhir.gaps.Gap``)."""

    system: str
    code: str
    resource_type: str
    count: int
    text_match: str


class GapSource(Protocol):
    """Where a worker counts its gaps (``cds.fhir.gaps.GAPS``); the store does not import the FHIR layer."""

    def take_pending(self) -> Sequence[Any]: ...

    def restore(self, gaps: Sequence[Any]) -> None: ...


def record_gaps(engine: Engine, gaps: Sequence[Any], now: datetime | None = None) -> int:
    """Add ``gaps`` (counts seen since the last write) to the table; returns the rows written."""
    if not gaps:
        return 0
    now = now or datetime.now(UTC)
    rows = [
        {
            "system": g.system[:200],
            "code": g.code[:64],
            "resource_type": g.resource_type[:64],
            "count": g.count,
            "text_match": g.text_match[:200],
            "first_seen": now,
            "last_seen": now,
        }
        for g in gaps
    ]
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(T)
    current = T.text_match
    statement = insert.on_conflict_do_update(
        index_elements=[T.system, T.code, T.resource_type],
        set_={
            "count": T.count + insert.excluded["count"],
            "last_seen": insert.excluded.last_seen,
            # The first text match seen stays; a later one fills an empty match.
            "text_match": case((current == "", insert.excluded.text_match), else_=current),
        },
    )
    with engine.begin() as connection:
        # Sorted, so two workers writing the same codes take their row locks in the same order.
        for row in sorted(rows, key=lambda r: (r["system"], r["code"], r["resource_type"])):
            connection.execute(statement, row)
    return len(rows)


def stored_gaps(engine: Engine, limit: int = 1000) -> list[GapRow]:
    """The stored gaps: codes the text layer recognised first (evidence for a value set), then by count."""
    query = (
        select(T.system, T.code, T.resource_type, T.count, T.text_match)
        .order_by((T.text_match == "").asc(), T.count.desc(), T.system, T.code, T.resource_type)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [GapRow(system, code, kind, int(n), match) for system, code, kind, n, match in connection.execute(query)]


class GapRecorder:
    """Moves a worker's counted gaps into the store every ``interval`` seconds and when closed."""

    def __init__(
        self,
        engine: Engine,
        counter: GapSource,
        interval: float = FLUSH_SECONDS,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.engine, self.counter, self.interval, self.ready = engine, counter, interval, ready
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> GapRecorder:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="cds-terminology-gaps", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> bool:
        """Write what was counted since the last write; on failure keep it for the next one."""
        pending = self.counter.take_pending()
        if not pending:
            return True
        try:
            if not self.ready():
                raise SQLAlchemyError("the store's schema is not ready")
            record_gaps(self.engine, pending)
            return True
        except (SQLAlchemyError, OSError) as exc:
            self.counter.restore(pending)
            log.warning("terminology gaps not stored (%s); kept for the next write", type(exc).__name__)
            return False

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
            self._thread = None
        self.flush()
