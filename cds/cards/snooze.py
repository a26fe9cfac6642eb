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

from cds.cards.render import DETAIL_BUDGET, collapse_weakest_finding
from cds.cards.wording import band_rank, short_name
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


def change_phrasings(
    snooze: SnoozeLike, band: str | None, findings: Sequence[str], titles: Mapping[str, str]
) -> list[str]:
    """What changed since the override, most specific first (the names of up to three new findings, then
    their number), or [] when nothing material did. The card budget picks the first that fits."""
    new = [f for f in findings if f not in set(snooze.findings)]
    rose = band is not None and snooze.band is not None and band_rank(band) > band_rank(snooze.band)
    if not new and not rose:
        return []
    band_words = [f"the estimate rose from {snooze.band} to {band}"] if rose else []
    if not new:
        return band_words
    plural = "s" if len(new) > 1 else ""
    names = ", ".join(short_name(titles.get(f, f)) for f in new[:3])
    more = f" and {len(new) - 3} more" if len(new) > 3 else ""
    named = "; ".join([f"new finding{plural}: {names}{more}", *band_words])
    return [named, "; ".join([f"{len(new)} new finding{plural}", *band_words])]


def shown_again(detail: str, dismissed: str, phrasings: Sequence[str], budget: int = DETAIL_BUDGET) -> str:
    """The detail of a card that comes back, opening with what changed, within the card budget: the most
    specific wording (the new findings by name) that fits once the weakest findings of the card's own lists
    have moved to its page (they are there in full). Advice and the closing are never cut: a card whose advice
    alone fills the budget comes back over it by the shortest note (what changed matters more than the last
    characters)."""
    notes = [f"**Shown again** (dismissed on {dismissed}): {change}." for change in phrasings]
    notes.append(f"**Shown again:** {phrasings[-1]}.")  # the shortest: without the date
    for note in notes:
        fitted: str | None = detail
        while fitted is not None and len(note) + 2 + len(fitted) > budget:
            fitted = collapse_weakest_finding(fitted)
        if fitted is not None:
            return f"{note}\n\n{fitted}"
    while (collapsed := collapse_weakest_finding(detail)) is not None:
        detail = collapsed
    return f"{notes[-1]}\n\n{detail}"


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
        phrasings = change_phrasings(snooze, band, findings, titles)
        if not phrasings:
            hidden.append({"template": family, "reason": snooze.reason_code, "until": snooze.until.isoformat()})
            continue
        card.detail = shown_again(card.detail or "", snooze.snoozed_at.date().isoformat(), phrasings).rstrip()
        kept.append(card)
    return kept, hidden
