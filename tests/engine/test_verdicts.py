"""The start-up rule-test gate with recorded passes (cds.engine.verdicts, docs/adr/0014-cold-start.md):
the same inputs are not tested twice, and a rule set whose tests fail is still never served."""

from __future__ import annotations

import pytest

from cds.engine import durable_backend, verdicts
from cds.engine.loader import load_or_raise
from cds.engine.prepare import facts_from_dicts
from cds.engine.verdicts import VerdictRecord, configured_record, verdict_key
from cds.pipeline import Pipeline, RulesetLoadError
from cds.settings import Settings
from tests.engine.helpers import copy_rules
from tests.engine.test_pipeline import ESRD_ULCER_SCAN

ENGINE = "durable" if durable_backend.AVAILABLE else "reference"


def stand_in(context, prefetch, now):
    return facts_from_dicts(ESRD_ULCER_SCAN)


@pytest.fixture(autouse=True)
def fixed_facts(monkeypatch):
    monkeypatch.setattr("cds.pipeline.default_extractor", lambda rules_dir, **_: stand_in)


@pytest.fixture
def rules(tmp_path):
    return copy_rules(tmp_path)


@pytest.fixture
def record(tmp_path):
    return VerdictRecord(tmp_path / "verdicts")


@pytest.fixture
def test_runs(monkeypatch):
    """How often the rule tests really ran."""
    import cds.pipeline

    calls = []
    real = cds.pipeline.run_rule_tests

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("cds.pipeline.run_rule_tests", counting)
    return calls


def break_a_rule_test(rules):
    imaging = rules / "rules" / "imaging.yaml"
    imaging.write_text(imaging.read_text().replace("likelihood_ratio: 29.7", "likelihood_ratio: 2.97"))


def test_a_pass_is_recorded_and_the_same_inputs_are_not_tested_again(rules, record, test_runs):
    first = Pipeline.load(rules, engine=ENGINE, verdicts=record)
    assert len(test_runs) == 1
    assert len(list(record.directory.glob("*.json"))) == 1
    again = Pipeline.load(rules, engine=ENGINE, verdicts=record)
    assert len(test_runs) == 1  # the recorded pass stood for the run
    assert again.version == first.version
    assert again.reload() is True  # a reload of unchanged files: recorded too
    assert len(test_runs) == 1


def test_a_failing_rule_test_refuses_start_and_reload_despite_an_earlier_pass(rules, record, test_runs):
    pipeline = Pipeline.load(rules, engine=ENGINE, verdicts=record)
    version = pipeline.version
    break_a_rule_test(rules)
    assert pipeline.reload() is False
    assert pipeline.version == version
    assert any("rule test esrd-ulcer-positive-bone-scan" in line for line in pipeline.status()["errors"])
    with pytest.raises(RulesetLoadError) as caught:
        Pipeline.load(rules, engine=ENGINE, verdicts=record)
    assert any("rule test esrd-ulcer-positive-bone-scan" in line for line in caught.value.lines)
    assert len(test_runs) == 3  # the broken set was tested each time, never taken from the record
    assert len(list(record.directory.glob("*.json"))) == 1  # only the first (passing) version


def test_a_failure_is_never_recorded(rules, record, test_runs):
    break_a_rule_test(rules)
    for _ in range(2):
        with pytest.raises(RulesetLoadError):
            Pipeline.load(rules, engine=ENGINE, verdicts=record)
    assert len(test_runs) == 2
    assert not record.directory.exists() or not list(record.directory.glob("*.json"))


def test_the_key_covers_rules_code_libraries_backend_and_the_fact_layer(rules, monkeypatch):
    ruleset = load_or_raise(rules)
    key = verdict_key(ruleset, "durable", True)
    assert verdict_key(ruleset, "durable", True) == key
    assert verdict_key(ruleset, "reference", True) != key
    assert verdict_key(ruleset, "durable", False) != key
    (rules / "cases" / "note.txt").parent.mkdir(exist_ok=True)
    (rules / "cases" / "note.txt").write_text("any file under rules/ counts")
    changed_rules = verdict_key(ruleset, "durable", True)
    assert changed_rules != key
    monkeypatch.setattr(verdicts, "_CODE", [b"another version of the code or of a library"])
    assert verdict_key(ruleset, "durable", True) != changed_rules


def test_a_case_read_from_outside_rules_is_part_of_the_key(rules):
    case = rules.parent / "outside-case.json"  # named from rules/tests/ as ../../outside-case.json
    case.write_text('{"hook": "patient-view", "context": {"patientId": "p"}, "prefetch": {}}')
    tests = rules / "tests" / "sample.yaml"
    tests.write_text(
        tests.read_text().replace(
            "tests:\n",
            "tests:\n  - id: read-from-outside\n    service: calciphylaxis-risk\n"
            "    case: ../../outside-case.json\n    expect: {allow_other_firings: true}\n",
            1,
        )
    )
    ruleset = load_or_raise(rules)
    assert any(t.id == "read-from-outside" for t in ruleset.tests)
    key = verdict_key(ruleset, "reference", True)
    case.write_text('{"hook": "patient-view", "context": {"patientId": "q"}, "prefetch": {}}')
    assert verdict_key(ruleset, "reference", True) != key


def test_an_unwritable_record_only_means_the_tests_run_again(rules, tmp_path, test_runs):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the directory should be")
    record = VerdictRecord(blocked / "verdicts")
    for _ in range(2):
        Pipeline.load(rules, engine=ENGINE, verdicts=record)
    assert len(test_runs) == 2


def test_a_forged_or_damaged_record_is_not_a_pass(rules, record, test_runs):
    Pipeline.load(rules, engine=ENGINE, verdicts=record)
    (path,) = record.directory.glob("*.json")
    path.write_text('{"format": "cds-rule-test-verdict/1", "key": "another key"}')
    Pipeline.load(rules, engine=ENGINE, verdicts=record)
    path.write_text("{not json")
    Pipeline.load(rules, engine=ENGINE, verdicts=record)
    assert len(test_runs) == 3


def test_settings_choose_the_record(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CDS_RULE_TEST_VERDICTS_DIR", raising=False)  # the suite's own (tests/conftest.py)
    assert configured_record(Settings(rule_test_verdicts=False)) is None
    assert configured_record(Settings()).directory == tmp_path / "cache" / "cds" / "rule-test-verdicts"
    chosen = configured_record(Settings(rule_test_verdicts_dir=tmp_path / "here"))
    assert chosen is not None and chosen.directory == tmp_path / "here"
