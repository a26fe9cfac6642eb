"""Loader and lint: each kind of mistake is reported at its file, line and column with a stable code."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cds.engine.loader import load_ruleset
from cds.engine.model import json_schema
from tests.conftest import RULES_DIR
from tests.engine.helpers import copy_rules, write

VALID_RULE = """\
rules:
  - id: probe
    title: Probe rule
    version: 1
    status: active
    references: [weenig-2007]
    when:
      - lab: {analyte: phosphate, value: {">": 5.5}}
    then:
      evidence:
        - {hypothesis: calciphylaxis, likelihood_ratio: 1.2, reference: weenig-2007, confidence: R}
"""


def diagnostics_for(tmp_path: Path, text: str, name: str = "rules/rules/probe.yaml") -> list[str]:
    rules = copy_rules(tmp_path)
    write(rules / name.removeprefix("rules/"), textwrap.dedent(text))
    result = load_ruleset(rules)
    # W101 (value set used by no rule) stands for the bundled terminology, not for the probe.
    return [str(d) for d in result.diagnostics if d.severity != "note" and d.code != "W101"]


def test_sample_pack_loads_and_lints_clean():
    result = load_ruleset(RULES_DIR)
    assert result.ruleset is not None
    # W101 (value set used by no rule) is expected while the terminology in rules/valuesets/
    # covers more concepts than the rules use; every other finding must be absent.
    assert [d for d in result.diagnostics if d.severity != "note" and d.code != "W101"] == []
    assert len(result.ruleset.compiled.rules) >= 8


def test_valid_probe_rule_gives_only_the_untested_warning(tmp_path):
    # The baseline every mistake below is a one-line change of.
    assert diagnostics_for(tmp_path, VALID_RULE) == [
        "rules/rules/probe.yaml:2:9: W103 no rule test expects this rule to fire (probe)"
    ]


# (replace this, with this, expected "file:line:col: CODE")
MISTAKES = [
    pytest.param(
        "    status: active\n",
        "    status: active\n    when: [\n",
        "rules/rules/probe.yaml:8:5: E001",
        id="yaml-syntax",
    ),
    pytest.param(
        "    version: 1\n", "    version: 1\n    author: me\n", "rules/rules/probe.yaml:5:5: E002", id="unknown-key"
    ),
    pytest.param("    version: 1\n", "    version: one\n", "rules/rules/probe.yaml:4:14: E003", id="wrong-type"),
    pytest.param("    title: Probe rule\n", "", "rules/rules/probe.yaml:2:5: E004", id="missing-key"),
    pytest.param(
        "  - id: probe\n",
        "  - id: warfarin-in-kidney-failure\n",
        "rules/rules/risk-factors.yaml:2:9: E010 duplicate rule id 'warfarin-in-kidney-failure'"
        " (first defined at rules/rules/probe.yaml:2)",
        id="duplicate-id",
    ),
    pytest.param(
        "hypothesis: calciphylaxis",
        "hypothesis: calciphylaxia",
        "rules/rules/probe.yaml:11:24: E012",
        id="undefined-hypothesis",
    ),
    pytest.param(
        "reference: weenig-2007",
        "reference: weenig-2077",
        "rules/rules/probe.yaml:11:73: E013",
        id="undefined-reference",
    ),
    pytest.param("      - lab: {", "      - labs: {", "rules/rules/probe.yaml:8:9: E014", id="unknown-fact-kind"),
    pytest.param("value: {", "valeu: {", "rules/rules/probe.yaml:8:35: E015", id="unknown-attribute"),
    pytest.param(
        "likelihood_ratio: 1.2", "likelihood_ratio: -2", "rules/rules/probe.yaml:11:57: E016", id="lr-negative"
    ),
    pytest.param("likelihood_ratio: 1.2", "likelihood_ratio: 0", "rules/rules/probe.yaml:11:57: E016", id="lr-zero"),
    pytest.param(", reference: weenig-2007", "", "rules/rules/probe.yaml:11:11: E017", id="evidence-without-reference"),
    pytest.param('{">": 5.5}', '{">": "high"}', "rules/rules/probe.yaml:8:48: E003", id="ordering-a-text-literal"),
    pytest.param(
        'value: {">": 5.5}', 'value: "5.5"', "rules/rules/probe.yaml:8:42: E020", id="number-attribute-vs-text"
    ),
    pytest.param(
        '{analyte: phosphate, value: {">": 5.5}}',
        '{analyte: phosphate, value: {">": 7, "<": 5}}',
        "rules/rules/probe.yaml:8:42: E021",
        id="contradiction-never-fires",
    ),
    pytest.param(
        "      - lab:",
        "      - derived: {name: nobody-derives-this}\n      - lab:",
        "rules/rules/probe.yaml:8:25: E021",
        id="derived-fact-never-derived",
    ),
    pytest.param(
        "      evidence:",
        "      cards: [no-such-card]\n      evidence:",
        "rules/rules/probe.yaml:10:15: E018",
        id="undefined-card",
    ),
    pytest.param(
        "      - lab:",
        "      - condition: {concept: esrd}\n"
        "      - lab: {analyte: phosphate, value: {same_as: nobody.value}}\n      - lab:",
        "rules/rules/probe.yaml:9:42: E019",
        id="join-unknown-alias",
    ),
    pytest.param("  - id: probe", "  - id: Probe_1", "rules/rules/probe.yaml:2:9: E003", id="bad-id"),
    pytest.param("    status: active", "    status: live", "rules/rules/probe.yaml:5:13: E003", id="bad-status"),
]


@pytest.mark.parametrize(("old", "new", "expected"), MISTAKES)
def test_mistakes_are_reported_at_their_position(tmp_path, old, new, expected):
    assert old in VALID_RULE
    lines = diagnostics_for(tmp_path, VALID_RULE.replace(old, new, 1))
    assert any(line.startswith(expected) for line in lines), "\n".join(lines)


def test_messages_name_the_rule(tmp_path):
    lines = diagnostics_for(tmp_path, VALID_RULE.replace("weenig-2007", "weenig-2077"))
    assert lines[0].endswith("undefined reference 'weenig-2077' (probe)")


def test_duplicate_yaml_key_is_reported(tmp_path):
    lines = diagnostics_for(tmp_path, VALID_RULE.replace("    version: 1\n", "    version: 1\n    version: 2\n"))
    assert any(line.startswith("rules/rules/probe.yaml:5:5: E005") for line in lines), lines


def test_undefined_and_unused_value_sets_when_value_sets_exist(tmp_path):
    rules = copy_rules(tmp_path)
    write(
        rules / "valuesets" / "probe.yaml",
        textwrap.dedent("""\
        valuesets:
          - {id: esrd, fact_kind: condition, codes: [{system: "http://hl7.org/fhir/sid/icd-10-cm", code: N18.6}]}
          - {id: lower-limb-ulcer, fact_kind: condition,
             codes: [{system: "http://hl7.org/fhir/sid/icd-10-cm", code: "L97.*"}]}
          - {id: vitamin-k-antagonist, fact_kind: medication, codes: []}
          - {id: never-used, fact_kind: condition, codes: []}
        """),
    )
    write(
        rules / "rules" / "probe.yaml",
        VALID_RULE.replace('lab: {analyte: phosphate, value: {">": 5.5}}', "condition: {concept: {in: [esrd, esdr]}}"),
    )
    lines = [str(d) for d in load_ruleset(rules).diagnostics]
    assert any(line.startswith("rules/rules/probe.yaml:8:30: E011 undefined value set 'esdr'") for line in lines), lines
    assert any("W101 value set 'never-used' is used by no rule" in line for line in lines), lines


def test_card_placeholder_and_service_are_checked(tmp_path):
    rules = copy_rules(tmp_path)
    cards = (rules / "cards.yaml").read_text()
    cards = cards.replace("{posterior:calciphylaxis}): consider", "{posterior:calciphylaxsis}): consider", 1)
    cards = cards.replace(
        "services: [calciphylaxis-risk, calciphylaxis-risk-encounter]",
        "services: [calciphylaxis-risk, no-such-service]",
    )
    (rules / "cards.yaml").write_text(cards)
    lines = [str(d) for d in load_ruleset(rules).errors]
    assert any(line.startswith("rules/cards.yaml:17:14: E022") and "calciphylaxsis" in line for line in lines), lines
    assert any(line.startswith("rules/cards.yaml:6:36: E024") for line in lines), lines


def test_invalid_fhir_resource_in_a_suggestion_is_refused(tmp_path):
    rules = copy_rules(tmp_path)
    cards = (
        (rules / "cards.yaml")
        .read_text()
        .replace('subject: {reference: "Patient/{patient_id}"}', 'subject: "Patient/{patient_id}"')
    )
    (rules / "cards.yaml").write_text(cards)
    lines = [str(d) for d in load_ruleset(rules).errors]
    assert any(" E027 invalid ServiceRequest" in line for line in lines), lines


def test_missing_prior_for_a_population(tmp_path):
    rules = copy_rules(tmp_path)
    text = (rules / "hypotheses.yaml").read_text()
    start = text.index("      - population: general\n        probability: 0.0005")
    end = text.index("    tests:")
    (rules / "hypotheses.yaml").write_text(text[:start] + text[end:])
    lines = [str(d) for d in load_ruleset(rules).errors]
    assert any("E023 no prior for population 'general' (calciphylaxis)" in line for line in lines), lines


def test_derivation_cycle_is_refused(tmp_path):
    lines = diagnostics_for(
        tmp_path,
        """\
        rules:
          - id: a-from-b
            title: A from B
            version: 1
            status: active
            when: [{derived: {name: b}}]
            then: {derive: {name: a}}
          - id: b-from-a
            title: B from A
            version: 1
            status: active
            when: [{derived: {name: a}}]
            then: {derive: {name: b}}
        """,
    )
    assert sum(" E025 " in line for line in lines) == 2, lines


def test_rule_test_referring_to_unknown_rule(tmp_path):
    rules = copy_rules(tmp_path)
    text = (
        (rules / "tests" / "sample.yaml")
        .read_text()
        .replace("fired: [population-kidney-failure]", "fired: [population-kidney-failur]")
    )
    (rules / "tests" / "sample.yaml").write_text(text)
    lines = [str(d) for d in load_ruleset(rules).errors]
    assert any("E028 undefined rule 'population-kidney-failur'" in line for line in lines), lines


def test_checked_in_schema_matches_the_models():
    checked_in = json.loads((RULES_DIR / "schema.json").read_text(encoding="utf-8"))
    assert checked_in == json_schema(), "run `cds rules schema > rules/schema.json`"


def test_rule_files_validate_against_the_exported_schema():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    validator = jsonschema.Draft202012Validator(json_schema())
    for path in sorted(RULES_DIR.rglob("*.yaml")):
        if path.name in {"services.yaml", "analytes.yaml"} or {"valuesets", "findings"} & set(path.parts):
            continue
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert not errors, f"{path}: {errors[0].message}"


def test_rule_numbers_are_limited_to_what_both_backends_compare_alike(tmp_path):
    lines = diagnostics_for(tmp_path, VALID_RULE.replace('{">": 5.5}', '{">": 5.1234567}'))
    assert any(line.startswith("rules/rules/probe.yaml:8:42: E003") and "6 decimals" in line for line in lines), lines
