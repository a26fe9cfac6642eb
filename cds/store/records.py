"""What the store keeps and answers: audit records of issued cards, feedback results, and its errors."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from cds.cards.snooze import card_state
from cds.hooks.models import Card, Feedback


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

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: bytes) -> AuditRecord:
        raw = orjson.loads(line)
        raw["rule_ids"] = tuple(raw["rule_ids"])
        raw["suggestion_uuids"] = tuple(raw["suggestion_uuids"])
        raw["issued_at"] = datetime.fromisoformat(raw["issued_at"])
        return cls(**raw)


# Per-item feedback results (the response lists one per item, in order).
FeedbackStatus = Literal["accepted", "duplicate", "unknown-card", "unknown-suggestion", "over-limit"]
FEEDBACK_ACCEPTED: FeedbackStatus = "accepted"
FEEDBACK_DUPLICATE: FeedbackStatus = "duplicate"
FEEDBACK_UNKNOWN_CARD: FeedbackStatus = "unknown-card"
FEEDBACK_UNKNOWN_SUGGESTION: FeedbackStatus = "unknown-suggestion"
FEEDBACK_OVER_LIMIT: FeedbackStatus = "over-limit"


@dataclass
class FeedbackResult:
    statuses: list[FeedbackStatus] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per refused item, in order, naming its index

    @property
    def stored(self) -> int:
        return self.statuses.count(FEEDBACK_ACCEPTED)

    @property
    def duplicates(self) -> int:
        return self.statuses.count(FEEDBACK_DUPLICATE)


def _card_state_fields(card: Card) -> dict[str, Any]:
    family, band, findings = card_state(card)
    return {"card_family": family, "band": band, "findings": findings}


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
            **_card_state_fields(card),
        )
        for card in cards
    ]


def feedback_key(service_id: str, item: Feedback) -> str:
    """Identity of a feedback item: (service, card, outcome, instant).

    A retry of the same decision is a duplicate however its other fields were re-serialised;
    the instant is compared in UTC, so +02:00 and Z spellings agree.
    """
    canonical = {
        "service": service_id,
        "card": str(item.card),
        "outcome": item.outcome,
        "at": item.outcomeTimestamp.astimezone(UTC).isoformat(),
    }
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
