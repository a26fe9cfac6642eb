"""The migration into the tests-beside-rules layout (issue 17 item 4, ADR 0009): re-runnable, meaning-preserving,
and it leaves every active rule with a firing and a silent case beside it."""

from __future__ import annotations

import shutil

import pytest

from cds.engine import migrate_tests
from cds.engine.coverage import measure
from cds.engine.loader import load_or_raise, load_ruleset
from cds.engine.ruletests import default_extractor, run_rule_tests
from cds.engine.runner import LoadedEngine
from tests.conftest import REPO, RULES_DIR
from tests.engine.helpers import copy_live_rules


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A copy of rules/ before and after one migration run; the tests copy it again before changing it
    (planning a migration evaluates every case: seconds that the two slow tests paid each)."""
    rules = copy_live_rules(tmp_path_factory.mktemp("migrated"))
    before = load_or_raise(rules)
    migrate_tests.apply(rules, migrate_tests.plan(rules))
    return rules, before


def _copy_of(rules, tmp_path):
    """``rules`` copied to tmp_path/rules with fhir_examples linked beside it, as copy_live_rules does."""
    target = tmp_path / "rules"
    shutil.copytree(rules, target, symlinks=True)
    (tmp_path / "fhir_examples").symlink_to(REPO / "fhir_examples", target_is_directory=True)
    return target


@pytest.mark.slow
def test_the_migration_keeps_every_test_passing_covers_every_rule_and_is_idempotent(migrated, tmp_path):
    rules, before = migrated
    rules = _copy_of(rules, tmp_path)  # the second run below writes its modelines into its tree
    result = load_ruleset(rules)
    assert result.ruleset is not None, [str(d) for d in result.errors]
    codes = {d.code for d in result.diagnostics}
    assert not codes & {"W103", "W104", "N203", "N204"}, sorted(codes)
    # every original test is still there, and passes
    assert {t.id for t in before.tests} <= {t.id for t in result.ruleset.tests}
    engine = LoadedEngine(result.ruleset, "reference")
    try:
        results = run_rule_tests(engine, default_extractor(rules, warm=False))
    finally:
        engine.close()
    failing = [f"{r.id}: {r.failures}" for r in results if not r.passed and not r.skipped]
    assert failing == []
    coverage = measure(result.ruleset, results)
    assert coverage.uncovered("fired_by") == [] and coverage.uncovered("silent_by") == []
    # a second run changes nothing but the modelines it already wrote
    assert migrate_tests.apply(rules, migrate_tests.plan(rules)) == []
    # and the migrated set is relocatable: no fhir_examples beside the copy
    elsewhere = tmp_path / "elsewhere" / "copied-rules"
    shutil.copytree(rules, elsewhere)
    assert load_ruleset(elsewhere).errors == []


def test_the_knowledge_base_is_in_the_tests_beside_rules_layout():
    assert migrate_tests.main(["--rules", str(RULES_DIR), "--check"]) == 0
    codes = {d.code for d in load_ruleset(RULES_DIR).diagnostics}
    assert not codes & {"W104", "N203", "N204"}, sorted(codes)


def test_coverage_threshold_of_the_knowledge_base():
    from cds.cli import main

    # every active rule has a test that makes it fire and one that keeps it silent
    assert (
        main(
            [
                "rules",
                "coverage",
                "--rules",
                str(RULES_DIR),
                "--min-fire",
                "100",
                "--min-silent",
                "100",
                "--format",
                "json",
            ]
        )
        == 0
    )


def test_case_copies_beside_the_tests_match_the_generated_cases():
    # rules/cases/*.json are copies of fhir_examples/requests/ (written by fhir_examples/build_cases.py):
    # when a case is rebuilt, re-run `python -m cds.engine.migrate_tests`
    for copy in sorted((RULES_DIR / "cases").glob("*.json")):
        original = REPO / "fhir_examples" / "requests" / copy.name
        if original.is_file():
            assert copy.read_bytes() == original.read_bytes(), f"{copy.name}: run python -m cds.engine.migrate_tests"


@pytest.mark.slow
def test_a_rerun_after_a_merge_takes_the_old_layout_copy_of_a_test_and_regenerates_silent_cases(migrated, tmp_path):
    # After merging a branch that edited rules/tests/*.yaml (the old layout), a test id exists twice:
    # the migrated copy and the edited one. The re-run keeps the edited one and moves it into place.
    rules = _copy_of(migrated[0], tmp_path)
    ruleset = load_or_raise(rules)
    test = next(t for t in ruleset.tests if t.facts is not None and not (t.description or "").startswith("Generated"))
    legacy = rules / "tests" / "edited-on-another-branch.yaml"
    legacy.parent.mkdir(exist_ok=True)
    import yaml

    edited = {
        "id": test.id,
        "description": "EDITED on another branch",
        "service": test.service,
        "facts": [dict(f) for f in test.facts or []],
        "expect": {"fired": list(test.expect.fired)},
    }
    legacy.write_text(yaml.safe_dump({"tests": [edited]}, sort_keys=False))
    assert load_ruleset(rules).errors, "the duplicate id is an error until the re-run"
    assert migrate_tests.main(["--rules", str(rules)]) == 0
    result = load_ruleset(rules)
    assert result.errors == []
    moved = [t for t in result.ruleset.tests if t.id == test.id]
    assert len(moved) == 1 and moved[0].description == "EDITED on another branch"
    assert not legacy.exists()
    assert migrate_tests.main(["--rules", str(rules), "--check"]) == 0
