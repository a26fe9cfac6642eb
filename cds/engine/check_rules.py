"""Checks of rules and their patterns (fact kinds, attributes, joins, value-set membership, contradictions),
which also compile each pattern to the IR."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from cds.engine import ir, safety
from cds.engine.check_base import _CheckerBase
from cds.engine.files import _Item
from cds.engine.model import Evidence, Operators, Rule
from cds.engine.prepare import DECIMALS, MAX_ABS_NUMBER
from cds.facts import FACT_FIELDS

# Attributes that hold value-set ids (contracts.md): `in:` names value sets there.
VALUESET_ATTRS = {
    ("condition", "concept"),
    ("procedure", "concept"),
    ("finding", "concept"),
    ("draft-order", "concept"),
    ("medication", "drug_class"),
    ("draft-order", "drug_class"),
}


CODE_KINDS = {"condition", "medication", "procedure", "draft-order"}


def _has_numeric_threshold(rule: Rule) -> bool:
    """Whether any pattern (absences included) compares a number with <, <=, > or >=."""
    for pattern in rule.when:
        groups = [pattern.absent] if pattern.absent is not None else [pattern]
        for group in groups:
            for name in group.model_fields_set - {"as_"}:
                tests = getattr(group, name)
                if not isinstance(tests, dict):
                    continue
                for spec in tests.values():
                    if isinstance(spec, Operators) and any(
                        getattr(spec, op) is not None for op in ("lt", "le", "gt", "ge")
                    ):
                        return True
    return False


def _type_ok(attr_type: str, value: Any, op: str) -> bool:
    if attr_type == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if op not in ("eq", "ne"):
        return False  # ordering only on numbers: text ordering differs between backends
    if attr_type == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)


class _RuleChecks(_CheckerBase):
    # ------------------------------------------------------------------ rules
    def _check_rule(self, item: _Item) -> tuple[tuple[ir.Pattern, ...], dict[str, tuple[int, str]]]:
        self._check_rule_then(item)
        return self._compile_when(item)

    def _check_rule_then(self, item: _Item) -> None:
        """References, the numeric-threshold source, and what `then` does (evidence, cards)."""
        rule: Rule = item.value
        rid = rule.id
        for index, ref in enumerate(rule.references):
            if ref not in self.references:
                self.out.add(item.at("references", index), "E013", f"undefined reference {ref!r}", rid)
        # A threshold in `when` is a clinical number too: its source is the rule's `references` or, for a rule
        # that weighs evidence, the references its evidence cites.
        if not rule.references and not any(e.reference for e in rule.then.evidence) and _has_numeric_threshold(rule):
            self.out.add(
                item.at("when"), "E017", "a numeric threshold (<, <=, >, >=) needs `references` on the rule", rid
            )
        then = rule.then
        if then.derive is None and not then.evidence and not then.cards:
            self.out.add(item.at("then"), "E029", "`then` derives nothing, adds no evidence and raises no card", rid)
        for index, ev in enumerate(then.evidence):
            self._check_evidence(item, ("then", "evidence", index), ev)
        for index, card in enumerate(then.cards):
            if card not in self.cards:
                self.out.add(item.at("then", "cards", index), "E018", f"undefined card template {card!r}", rid)

    def _check_evidence(self, item: _Item, path: tuple[str | int, ...], ev: Evidence) -> None:
        rid = item.value.id
        hyp = self.hypotheses.get(ev.hypothesis)
        if hyp is None:
            self.out.add(item.at(*path, "hypothesis"), "E012", f"undefined hypothesis {ev.hypothesis!r}", rid)
        elif ev.test is not None and ev.test not in {t.id for t in hyp.value.tests}:
            self.out.add(
                item.at(*path, "test"), "E012", f"hypothesis {ev.hypothesis!r} declares no test {ev.test!r}", rid
            )
        self._lr(item, ev.likelihood_ratio, (*path, "likelihood_ratio"), rid)
        self._reference(item, ev.reference, path, "evidence", rid)
        if ev.interval is not None and ev.counts is not None:
            self.out.add(item.at(*path, "interval"), "E016", "give `interval` or `counts`, not both", rid)
        elif ev.interval is not None and not ev.interval[0] <= ev.likelihood_ratio <= ev.interval[1]:
            self.out.add(
                item.at(*path, "interval"),
                "E016",
                f"interval {ev.interval} must run from low to high and contain the ratio {ev.likelihood_ratio:g}",
                rid,
            )

    def _compile_when(self, item: _Item) -> tuple[tuple[ir.Pattern, ...], dict[str, tuple[int, str]]]:
        """The rule's patterns checked and compiled to the IR, with its aliases."""
        rule: Rule = item.value
        rid = rule.id
        derived_names = self._derived_names(self.rules)
        patterns: list[ir.Pattern] = []
        aliases: dict[str, tuple[int, str]] = {}
        for index, pattern in enumerate(rule.when):
            path: tuple[str | int, ...] = ("when", index)
            if pattern.absent is not None:
                (field_name,) = pattern.absent.model_fields_set
                kind = "draft-order" if field_name == "draft_order" else field_name
                tests_raw = getattr(pattern.absent, field_name)
                tests = self._tests(item, (*path, "absent", kind), kind, tests_raw, aliases, allow_join=False)
                key_tuple = (kind, tests)
                if key_tuple not in self.absences:
                    self.absences[key_tuple] = ir.Absence(f"a{len(self.absences)}", kind, tests)
                absence = self.absences[key_tuple]
                patterns.append(ir.Pattern(ir.ABSENCE_KIND, (ir.Test("key", "eq", absence.key),)))
                continue
            (field_name,) = pattern.model_fields_set - {"as_"}
            kind = "draft-order" if field_name == "draft_order" else field_name
            tests_raw = getattr(pattern, field_name)
            tests = self._tests(item, (*path, kind), kind, tests_raw, aliases, allow_join=True)
            if kind == "derived":
                self._check_derived_names(item, (*path, kind), tests, derived_names)
            if pattern.as_ is not None:
                if pattern.as_ in aliases:
                    self.out.add(item.at(*path, "as"), "E010", f"alias {pattern.as_!r} used twice", rid)
                aliases[pattern.as_] = (index, kind)
            patterns.append(ir.Pattern(kind, tests, pattern.as_))
        return tuple(patterns), aliases

    def _check_derived_names(
        self, item: _Item, path: tuple[str | int, ...], tests: tuple[ir.Test, ...], derived_names: set[str]
    ) -> None:
        """A derived pattern names the fact, and some active rule derives it."""
        rid = item.value.id
        names = [t.value for t in tests if t.attr == "name" and t.op == "eq"]
        if not names:
            self.out.add(
                item.at(*path),
                "E021",
                "a derived pattern must name the fact: `derived: {name: ...}`",
                rid,
            )
        for name in names:
            if name not in derived_names:
                self.out.add(
                    item.at(*path, "name"),
                    "E021",
                    f"no active rule derives {name!r}: this rule can never fire",
                    rid,
                )

    def _tests(
        self,
        item: _Item,
        path: tuple[str | int, ...],
        kind: str,
        raw: Mapping[str, Any],
        aliases: Mapping[str, tuple[int, str]],
        allow_join: bool,
    ) -> tuple[ir.Test, ...]:
        rid = item.value.id
        fields = FACT_FIELDS.get(kind)
        if fields is None:
            self.out.add(item.at(*path), "E014", f"fact kind {kind!r} is not in cds.facts.FACT_FIELDS", rid)
            return ()
        tests: list[ir.Test] = []
        for attr, spec in raw.items():
            where = item.at(*path, attr, key=True)
            if attr not in fields:
                self.out.add(
                    where, "E015", f"{kind} facts have no attribute {attr!r} (known: {', '.join(sorted(fields))})", rid
                )
                continue
            attr_type = fields[attr]
            ops = spec.model_dump(exclude_unset=True) if isinstance(spec, Operators) else {"eq": spec}
            for op, value in ops.items():
                vwhere = item.at(*path, attr)
                if op == "same_as":
                    tests.extend(self._join(item, vwhere, kind, attr, attr_type, value, aliases, allow_join))
                elif op == "in_":
                    tests.extend(self._membership(item, vwhere, kind, attr, attr_type, value))
                else:
                    if not _type_ok(attr_type, value, op):
                        self.out.add(
                            vwhere, "E020", f"{kind}.{attr} is {attr_type}: cannot compare it with {op} {value!r}", rid
                        )
                        continue
                    if isinstance(value, str):
                        # `concept: esrd` names a value set (or an analyte) just as `in: [esrd]` does:
                        # check that it exists and count it as used.
                        if (kind, attr) in VALUESET_ATTRS:
                            self._valueset(item, vwhere, value)
                        elif (
                            (kind, attr) == ("lab", "analyte")
                            and self.analytes is not None
                            and value not in self.analytes
                        ):
                            self.out.add(vwhere, "E026", f"undefined analyte {value!r} (rules/analytes.yaml)", rid)
                    tests.append(ir.Test(attr, cast("ir.Op", op), value))
        self._contradictions(item, path, kind, tests)
        return tuple(tests)

    def _contradictions(self, item: _Item, path: tuple[str | int, ...], kind: str, tests: list[ir.Test]) -> None:
        analytes = [t.value for t in tests if t.attr == "analyte" and t.op == "eq" and isinstance(t.value, str)]
        for t in tests:
            if t.op not in ("eq", "ne", "lt", "le", "gt", "ge"):
                continue
            if kind == "lab" and t.attr in safety.LAB_VALUE_ATTRS:
                low, high = self.analyte_limits.get(analytes[0], (None, None)) if len(analytes) == 1 else (None, None)
                valid = safety.lab_value_range(high, low)
                what = f"lab.{t.attr} of {analytes[0]}" if analytes else f"lab.{t.attr}"
            else:
                valid, what = safety.ATTRIBUTE_RANGES.get((kind, t.attr)), f"{kind}.{t.attr}"
            if problem := safety.threshold_problem(t.value, valid, what):
                self.out.add(item.at(*path, t.attr), "E031", problem, item.value.id)
                return
        for t in tests:
            # facts are bounded and rounded the same way (prepare.py), so both backends compare alike
            if isinstance(t.value, float) and (abs(t.value) >= MAX_ABS_NUMBER or round(t.value, DECIMALS) != t.value):
                self.out.add(
                    item.at(*path, t.attr),
                    "E003",
                    f"{t.value!r}: numbers in rules have at most {DECIMALS} "
                    f"decimals and magnitude below {MAX_ABS_NUMBER:g}",
                    item.value.id,
                )
            elif isinstance(t.value, int) and not isinstance(t.value, bool) and abs(t.value) >= MAX_ABS_NUMBER:
                self.out.add(
                    item.at(*path, t.attr),
                    "E003",
                    f"{t.value!r}: magnitude must be below {MAX_ABS_NUMBER:g}",
                    item.value.id,
                )
        by_attr: dict[str, list[ir.Test]] = {}
        for t in tests:
            by_attr.setdefault(t.attr, []).append(t)
        for attr, group in by_attr.items():
            eqs = {t.value for t in group if t.op == "eq"}
            # ordering tests hold numbers only (``_type_ok``)
            lower = max(
                (t.value for t in group if t.op in ("gt", "ge") and isinstance(t.value, int | float)), default=None
            )
            upper = min(
                (t.value for t in group if t.op in ("lt", "le") and isinstance(t.value, int | float)), default=None
            )
            impossible = len(eqs) > 1
            for t in group:
                if t.op == "any_of" and eqs and not (eqs & set(t.values)):
                    impossible = True
            if (
                lower is not None
                and upper is not None
                and (lower > upper or (lower == upper and any(t.op in ("gt", "lt") for t in group)))
            ):
                impossible = True
            if impossible:
                self.out.add(
                    item.at(*path, attr),
                    "E021",
                    f"the tests on {kind}.{attr} contradict each other: this rule can never fire",
                    item.value.id,
                )

    def _join(
        self,
        item: _Item,
        where: tuple[str, int, int],
        kind: str,
        attr: str,
        attr_type: str,
        target: Any,
        aliases: Mapping[str, tuple[int, str]],
        allow_join: bool,
    ) -> list[ir.Test]:
        rid = item.value.id
        if not allow_join:
            self.out.add(where, "E019", "an absent pattern cannot join other patterns", rid)
            return []
        alias, _, other_attr = str(target).partition(".")
        if alias not in aliases or not other_attr:
            self.out.add(
                where,
                "E019",
                f"same_as {target!r}: no earlier pattern has alias {alias!r} (write `alias.attribute`)",
                rid,
            )
            return []
        index, other_kind = aliases[alias]
        other_type = FACT_FIELDS.get(other_kind, {}).get(other_attr)
        if other_type is None:
            self.out.add(where, "E015", f"{other_kind} facts have no attribute {other_attr!r}", rid)
            return []
        if other_type != attr_type:
            self.out.add(
                where,
                "E020",
                f"cannot join {kind}.{attr} ({attr_type}) with {other_kind}.{other_attr} ({other_type})",
                rid,
            )
            return []
        return [ir.Test(attr, "join", join_pattern=index, join_attr=other_attr)]

    def _membership(
        self, item: _Item, where: tuple[str, int, int], kind: str, attr: str, attr_type: str, value: Any
    ) -> list[ir.Test]:
        rid = item.value.id
        ids = [value] if isinstance(value, str) else list(value)
        if not ids:
            self.out.add(where, "E021", "`in: []` never matches", rid)
            return []
        if attr_type != "str":
            self.out.add(where, "E020", f"{kind}.{attr} is {attr_type}: `in` needs a text attribute", rid)
            return []
        if (kind, attr) in VALUESET_ATTRS:
            for vs in ids:
                self._valueset(item, where, vs)
            return [ir.Test(attr, "any_of", values=tuple(ids))]
        if attr == "code" and kind in CODE_KINDS:
            tests = []
            for vs in ids:
                if self.valuesets is None or vs not in self.valuesets:
                    self.out.add(
                        where, "E011", f"undefined value set {vs!r} (code membership needs rules/valuesets/)", rid
                    )
                    continue
                self.used_valuesets.add(vs)
                key = (kind, vs)
                if key not in self.memberships:
                    self.memberships[key] = ir.Membership(f"_vs{len(self.memberships)}", kind, vs)
            members = [self.memberships[(kind, vs)] for vs in ids if (kind, vs) in self.memberships]
            if len(members) == 1:
                tests.append(ir.Test(members[0].attr, "member", True))
            elif members:
                # several value sets: one attribute per set would need an OR across attributes;
                # keep the engine subset simple and require one value set per code test.
                self.out.add(
                    where, "E003", "`code: {in: ...}` takes one value set; write one pattern per value set", rid
                )
            return tests
        if (kind, attr) == ("lab", "analyte") and self.analytes is not None:
            for analyte in ids:
                if analyte not in self.analytes:
                    self.out.add(where, "E026", f"undefined analyte {analyte!r} (rules/analytes.yaml)", rid)
        return [ir.Test(attr, "any_of", values=tuple(ids))]
