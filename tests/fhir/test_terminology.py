"""Value-set and analyte files: loading, matching, confidence tags, author-facing errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cds.fhir.terminology import ICD10CM, LOINC, RXNORM, SNOMED, Terminology, TerminologyError
from tests.conftest import RULES_DIR

REQUIRED_CONDITIONS = {
    "esrd",
    "ckd-4-5",
    "dialysis-dependence",
    "kidney-transplant-status",
    "diabetes",
    "long-term-insulin",
    "lower-limb-ulcer",
    "other-chronic-ulcer",
    "calciphylaxis",
    "venous-insufficiency",
    "dvt-history",
    "scleroderma",
    "dermatomyositis",
    "sle",
    "pad",
    "hyperparathyroidism",
    "obesity",
    "hypercalcemia",
    "liver-disease",
    "thrombophilia",
}
REQUIRED_DRUG_CLASSES = {
    "vitamin-k-antagonist",
    "calcium-based-binder",
    "non-calcium-binder",
    "active-vitamin-d",
    "nutritional-vitamin-d",
    "calcimimetic",
    "sodium-thiosulfate",
    "iv-iron",
    "systemic-corticosteroid",
    "insulin",
    "bisphosphonate",
    "gadolinium-contrast",
}
REQUIRED_PROCEDURES = {
    "hemodialysis",
    "peritoneal-dialysis",
    "kidney-transplant",
    "skin-biopsy",
    "parathyroidectomy",
    "bone-scan",
    "ct-imaging",
    "gadolinium-mri",
    "vascular-catheterisation",
}
REQUIRED_ANALYTES = {
    "calcium-total",
    "calcium-ionized",
    "phosphate",
    "pth-intact",
    "albumin",
    "alkaline-phosphatase",
    "vitamin-d-25oh",
    "inr",
    "creatine-kinase",
    "creatinine",
    "egfr",
    "eosinophils",
    "ca-x-p-product",
    "calcium-corrected",
}


def test_rule_set_covers_the_required_concepts(terminology: Terminology) -> None:
    kinds = {vs.id: vs.fact_kind for vs in terminology.valuesets.values()}
    assert {k for k, v in kinds.items() if v == "condition"} >= REQUIRED_CONDITIONS
    assert {k for k, v in kinds.items() if v == "medication"} >= REQUIRED_DRUG_CLASSES
    assert {k for k, v in kinds.items() if v == "procedure"} >= REQUIRED_PROCEDURES
    assert set(terminology.analytes) >= REQUIRED_ANALYTES


def test_every_value_set_cites_known_references() -> None:
    known = {r["id"] for r in yaml.safe_load((RULES_DIR / "references.yaml").read_text())["references"]}
    for path in (RULES_DIR / "valuesets").glob("*.yaml"):
        for vs in yaml.safe_load(path.read_text()).get("valuesets") or []:
            assert vs["references"], vs["id"]
            assert set(vs["references"]) <= known, (path.name, vs["id"])
            assert all(c["confidence"] in ("V", "S", "R") for c in vs["codes"]), vs["id"]
    for analyte in yaml.safe_load((RULES_DIR / "analytes.yaml").read_text())["analytes"]:
        assert set(analyte["references"]) <= known, analyte["id"]


@pytest.mark.parametrize(
    ("system", "code", "valueset", "confidence"),
    [
        # tags as the knowledge sheet §5 gives them
        (ICD10CM, "N18.6", "esrd", "V"),
        (SNOMED, "105502003", "dialysis-dependence", "R"),
        (ICD10CM, "Z79.4", "long-term-insulin", "S"),
        (ICD10CM, "M34.0", "scleroderma", "R"),
        (SNOMED, "237900002", "calciphylaxis", "V"),
        (RXNORM, "11289", "vitamin-k-antagonist", "V"),
        (RXNORM, "1897", "calcium-based-binder", "R"),
    ],
)
def test_confidence_tags_follow_the_knowledge_sheet(terminology, system, code, valueset, confidence) -> None:
    match = next(m for m in terminology.match(system, code) if m.valueset == valueset)
    assert match.confidence == confidence


def test_analyte_codes_include_synthea_variants(terminology: Terminology) -> None:
    assert terminology.analyte_for(LOINC, "49765-1") == "calcium-total"
    assert terminology.analyte_for(LOINC, "38483-4") == "creatinine"
    assert terminology.analyte_for("urn:oid:2.16.840.1.113883.6.1", "17861-6") == "calcium-total"
    assert terminology.analyte_for("http://example.org/local", "17861-6") is None


def _rules(tmp_path: Path, valuesets: str, analytes: str | None = None) -> Path:
    (tmp_path / "valuesets").mkdir()
    (tmp_path / "valuesets" / "test.yaml").write_text(valuesets)
    if analytes is not None:
        (tmp_path / "analytes.yaml").write_text(analytes)
    return tmp_path


VS = (
    "valuesets:\n"
    '  - {id: a, fact_kind: condition, references: [x], codes: [{system: "%s", code: "N18.6", confidence: %s}]}\n'
)


@pytest.mark.parametrize(
    ("valuesets", "analytes", "message"),
    [
        (
            VS % (ICD10CM, "V") + VS.split("\n", 1)[1] % (ICD10CM, "V"),
            None,
            "value set 'a': id already defined",
        ),
        (VS % (ICD10CM, "X"), None, "confidence must be V, S or R"),
        ("valuesets:\n  - {id: a, fact_kind: rule, codes: [{system: s, code: c}]}\n", None, "fact_kind 'rule'"),
        ("valuesets:\n  - {id: a, fact_kind: condition, codes: []}\n", None, "non-empty list of codes"),
        ("valuesets: [\n", None, "not valid YAML"),
        (
            VS % (ICD10CM, "V"),
            "analytes:\n  - {id: x, unit: mg/dL, codes: [{system: 'http://loinc.org', code: 1-8}],"
            " conversions: [{unit: g/L, factor: -1, confidence: V}]}\n",
            "factor must be a positive number",
        ),
        (VS % (ICD10CM, "V"), "analytes:\n  - {id: x, unit: mg/dL}\n", "needs LOINC codes"),
        (VS % (ICD10CM, "V"), "analytes: []\nextraction: {nonhealing_days: 3}\n", "unknown settings"),
        (VS % (ICD10CM, "V"), "analytes: []\nextraction: {ulcer_valuesets: [nope]}\n", "unknown value set 'nope'"),
    ],
)
def test_malformed_files_give_messages_that_name_file_and_entry(tmp_path, valuesets, analytes, message) -> None:
    with pytest.raises(TerminologyError, match=message.replace("(", r"\(").replace("[", r"\[")):
        Terminology.load(_rules(tmp_path, valuesets, analytes))


def test_prefix_semantics(tmp_path: Path) -> None:
    term = Terminology.load(
        _rules(
            tmp_path,
            "valuesets:\n"
            f'  - {{id: dotted, fact_kind: condition, codes: [{{system: "{ICD10CM}", code: "L97.*",'
            " confidence: R}]}\n"
            f'  - {{id: plain, fact_kind: condition, codes: [{{system: "{ICD10CM}", code: "I70.2*",'
            " confidence: R}]}\n",
        )
    )
    assert [m.valueset for m in term.match(ICD10CM, "L97")] == ["dotted"]
    assert [m.valueset for m in term.match(ICD10CM, "l97.419")] == ["dotted"]
    assert [m.valueset for m in term.match(ICD10CM, "L97419")] == ["dotted"]  # undotted form of L97.419
    assert term.match(ICD10CM, "L98.0") == []
    assert [m.valueset for m in term.match(ICD10CM, "I70.25")] == ["plain"]
    assert term.match(ICD10CM, "I70.3") == []
