"""One evaluation: facts -> matches (either backend) -> evidence, intents, differential, raised cards.

``LoadedEngine`` binds a checked ``RuleSet`` to a backend. Everything after
matching is shared Python, so the two backends can differ only in matching,
which the equivalence tests compare.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from cds.engine import ir
from cds.engine.differential import Differential, EvidenceItem
from cds.engine.loader import RuleSet
from cds.engine.prepare import PreparedFact, derived_fact, prepare_facts
from cds.engine.reference import ReferenceExecutor
from cds.engine.weighing import weigh
from cds.facts import FactSet

log = logging.getLogger("cds.engine")

EngineChoice = Literal["auto", "durable", "reference"]


@dataclass(frozen=True, slots=True)
class Firing:
    rule_id: str
    rule_version: int
    matches: tuple[tuple[str, ...], ...]  # source fact ids per pattern, sorted


@dataclass(frozen=True, slots=True)
class CardIntent:
    rule_id: str
    template: str


@dataclass(frozen=True, slots=True)
class RaisedCard:
    template: str
    rule_ids: tuple[str, ...]
    first_match: tuple[str, ...] = ()  # source fact ids of the first raising rule's first match
    raising_rule: str | None = None


@dataclass(frozen=True)
class Outcome:
    service: str
    facts: tuple[PreparedFact, ...]
    fact_warnings: tuple[str, ...]
    fired: tuple[Firing, ...]
    derived: tuple[PreparedFact, ...]
    evidence: tuple[EvidenceItem, ...]
    intents: tuple[CardIntent, ...]
    differential: Differential
    cards: tuple[RaisedCard, ...]
    facts_by_source: dict[str, PreparedFact] = field(default_factory=dict)
    # Seconds spent per stage ("engine": preparing and matching facts; "differential": weighing).
    timings: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def rules_fired(self) -> tuple[str, ...]:
        return tuple(f.rule_id for f in self.fired)

    def comparable(self) -> tuple[Any, ...]:
        """What both backends must agree on."""
        return (
            tuple((f.rule_id, f.matches) for f in self.fired),
            self.evidence,
            self.intents,
            tuple((c.template, c.rule_ids) for c in self.cards),
            self.differential.as_extension(),
        )

    def trace(self, ruleset: RuleSet, backend: str) -> dict[str, Any]:
        return {
            "ruleset": ruleset.version,
            "engine": backend,
            "service": self.service,
            "facts": [{"id": f.source_id, "kind": f.kind, **dict(f.attrs)} for f in self.facts],
            "fact_warnings": list(self.fact_warnings),
            "rules_fired": [
                {"rule": f.rule_id, "version": f.rule_version, "matched": [list(m) for m in f.matches]}
                for f in self.fired
            ],
            "derived": [f.source_id for f in self.derived],
            "evidence": [
                {
                    "rule": e.rule_id,
                    "hypothesis": e.hypothesis,
                    "likelihood_ratio": e.likelihood_ratio,
                    "reference": e.reference,
                    "confidence": e.confidence,
                }
                for e in self.evidence
            ],
            "population": self.differential.population,
            "differential": self.differential.as_list(),
            "differential_model": self.differential.as_extension(),
            "cards": [{"template": c.template, "rules": list(c.rule_ids)} for c in self.cards],
        }


def evidence_of(rule: ir.CompiledRule) -> list[EvidenceItem]:
    """The evidence a firing rule contributes to the differential, one item per evidence entry."""
    return [
        EvidenceItem(
            rule.id,
            rule.title,
            e.hypothesis,
            e.likelihood_ratio,
            e.reference,
            e.confidence,
            e.test,
            e.note,
            e.low,
            e.high,
        )
        for e in rule.evidence
    ]


def make_executor(compiled: ir.CompiledRules, choice: EngineChoice) -> tuple[Any, str]:
    """The executor for ``choice``, and a description of the backend actually used."""
    if choice == "reference":
        return ReferenceExecutor(compiled), "reference"
    from cds.engine import durable_backend

    if not durable_backend.AVAILABLE:
        if choice == "durable":
            raise durable_backend.DurableError("CDS_ENGINE=durable but durable_rules_engine cannot be imported")
        log.warning("durable-rules is not importable; serving with the reference interpreter")
        return ReferenceExecutor(compiled), "reference (durable-rules unavailable)"
    return durable_backend.DurableExecutor(compiled), "durable"


class LoadedEngine:
    def __init__(self, ruleset: RuleSet, choice: EngineChoice = "auto") -> None:
        self.ruleset = ruleset
        self.executor, self.backend = make_executor(ruleset.compiled, choice)

    def close(self) -> None:
        self.executor.close()

    def evaluate(self, factset: FactSet, service: str) -> Outcome:
        started = time.perf_counter()
        rs = self.ruleset
        compiled = rs.compiled
        facts, warnings = prepare_facts(factset, compiled)
        warnings = [*(f"{w.resource_type}/{w.resource_id}: {w.message}" for w in factset.warnings), *warnings]
        matches = self.executor.match(facts)
        by_engine_id = {f.engine_id: f for f in facts}
        derived: list[PreparedFact] = []
        for index in sorted(matches):
            rule = compiled.rules[index]
            if rule.derive is not None:
                fact = derived_fact(rule)
                derived.append(fact)
                by_engine_id[fact.engine_id] = fact
        fired: list[Firing] = []
        evidence: list[EvidenceItem] = []
        intents: list[CardIntent] = []
        for index in sorted(matches):
            rule = compiled.rules[index]
            source_matches = tuple(sorted(tuple(by_engine_id[i].source_id for i in m) for m in matches[index]))
            fired.append(Firing(rule.id, rule.version, source_matches))
            # A rule's evidence counts once however many fact combinations matched it.
            evidence.extend(evidence_of(rule))
            intents.extend(CardIntent(rule.id, template) for template in rule.cards)
        derived_names = {f.attrs["name"] for f in derived}
        matched = time.perf_counter()
        differential = weigh(rs.hypotheses, rs.populations, derived_names, evidence, rs.evidence_groups)  # type: ignore[arg-type]
        weighed = time.perf_counter()
        cards = raise_cards(rs, service, intents, differential, evidence, {f.rule_id: f.matches for f in fired})
        return Outcome(
            service=service,
            facts=tuple(facts),
            fact_warnings=tuple(warnings),
            fired=tuple(fired),
            derived=tuple(derived),
            evidence=tuple(evidence),
            intents=tuple(intents),
            differential=differential,
            cards=tuple(cards),
            facts_by_source={f.source_id: f for f in by_engine_id.values()},
            timings={"engine": matched - started, "differential": weighed - matched},
        )


def raise_cards(
    rs: RuleSet,
    service: str,
    intents: list[CardIntent],
    differential: Differential,
    evidence: list[EvidenceItem],
    fired_matches: dict[str, tuple[tuple[str, ...], ...]],
) -> list[RaisedCard]:
    """Templates for this service whose intent (if required) and differential condition hold; once each.

    Safety gate: while a time-critical cause or coexisting condition passes its threshold, cards marked
    `elective` are withheld and cards marked `time_critical` are raised, whatever the ranking.
    """
    raised = []
    urgent = differential.time_critical
    for template in rs.cards.values():
        if service not in template.services:
            continue
        if template.when.elective and urgent:
            continue
        raisers = tuple(dict.fromkeys(i.rule_id for i in intents if i.template == template.id))
        if template.when.intent and not raisers:
            continue
        if template.when.time_critical and not urgent:
            continue
        rule_ids = raisers
        if template.when.time_critical:
            urgent_ids = {h.id for h in urgent}
            rule_ids = tuple(dict.fromkeys((*raisers, *(e.rule_id for e in evidence if e.hypothesis in urgent_ids))))
        condition = template.when.differential
        if condition is not None:
            result = differential.get(condition.hypothesis)
            if result is None:
                continue
            if condition.at_least is not None and result.posterior < condition.at_least:
                continue
            if condition.below is not None and result.posterior >= condition.below:
                continue
            weighing_rules = tuple(e.rule_id for e in evidence if e.hypothesis == condition.hypothesis)
            rule_ids = tuple(dict.fromkeys((*raisers, *weighing_rules)))
        first_match = fired_matches[raisers[0]][0] if raisers else ()
        raised.append(RaisedCard(template.id, rule_ids, first_match, raisers[0] if raisers else None))
    return raised
