"""Which cards a snooze hides, and what a card that comes back says (issue 15).

A card family is snoozed for a patient after an "already addressed" or "not relevant" override
(``rules/cards.yaml``: ``snooze_days`` on the card, ``meaning`` on its override reasons). While the
snooze lasts the card is hidden, unless the evidence changed materially since the override: a
finding that was not behind the overridden card, or a higher band. Then the card is shown and its
detail starts with what changed. Plain data in, plain data out; the store and the clock are the
caller's (cds.app).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from cds.cards.wording import band_rank
from cds.hooks.models import Card

if TYPE_CHECKING:
    from cds.engine.loader import RuleSet

SNOOZING_MEANINGS = ("already-addressed", "not-relevant")


class SnoozeLike(Protocol):
    card_family: str
    reason_code: str
    band: str | None
    findings: tuple[str, ...]
    snoozed_at: Any
    until: Any


def snooze_policies(ruleset: RuleSet) -> dict[str, tuple[int, frozenset[tuple[str, str]]]]:
    """card family -> (days, the (system, code) override reasons that snooze it), from rules/cards.yaml."""
    policies = {}
    for card in ruleset.cards.values():
        reasons = frozenset((o.system, o.code) for o in card.override_reasons if o.meaning in SNOOZING_MEANINGS)
        if card.snooze_days is not None and reasons:
            policies[card.id] = (card.snooze_days, reasons)
    return policies


def card_state(card: Card) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(family, band, findings) from the rule-set extension the renderer puts on every card."""
    for value in (card.extension or {}).values():
        if isinstance(value, dict) and isinstance(value.get("template"), str):
            return value["template"], value.get("band"), tuple(value.get("findings") or ())
    return None, None, ()


def material_change(
    snooze: SnoozeLike, band: str | None, findings: Sequence[str], titles: Mapping[str, str]
) -> str | None:
    """What changed since the override, in words; None when nothing material did."""
    changes = []
    new = [f for f in findings if f not in set(snooze.findings)]
    if new:
        names = ", ".join(titles.get(f, f) for f in new[:3])
        changes.append(f"new finding{'s' if len(new) > 1 else ''}: {names}")
    if band is not None and snooze.band is not None and band_rank(band) > band_rank(snooze.band):
        changes.append(f"the estimate rose from {snooze.band} to {band}")
    return "; ".join(changes) if changes else None


def apply_snoozes(
    cards: Sequence[Card], snoozes: Mapping[str, SnoozeLike], titles: Mapping[str, str]
) -> tuple[list[Card], list[dict[str, str]]]:
    """(cards to send, what was hidden) given the snoozes in force for this patient."""
    kept, hidden = [], []
    for card in cards:
        family, band, findings = card_state(card)
        snooze = snoozes.get(family) if family else None
        if snooze is None:
            kept.append(card)
            continue
        change = material_change(snooze, band, findings, titles)
        if change is None:
            hidden.append({"template": family, "reason": snooze.reason_code, "until": snooze.until.isoformat()})
            continue
        dismissed = snooze.snoozed_at.date().isoformat()
        card.detail = f"**Shown again** (dismissed on {dismissed}): {change}.\n\n{card.detail or ''}".rstrip()
        kept.append(card)
    return kept, hidden
