"""Why a rule did or did not fire, and why a card was or was not raised, for one evaluation.

The trace says what fired. An author weighing an edit needs the other half: for a silent rule,
the first pattern no fact passed and, for each fact of that kind, the first test it failed with
the value it had; for a card, whether its service, its rule intent and its differential
threshold held (posterior against the threshold). Everything is recomputed in plain Python from
the ``Outcome`` (the prepared facts) and the compiled rules, so it explains both backends alike.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cds.engine import ir
from cds.engine.loader import RuleSet
from cds.engine.prepare import PreparedFact, passes
from cds.engine.runner import Outcome

OP_TEXT = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
SHOWN_FACTS = 8  # near misses listed per pattern


@dataclass
class RuleWhy:
    rule: str
    fired: bool
    summary: str
    # per pattern: {"pattern": text, "passing": [fact ids], "near_misses": [{fact, failed, seen}]}
    patterns: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "fired": self.fired, "summary": self.summary, "patterns": self.patterns}


@dataclass
class CardWhy:
    card: str
    raised: bool
    summary: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"card": self.card, "raised": self.raised, "summary": self.summary, "checks": self.checks}


def describe_test(test: ir.Test, ruleset: RuleSet, aliases: Mapping[int, str] | None = None) -> str:
    if test.op in OP_TEXT:
        return f"{test.attr} {OP_TEXT[test.op]} {test.value!r}"
    if test.op == "any_of":
        return f"{test.attr} in {list(test.values)!r}"
    if test.op == "member":
        valueset = next((m.valueset for m in ruleset.compiled.memberships if m.attr == test.attr), test.attr)
        return f"code in value set {valueset!r}"
    if test.op == "join":
        other = (aliases or {}).get(test.join_pattern, f"pattern {test.join_pattern + 1}")
        return f"{test.attr} same as {other}.{test.join_attr}"
    return f"{test.attr} {test.op}"


def describe_pattern(pattern: ir.Pattern, ruleset: RuleSet) -> str:
    if pattern.kind == ir.ABSENCE_KIND:
        key = next((t.value for t in pattern.tests if t.attr == "key"), None)
        absence = next((a for a in ruleset.compiled.absences if a.key == key), None)
        if absence is None:
            return "absent: (unknown)"
        tests = ", ".join(describe_test(t, ruleset) for t in absence.tests)
        return f"absent {absence.kind} with {tests}"
    tests = ", ".join(describe_test(t, ruleset) for t in pattern.tests) or "any"
    alias = f" as {pattern.alias}" if pattern.alias else ""
    return f"{pattern.kind}{alias}: {tests}"


def why_rule(ruleset: RuleSet, outcome: Outcome, rule_id: str) -> RuleWhy:
    """Whether ``rule_id`` fired in ``outcome`` and, pattern by pattern, which facts passed or nearly did."""
    source = ruleset.rules.get(rule_id)
    if source is None:
        close = difflib.get_close_matches(rule_id, [*ruleset.rules, *ruleset.cards], n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return RuleWhy(rule_id, False, f"no rule or card template {rule_id!r} in this rule set{hint}")
    if source.status != "active":
        return RuleWhy(rule_id, False, f"the rule is {source.status}: only active rules run")
    compiled = next(r for r in ruleset.compiled.rules if r.id == rule_id)
    fired = rule_id in outcome.rules_fired
    by_kind: dict[str, list[PreparedFact]] = {}
    for fact in (*outcome.facts, *outcome.derived):
        by_kind.setdefault(fact.kind, []).append(fact)
    result = RuleWhy(rule_id, fired, "")
    first_failure: str | None = None
    for index, pattern in enumerate(compiled.patterns):
        text = describe_pattern(pattern, ruleset)
        alpha = [t for t in pattern.tests if t.op != "join"]
        candidates = by_kind.get(pattern.kind, [])
        passing = [f for f in candidates if all(passes(t, f.attrs) for t in alpha)]
        entry: dict[str, Any] = {"pattern": text, "passing": [f.source_id for f in passing]}
        if not passing:
            if pattern.kind == ir.ABSENCE_KIND:
                entry["near_misses"] = _absence_blockers(ruleset, pattern, by_kind)
                reason = f"pattern {index + 1} ({text}) failed: such a fact exists"
            else:
                entry["near_misses"] = [_first_failed(ruleset, f, alpha) for f in candidates[:SHOWN_FACTS]]
                if not candidates:
                    reason = f"pattern {index + 1} ({text}) failed: no {pattern.kind} fact at all"
                else:
                    reason = (
                        f"pattern {index + 1} ({text}) failed: none of {len(candidates)} {pattern.kind} fact(s) passed"
                    )
            first_failure = first_failure or reason
        result.patterns.append(entry)
    if fired:
        matches = next(f.matches for f in outcome.fired if f.rule_id == rule_id)
        result.summary = f"fired on {len(matches)} match(es): " + "; ".join(", ".join(m) for m in matches[:3])
    elif first_failure:
        result.summary = f"did not fire: first failing {first_failure}"
    else:
        result.summary = "did not fire: every pattern has passing facts, but no combination satisfies the joins"
    return result


def _first_failed(ruleset: RuleSet, fact: PreparedFact, tests: list[ir.Test]) -> dict[str, Any]:
    for test in tests:
        if not passes(test, fact.attrs):
            seen = fact.attrs.get(test.attr, "(missing)") if test.op != "member" else _code_of(fact)
            return {"fact": fact.source_id, "failed": describe_test(test, ruleset), "seen": seen}
    return {"fact": fact.source_id, "failed": None, "seen": None}


def _code_of(fact: PreparedFact) -> str:
    return f"{fact.attrs.get('system', '?')}|{fact.attrs.get('code', '?')}"


def _absence_blockers(
    ruleset: RuleSet, pattern: ir.Pattern, by_kind: Mapping[str, list[PreparedFact]]
) -> list[dict[str, Any]]:
    key = next((t.value for t in pattern.tests if t.attr == "key"), None)
    absence = next((a for a in ruleset.compiled.absences if a.key == key), None)
    if absence is None:
        return []
    blockers = [f for f in by_kind.get(absence.kind, []) if all(passes(t, f.attrs) for t in absence.tests)]
    tested = {t.attr for t in absence.tests}
    return [
        {
            "fact": f.source_id,
            "failed": "exists, so the absence does not hold",
            "seen": {k: v for k, v in f.attrs.items() if k in tested},
        }
        for f in blockers[:SHOWN_FACTS]
    ]


def why_card(ruleset: RuleSet, outcome: Outcome, card_id: str) -> CardWhy:
    """Each condition of card template ``card_id`` against ``outcome``, in the order ``raise_cards`` checks them."""
    template = ruleset.cards.get(card_id)
    if template is None:
        return CardWhy(card_id, False, f"no card template {card_id!r} in this rule set")
    raised = any(c.template == card_id for c in outcome.cards)
    checks: list[dict[str, Any]] = []
    failed: str | None = None
    ok = outcome.service in template.services
    checks.append({"check": "service", "ok": ok, "detail": f"{outcome.service} in {template.services}"})
    if not ok:
        failed = f"service {outcome.service!r} does not show it (services: {', '.join(template.services)})"
    raisers = sorted({i.rule_id for i in outcome.intents if i.template == card_id})
    if template.when.intent:
        naming = sorted(r.id for r in ruleset.rules.values() if card_id in r.then.cards and r.status == "active")
        ok = bool(raisers)
        checks.append(
            {
                "check": "intent",
                "ok": ok,
                "detail": f"raised by {raisers or 'no rule'}; rules that can raise it: {naming}",
            }
        )
        if not ok and failed is None:
            failed = f"no rule raising it fired (any of: {', '.join(naming) or 'none'}; `--why RULE` says why)"
    condition = template.when.differential
    if condition is not None:
        result = outcome.differential.get(condition.hypothesis)
        posterior = result.posterior if result is not None else None
        band = getattr(result, "band", None)
        detail: dict[str, Any] = {"hypothesis": condition.hypothesis, "posterior": posterior, "band": band}
        ok = posterior is not None
        if condition.at_least is not None:
            detail["at_least"] = condition.at_least
            ok = ok and posterior >= condition.at_least  # type: ignore[operator]
        if condition.below is not None:
            detail["below"] = condition.below
            ok = ok and posterior < condition.below  # type: ignore[operator]
        relation = _threshold_text(posterior, condition.at_least, condition.below)
        checks.append({"check": "differential", "ok": ok, "detail": detail, "text": relation})
        if not ok and failed is None:
            failed = f"{condition.hypothesis}: {relation}"
    if raised:
        summary = "raised: " + "; ".join(c.get("text") or str(c["detail"]) for c in checks)
    else:
        summary = f"not raised: {failed or 'a later condition failed'}"
    return CardWhy(card_id, raised, summary, checks)


def _threshold_text(posterior: float | None, at_least: float | None, below: float | None) -> str:
    if posterior is None:
        return "the hypothesis is not in the differential"
    parts = []
    if at_least is not None:
        parts.append(f"posterior {posterior:.4f} {'>=' if posterior >= at_least else '<'} threshold {at_least}")
    if below is not None:
        parts.append(f"posterior {posterior:.4f} {'<' if posterior < below else '>='} ceiling {below}")
    return ", ".join(parts) or f"posterior {posterior:.4f} (no threshold)"


def why(ruleset: RuleSet, outcome: Outcome, ident: str) -> RuleWhy | CardWhy:
    """A rule id or a card template id."""
    if ident in ruleset.cards and ident not in ruleset.rules:
        return why_card(ruleset, outcome, ident)
    return why_rule(ruleset, outcome, ident)


def render(item: RuleWhy | CardWhy) -> str:
    if isinstance(item, CardWhy):
        lines = [f"card {item.card}: {item.summary}"]
        for check in item.checks:
            mark = "ok  " if check["ok"] else "FAIL"
            lines.append(f"  {mark} {check['check']}: {check.get('text') or check['detail']}")
        return "\n".join(lines)
    lines = [f"rule {item.rule}: {item.summary}"]
    for number, pattern in enumerate(item.patterns, 1):
        passing = pattern["passing"]
        lines.append(
            f"  {number}. {pattern['pattern']}: "
            + (f"{len(passing)} fact(s) pass ({', '.join(passing[:4])})" if passing else "no fact passes")
        )
        for miss in pattern.get("near_misses", []):
            lines.append(f"       - {miss['fact']}: {miss['failed']} (seen: {miss['seen']!r})")
    return "\n".join(lines)
