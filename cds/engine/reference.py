"""The reference interpreter: the semantics of compiled rules, in plain Python.

A rule fires once for every combination of facts (one per pattern) that
passes all of its tests; joins compare with patterns earlier in the list.
Rules run in dependency order (producers of derived facts first), so one pass
reaches the fixed point. The durable-rules backend must give the same matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cds.engine import ir
from cds.engine.prepare import PreparedFact, derived_fact, passes

Matches = dict[int, set[tuple[str, ...]]]  # rule index -> tuples of engine fact ids


class ReferenceExecutor:
    name = "reference"

    def __init__(self, compiled: ir.CompiledRules) -> None:
        self.compiled = compiled

    def close(self) -> None:
        """Nothing to release: the interpreter holds no engine state between evaluations."""

    def match(self, facts: Sequence[PreparedFact]) -> Matches:
        by_kind: dict[str, list[PreparedFact]] = {}
        for fact in facts:
            by_kind.setdefault(fact.kind, []).append(fact)
        matches: Matches = {}
        for rule in self.compiled.rules:
            found = match_rule(rule, by_kind)
            if found:
                matches[rule.index] = found
                if rule.derive is not None:
                    by_kind.setdefault("derived", []).append(derived_fact(rule))
        return matches


def match_rule(rule: ir.CompiledRule, by_kind: Mapping[str, list[PreparedFact]]) -> set[tuple[str, ...]]:
    # Alpha filter first, then extend partial matches pattern by pattern (joins look back only).
    candidates = []
    for pattern in rule.patterns:
        alpha = [t for t in pattern.tests if t.op != "join"]
        passing = [f for f in by_kind.get(pattern.kind, ()) if all(passes(t, f.attrs) for t in alpha)]
        if not passing:
            return set()
        candidates.append(passing)
    partial: list[tuple[PreparedFact, ...]] = [()]
    for pattern, passing in zip(rule.patterns, candidates, strict=True):
        joins = [t for t in pattern.tests if t.op == "join"]
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
