"""Lab results with comparators and SI units (UCUM), as laboratories report them (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cds.fhir import extract_facts

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
UCUM = "http://unitsofmeasure.org"


def _pth(oid: str, loinc: str, value: float, unit: str, comparator: str | None = None) -> dict:
    quantity = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    if comparator:
        quantity["comparator"] = comparator
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-02-20T08:00:00Z",
        "valueQuantity": quantity,
    }


def _lab(terminology, obs: dict) -> dict:  # type: ignore[no-untyped-def]
    result = extract_facts({"patientId": "p1"}, {"labs": obs}, NOW, terminology)
    return dict(next(f for f in result.facts if f.id == "lab:pth-intact").attrs)


def test_si_pth_with_comparator_is_converted_and_stays_censored(terminology) -> None:
    # LOINC 14866-8 Parathyrin.intact [Moles/volume]; 28 pmol/L x 9.43 = 264 pg/mL.
    lab = _lab(terminology, _pth("o1", "14866-8", 28, "pmol/L", ">"))
    assert "value" not in lab
    assert lab["comparator"] == ">" and lab["limit"] == pytest.approx(264.04)
    assert lab["value_at_least"] == pytest.approx(264.04) and "value_at_most" not in lab


def test_upper_assay_limit_establishes_a_lower_bound(terminology) -> None:
    lab = _lab(terminology, _pth("o2", "2731-8", 2000, "pg/mL", ">"))
    assert lab["value_at_least"] == 2000 and "value" not in lab


def test_less_than_establishes_only_an_upper_bound(terminology) -> None:
    lab = _lab(terminology, _pth("o3", "2731-8", 6, "pg/mL", "<"))
    assert lab["value_at_most"] == 6 and "value_at_least" not in lab


def test_point_value_in_si_units(terminology) -> None:
    lab = _lab(terminology, _pth("o4", "14866-8", 120, "pmol/L"))
    assert lab["value"] == pytest.approx(1131.6) == lab["value_at_least"] == lab["value_at_most"]
