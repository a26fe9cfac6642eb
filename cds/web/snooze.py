"""Hiding the cards a clinician snoozed after an override (cds.cards.snooze, cds.store.snooze).

The patient's snoozes are looked up once per call, in the worker thread that evaluated it, right
after the evaluation and only when it raised a card of a family that can be snoozed (cds.web.call).
The event loop bounds the lookup with ``snooze_lookup_timeout_seconds``: a slow or failing lookup
shows the cards (fail open for advice), and both are counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from cds.cards.snooze import apply_snoozes, card_state, snooze_policies
from cds.hooks.evaluation import Evaluation
from cds.observability import metrics
from cds.pipeline import Pipeline
from cds.settings import Settings
from cds.store import Store, StoreUnavailable
from cds.store.snooze import active_snoozes

log = logging.getLogger("cds.request")


@dataclass(frozen=True, slots=True)
class SnoozeQuery:
    """What one call's lookup asks: this patient's snoozes of the card families its service can raise."""

    patient_hash: str
    families: frozenset[str]


class SnoozeGate:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._policies_of: dict[str, dict[str, Any]] = {}
        self._families_of: dict[tuple[str, str], frozenset[str]] = {}

    @property
    def timeout_seconds(self) -> float:
        return self.settings.snooze_lookup_timeout_seconds

    def policies(self, current: Pipeline) -> dict[str, Any]:
        """The snooze policies of the serving rule set (computed once per version)."""
        if current.version not in self._policies_of:
            self._policies_of.clear()
            self._families_of.clear()
            self._policies_of[current.version] = snooze_policies(current.ruleset)
        return self._policies_of[current.version]

    def query_for(self, current: Pipeline, service_id: str, payload: dict[str, Any]) -> SnoozeQuery | None:
        """The lookup this call needs before its cards are sent; None when nothing can be snoozed."""
        if not self.settings.snooze_enabled:
            return None
        policies = self.policies(current)
        key = (current.version, service_id)
        families = self._families_of.get(key)
        if families is None:
            families = frozenset(f for f in policies if service_id in current.ruleset.cards[f].services)
            self._families_of[key] = families
        if not families:
            return None
        context = payload.get("context")
        patient_hash = self.store.patient_hash(context.get("patientId")) if isinstance(context, dict) else None
        return None if patient_hash is None else SnoozeQuery(patient_hash, families)

    def needed(self, current: Pipeline, evaluation: Evaluation, query: SnoozeQuery | None) -> bool:
        """Whether the lookup's answer matters: a card of a family that can be snoozed was raised."""
        if query is None or not evaluation.response.cards:
            return False
        return bool({card_state(c)[0] for c in evaluation.response.cards} & self.policies(current).keys())

    def look_up(self, query: SnoozeQuery, now: datetime) -> dict[str, Any] | None:
        """The one indexed lookup (synchronous); None when the store failed (the caller shows the cards)."""
        try:
            found: dict[str, Any] = active_snoozes(self.store, query.patient_hash, query.families, now)
            return found
        except (SQLAlchemyError, StoreUnavailable, OSError) as exc:
            log.warning("snooze lookup failed (%s); cards shown", type(exc).__name__)
            return None

    def timed_out(self) -> None:
        """The lookup took longer than its timeout: the cards are shown, and that is counted."""
        metrics.SNOOZE_LOOKUPS.labels("timeout").inc()
        log.warning("snooze lookup timed out; cards shown")

    def hide(self, current: Pipeline, evaluation: Evaluation, snoozes: dict[str, Any] | None) -> list[Any]:
        """Hide the cards the snoozes found cover (None: the lookup failed, every card is shown); what was
        hidden, for the response's extension. Counts the lookup's result and what it did to cards."""
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
