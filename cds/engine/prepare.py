"""Facts as both backends see them: typed, de-duplicated, with precomputed attributes.

Done in Python before any backend runs, so that the engines only ever see the
safe subset (knowledge/durable-rules.md): value-set prefixes are expanded into
boolean membership attributes (no regex in the engine), absences become facts
(no negation in the engine), attribute types are checked against FACT_FIELDS
(durable-rules coerces "6" > 5 to true; the reference interpreter would not),
and every fact gets a short engine id ``f<n>`` (no two can collide).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cds.concepts import canonical_system, normalise_code
from cds.engine import ir
from cds.facts import FACT_FIELDS, Fact, FactSet, Scalar

# durable-rules crashes above 252 flattened properties per fact (B5); our facts stay far below.
MAX_ATTRS_PER_FACT = 100
# One evaluation's working memory; ids f0..f4999 are checked collision-free in tests.
MAX_FACTS = 5000
MAX_TEXT = 2000


@dataclass(frozen=True, slots=True)
class PreparedFact:
    engine_id: str
    source_id: str
    kind: str
    attrs: Mapping[str, Scalar]

    def get(self, name: str) -> Scalar | None:
        return self.attrs.get(name)


# durable-rules' JSON number parser corrupts memory on exponent notation (measured: "1e-05",
# "1e+16", "5e-324" crash the process; see docs/adr/0001-rules-engine.md). Numbers are therefore
# kept to a range and precision that both backends see identically and that serialise without an
# exponent (durable_backend.dumps writes fixed-point).
MAX_ABS_NUMBER = 1e12
DECIMALS = 6


def _typed(kind: str, name: str, value: object) -> bool:
    return _typed_as(FACT_FIELDS[kind].get(name), value)


def _typed_as(expected: str | None, value: object) -> bool:
    if expected == "number":
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and abs(value) < MAX_ABS_NUMBER
        )
    if expected == "bool":
        return isinstance(value, bool)
    if expected == "str":
        return isinstance(value, str) and 0 < len(value) <= MAX_TEXT
    return False


Predicate = Callable[[Mapping[str, Scalar]], bool]


def predicate_of(test: ir.Test) -> Predicate:
    """``passes(test, attrs)`` as one closure (no join): the operator is chosen once per rule set,
    not once per fact and test."""
    attr, value, values = test.attr, test.value, test.values
    op = test.op
    if op == "eq":
        return lambda attrs: (v := attrs.get(attr)) is not None and v == value
    if op == "ne":
        return lambda attrs: (v := attrs.get(attr)) is not None and v != value
    if op == "lt":
        return lambda attrs: (v := attrs.get(attr)) is not None and v < value  # type: ignore[operator]
    if op == "le":
        return lambda attrs: (v := attrs.get(attr)) is not None and v <= value  # type: ignore[operator]
    if op == "gt":
        return lambda attrs: (v := attrs.get(attr)) is not None and v > value  # type: ignore[operator]
    if op == "ge":
        return lambda attrs: (v := attrs.get(attr)) is not None and v >= value  # type: ignore[operator]
    if op == "any_of":
        return lambda attrs: (v := attrs.get(attr)) is not None and v in values
    if op == "member":
        return lambda attrs: attrs.get(attr) is True
    raise ValueError(f"no predicate for operator {op}")


def alpha_predicate(tests: Iterable[ir.Test]) -> Predicate:
    """``alpha_match(tests, attrs)`` as one closure: every non-join test, in order."""
    predicates = tuple(predicate_of(t) for t in tests if t.op != "join")
    if not predicates:
        return lambda attrs: True
    if len(predicates) == 1:
        return predicates[0]

    def check(attrs: Mapping[str, Scalar]) -> bool:
        for predicate in predicates:  # noqa: SIM110 - a loop: all() of a generator costs more per fact
            if not predicate(attrs):
                return False
        return True

    return check


@dataclass(frozen=True, slots=True)
class _Plan:
    """What prepare_facts needs of a rule set, computed once per CompiledRules (see ``_plan``)."""

    memberships_by_kind: dict[str, tuple[ir.Membership, ...]]
    absences: tuple[tuple[ir.Absence, Predicate], ...]


# id(CompiledRules) -> (the rules, their plan). The rules are kept so that the id stays theirs; a
# rule set is compiled once per load or reload, so the few entries are dropped wholesale when full.
_PLANS: dict[int, tuple[ir.CompiledRules, _Plan]] = {}


def _plan(compiled: ir.CompiledRules) -> _Plan:
    entry = _PLANS.get(id(compiled))
    if entry is not None and entry[0] is compiled:
        return entry[1]
    by_kind: dict[str, list[ir.Membership]] = {}
    for membership in compiled.memberships:
        by_kind.setdefault(membership.kind, []).append(membership)
    plan = _Plan(
        {kind: tuple(items) for kind, items in by_kind.items()},
        tuple((absence, alpha_predicate(absence.tests)) for absence in compiled.absences),
    )
    if len(_PLANS) >= 16:
        _PLANS.clear()
    _PLANS[id(compiled)] = (compiled, plan)
    return plan


def prepare_facts(factset: FactSet, compiled: ir.CompiledRules) -> tuple[list[PreparedFact], list[str]]:
    """Input facts checked and numbered, plus membership attributes and absence facts."""
    warnings: list[str] = []
    prepared: list[PreparedFact] = []
    seen: set[str] = set()
    plan = _plan(compiled)
    for fact in factset.facts:
        if len(prepared) >= MAX_FACTS:
            warnings.append(f"more than {MAX_FACTS} facts: the rest were not evaluated")
            break
        fields = FACT_FIELDS.get(fact.kind)
        if fields is None:
            warnings.append(f"fact {fact.id}: unknown kind {fact.kind!r}, ignored")
            continue
        if fact.id in seen:
            warnings.append(f"fact {fact.id}: duplicate id, later copy ignored")
            continue
        seen.add(fact.id)
        attrs: dict[str, Scalar] = {}
        for name, value in fact.attrs.items():
            expected = fields.get(name)
            # The common exact types first (the same checks as _typed_as, ~300 attributes a request).
            if type(value) is str:
                ok = expected == "str" and 0 < len(value) <= MAX_TEXT
            elif type(value) is float:
                ok = expected == "number" and math.isfinite(value) and abs(value) < MAX_ABS_NUMBER
                if ok:
                    value = round(value, DECIMALS)
            else:
                ok = _typed_as(expected, value)
                if ok and isinstance(value, float):
                    value = round(value, DECIMALS)
            if ok:
                attrs[name] = value
            else:
                warnings.append(f"fact {fact.id}: attribute {name!r} unknown or of the wrong type, ignored")
        for membership in plan.memberships_by_kind.get(fact.kind, ()):
            if _in_valueset(attrs, compiled.valueset_codes.get(membership.valueset)):
                attrs[membership.attr] = True
        if len(attrs) > MAX_ATTRS_PER_FACT:
            warnings.append(f"fact {fact.id}: too many attributes, ignored")
            continue
        prepared.append(PreparedFact(f"f{len(prepared)}", fact.id, fact.kind, attrs))
    _anchor_on_lesion_onset(prepared, compiled.lesion_concepts)
    _add_absences(prepared, plan)
    return prepared, warnings


def _add_absences(prepared: list[PreparedFact], plan: _Plan) -> None:
    """An absence fact for every declared absence no fact of its kind satisfies."""
    by_kind: dict[str, list[PreparedFact]] = {}
    for prepared_fact in prepared:
        by_kind.setdefault(prepared_fact.kind, []).append(prepared_fact)
    for absence, holds in plan.absences:
        if not any(holds(f.attrs) for f in by_kind.get(absence.kind, ())):
            absent = PreparedFact(f"f{len(prepared)}", f"absent:{absence.key}", ir.ABSENCE_KIND, {"key": absence.key})
            prepared.append(absent)
            by_kind.setdefault(absent.kind, []).append(absent)


def _anchor_on_lesion_onset(prepared: list[PreparedFact], lesion_concepts: frozenset[str]) -> None:
    """Exposure windows count from the lesion's onset, not from today (clinical review S-10): warfarin skin necrosis
    begins 3-10 days after the first dose, so a window from today loses it days later. The anchor is the earliest
    recorded onset of a skin lesion; without one, today (the attribute then equals the plain one)."""
    onsets: list[float] = []
    for f in prepared:
        onset = f.attrs.get("days_since_onset")
        if f.kind == "condition" and f.attrs.get("concept") in lesion_concepts and isinstance(onset, (int, float)):
            onsets.append(float(onset))
    anchor = max(onsets, default=0.0)
    for index, fact in enumerate(prepared):
        extra: dict[str, Scalar] = {}
        start = fact.attrs.get("days_since_first_start")
        if fact.kind == "medication" and isinstance(start, (int, float)):
            extra["days_from_first_start_to_lesion_onset"] = round(start - anchor, DECIMALS)
        ago = fact.attrs.get("days_ago")
        if fact.kind == "procedure" and isinstance(ago, (int, float)):
            extra["days_before_lesion_onset"] = round(ago - anchor, DECIMALS)
        if extra:
            prepared[index] = PreparedFact(fact.engine_id, fact.source_id, fact.kind, {**fact.attrs, **extra})


def _in_valueset(
    attrs: Mapping[str, Scalar], codes: tuple[frozenset[tuple[str, str]], tuple[tuple[str, str], ...]] | None
) -> bool:
    if codes is None:
        return False
    system, code = attrs.get("system"), attrs.get("code")
    if not isinstance(system, str) or not isinstance(code, str):
        return False
    # the one code matcher's normal form (cds.concepts): OID system forms, ICD-10-CM case and dot
    system = canonical_system(system) or system
    code = normalise_code(system, code)
    exact, prefixes = codes
    return (system, code) in exact or any(system == s and code.startswith(p) for s, p in prefixes)


def passes(test: ir.Test, attrs: Mapping[str, Scalar], bound: tuple[Mapping[str, Scalar], ...] = ()) -> bool:
    """The semantics of one test. A missing attribute fails every test, `!=` included."""
    value = attrs.get(test.attr)
    if value is None:
        return False
    op = test.op
    if op == "eq":
        return value == test.value
    if op == "ne":
        return value != test.value
    if op == "lt":
        return value < test.value  # type: ignore[operator]
    if op == "le":
        return value <= test.value  # type: ignore[operator]
    if op == "gt":
        return value > test.value  # type: ignore[operator]
    if op == "ge":
        return value >= test.value  # type: ignore[operator]
    if op == "any_of":
        return value in test.values
    if op == "member":
        return value is True
    if op == "join":
        other = bound[test.join_pattern].get(test.join_attr)
        return other is not None and other == value
    raise ValueError(f"unknown operator {op}")


def alpha_match(tests: Iterable[ir.Test], attrs: Mapping[str, Scalar]) -> bool:
    return all(passes(t, attrs) for t in tests if t.op != "join")


def derived_fact(rule: ir.CompiledRule) -> PreparedFact:
    assert rule.derive is not None
    return PreparedFact(f"d{rule.index}", f"derived:{rule.derive.name}:{rule.id}", "derived", dict(rule.derive.attrs))


def facts_from_dicts(items: Iterable[Mapping[str, Scalar]]) -> FactSet:
    """Inline facts of rule tests: ``{kind, id, attribute: value, ...}``."""
    facts = []
    for item in items:
        attrs = {k: v for k, v in item.items() if k not in ("kind", "id")}
        facts.append(Fact(kind=str(item["kind"]), id=str(item["id"]), attrs=attrs))
    return FactSet(facts=tuple(facts))
