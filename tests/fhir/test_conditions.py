"""Conditions: concepts through value sets, status, onset/duration, ulcer site and laterality."""

from __future__ import annotations

import pytest

from tests.fhir.conftest import of_kind, one
from tests.fhir.resources import ICD, SCT, bundle, coding, condition


@pytest.mark.parametrize(
    ("code", "concepts"),
    [
        (coding(ICD, "N18.6", "End stage renal disease"), {"esrd", "ckd"}),
        (coding(ICD, "N18.5"), {"ckd-4-5", "ckd"}),
        (coding(ICD, "N18.4"), {"ckd-4-5", "ckd"}),
        (coding(ICD, "Z99.2"), {"dialysis-dependence"}),
        (coding(ICD, "Z94.0"), {"kidney-transplant-status"}),
        (coding(ICD, "E11.22"), {"diabetes"}),
        (coding(ICD, "Z79.4"), {"long-term-insulin"}),
        (coding(ICD, "E83.59"), {"calciphylaxis-icd-nonspecific"}),
        (coding(ICD, "I87.2"), {"venous-insufficiency"}),
        (coding(ICD, "Z86.718"), {"dvt-history"}),
        (coding(ICD, "I82.401"), {"dvt-history", "venous-thromboembolism"}),
        (coding(ICD, "M34.1"), {"scleroderma"}),
        (coding(ICD, "M33.10"), {"dermatomyositis"}),
        (coding(ICD, "M32.14"), {"sle"}),
        (coding(ICD, "I70.201"), {"pad"}),
        (coding(ICD, "N25.81"), {"hyperparathyroidism", "secondary-hyperparathyroidism-renal"}),
        (coding(ICD, "E66.01"), {"obesity"}),
        (coding(ICD, "E83.52"), {"hypercalcemia"}),
        (coding(ICD, "K74.60"), {"liver-disease"}),
        (coding(ICD, "D68.61"), {"thrombophilia"}),
        (coding(ICD, "L98.411"), {"other-chronic-ulcer"}),
        (coding(ICD, "L89.154"), {"pressure-ulcer"}),
        (coding(SCT, "237900002", "Calciphylaxis"), {"calciphylaxis"}),
        (coding(SCT, "399957001"), {"pad"}),
        (coding(SCT, "66931009"), {"hypercalcemia"}),
    ],
)
def test_each_concept_is_recognised(run, code, concepts) -> None:
    facts = run(bundle(condition("c1", code)))
    assert {f.attrs["concept"] for f in of_kind(facts, "condition")} == concepts
    assert all(f.id == f"condition:Condition/c1:{f.attrs['concept']}" for f in facts.facts if f.kind == "condition")


def test_snomed_only_coding_gives_the_same_concept_as_icd(run) -> None:
    facts = run(condition("c1", coding(SCT, "46177005", "End-stage renal disease")))
    fact = one(facts, "condition", concept="esrd")
    assert fact.attrs["system"] == SCT and fact.attrs["code"] == "46177005"
    assert fact.attrs["code_confidence"] == "V"


def test_icd_code_without_dot_and_oid_system_still_match(run) -> None:
    facts = run(condition("c1", coding("urn:oid:2.16.840.1.113883.6.90", "N186")))
    fact = one(facts, "condition", concept="esrd")
    assert fact.attrs["code"] == "N18.6" and fact.attrs["system"] == ICD


def test_category_prefix_does_not_match_a_neighbour(run) -> None:
    # "L97.*" covers L97 and L97.x, not L970 or L98
    facts = run(condition("c1", coding(ICD, "L98.2")))
    assert of_kind(facts, "condition") == []


@pytest.mark.parametrize("verification", ["entered-in-error", "refuted"])
def test_entered_in_error_and_refuted_conditions_give_no_fact(run, verification) -> None:
    facts = run(condition("c1", coding(ICD, "N18.6"), verification=verification))
    assert of_kind(facts, "condition") == []
    assert facts.warnings == ()


@pytest.mark.parametrize(
    ("clinical", "status"),
    [
        ("active", "active"),
        ("recurrence", "active"),
        ("relapse", "active"),
        ("resolved", "history"),
        ("inactive", "history"),
        ("remission", "history"),
    ],
)
def test_clinical_status_maps_to_active_or_history(run, clinical, status) -> None:
    facts = run(
        condition(
            "c1", coding(ICD, "I82.401"), clinical=clinical, abatement="2025-01-01" if status == "history" else None
        )
    )
    assert one(facts, "condition", concept="dvt-history").attrs["status"] == status


def test_missing_clinical_status_with_abatement_is_history(run) -> None:
    facts = run(condition("c1", coding(ICD, "I82.401"), clinical=None, abatement="2025-01-01"))
    fact = one(facts, "condition", concept="dvt-history")
    assert fact.attrs["status"] == "history" and fact.attrs["abated"] == "2025-01-01"


def test_onset_duration_and_verification(run) -> None:
    facts = run(condition("c1", coding(ICD, "N18.6"), onset="2025-03-01", verification="provisional"))
    fact = one(facts, "condition", concept="esrd")
    assert fact.attrs["onset"] == "2025-03-01"
    assert fact.attrs["days_since_onset"] == 365
    assert fact.attrs["verification"] == "provisional"
    assert fact.attrs["source"] == "Condition/c1"


