"""Authoring safety (issue 17 items 1, 2, 3 and 9): what reached a clinician or crashed the validator
in the informaticist's trial (../shared/reviews/rule-authoring.md §2) is now refused at its place."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.engine.loader import load_ruleset
from cds.engine.safety import scan_characters
from cds.engine.yamlpos import YamlSyntaxError, load_positioned
from tests.conftest import REPO, RULES_DIR
from tests.engine.helpers import copy_rules, write
from tests.engine.test_loader import VALID_RULE, diagnostics_for

LR_AT = "rules/rules/probe.yaml:11:57: E016"


# --------------------------------------------------------------------------- 1. numbers
@pytest.mark.parametrize("bad", [".nan", ".NaN", ".inf", "-.inf", "1.0e+308", "999999999999.0", "1000.5"])
def test_absurd_likelihood_ratios_are_refused_at_their_place(tmp_path, bad):
    # The trial served "Calciphylaxis possible (nan%)" and a >99% card to a vasculitis patient.
    lines = diagnostics_for(tmp_path, VALID_RULE.replace("likelihood_ratio: 1.2", f"likelihood_ratio: {bad}"))
    assert any(line.startswith(LR_AT) for line in lines), lines
    assert load_ruleset(tmp_path / "rules").ruleset is None


@pytest.mark.parametrize("good", ["0.001", "1000", "1000.0", "0.5"])
def test_likelihood_ratios_inside_the_stated_range_load(tmp_path, good):
    lines = diagnostics_for(tmp_path, VALID_RULE.replace("likelihood_ratio: 1.2", f"likelihood_ratio: {good}"))
    assert not [line for line in lines if " E0" in line], lines


def test_non_finite_diagnostic_test_ratio_and_cap_are_refused(tmp_path):
    rules = copy_rules(tmp_path)
    hypotheses = rules / "hypotheses.yaml"
    text = hypotheses.read_text()
    assert "lr_positive:" in text
    import re

    text = re.sub(r"lr_positive: [0-9.]+", "lr_positive: .inf", text, count=1)
    hypotheses.write_text(text)
    result = load_ruleset(rules)
    assert result.ruleset is None
    assert any(
        d.code == "E016" and "finite" in d.message and d.file == "rules/hypotheses.yaml" and d.line > 0
        for d in result.diagnostics
    ), result.diagnostics


@pytest.mark.parametrize(
    ("threshold", "what"),
    [
        ('{">": .nan}', "not a finite number"),
        ('{">": 5000}', "plausible range"),  # phosphate > 5000 mg/dL: a unit slip, never met
        ('{"<": -1}', "plausible range"),
    ],
)
def test_lab_thresholds_must_be_finite_and_plausible_for_the_analyte(tmp_path, threshold, what):
    rules = copy_rules(tmp_path)
    write(rules / "analytes.yaml", "analytes:\n  - {id: phosphate, unit: mg/dL, low: 2.5, high: 4.5}\n")
    write(rules / "rules" / "probe.yaml", VALID_RULE.replace('{">": 5.5}', threshold))
    lines = [str(d) for d in load_ruleset(rules).errors]
    assert any(line.startswith("rules/rules/probe.yaml:8:") and " E031 " in line and what in line for line in lines), (
        lines
    )


def test_age_threshold_outside_a_human_lifespan_is_refused(tmp_path):
    rule = VALID_RULE.replace(
        '      - lab: {analyte: phosphate, value: {">": 5.5}}', '      - patient: {age_years: {">": 365}}'
    )
    lines = diagnostics_for(tmp_path, rule)
    assert any(" E031 " in line and "patient.age_years" in line for line in lines), lines


def test_non_finite_number_in_a_value_set_file_is_reported(tmp_path):
    rules = copy_rules(tmp_path)
    write(rules / "analytes.yaml", "analytes:\n  - {id: phosphate, unit: mg/dL, high: .inf}\n")
    lines = [str(d) for d in load_ruleset(rules).errors]
    assert any(line.startswith("rules/analytes.yaml:2:") and " E031 " in line for line in lines), lines


# --------------------------------------------------------------------------- characters
@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\u202e", "RIGHT-TO-LEFT OVERRIDE"),
        ("\u200b", "ZERO WIDTH SPACE"),
        ("\u2066", "LEFT-TO-RIGHT ISOLATE"),
        ("\u009f", "control character U+009F"),
        ("\x07", "control character U+0007"),
    ],
)
def test_control_bidi_and_invisible_characters_are_reported_at_line_and_column(tmp_path, char, name):
    text = VALID_RULE.replace("Probe rule", f"Probe {char}rule")
    lines = diagnostics_for(tmp_path, text)
    # "    title: Probe " is 17 characters: the character is column 18 of line 3
    assert any(line.startswith("rules/rules/probe.yaml:3:18: E032") and name in line for line in lines), lines


def test_a_c1_control_character_never_raises(tmp_path):
    # The trial's traceback: yaml.reader.ReaderError, no file, no line.
    rules = copy_rules(tmp_path)
    write(rules / "rules" / "probe.yaml", VALID_RULE.replace("Probe rule", "Probe\u009f rule"))
    result = load_ruleset(rules)
    assert result.ruleset is None
    assert str(result.errors[0]).startswith("rules/rules/probe.yaml:3:")


def test_ordinary_unicode_in_clinical_text_is_allowed():
    assert scan_characters("title: naïve ≥1 code — Ωmega 🧪 (µmol/L)\n") == []
    assert scan_characters("\ufeffruleset: {version: 1}\n") == []  # a leading byte-order mark


YAML_ALPHABET = st.sampled_from(
    list("ab:- \n\t{}[],'\"#&*!|>%@`0.9e+") + ["\u202e", "\u009f", "\x00", "\ud800", "é", "\ufeff"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=YAML_ALPHABET, max_size=80))
def test_no_text_makes_the_yaml_reader_raise_anything_but_a_positioned_error(text):
    try:
        load_positioned(text)
    except YamlSyntaxError as exc:
        assert exc.line >= 1 and exc.column >= 1


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    position=st.integers(min_value=0, max_value=len(VALID_RULE)),
    insert=st.text(alphabet=YAML_ALPHABET, min_size=1, max_size=6),
)
def test_no_mutation_of_a_rule_file_makes_the_validator_raise(tmp_path_factory, position, insert):
    rules = tmp_path_factory.mktemp("fuzz") / "rules"
    if not rules.exists():
        shutil.copytree(RULES_DIR.parent / "tests" / "engine" / "fixtures" / "sample" / "rules", rules)
    # bytes, so that a lone surrogate reaches the disk as invalid UTF-8 (a broken file, E006)
    (rules / "rules" / "probe.yaml").write_bytes(
        (VALID_RULE[:position] + insert + VALID_RULE[position:]).encode("utf-8", "surrogatepass")
    )
    result = load_ruleset(rules)  # must not raise
    for d in result.diagnostics:
        assert d.code and d.file


# --------------------------------------------------------------------------- 2. root causes first
def test_one_quoted_likelihood_ratio_is_one_error_with_its_consequences_folded(tmp_path):
    rules = copy_rules(tmp_path)
    path = rules / "rules" / "risk-factors.yaml"
    text = path.read_text()
    assert "likelihood_ratio: 3.0\n" in text
    path.write_text(text.replace("likelihood_ratio: 3.0\n", 'likelihood_ratio: "3.0"\n', 1))
    result = load_ruleset(rules)
    errors = result.errors
    assert errors[0].code == "E003" and errors[0].file == "rules/rules/risk-factors.yaml"
    # only the one rule is dropped; what names it (its tests) is folded under the root
    assert len(errors) == 1, [str(e) for e in errors]
    assert result.consequences and "consequence" in errors[0].message


def test_a_syntax_error_leads_and_the_rest_is_folded(tmp_path):
    rules = copy_rules(tmp_path)
    path = rules / "rules" / "risk-factors.yaml"
    lines = path.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith("    title:"))
    lines[index] = "   " + lines[index].lstrip(" ").replace("title:", "   title:", 1)
    path.write_text("".join(lines))
    result = load_ruleset(rules)
    errors = result.errors
    assert errors[0].code == "E001" and errors[0].file == "rules/rules/risk-factors.yaml", [str(e) for e in errors]
    assert len(result.consequences) > 0
    assert f"and {len(result.consequences)} consequence" in errors[0].message
    assert all(e.code not in {"E028", "E030"} for e in errors), [str(e) for e in errors]


def test_reload_log_and_readiness_lead_with_the_root_cause(tmp_path):
    from cds.pipeline import RulesetLoadError, _build

    rules = copy_rules(tmp_path)
    path = rules / "rules" / "risk-factors.yaml"
    path.write_text(path.read_text().replace("rules:\n", "rules:\n  - [\n", 1))
    with pytest.raises(RulesetLoadError) as caught:
        _build(rules, "org.calciphylaxis-cds", "reference")
    assert " E001 " in caught.value.lines[0], caught.value.lines[:3]


# --------------------------------------------------------------------------- 3. relocatable
def test_case_paths_resolve_relative_to_the_file_naming_them(tmp_path):
    rules = copy_rules(tmp_path)
    case = write(rules / "tests" / "cases" / "probe.json", '{"hook": "patient-view", "context": {}, "prefetch": {}}')
    assert case.is_file()
    write(
        rules / "tests" / "probe.yaml",
        """\
