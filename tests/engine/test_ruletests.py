"""The rule tests of rules/tests/ run under pytest on both backends; `cds rules ...` exit codes."""

from __future__ import annotations

import pytest

from cds.cli import main
from cds.engine import durable_backend
from cds.engine.loader import load_or_raise
from cds.engine.ruletests import check, run_rule_tests
from cds.engine.runner import LoadedEngine
from tests.conftest import RULES_DIR, shipped_ruleset
from tests.engine.helpers import SAMPLE_RULES, copy_rules

RULESET = shipped_ruleset()
ENGINES = ["reference"] + (["durable"] if durable_backend.AVAILABLE else [])


@pytest.fixture(scope="module", params=ENGINES)
def results(request, live_rule_results):
    """Every live rule test run once per backend (the one place the suite runs them as tests)."""
    return live_rule_results(request.param)


@pytest.mark.parametrize("test_id", [t.id for t in RULESET.tests])
def test_rule_test(results, test_id):
    result = results[test_id]
    assert not result.skipped, result.failures
    assert result.passed, "\n".join(result.failures)


def test_known_gaps_are_reported_not_failed(results):
    gaps = [r for r in results.values() if r.gap]
    assert {r.id for r in gaps} == {t.id for t in RULESET.tests if t.known_gap}
    assert all(r.passed and r.status == "GAP " and r.failures[0].startswith("known gap: ") for r in gaps)


def test_check_reports_what_it_saw():
    engine = LoadedEngine(load_or_raise(SAMPLE_RULES), "reference")
    test = next(t for t in engine.ruleset.tests if t.id == "esrd-ulcer-positive-bone-scan")
    wrong = test.model_copy(
        update={
            "expect": test.expect.model_copy(
                update={"top": "venous-insufficiency", "cards": ["vitamin-k-antagonist-order-suspected-calciphylaxis"]}
            )
        }
    )
    (result,) = [r for r in run_rule_tests(engine) if r.id == test.id]
    failures = check(wrong, result.outcome)
    assert any("top of the differential is calciphylaxis, expected venous-insufficiency" in f for f in failures)
    assert any(
        "card vitamin-k-antagonist-order-suspected-calciphylaxis not raised (raised: calciphylaxis-risk)" in f
        for f in failures
    )


def test_cli_rules_commands_pass_on_the_sample_pack(capsys):
    sample = str(SAMPLE_RULES)
    assert main(["rules", "validate", "--rules", sample]) == 0
    assert main(["rules", "lint", "--rules", sample]) == 0
    assert main(["rules", "test", "--rules", sample]) == 0
    out = capsys.readouterr().out
    tests = len(load_or_raise(SAMPLE_RULES).tests)
    assert f"{tests} passed, 0 failed, 0 skipped (reference)" in out
    assert main(["rules", "report", "--rules", sample]) == 0
    assert "| Heterogeneous soft-tissue uptake" in capsys.readouterr().out


def test_cli_on_the_live_rules():
    assert main(["rules", "validate", "--rules", str(RULES_DIR)]) == 0
    # W101 (value sets no rule uses yet) is expected while the knowledge base is being written
    assert main(["rules", "lint", "--rules", str(RULES_DIR), "--ignore", "W101"]) == 0
    assert main(["rules", "schema", "--check", str(RULES_DIR / "schema.json"), "--rules", str(RULES_DIR)]) == 0


def test_cli_rules_test_fails_on_a_failing_test(tmp_path, capsys):
    rules = copy_rules(tmp_path)
    tests = rules / "tests" / "sample.yaml"
    tests.write_text(tests.read_text().replace("top: venous-insufficiency", "top: calciphylaxis"))
    assert main(["rules", "test", "--rules", str(rules), "--engine", "reference"]) == 1
    assert "FAIL  ulcer-without-kidney-failure" in capsys.readouterr().out


def test_cli_rules_test_fails_when_no_test_ran(tmp_path, capsys):
    rules = copy_rules(tmp_path)
    (rules / "tests" / "sample.yaml").unlink()
    assert main(["rules", "test", "--rules", str(rules), "--engine", "reference"]) == 1
    assert "no rule test ran" in capsys.readouterr().err


def test_cli_lint_and_validate_fail_with_positions(tmp_path, capsys):
    rules = copy_rules(tmp_path)
    imaging = rules / "rules" / "imaging.yaml"
    imaging.write_text(
        imaging.read_text().replace(
            "reference: paul-2015-derived-lr, confidence: D, test: bone-scan}", "confidence: D, test: bone-scan}", 1
        )
    )
    assert main(["rules", "validate", "--rules", str(rules)]) == 1
    assert (
        "rules/rules/imaging.yaml:15:11: E017 evidence names no reference (bone-scan-heterogeneous-soft-tissue-uptake)"
        in capsys.readouterr().err
    )
    assert main(["rules", "lint", "--rules", str(rules)]) == 1
