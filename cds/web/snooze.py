"""Hiding the cards a clinician snoozed after an override (cds.cards.snooze, cds.store.snooze).

The patient's snoozes are looked up alongside the evaluation, once per call; a slow or failing
lookup shows the cards (fail open for advice), and both are counted.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from cds.cards.snooze import apply_snoozes, card_state, snooze_policies
from cds.hooks.evaluation import Evaluation
from cds.observability import metrics
from cds.pipeline import Pipeline
from cds.settings import Settings
from cds.store import Store, StoreUnavailable
from cds.store.snooze import active_snoozes

log = logging.getLogger("cds.request")

Lookup = asyncio.Task[dict[str, Any] | None]


class SnoozeGate:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._policies_of: dict[str, dict[str, Any]] = {}

    def policies(self, current: Pipeline) -> dict[str, Any]:
        """The snooze policies of the serving rule set (computed once per version)."""
        if current.version not in self._policies_of:
            self._policies_of.clear()
            self._policies_of[current.version] = snooze_policies(current.ruleset)
        return self._policies_of[current.version]

    def start_lookup(self, current: Pipeline, service_id: str, payload: dict[str, Any], now: datetime) -> Lookup | None:
        """Start the one indexed lookup of the patient's snoozes for the card families this service can
        raise, so that it overlaps the evaluation; None when nothing can be snoozed."""
        if not self.settings.snooze_enabled:
            return None
        context = payload.get("context")
        patient_hash = self.store.patient_hash(context.get("patientId")) if isinstance(context, dict) else None
        policies = self.policies(current)
        families = {f for f in policies if service_id in current.ruleset.cards[f].services}
        if patient_hash is None or not families:
            return None
        store = self.store

        async def lookup() -> dict[str, Any] | None:
            try:
                found: dict[str, Any] = await run_in_threadpool(active_snoozes, store, patient_hash, families, now)
                return found
            except (SQLAlchemyError, StoreUnavailable, OSError) as exc:
                log.warning("snooze lookup failed (%s); cards shown", type(exc).__name__)
                return None

        return asyncio.create_task(lookup())

    async def hide(self, current: Pipeline, evaluation: Evaluation, lookup: Lookup | None) -> list[Any]:
        """Hide the cards a snooze covers. The lookup may take at most the evaluation's time plus
        ``snooze_lookup_timeout_seconds``; when it is slower or the store is down the cards are shown
        (fail open for advice), and both are counted."""
        if lookup is None:
            return []
        if not {card_state(c)[0] for c in evaluation.response.cards} & self.policies(current).keys():
            return []  # no card to hide: the lookup's answer is not needed
        done, _ = await asyncio.wait({lookup}, timeout=self.settings.snooze_lookup_timeout_seconds)
        if not done:
            metrics.SNOOZE_LOOKUPS.labels("timeout").inc()
            log.warning("snooze lookup timed out; cards shown")
            return []
        snoozes = lookup.result()
        if snoozes is None:
            metrics.SNOOZE_LOOKUPS.labels("error").inc()
            return []
        metrics.SNOOZE_LOOKUPS.labels("ok").inc()
        if not snoozes:
            return []
        titles = {rid: rule.title for rid, rule in current.ruleset.rules.items()}
        kept, hidden = apply_snoozes(evaluation.response.cards, snoozes, titles)
        shown_again = {card_state(c)[0] for c in kept} & snoozes.keys()
        for family in shown_again:
            metrics.CARDS_SNOOZED.labels(family, "shown-again").inc()
        for entry in hidden:
            metrics.CARDS_SNOOZED.labels(entry["template"], "hidden").inc()
        evaluation.response.cards = kept
        return list(hidden)