tests:
  - id: probe-case-beside
    service: calciphylaxis-risk
    case: cases/probe.json
    expect: {no_cards: true}
""",
    )
    result = load_ruleset(rules)
    assert not [d for d in result.errors if d.rule_id == "probe-case-beside"], [str(d) for d in result.errors]
    write(
        rules / "tests" / "probe.yaml",
        (rules / "tests" / "probe.yaml").read_text().replace("cases/probe.json", "cases/missing.json"),
    )
    assert any(d.code == "E028" and d.line == 4 for d in load_ruleset(rules).errors)


def test_a_copied_rule_set_validates_and_its_tests_find_their_cases(tmp_path):
    target = tmp_path / "elsewhere"
    shutil.copytree(RULES_DIR, target)
    proc = subprocess.run(
        [sys.executable, "-m", "cds.cli", "rules", "validate", "--rules", str(target)],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert "E028" not in proc.stderr, proc.stderr[:2000]


def test_an_unused_value_set_is_reported_at_its_definition(tmp_path):
    # The trial: "W101 value set 'x' is used by no rule" with no file or line.
    rules = copy_rules(tmp_path)
    write(
        rules / "valuesets" / "extra.yaml",
        """\
valuesets:
  - id: kidney-stone
    title: Kidney stones
    fact_kind: condition
    codes:
      - {system: "http://snomed.info/sct", code: "95570007", display: "Kidney stone", confidence: S}
""",
    )
    found = [d for d in load_ruleset(rules).diagnostics if d.code == "W101" and "'kidney-stone'" in d.message]
    assert [(d.file, d.line, d.column) for d in found] == [("rules/valuesets/extra.yaml", 2, 5)]


def test_a_reload_refused_by_a_failing_rule_test_names_the_test_file_and_line(tmp_path):
    from cds.pipeline import RulesetLoadError, _build

    rules = copy_rules(tmp_path)
    imaging = rules / "rules" / "imaging.yaml"
    imaging.write_text(imaging.read_text().replace("likelihood_ratio: 29.7", "likelihood_ratio: 2.97"))
    with pytest.raises(RulesetLoadError) as caught:
        _build(rules, "org.calciphylaxis-cds", "reference")
    line = next(line for line in caught.value.lines if "rule test esrd-ulcer-positive-bone-scan" in line)
    assert line.startswith("rules/tests/sample.yaml:"), line
