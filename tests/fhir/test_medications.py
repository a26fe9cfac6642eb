"""Medications: RxNorm -> drug classes, references, status and windows, exposure."""

from __future__ import annotations

import pytest

from tests.fhir.conftest import of_kind, one
from tests.fhir.resources import RXNORM, bundle, coding, medication, medication_request


@pytest.mark.parametrize(
    ("code", "drug_class"),
    [
        ("11289", "vitamin-k-antagonist"),
        ("855332", "vitamin-k-antagonist"),  # Synthea's warfarin sodium 5 MG tablet
        ("202421", "vitamin-k-antagonist"),  # Coumadin
        ("214342", "calcium-based-binder"),
        ("1897", "calcium-based-binder"),
        ("214824", "non-calcium-binder"),
        ("1894", "active-vitamin-d"),
        ("73710", "active-vitamin-d"),
        ("2418", "nutritional-vitamin-d"),
        ("284635", "calcimimetic"),
        ("56466", "sodium-thiosulfate"),
        ("24909", "iv-iron"),
        ("8640", "systemic-corticosteroid"),
        ("274783", "insulin"),
        ("106892", "insulin"),  # Synthea's Humulin 70/30
        ("46041", "bisphosphonate"),
        ("1311611", "gadolinium-contrast"),
    ],
)
def test_each_drug_class(run, code, drug_class) -> None:
    facts = run(bundle(medication_request("m1", coding(RXNORM, code))))
    fact = one(facts, "medication", drug_class=drug_class)
    assert fact.id == f"medication:MedicationRequest/m1:{drug_class}"
    assert fact.attrs["status"] == "active" and fact.attrs["code"] == code


def test_warfarin_codes_are_verified_and_recalled_codes_say_so(run) -> None:
    facts = run(
        bundle(medication_request("m1", coding(RXNORM, "11289")), medication_request("m2", coding(RXNORM, "1894")))
    )
    assert one(facts, "medication", drug_class="vitamin-k-antagonist").attrs["code_confidence"] == "V"
    assert one(facts, "medication", drug_class="active-vitamin-d").attrs["code_confidence"] == "R"


def test_contained_medication(run) -> None:
    contained = medication(
        "med", coding(RXNORM, "999999", "Warfarin 5 MG compounded"), ingredient=coding(RXNORM, "11289", "warfarin")
    )
    facts = run(medication_request("m1", reference="#med", contained=[contained]))
    fact = one(facts, "medication", drug_class="vitamin-k-antagonist")
    assert fact.attrs["code"] == "11289"


def test_medication_reference_by_urn_uuid(run) -> None:
    med = medication("8c6f0a8e-6a5b-4c1f-9d1e-2f4a7b9c0d11", coding(RXNORM, "214342", "calcium acetate"))
    order = medication_request("m1", reference="urn:uuid:8c6f0a8e-6a5b-4c1f-9d1e-2f4a7b9c0d11")
    facts = run(bundle(med, order, urn=True, btype="collection"))
    assert one(facts, "medication", drug_class="calcium-based-binder").attrs["source"] == "MedicationRequest/m1"


def test_medication_reference_relative(run) -> None:
    facts = run(
        bundle(medication("calcitriol", coding(RXNORM, "1894"))),
        medication_request("m1", reference="Medication/calcitriol"),
    )
    one(facts, "medication", drug_class="active-vitamin-d")


def test_unresolvable_medication_reference_gives_no_fact_and_no_crash(run) -> None:
    facts = run(medication_request("m1", reference="Medication/missing"))
    assert of_kind(facts, "medication") == []


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        ("active", True),
        ("on-hold", True),
        ("completed", True),
        ("stopped", False),
        ("cancelled", False),
        ("entered-in-error", False),
        ("draft", False),
    ],
)
def test_status(run, status, counted) -> None:
    facts = run(medication_request("m1", coding(RXNORM, "11289"), status=status, authored="2025-10-01"))
    assert bool(of_kind(facts, "medication")) is counted


def test_completed_orders_count_only_within_the_window(run) -> None:
    facts = run(
        bundle(
            medication_request("old", coding(RXNORM, "11289"), status="completed", authored="2023-01-01"),
            medication_request("new", coding(RXNORM, "11289"), status="completed", authored="2025-12-01"),
        )
    )
    assert [f.attrs["source"] for f in of_kind(facts, "medication")] == ["MedicationRequest/new"]


def test_exposure_starts_with_the_earliest_counted_order(run) -> None:
    facts = run(
        bundle(
            medication_request("r1", coding(RXNORM, "855332"), status="completed", authored="2025-06-01"),
            medication_request("r2", coding(RXNORM, "855332"), authored="2026-01-01", route="Oral"),
        )
    )
    latest = one(facts, "medication", source="MedicationRequest/r2")
    assert latest.attrs["start"] == "2026-01-01" and latest.attrs["days_since_start"] == 59
    assert latest.attrs["first_start"] == "2025-06-01" and latest.attrs["days_since_first_start"] == 273
    assert latest.attrs["route"] == "oral"


def test_medication_statement(run) -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "s1",
        "status": "active",
        "medicationCodeableConcept": {"coding": [coding(RXNORM, "1894", "calcitriol")]},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2025-11-01"},
        "dosage": [{"route": {"coding": [coding("http://snomed.info/sct", "26643006", "Oral route")]}}],
    }
    fact = one(run(statement), "medication", drug_class="active-vitamin-d")
    assert fact.attrs["resource_type"] == "MedicationStatement"
    assert fact.attrs["start"] == "2025-11-01" and fact.attrs["route"] == "oral route"


def test_unrelated_medications_are_not_validated_or_reported(run) -> None:
    facts = run(medication_request("m1", coding(RXNORM, "314076", "lisinopril 10 MG Oral Tablet")))
    assert of_kind(facts, "medication") == [] and facts.warnings == ()
