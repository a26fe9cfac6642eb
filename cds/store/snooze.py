"""Snoozes after an override (issue 15): written when feedback says "already addressed" or "not relevant",
read on the hook path.

* ``record_snoozes`` runs after the feedback is committed: for each overridden card whose reason the card
  declares as snoozing, it stores the card's family, band and findings for the card's patient hash, until
  the card's declared period ends.
* ``active_snoozes`` is the hook path's one indexed query (``ix_card_snooze_lookup``). It raises on a
  database error; the caller bounds it with a timeout and shows the card when it fails (fail open).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from cds.hooks.models import Feedback
from cds.store.models import CardAudit, CardSnooze, CardState, table_of
from cds.store.store import Store


@dataclass(frozen=True)
class Snooze:
    card_family: str
    reason_code: str
    band: str | None
    findings: tuple[str, ...]
    snoozed_at: datetime
    until: datetime


# card family -> (days, the (system, code) override reasons that snooze it)
Policies = Mapping[str, tuple[int, Collection[tuple[str, str]]]]


def record_snoozes(store: Store, items: Sequence[Feedback], policies: Policies) -> int:
    """Store a snooze for each overridden card whose reason snoozes its family; how many were new."""
    overridden = {
        str(i.card): (i.overrideReason.reason.system, i.overrideReason.reason.code)
        for i in items
        if i.outcome == "overridden" and i.overrideReason is not None and i.overrideReason.reason is not None
    }
    if not overridden:
        return 0
    store._ready()
    insert = postgresql.insert if store.backend == "postgresql" else sqlite.insert
    now = store._clock()
    added = 0
    with store.engine.begin() as connection:
        states = connection.execute(
            select(
                CardState.card_uuid, CardState.card_family, CardState.band, CardState.findings, CardAudit.patient_hash
            )
            .join(CardAudit, CardAudit.card_uuid == CardState.card_uuid)
            .where(CardState.card_uuid.in_(overridden))
        )
        for state in states:
            policy = policies.get(state.card_family)
            reason = overridden[state.card_uuid]
            if policy is None or state.patient_hash is None or reason not in policy[1]:
                continue
            result = connection.execute(
                insert(table_of(CardSnooze))
                .values(
                    patient_hash=state.patient_hash,
                    card_family=state.card_family,
                    card_uuid=state.card_uuid,
                    reason_code=reason[1],
                    band=state.band,
                    findings=state.findings,
                    snoozed_at=now,
                    until=now + timedelta(days=policy[0]),
                )
                .on_conflict_do_nothing(index_elements=["card_uuid"])
                .returning(CardSnooze.id)
            )
            added += result.first() is not None
    return added


_snoozes = table_of(CardSnooze)
# Built once: constructing the ORM select per call (coercions, cache key) cost ~1 ms of a ~1.4 ms lookup,
# ten times the query itself (benchmarks/feature_cost.py, issue 15's "under 1 ms"). The bound parameters
# take the columns' types (the time-zone-aware DateTime of ``until``), and ``families`` expands to an IN list.
ACTIVE_SNOOZES = (
    select(
        _snoozes.c.card_family,
        _snoozes.c.reason_code,
        _snoozes.c.band,
        _snoozes.c.findings,
        _snoozes.c.snoozed_at,
        _snoozes.c.until,
    )
    .where(
        _snoozes.c.patient_hash == bindparam("patient_hash"),
        _snoozes.c.card_family.in_(bindparam("families", expanding=True)),
        _snoozes.c.until > bindparam("now"),
    )
    .order_by(_snoozes.c.snoozed_at.desc(), _snoozes.c.id.desc())
)


def active_snoozes(store: Store, patient_hash: str, families: Collection[str], now: datetime) -> dict[str, Snooze]:
    """The newest snooze in force for each of these card families of the patient."""
    store._ready()
    found: dict[str, Snooze] = {}
    # The store's own pooled connections: on SQLite each checkout is checked against the file now at the
    # path (cds.store.database), so a moved or replaced file fails the lookup and the card is shown. A
    # single kept reader behind a lock, as before, made concurrent hook threads queue for it (ADR 0015).
    with store.engine.connect() as connection:
        rows = connection.execute(
            ACTIVE_SNOOZES, {"patient_hash": patient_hash, "families": sorted(families), "now": now}
        )
        for row in rows:
            if row.card_family not in found:
                found[row.card_family] = Snooze(
                    card_family=row.card_family,
                    reason_code=row.reason_code,
                    band=row.band,
                    findings=tuple(orjson.loads(row.findings)),
                    snoozed_at=row.snoozed_at,
                    until=row.until,
                )
    return found
