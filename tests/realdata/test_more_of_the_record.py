"""MedicationStatement and MedicationAdministration become medication facts (issue 13 item 2)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from cds.fhir import extract_facts
from tests.conftest import shared_data

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _meds(terminology, *resources) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    result = extract_facts({"patientId": "p1"}, {f"k{i}": r for i, r in enumerate(resources)}, NOW, terminology)
    return {f.attrs["source"]: dict(f.attrs) for f in result.facts if f.kind == "medication"}


def test_home_warfarin_recorded_as_a_statement(terminology) -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "home-1",
        "status": "active",
        "medicationCodeableConcept": {"text": "Coumadin 5 mg tablet, 1 daily"},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2025-06-01"},
        "dateAsserted": "2026-02-01",
        "informationSource": {"reference": "Patient/p1"},
    }
    fact = _meds(terminology, statement)["MedicationStatement/home-1"]
    assert fact["drug_class"] == "vitamin-k-antagonist" and fact["resource_type"] == "MedicationStatement"
    assert fact["start"] == "2025-06-01" and fact["recognised_by"] == "text"


def test_inpatient_thiosulfate_administration(terminology) -> None:
    administration = {
        "resourceType": "MedicationAdministration",
        "id": "adm-1",
        "status": "completed",
        "medicationCodeableConcept": {"text": "Sodium thiosulfate 25 g in 100 mL NS"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-02-27T14:00:00Z",
        "dosage": {
            "route": {"text": "Intravenous"},
            "dose": {"value": 25, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"},
        },
    }
    fact = _meds(terminology, administration)["MedicationAdministration/adm-1"]
    assert fact["drug_class"] == "sodium-thiosulfate" and fact["route"] == "intravenous"
    assert fact["resource_type"] == "MedicationAdministration"


def test_not_taken_and_stopped_statements_are_not_exposure(terminology) -> None:
    base = {
        "resourceType": "MedicationStatement",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "11289", "display": "warfarin"}]},
        "effectiveDateTime": "2026-01-01",
    }
    assert (
        _meds(terminology, {**base, "id": "s1", "status": "not-taken"}, {**base, "id": "s2", "status": "stopped"}) == {}
    )


def test_hl7_medication_statement_and_administration_examples_read(terminology) -> None:
    for name in ("MedicationStatement-example001.json", "MedicationStatement-example002.json"):
        resource = orjson.loads(shared_data("hl7-r4-examples", name).read_bytes())
        result = extract_facts({}, {"r": resource}, NOW, terminology)
        assert not [w for w in result.warnings if "invalid" in w.message], (name, result.warnings)
