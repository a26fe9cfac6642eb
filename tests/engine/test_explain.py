"""`cds evaluate --why` and `--now` (issue 17 item 7): why a rule did not fire, why a card was or was not raised,
and an evaluation that shows what the rules on disk do even while a rule test fails."""

from __future__ import annotations

import pytest

from cds.cli import main
from cds.engine.explain import why, why_card, why_rule
from cds.engine.loader import load_or_raise
from cds.engine.prepare import facts_from_dicts
from cds.engine.runner import LoadedEngine
from tests.conftest import REPO
from tests.engine.helpers import SAMPLE_RULES, copy_live_rules, write

ESRD = {"kind": "condition", "id": "condition:Condition/esrd-1:esrd", "concept": "esrd", "status": "active"}
ULCER = {
    "kind": "condition",
    "id": "condition:Condition/ulcer-1:lower-limb-ulcer",
    "concept": "lower-limb-ulcer",
    "status": "active",
}
# Ca x P 64 mg2/dL2: below the rule's threshold of 70 (Weenig 2007)
CAXP_64 = {"kind": "lab", "id": "lab:Observation/cxp-1", "analyte": "ca-x-p-product", "unit": "mg2/dL2", "value": 64.0}


@pytest.fixture(scope="module")
def sample():
    ruleset = load_or_raise(SAMPLE_RULES)
    engine = LoadedEngine(ruleset, "reference")
    yield ruleset, engine
    engine.close()


def test_a_silent_rule_names_its_first_failing_test_and_the_value_seen(sample):
    ruleset, engine = sample
    outcome = engine.evaluate(facts_from_dicts([ESRD, CAXP_64]), "calciphylaxis-risk")
    answer = why_rule(ruleset, outcome, "ca-x-p-product-above-70")
    assert not answer.fired
    assert "pattern 1" in answer.summary and "none of 1 lab fact(s) passed" in answer.summary
    miss = answer.patterns[0]["near_misses"][0]
    assert miss == {"fact": "lab:Observation/cxp-1", "failed": "value > 70", "seen": 64.0}


def test_a_rule_needing_a_fact_kind_that_is_missing_says_so(sample):
    ruleset, engine = sample
    outcome = engine.evaluate(facts_from_dicts([ESRD]), "calciphylaxis-risk")
    answer = why_rule(ruleset, outcome, "warfarin-in-kidney-failure")
    assert "pattern 2" in answer.summary and "no medication fact at all" in answer.summary
    assert answer.patterns[0]["passing"], "kidney failure was derived, so pattern 1 passes"


def test_a_fired_rule_names_its_match(sample):
    ruleset, engine = sample
    outcome = engine.evaluate(facts_from_dicts([ESRD, {**CAXP_64, "value": 75.0}]), "calciphylaxis-risk")
    answer = why_rule(ruleset, outcome, "ca-x-p-product-above-70")
    assert answer.fired and "lab:Observation/cxp-1" in answer.summary


def test_a_card_below_its_threshold_shows_posterior_against_threshold(sample):
    ruleset, engine = sample
    outcome = engine.evaluate(facts_from_dicts([ESRD]), "calciphylaxis-risk")
    answer = why_card(ruleset, outcome, "calciphylaxis-risk")
    assert not answer.raised
    posterior = outcome.differential.get("calciphylaxis").posterior
    assert f"posterior {posterior:.4f} < threshold 0.1" in answer.summary


def test_a_raised_card_shows_the_threshold_it_passed(sample):
    ruleset, engine = sample
    facts = [
        ESRD,
        ULCER,
        {
            "kind": "finding",
            "id": "finding:DiagnosticReport/bs-1:1",
            "concept": "soft-tissue-uptake",
            "modality": "NM",
            "distribution": "heterogeneous",
            "negated": False,
            "at_lesion_site": True,
        },
    ]
    outcome = engine.evaluate(facts_from_dicts(facts), "calciphylaxis-risk")
    answer = why_card(ruleset, outcome, "calciphylaxis-risk")
    assert answer.raised and ">= threshold 0.1" in answer.summary


def test_a_card_for_another_service_says_which_services_show_it(sample):
    ruleset, engine = sample
    outcome = engine.evaluate(facts_from_dicts([ESRD]), "calciphylaxis-risk")
    answer = why(ruleset, outcome, "vitamin-k-antagonist-order-suspected-calciphylaxis")
    assert not answer.raised and "does not show it" in answer.summary


def test_an_unknown_id_suggests_the_nearest(sample):
    ruleset, engine = sample
    outcome = engine.evaluate(facts_from_dicts([ESRD]), "calciphylaxis-risk")
    assert "did you mean ca-x-p-product-above-70" in why(ruleset, outcome, "ca-x-p-product-above-7").summary


# ----------------------------------------------------------------------------- the command line
CONTROL = REPO / "fhir_examples" / "requests" / "control-esrd-no-skin-findings.patient-view.json"


def test_evaluate_runs_on_a_rule_set_whose_tests_fail_and_warns(tmp_path, capsys):
    rules = copy_live_rules(tmp_path)
    # a rule test that cannot pass: ESRD alone never makes calciphylaxis the top cause
    write(
        rules / "tests" / "zz-failing.yaml",
        """\
tests:
  - id: zz-impossible-expectation
    service: calciphylaxis-risk
    facts:
      - {kind: condition, id: "condition:Condition/esrd-1:esrd", concept: esrd, status: active}
    expect: {posterior: {calciphylaxis: {at_least: 0.99}}}
""",
    )
    assert main(["evaluate", str(CONTROL), "--rules", str(rules), "--check-tests"]) == 0
    captured = capsys.readouterr()
    assert "card(s)" in captured.out
    assert "WARNING: rule test zz-impossible-expectation fails" in captured.err


def test_evaluate_uses_the_reference_date_of_the_case_and_accepts_now(capsys):
    assert main(["evaluate", str(CONTROL)]) == 0
    err = capsys.readouterr().err
    assert "the reference date of rule test" in err
    assert main(["evaluate", str(CONTROL), "--now", "2030-01-01T00:00:00Z"]) == 0
    assert "2030-01-01T00:00:00+00:00 (--now)" in capsys.readouterr().err


def test_evaluate_why_prints_the_explanation(capsys):
    assert main(["evaluate", str(CONTROL), "--why", "calciphylaxis-risk"]) == 0
    out = capsys.readouterr().out
    assert "card calciphylaxis-risk:" in out and ("not raised" in out or "raised" in out)
