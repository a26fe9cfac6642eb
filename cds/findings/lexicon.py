"""Short clinical texts (CodeableConcept.text, coding.display) -> concepts, with medspaCy.

The text layer of concept recognition (docs/adr/0005-concept-recognition.md). It uses the
machinery of report text (cds.findings.text): medspaCy's tokenizer, a TargetMatcher built from
the synonym lexicon in rules/valuesets/lexicon.yaml, and ConText with the negation and
uncertainty vocabulary of rules/findings/context.yaml, so that "no ulcer", "rule out
calciphylaxis" or "possible calciphylaxis" never assert the concept.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cds.findings.knowledge import FindingsKnowledge, normalise_text
from cds.findings.nlp import _parse_lock, _quiet_matchers, blank_pipeline

# ConText categories that keep a text mention from asserting its concept.
NOT_ASSERTED = frozenset(
    {"NEGATED_EXISTENCE", "NORMAL", "HYPOTHETICAL", "POSSIBLE_EXISTENCE", "UNLIKELY", "OTHER_STUDY"}
)
MAX_CONCEPT_TEXT = 500  # a CodeableConcept text is a name, not a note


@dataclass(frozen=True, slots=True)
class TextMention:
    label: str  # the lexicon entry's label (a value-set id)
    phrase: str  # the lexicon term that matched (not the patient's text)
    asserted: bool  # False when negated, hypothetical or uncertain
    modifier: str = ""  # the ConText category that withheld it


class LexiconMatcher:
    """One medspaCy pipeline per lexicon, built on first use (thread-safe)."""

    def __init__(self, terms: Iterable[tuple[str, str]], knowledge: FindingsKnowledge) -> None:
        self.terms = tuple(sorted(set(terms)))
        self.knowledge = knowledge
        self._nlp: Any = None
        self._lock = threading.Lock()

    def pipeline(self) -> Any:
        if self._nlp is None:
            with self._lock:
                if self._nlp is None:
                    with _quiet_matchers():
                        self._nlp = self._build()
        return self._nlp

    def _build(self) -> Any:
        from medspacy.context import ConTextRule
        from medspacy.target_matcher import TargetRule

        nlp = blank_pipeline()  # vocabulary and tokenizer shared with the report-text pipeline
        nlp.add_pipe("sentencizer", config={"punct_chars": [".", "!", "?", ";"]})
        targets: Any = nlp.add_pipe("medspacy_target_matcher", name="lexicon_targets")
        targets.add([TargetRule(phrase, label) for phrase, label in self.terms])
        context: Any = nlp.add_pipe(
            "medspacy_context", config={"rules": None, "span_attrs": None, "prune_on_target_overlap": True}
        )
        rules = []
        for category, by_dir in self.knowledge.modifiers.items():
            if category not in NOT_ASSERTED and category != "TERMINATE":
                continue
            for direction, phrases in by_dir.items():
                rules += [ConTextRule(p, category, direction=direction) for p in phrases]
        context.add(rules)
        return nlp

    def mentions(self, text: str) -> tuple[TextMention, ...]:
        if not text or not text.strip():
            return ()
        nlp = self.pipeline()
        with _parse_lock(nlp), _quiet_matchers():
            doc = nlp(normalise_text(text[:MAX_CONCEPT_TEXT]))
        out = []
        for ent in doc.ents:
            withheld = [m.category for m in ent._.modifiers if m.category in NOT_ASSERTED]
            out.append(TextMention(ent.label_, ent.text.lower(), not withheld, withheld[0] if withheld else ""))
        return tuple(out)
