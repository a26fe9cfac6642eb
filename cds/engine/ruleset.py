"""The loaded rule set: ``RuleSet`` (immutable, compiled), ``LoadResult`` and the value-set summary the checks use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cds.engine import ir
from cds.engine.diagnostics import Diagnostic, RulesetError
from cds.engine.differential import judgement_range, lr_interval_from_counts
from cds.engine.model import (
    CardTemplate,
    Evidence,
    EvidenceGroup,
    Hypothesis,
    Operators,
    Population,
    Reference,
    Rule,
    RulesetInfo,
    RuleTest,
)


@dataclass(frozen=True)
class ValueSetInfo:
    id: str
    fact_kind: str | None
    codes: frozenset[tuple[str, str]]
    prefixes: tuple[tuple[str, str], ...]
    # Why a value set exists although no rule uses it (read by another layer, kept on purpose):
    # `used_by:` in the value-set file turns lint warning W101 into note N202.
    used_by: str | None = None
    # where the value set is defined (file, line, column), for lint messages
    where: tuple[str, int, int] | None = None


@dataclass(frozen=True)
class RuleSet:
    """A loaded, checked and compiled rule set (immutable; hot reload swaps whole sets)."""

    rules_dir: Path
    info: RulesetInfo
    content_hash: str
    references: Mapping[str, Reference]
    populations: tuple[Population, ...]
    hypotheses: Mapping[str, Hypothesis]
    rules: Mapping[str, Rule]
    cards: Mapping[str, CardTemplate]
    tests: tuple[RuleTest, ...]
    compiled: ir.CompiledRules
    valuesets: Mapping[str, ValueSetInfo]
    services: frozenset[str]
    # rule id -> alias -> (pattern index, fact kind), for `{matched:alias.attr}` placeholders
    aliases: Mapping[str, Mapping[str, tuple[int, str]]]
    diagnostics: tuple[Diagnostic, ...] = ()
    # Evidence groups of the differential model (docs/adr/0004-differential-model.md), by id.
    evidence_groups: Mapping[str, EvidenceGroup] = field(default_factory=dict)
    # rule test id -> the file that declares it: `case:` paths resolve relative to it
    test_files: Mapping[str, Path] = field(default_factory=dict)
    # rule id -> the file that defines it (tests beside a rule file check that file's rules)
    rule_files: Mapping[str, Path] = field(default_factory=dict)
    # rule test id -> line of its `id:` in its file (test failures name file:line)
    test_lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return f"{self.info.version}+sha256.{self.content_hash}"

    @property
    def lesion_concepts(self) -> frozenset[str]:
        """Condition concepts that active rules deriving `skin-lesion` name (the lesion map of cards)."""
        return _lesion_concepts(self.rules.values())

    @property
    def active_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules.values() if r.status == "active")


@dataclass
class LoadResult:
    ruleset: RuleSet | None
    diagnostics: list[Diagnostic]
    # errors that follow from a root cause shown in `diagnostics` (see cds.engine.rootcause)
    consequences: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def raise_for_errors(self) -> RuleSet:
        if self.ruleset is None or self.errors:
            raise RulesetError(self.diagnostics)
        return self.ruleset


def evidence_interval(e: Evidence) -> tuple[float | None, float | None]:
    """The stated interval, or the one derived from the source's counts; (None, None): the judgement range."""
    if e.interval is not None:
        return float(e.interval[0]), float(e.interval[1])
    if e.counts is not None:
        c = e.counts
        _, low, high = lr_interval_from_counts(
            c.true_positive, c.false_negative, c.false_positive, c.true_negative, positive=e.likelihood_ratio >= 1
        )
        return low, high
    return None, None


def _lesion_concepts(rules: Iterable[Rule]) -> frozenset[str]:
    concepts: set[str] = set()
    for rule in rules:
        if rule.status != "active" or rule.then.derive is None or rule.then.derive.name != "skin-lesion":
            continue
        for pattern in rule.when:
            spec = (pattern.condition or {}).get("concept")
            if isinstance(spec, str):
                concepts.add(spec)
            elif isinstance(spec, Operators) and spec.in_ is not None:
                concepts.update([spec.in_] if isinstance(spec.in_, str) else spec.in_)
    return frozenset(concepts)


def _compiled_interval(e: Evidence) -> tuple[float, float]:
    """Every compiled ratio carries its interval, the judgement range included (computed once, at load)."""
    low, high = evidence_interval(e)
    if low is None or high is None:
        return judgement_range(float(e.likelihood_ratio))
    return low, high
