"""The per-rule-set fast paths of issue 20 equal the plain definitions they replace.

* ``predicate_of`` / ``alpha_predicate`` (closures chosen once per rule set) against ``passes`` and
  ``alpha_match`` (the semantics, test by test), on generated tests and attributes;
* the reference interpreter (compiled predicates) against a plain interpreter written with ``passes``,
  on the generated fact sets of the backend-equivalence test;
* the durable adapter's attribute filter: every attribute a rule reads is sent;
* ``Terminology.match`` (memoised) against the code index itself, for every value-set code and odd input.
The whole responses are compared with main's in tests/engine/test_golden_responses.py."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.engine import ir
from cds.engine.durable_backend import attributes_read
from cds.engine.loader import load_or_raise
from cds.engine.prepare import alpha_match, alpha_predicate, derived_fact, passes, predicate_of, prepare_facts
from cds.engine.reference import ReferenceExecutor
from cds.fhir.terminology import Terminology
from tests.conftest import RULES_DIR
from tests.engine.test_equivalence import PROBE_RULES, fact_sets

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(-3, 3, allow_nan=False), st.sampled_from(["a", "b", ""])
)
COMPARABLE = st.one_of(st.integers(-3, 3), st.floats(-3, 3, allow_nan=False))


@st.composite
def rule_tests_and_attrs(draw):
    op = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "any_of", "member"]))
    ordered = op in ("lt", "le", "gt", "ge")
    value = draw(COMPARABLE if ordered else SCALARS)
    values = tuple(draw(st.lists(SCALARS, max_size=3))) if op == "any_of" else ()
    test = ir.Test(attr="x", op=op, value=value, values=values)
    attrs = draw(st.fixed_dictionaries({}, optional={"x": COMPARABLE if ordered else SCALARS, "y": SCALARS}))
    return test, attrs


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(case=rule_tests_and_attrs())
def test_a_compiled_predicate_is_the_test_it_was_compiled_from(case):
    test, attrs = case
    assert predicate_of(test)(attrs) == passes(test, attrs)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(cases=st.lists(rule_tests_and_attrs(), max_size=4))
def test_an_alpha_predicate_is_all_of_its_tests(cases):
    tests = [t for t, _ in cases]
    for _, attrs in cases:  # attributes of one test against all: an ordering of str and int raises in both
        assert _outcome(alpha_predicate(tests), attrs) == _outcome(lambda a: alpha_match(tests, a), attrs)


def _outcome(check, attrs):
    try:
        return check(attrs)
    except TypeError as exc:
        return type(exc)


def _plain_match(compiled: ir.CompiledRules, facts) -> dict[int, set[tuple[str, ...]]]:
    """The reference semantics written out with ``passes``: every combination, test by test."""
    by_kind: dict[str, list] = {}
    for fact in facts:
        by_kind.setdefault(fact.kind, []).append(fact)
    matches: dict[int, set[tuple[str, ...]]] = {}
    for rule in compiled.rules:
        partial: list[tuple] = [()]
        for pattern in rule.patterns:
            partial = [
                (*bound, fact)
                for bound in partial
                for fact in by_kind.get(pattern.kind, ())
                if all(passes(t, fact.attrs, tuple(f.attrs for f in bound)) for t in pattern.tests)
            ]
        if partial:
            matches[rule.index] = {tuple(f.engine_id for f in combo) for combo in partial}
            if rule.derive is not None:
                by_kind.setdefault("derived", []).append(derived_fact(rule))
    return matches


@pytest.fixture(scope="module")
def probe_rules():
    return load_or_raise(PROBE_RULES)


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(facts=fact_sets())
def test_the_reference_interpreter_equals_the_plain_semantics(probe_rules, facts):
    compiled = probe_rules.compiled
    prepared, _ = prepare_facts(facts, compiled)
    assert ReferenceExecutor(compiled).match(prepared) == _plain_match(compiled, prepared)


def test_the_durable_adapter_sends_every_attribute_a_rule_reads():
    compiled = load_or_raise(RULES_DIR).compiled
    tested = attributes_read(compiled)
    for rule in compiled.rules:
        for pattern in rule.patterns:
            for test in pattern.tests:
                assert test.attr in tested[pattern.kind], (rule.id, test.attr)
                if test.op == "join":
                    assert test.join_attr in tested[rule.patterns[test.join_pattern].kind], (rule.id, test)
    assert any(len(names) > 1 for names in tested.values())


def test_the_match_memo_answers_as_the_code_index():
    terminology = Terminology.load(RULES_DIR)
    codings = [(system, code) for (system, code) in terminology.codes._exact]
    codings += [
        (system, stem + "9") for system, prefixes in terminology.codes._prefixes.items() for stem, *_ in prefixes
    ]
    codings += [(None, "x"), ("http://loinc.org", 1), ("http://loinc.org", True), ({"a": 1}, "x"), ("", "")]
    for _ in range(2):  # the second pass answers from the memo
        for system, code in codings:
            assert terminology.match(system, code) == terminology.codes.match(system, code), (system, code)


def test_the_durable_adapter_leaves_out_only_derived_facts_no_pattern_can_match():
    """Matches with the derived facts no pattern reads left out equal those with every derived fact asserted,
    on the facts of every shipped case."""
    import json
    from datetime import UTC, datetime

    from cds.engine import durable_backend
    from cds.engine.ruletests import default_extractor
    from tests.conftest import REPO

    if not durable_backend.AVAILABLE:
        pytest.skip("durable-rules is not importable here")
    ruleset = load_or_raise(RULES_DIR)
    compiled = ruleset.compiled
    filtered = durable_backend.DurableExecutor(compiled)
    every = durable_backend.DurableExecutor(compiled)
    every._derived_read = frozenset(r.index for r in compiled.rules if r.derive is not None)
    assert filtered._derived_read < every._derived_read  # some are left out (population selectors)
    extract = default_extractor(RULES_DIR)
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # fhir_examples/README.md
    left_out_fired = 0
    for path in sorted((REPO / "fhir_examples" / "requests").glob("*.json")):
        request = json.loads(path.read_text())
        facts, _ = prepare_facts(extract(request.get("context", {}), request.get("prefetch", {}), now), compiled)
        matches = filtered.match(facts)
        assert matches == every.match(facts), path.name
        left_out_fired += any(i in matches and i not in filtered._derived_read for i in every._derived_read)
    assert left_out_fired  # the cases do fire rules whose derived fact is left out
    filtered.close()
    every.close()
