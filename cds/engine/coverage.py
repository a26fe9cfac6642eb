"""``cds rules coverage``: what the rule tests exercise.

Per active rule: whether a passing test made it fire (it expects the rule in ``fired``) and
whether a passing test made it stay silent (``not_fired``): a rule only ever tested where it
fires can fire everywhere without a test noticing. Per value set and card template: whether a
rule uses it (static) and whether any test input matched or raised it (dynamic). A threshold
(``--min-fire``, ``--min-silent``) makes it a CI gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cds.engine.loader import RuleSet
from cds.engine.ruletests import TestResult


@dataclass
class Coverage:
    rules: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # rule -> fired_by / silent_by test ids
    valuesets: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> used_by_rules, matched_in
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> raised_in

    def percent(self, what: str) -> float:
        if not self.rules:
            return 100.0
        covered = sum(bool(entry[what]) for entry in self.rules.values())
        return 100.0 * covered / len(self.rules)

    def uncovered(self, what: str) -> list[str]:
        return sorted(rule for rule, entry in self.rules.items() if not entry[what])

    def as_json(self) -> dict[str, Any]:
        return {
            "fire_percent": round(self.percent("fired_by"), 1),
            "silent_percent": round(self.percent("silent_by"), 1),
            "rules": self.rules,
            "valuesets": self.valuesets,
            "cards": self.cards,
        }


def measure(ruleset: RuleSet, results: list[TestResult]) -> Coverage:
    coverage = Coverage()
    expectations = {t.id: t.expect for t in ruleset.tests}
    for rule in ruleset.active_rules:
        coverage.rules[rule.id] = {"fired_by": [], "silent_by": []}
    for result in results:
        if not result.passed or result.skipped or result.gap or result.outcome is None:
            continue
        expect = expectations[result.id]
        fired = set(result.outcome.rules_fired)
        for rule_id in expect.fired:
            if rule_id in coverage.rules and rule_id in fired:
                coverage.rules[rule_id]["fired_by"].append(result.id)
        for rule_id in expect.not_fired:
            if rule_id in coverage.rules and rule_id not in fired:
                coverage.rules[rule_id]["silent_by"].append(result.id)

    _measure_valuesets(ruleset, results, coverage)
    for card in sorted(ruleset.cards):
        raised = [r.id for r in results if r.outcome is not None and any(c.template == card for c in r.outcome.cards)]
        coverage.cards[card] = {"raised_in": raised}
    return coverage


def _measure_valuesets(ruleset: RuleSet, results: list[TestResult], coverage: Coverage) -> None:
    """Per value set: the rules naming it and the rule tests whose facts matched it."""
    membership_attr = {m.attr: m.valueset for m in ruleset.compiled.memberships}
    used_by_rules = _valuesets_by_rule(ruleset)
    for vs in sorted(ruleset.valuesets):
        coverage.valuesets[vs] = {"used_by_rules": sorted(used_by_rules.get(vs, ())), "matched_in": []}
    for result in results:
        if result.outcome is None:
            continue
        seen: set[str] = set()
        for fact in result.outcome.facts:
            for name, value in fact.attrs.items():
                if name in membership_attr and value is True:
                    seen.add(membership_attr[name])
                elif name in ("concept", "drug_class") and isinstance(value, str):
                    seen.add(value)
        for vs in seen & set(coverage.valuesets):
            coverage.valuesets[vs]["matched_in"].append(result.id)


def _valuesets_by_rule(ruleset: RuleSet) -> dict[str, set[str]]:
    """value set id -> rules naming it (in `concept:`/`drug_class:`/`code: {in:}` tests)."""
    found: dict[str, set[str]] = {}
    names = set(ruleset.valuesets)
    for rule in ruleset.compiled.rules:
        for pattern in rule.patterns:
            for test in pattern.tests:
                for value in (test.value, *test.values):
                    if isinstance(value, str) and value in names:
                        found.setdefault(value, set()).add(rule.id)
        for membership_rule in ruleset.compiled.memberships:
            if any(t.attr == membership_rule.attr for p in rule.patterns for t in p.tests):
                found.setdefault(membership_rule.valueset, set()).add(rule.id)
    for absence in ruleset.compiled.absences:
        for test in absence.tests:
            for value in (test.value, *test.values):
                if isinstance(value, str) and value in names:
                    found.setdefault(value, set()).add(f"(absence {absence.key})")
    return found


def markdown(coverage: Coverage) -> str:
    lines = [
        "## Rule-test coverage",
        "",
        _headline("makes them fire", coverage, "fired_by"),
        _headline("keeps them silent", coverage, "silent_by"),
        "",
        "| rule | fires in | silent in |",
        "|---|---|---|",
    ]
    for rule, entry in sorted(coverage.rules.items()):
        lines.append(f"| `{rule}` | {_count(entry['fired_by'])} | {_count(entry['silent_by'])} |")
    lines += ["", "| value set | rules using it | test inputs matching it |", "|---|---|---|"]
    for vs, entry in coverage.valuesets.items():
        lines.append(f"| `{vs}` | {len(entry['used_by_rules']) or '**none**'} | {_count(entry['matched_in'])} |")
    lines += ["", "| card template | raised in |", "|---|---|"]
    for card, entry in coverage.cards.items():
        lines.append(f"| `{card}` | {_count(entry['raised_in'])} |")
    return "\n".join(lines) + "\n"


def _headline(what: str, coverage: Coverage, key: str) -> str:
    covered = len(coverage.rules) - len(coverage.uncovered(key))
    return f"- active rules with a test that {what}: **{coverage.percent(key):.0f}%** ({covered}/{len(coverage.rules)})"


def _count(ids: list[str]) -> str:
    return f"{len(ids)} test(s)" if ids else "**none**"
