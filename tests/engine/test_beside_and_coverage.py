"""Tests beside the rules and `cds rules coverage` (issue 17 items 4, 6 and friction 10): a rule file with tests
beside it needs a firing and a silent case per rule, and a test there fails on an unexpected firing."""

from __future__ import annotations

from cds.cli import main
from cds.engine.coverage import measure
from cds.engine.loader import load_or_raise, load_ruleset
from cds.engine.ruletests import run_rule_tests
from cds.engine.runner import LoadedEngine
from tests.engine.helpers import copy_rules, write

ESRD = '{kind: condition, id: "condition:Condition/esrd-1:esrd", concept: esrd, status: active}'
WARFARIN = (
    '{kind: medication, id: "medication:MedicationRequest/w-1:vka", drug_class: vitamin-k-antagonist, status: active}'
)
CAXP_75 = '{kind: lab, id: "lab:Observation/cxp-1", analyte: ca-x-p-product, unit: mg2/dL2, value: 75.0}'


def beside(tmp_path, tests: str):
    rules = copy_rules(tmp_path)
    write(rules / "rules" / "risk-factors.tests.yaml", "tests:\n" + tests)
    return rules


FIRES_AND_SILENT = f"""\
  - id: warfarin-fires
    service: calciphylaxis-risk
    facts: [{ESRD}, {WARFARIN}]
    expect: {{fired: [warfarin-in-kidney-failure]}}
  - id: warfarin-silent-without-kidney-failure
    service: calciphylaxis-risk
    facts: [{WARFARIN}]
    expect: {{not_fired: [warfarin-in-kidney-failure]}}
"""


def test_lint_wants_a_silent_case_for_each_rule_of_a_file_with_tests_beside(tmp_path):
    firing_only = FIRES_AND_SILENT.split("  - id: warfarin-silent")[0]
    result = load_ruleset(beside(tmp_path, firing_only))
    w104 = [d for d in result.diagnostics if d.code == "W104"]
    # warfarin-in-kidney-failure has no silent case anywhere; ca-x-p-product-above-70 has one (sample.yaml)
    assert [d.rule_id for d in w104] == ["warfarin-in-kidney-failure"], [str(d) for d in w104]
    assert w104[0].file == "rules/rules/risk-factors.yaml" and w104[0].line == 2
    notes = {d.file for d in result.diagnostics if d.code == "N204"}
    assert "rules/rules/risk-factors.yaml" not in notes and "rules/rules/imaging.yaml" in notes


def test_a_silent_case_satisfies_lint(tmp_path):
    result = load_ruleset(beside(tmp_path, FIRES_AND_SILENT))
    assert not [d for d in result.diagnostics if d.code == "W104"]


def run(rules):
    ruleset = load_or_raise(rules)
    engine = LoadedEngine(ruleset, "reference")
    try:
        return ruleset, {r.id: r for r in run_rule_tests(engine)}
    finally:
        engine.close()


def test_an_unexpected_firing_of_a_rule_beside_fails_the_test(tmp_path):
    rules = beside(
        tmp_path,
        f"""\
  - id: both-fire-one-listed
    service: calciphylaxis-risk
    facts: [{ESRD}, {WARFARIN}, {CAXP_75}]
    expect: {{fired: [warfarin-in-kidney-failure]}}
""",
    )
    _, results = run(rules)
    result = results["both-fire-one-listed"]
    assert not result.passed
    assert any("fired unexpectedly: ca-x-p-product-above-70" in f for f in result.failures), result.failures


def test_a_test_may_allow_other_firings(tmp_path):
    rules = beside(
        tmp_path,
        f"""\
  - id: both-fire-one-listed
    service: calciphylaxis-risk
    facts: [{ESRD}, {WARFARIN}, {CAXP_75}]
    expect: {{fired: [warfarin-in-kidney-failure], allow_other_firings: true}}
""",
    )
    _, results = run(rules)
    assert results["both-fire-one-listed"].passed


def test_rules_of_other_files_may_fire_in_a_beside_test(tmp_path):
    # population-kidney-failure (population.yaml) fires too: only the rules of the file beside count
    rules = beside(tmp_path, FIRES_AND_SILENT)
    _, results = run(rules)
    assert results["warfarin-fires"].passed, results["warfarin-fires"].failures


def test_coverage_counts_fire_and_silent_cases_per_rule(tmp_path):
    rules = beside(tmp_path, FIRES_AND_SILENT)
    ruleset, results = run(rules)
    coverage = measure(ruleset, list(results.values()))
    assert "warfarin-silent-without-kidney-failure" in coverage.rules["warfarin-in-kidney-failure"]["silent_by"]
    assert "warfarin-fires" in coverage.rules["warfarin-in-kidney-failure"]["fired_by"]
    uncovered = coverage.uncovered("silent_by")
    assert "warfarin-in-kidney-failure" not in uncovered
    assert all(not coverage.rules[r]["silent_by"] for r in uncovered)
    assert coverage.cards["calciphylaxis-risk"]["raised_in"], "the sample tests raise the risk card"


def test_coverage_threshold_fails_the_command(tmp_path, capsys):
    rules = beside(tmp_path, FIRES_AND_SILENT)
    assert main(["rules", "coverage", "--rules", str(rules), "--min-fire", "100"]) == 0
    ruleset, results = run(rules)
    uncovered = measure(ruleset, list(results.values())).uncovered("silent_by")
    assert uncovered, "the sample pack has rules without a silent case"
    assert main(["rules", "coverage", "--rules", str(rules), "--min-silent", "100"]) == 1
    assert uncovered[0] in capsys.readouterr().err


def test_a_failing_test_names_its_file_and_line_and_only_filters(tmp_path, capsys):
    rules = beside(
        tmp_path,
        FIRES_AND_SILENT
        + f"""\
  - id: both-fire-one-listed
    service: calciphylaxis-risk
    facts: [{ESRD}, {WARFARIN}, {CAXP_75}]
    expect: {{fired: [warfarin-in-kidney-failure]}}
""",
    )
    assert main(["rules", "test", "--rules", str(rules), "--engine", "reference", "--only", "^both-fire"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  both-fire-one-listed  (rules/rules/risk-factors.tests.yaml:10)" in out
    assert "0 passed, 1 failed" in out and "warfarin-fires" not in out
