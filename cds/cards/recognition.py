"""How a card's evidence was recognised, in a few words on its evidence line (ADR 0005).

A finding that rests on a concept the text layer recognised (no code said it) says so on the card:
"(strong; from the text 'indurated plaque')". A finding that a code alone can carry says nothing
more: a code always outranks text. A biopsy result read from a pathology report's text says which
words decided it. The words shown are the lexicon's term that matched, never more of the patient's
text than that.
"""

from __future__ import annotations

from collections.abc import Iterable

from cds.engine.prepare import PreparedFact
from cds.engine.runner import Outcome, RaisedCard

NOTE_TEXT_LIMIT = 32  # characters of the matched term shown on a card (the card budget of issue 15)


def _quoted(text: object) -> str:
    words = " ".join(str(text).split())
    if len(words) > NOTE_TEXT_LIMIT:
        words = words[: NOTE_TEXT_LIMIT - 1].rsplit(" ", 1)[0] + "…"
    return f"'{words}'"


def fact_note(fact: PreparedFact) -> str | None:
    """What a clinician should know about how this fact was recognised; None for a coded concept."""
    if fact.get("recognised_by") == "text" and fact.get("recognised_text"):
        return f"from the text {_quoted(fact.get('recognised_text'))}"
    if fact.get("outcome_text") and str(fact.get("outcome_source") or "").startswith("DiagnosticReport/"):
        return f"from the report {_quoted(fact.get('outcome_text'))}"
    return None


def has_note(fact: PreparedFact) -> bool:
    return fact_note(fact) is not None


def match_note(outcome: Outcome, sources: Iterable[str]) -> str | None:
    """The first note of the facts of one match, in match order."""
    for source in sources:
        fact = outcome.facts_by_source.get(source)
        note = fact_note(fact) if fact is not None else None
        if note is not None:
            return note
    return None


def rule_note(outcome: Outcome, rule_id: str) -> str | None:
    """The note of a finding: only when every way the rule matched rests on text (a code outranks text)."""
    notes = []
    for firing in outcome.fired:
        if firing.rule_id != rule_id:
            continue
        for match in firing.matches:
            note = match_note(outcome, match)
            if note is None:
                return None
            notes.append(note)
    return notes[0] if notes else None


def order_note(outcome: Outcome, raised: RaisedCard) -> str | None:
    """The note of the draft order (or other fact) that raised the card, when text recognised it."""
    facts = (outcome.facts_by_source.get(s) for s in raised.first_match)
    for fact in facts:
        if fact is not None and fact.kind == "draft-order":
            note = fact_note(fact)
            return f"Order recognised {note}." if note else None
    return None