def test_partial_onset_never_overstates_the_duration(run) -> None:
    facts = run(condition("c1", coding(ICD, "N18.6"), onset="2025"))
    fact = one(facts, "condition", concept="esrd")
    assert fact.attrs["onset"] == "2025-01-01"
    assert fact.attrs["days_since_onset"] == 60  # counted from 2025-12-31


@pytest.mark.parametrize(
    ("code", "site", "laterality", "severity", "site_class"),
    [
        ("L97.222", "lower-leg", "left", "fat-exposed", "distal"),
        ("L97.111", "thigh", "right", "skin-breakdown", "central"),
        ("L97.329", "ankle", "left", None, "distal"),
        ("L97.413", "foot", "right", "muscle-necrosis", "distal"),
        ("L97.909", "lower-leg", None, None, "distal"),
        ("L98.412", "buttock", None, "fat-exposed", "central"),
        ("E11.621", "foot", None, None, "distal"),
    ],
)
def test_ulcer_site_laterality_and_severity_from_icd_characters(
    run, code, site, laterality, severity, site_class
) -> None:
    facts = run(condition("c1", coding(ICD, code)))
    fact = next(
        f
        for f in facts.facts
        if f.kind == "condition" and f.attrs["concept"] in ("lower-limb-ulcer", "other-chronic-ulcer")
    )
    assert fact.attrs["site"] == site
    assert fact.attrs.get("laterality") == laterality
    assert fact.attrs.get("severity") == severity
    assert fact.attrs["site_class"] == site_class
    assert fact.attrs["chronic"] is True  # a chronic-ulcer code is chronic by definition


def test_snomed_ulcer_site_from_body_site_and_nonhealing_by_weeks(run) -> None:
    long_open = condition(
        "c1",
        coding(SCT, "46742003", "Skin ulcer"),
        onset="2025-12-01",
        body_site=[coding(SCT, "113345001", "Abdominal structure"), coding(SCT, "7771000", "Left")],
    )
    recent = condition(
        "c2",
        coding(SCT, "46742003", "Skin ulcer"),
        onset="2026-02-20",
        body_site=[coding(SCT, "53840002"), coding(SCT, "24028007")],
    )
    facts = run(bundle(long_open, recent))
    old = one(facts, "condition", concept="skin-ulcer", source="Condition/c1")
    new = one(facts, "condition", concept="skin-ulcer", source="Condition/c2")
    assert (old.attrs["site"], old.attrs["laterality"], old.attrs["site_class"]) == ("abdomen", "left", "central")
    assert old.attrs["chronic"] is True  # open 90 days > 6 weeks
    assert (new.attrs["site"], new.attrs["laterality"], new.attrs["site_class"]) == (
        "calf",
        "right",
        "distal",
    )  # calf: part of lower-leg (rules/findings/sites.yaml)
    assert new.attrs["chronic"] is False  # open 9 days


def test_healed_ulcer_counts_weeks_until_abatement(run) -> None:
    healed = condition("c1", coding(SCT, "46742003"), clinical="resolved", onset="2025-01-01", abatement="2025-01-20")
    fact = one(run(healed), "condition", concept="skin-ulcer")
    assert fact.attrs["status"] == "history" and fact.attrs["chronic"] is False


def test_one_fact_per_value_set_and_none_for_unrelated_codes(run) -> None:
    facts = run(
        bundle(
            condition("c1", coding(ICD, "N18.6"), coding(SCT, "46177005")),
            condition("c2", coding(SCT, "195662009", "Acute viral pharyngitis")),
        )
    )
    assert sorted(f.id for f in of_kind(facts, "condition")) == [
        "condition:Condition/c1:ckd",
        "condition:Condition/c1:esrd",
    ]


def test_nonhealing_weeks_is_configurable(terminology) -> None:
    import dataclasses

    from cds.fhir import extract_facts
    from tests.fhir.conftest import NOW

    ulcer = condition("c1", coding(SCT, "46742003"), onset="2026-02-01")  # open 28 days
    stricter = dataclasses.replace(terminology, settings=dataclasses.replace(terminology.settings, nonhealing_weeks=3))
    default = extract_facts({}, {"r": ulcer}, NOW, terminology)
    three_weeks = extract_facts({}, {"r": ulcer}, NOW, stricter)
    assert one(default, "condition", concept="skin-ulcer").attrs["chronic"] is False  # 28 days < 6 weeks
    assert one(three_weeks, "condition", concept="skin-ulcer").attrs["chronic"] is True  # 28 days > 3 weeks


def test_only_non_pressure_chronic_ulcer_codes_are_chronic_by_code(run) -> None:
    facts = run(
        bundle(
            condition("l97", coding(ICD, "L97.221"), onset="2026-02-25"),
            condition("foot", coding(ICD, "E11.621"), onset="2026-02-25"),
            condition("pressure", coding(ICD, "L89.153"), onset="2026-02-25"),
        )
    )
    assert one(facts, "condition", source="Condition/l97").attrs["chronic"] is True
    assert one(facts, "condition", source="Condition/foot", concept="lower-limb-ulcer").attrs["chronic"] is False
    assert one(facts, "condition", source="Condition/pressure").attrs["chronic"] is False
