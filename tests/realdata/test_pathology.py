"""Pathology DiagnosticReports give the skin-biopsy result (issue 13 item 2): read like radiology
text, with negation and uncertainty. Reports written as US pathology departments send them
(category HL7 v2-0074 SP, LOINC 22634-0 / 11526-1, conclusion or text/plain presentedForm)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from cds.fhir import extract_facts

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _report(rid: str, text: str, *, as_attachment: bool = False, day: str = "2026-02-20") -> dict:
    report = {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                        "code": "SP",
                        "display": "Surgical Pathology",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "22634-0", "display": "Pathology report final diagnosis"}]
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": day,
        "issued": f"{day}T16:00:00Z",
    }
    if as_attachment:
        report["presentedForm"] = [{"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}]
    else:
        report["conclusion"] = text
    return report


def _biopsy(terminology, *resources) -> dict | None:  # type: ignore[no-untyped-def]
    result = extract_facts({"patientId": "p1"}, {f"k{i}": r for i, r in enumerate(resources)}, NOW, terminology)
    fact = next((f for f in result.facts if f.id == "procedure:skin-biopsy"), None)
    return dict(fact.attrs) if fact else None


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        (
            (
                "Skin, left medial thigh, punch biopsy: calcific uremic arteriolopathy (calciphylaxis), with medial "
                "calcification of small subcutaneous arterioles and fat necrosis."
            ),
            "positive",
        ),
        (
            "Skin, right calf, punch biopsy: stasis dermatitis with dermal fibrosis. Negative for calciphylaxis.",
            "negative",
        ),
        ("Skin, right calf, biopsy: pyoderma gangrenosum pattern, neutrophilic dermal infiltrate.", "negative"),
        (
            "Skin, left thigh, punch biopsy: superficial specimen; no subcutaneous fat sampled. Non-diagnostic.",
            "nondiagnostic",
        ),
        ("Skin, left thigh: focal fat necrosis; calciphylaxis cannot be excluded.", "nondiagnostic"),
    ],
)
def test_biopsy_result_from_the_report_text(terminology, text: str, outcome: str) -> None:
    fact = _biopsy(terminology, _report("path-1", text))
    assert fact is not None and fact["outcome"] == outcome
    assert fact["outcome_source"] == "DiagnosticReport/path-1"


def test_result_in_a_text_attachment(terminology) -> None:
    fact = _biopsy(terminology, _report("path-2", "FINAL DIAGNOSIS: Calciphylaxis.", as_attachment=True))
    assert fact is not None and fact["outcome"] == "positive"


def test_outcome_joins_the_coded_biopsy_procedure(terminology) -> None:
    procedure = {
        "resourceType": "Procedure",
        "id": "bx-1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "240977001", "display": "Biopsy of skin"}]},
        "performedDateTime": "2026-02-18",
    }
    fact = _biopsy(terminology, procedure, _report("path-3", "Negative for calciphylaxis."))
    assert fact is not None
    assert fact["source"] == "Procedure/bx-1" and fact["recognised_by"] == "code"
    assert fact["outcome"] == "negative" and fact["outcome_source"] == "DiagnosticReport/path-3"


def test_report_without_a_result_is_said_not_guessed(terminology) -> None:
    result = extract_facts(
        {"patientId": "p1"}, {"r": _report("path-4", "Specimen received in formalin.")}, NOW, terminology
    )
    assert not [f for f in result.facts if f.id == "procedure:skin-biopsy"]
    assert any("no biopsy result recognised" in w.message for w in result.warnings)


def test_radiology_reports_are_not_read_as_pathology(terminology) -> None:
    report = _report("rad-1", "No calciphylaxis pattern; diffuse soft-tissue activity.")
    report["category"] = [{"coding": [{"system": "http://loinc.org", "code": "LP29684-5", "display": "Radiology"}]}]
    report["code"] = {"coding": [{"system": "http://loinc.org", "code": "39813-1"}]}
    assert _biopsy(terminology, report) is None
