"""``cds.engine.weighing.weigh``, with its per-rule-set plan and its memo of differentials (issue 20), equals
the plain definition.

The plain definition is the weighing of main before the plan (tests/engine/plain_differential.py). Compared on
the shipped rule set with generated evidence: any subset of its evidence rules, in any order, with ratios moved
the way ``cds rules sensitivity`` moves them, in every population; then again from the memo, which must give the
same differential. Equality of the frozen dataclasses compares every float exactly.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.engine.differential import EvidenceItem
from cds.engine.loader import RuleSet, load_or_raise
from cds.engine.runner import evidence_of
from cds.engine.weighing import weigh
from tests.conftest import RULES_DIR
from tests.engine import plain_differential
from tests.engine.test_differential_model import POPULATION, _ev, _group, _hyp


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_or_raise(RULES_DIR)


def _evidence_of(rs: RuleSet) -> list[EvidenceItem]:
    """Every evidence item a firing rule contributes, as cds.engine.runner builds it."""
    return [item for rule in rs.compiled.rules for item in evidence_of(rule)]


@st.composite
def evidence_and_population(draw, rs: RuleSet):
    pool = _evidence_of(rs)
    chosen = draw(st.lists(st.sampled_from(pool), max_size=len(pool)))
    moved = [
        dataclasses.replace(e, likelihood_ratio=draw(st.floats(0.05, 20))) if draw(st.booleans()) else e for e in chosen
    ]
    names = {p.derived for p in rs.populations if p.derived}
    derived = draw(st.sets(st.sampled_from(sorted(names)))) if names else set()
    return moved, derived


def test_the_shipped_rule_set_has_what_the_plan_shortcuts(ruleset):
    kinds = {h.kind for h in ruleset.hypotheses.values()}
    assert kinds == {"cause", "explainer", "coexisting"}, "explainers and coexisting conditions take the bare path"
    assert any(h.tests for h in ruleset.hypotheses.values()), "next tests are ranked once per rule set"


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_weigh_equals_the_plain_definition_on_the_shipped_rules(ruleset, data):
    evidence, derived = data.draw(evidence_and_population(ruleset))
    rs = ruleset
    expected = plain_differential.weigh(rs.hypotheses, rs.populations, derived, evidence, rs.evidence_groups)
    first = weigh(rs.hypotheses, rs.populations, derived, list(evidence), rs.evidence_groups)
    again = weigh(rs.hypotheses, rs.populations, set(derived), iter(evidence), rs.evidence_groups)
    assert first == expected
    assert repr(first) == repr(expected)  # every field, the order of every tuple, the signs of zeros
    assert again is first  # from the memo
    assert first.as_extension() == expected.as_extension()


def test_explainers_coexisting_conditions_and_groups_give_the_plain_result():
    hyps = {
        "a": _hyp("a", 0.3, tests=[_test("t1", 3.0, 0.5), _test("t2", 6.0, 0.25), _test("t3", 6.0, 0.25)]),
        "b": _hyp("b", 0.2),
        "x": _hyp("x", 0.6, kind="explainer", explains=["r1"]),  # more likely than not without evidence
        "c": _hyp("c", 0.1, kind="coexisting", tests=[_test("t4", 2.0, 0.5)]),
    }
    groups = {"g": _group("max").model_copy(update={"members": ["r1", "r2"]})}
    for evidence in (
        [],
        [_ev("r1", "a", 4.0)],
        [_ev("r1", "a", 4.0), _ev("r2", "a", 0.5), _ev("r3", "c", 2.0), _ev("r4", "x", 0.1)],
        [dataclasses.replace(_ev("r5", "a", 2.0), test="t2"), _ev("r6", "b", 0.2)],
    ):
        expected = plain_differential.weigh(hyps, POPULATION, set(), evidence, groups)
        got = weigh(hyps, POPULATION, set(), evidence, groups)
        assert got == expected and repr(got) == repr(expected)
        assert weigh(hyps, POPULATION, set(), evidence, groups) is got


def _test(tid: str, lr_positive: float, lr_negative: float) -> dict[str, object]:
    return {"id": tid, "title": tid, "lr_positive": lr_positive, "lr_negative": lr_negative, "confidence": "R"}


def test_the_memo_is_bounded_and_a_new_rule_set_gets_a_new_plan(ruleset):
    from cds.engine import weighing

    rs = ruleset
    pool = _evidence_of(rs)
    for n in range(weighing.WEIGHED_MEMO_SIZE + 5):
        item = dataclasses.replace(pool[0], likelihood_ratio=1.0 + n / 1000)
        weigh(rs.hypotheses, rs.populations, set(), [item], rs.evidence_groups)
    assert all(len(entry[2].weighed) <= weighing.WEIGHED_MEMO_SIZE for entry in weighing._PLANS.values())
    other = dict(rs.hypotheses)  # another mapping (a reload): another plan, never the first one's memo
    first = weigh(rs.hypotheses, rs.populations, set(), pool[:3], rs.evidence_groups)
    second = weigh(other, rs.populations, set(), pool[:3], rs.evidence_groups)
    assert first == second and first is not second
