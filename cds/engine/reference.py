"""The reference interpreter: the semantics of compiled rules, in plain Python.

A rule fires once for every combination of facts (one per pattern) that
passes all of its tests; joins compare with patterns earlier in the list.
Rules run in dependency order (producers of derived facts first), so one pass
reaches the fixed point. The durable-rules backend must give the same matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cds.engine import ir
from cds.engine.prepare import Predicate, PreparedFact, alpha_predicate, derived_fact, passes

Matches = dict[int, set[tuple[str, ...]]]  # rule index -> tuples of engine fact ids


class ReferenceExecutor:
    name = "reference"

    def __init__(self, compiled: ir.CompiledRules) -> None:
        self.compiled = compiled
        # Each pattern's alpha tests as one predicate, and its joins, once per rule set.
        self._plans = tuple(_rule_plan(rule) for rule in compiled.rules)

    def close(self) -> None:
        """Nothing to release: the interpreter holds no engine state between evaluations."""

    def match(self, facts: Sequence[PreparedFact]) -> Matches:
        by_kind: dict[str, list[PreparedFact]] = {}
        for fact in facts:
            by_kind.setdefault(fact.kind, []).append(fact)
        matches: Matches = {}
        for rule, plan in zip(self.compiled.rules, self._plans, strict=True):
            found = _match_planned(plan, by_kind)
            if found:
                matches[rule.index] = found
                if rule.derive is not None:
                    by_kind.setdefault("derived", []).append(derived_fact(rule))
        return matches


# Per pattern: (fact kind, alpha predicate, join tests).
_PatternPlan = tuple[str, Predicate, tuple[ir.Test, ...]]


def _rule_plan(rule: ir.CompiledRule) -> tuple[_PatternPlan, ...]:
    return tuple(
        (pattern.kind, alpha_predicate(pattern.tests), tuple(t for t in pattern.tests if t.op == "join"))
        for pattern in rule.patterns
    )


def match_rule(rule: ir.CompiledRule, by_kind: Mapping[str, list[PreparedFact]]) -> set[tuple[str, ...]]:
    """Every combination of facts (engine ids, one per pattern) that passes all of ``rule``'s tests."""
    return _match_planned(_rule_plan(rule), by_kind)


def _match_planned(plan: tuple[_PatternPlan, ...], by_kind: Mapping[str, list[PreparedFact]]) -> set[tuple[str, ...]]:
    # Alpha filter first, then extend partial matches pattern by pattern (joins look back only).
    candidates = []
    for kind, alpha, _ in plan:
        passing = [f for f in by_kind.get(kind, ()) if alpha(f.attrs)]
        if not passing:
            return set()
        candidates.append(passing)
    if len(plan) == 1 and not plan[0][2]:  # one pattern: nothing to join
        return {(f.engine_id,) for f in candidates[0]}
    partial: list[tuple[PreparedFact, ...]] = [()]
    for (_, _, joins), passing in zip(plan, candidates, strict=True):
        extended = []
        for bound in partial:
            bound_attrs = tuple(f.attrs for f in bound)
            for fact in passing:
                if all(passes(t, fact.attrs, bound_attrs) for t in joins):
                    extended.append((*bound, fact))
        partial = extended
        if not partial:
            return set()
    return {tuple(f.engine_id for f in combo) for combo in partial}
