"""Coverage telemetry: codes that matched no concept, counted without patient data (issue 13 item 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from cds.fhir import extract_facts
from cds.fhir.gaps import GAPS
from cds.observability import metrics
from tests.conftest import REPO

LOCAL = "http://hospital.example.org/fhir/CodeSystem/problem-list"


def _condition(cid: str, patient: str) -> dict:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{patient}"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": LOCAL, "code": "PL-20931", "display": "Calciphylaxis, both calves"}]},
        "onsetDateTime": "2026-01-02",
    }


def test_unmatched_code_is_counted_with_its_text_match(terminology) -> None:
    GAPS.clear()
    before = metrics.UNMATCHED_CODES.labels("other")._value.get()
    for patient in ("p1", "p2"):
        extract_facts(
            {"patientId": patient}, {"c": _condition("c1", patient)}, datetime(2026, 3, 1, tzinfo=UTC), terminology
        )
    row = next(g for g in GAPS.snapshot() if g.code == "PL-20931")
    assert (row.system, row.resource_type, row.count, row.text_match) == (LOCAL, "Condition", 2, "calciphylaxis")
    assert metrics.UNMATCHED_CODES.labels("other")._value.get() == before + 2


def test_recognised_codes_are_not_gaps(terminology) -> None:
    GAPS.clear()
    condition = _condition("c2", "p1")
    condition["code"]["coding"].append({"system": "urn:oid:2.16.840.1.113883.6.96", "code": "95324001"})
    condition["code"]["coding"].append({"system": "http://snomed.info/sct", "code": "46742003"})  # Skin ulcer
    extract_facts({"patientId": "p1"}, {"c": condition}, datetime(2026, 3, 1, tzinfo=UTC), terminology)
    assert GAPS.snapshot() == []


def test_cds_terminology_gaps_lists_codes_and_no_patient_data(tmp_path: Path) -> None:
    request = {
        "hook": "patient-view",
        "hookInstance": "0b0f4b4e-54a4-4d0e-9d6c-6a8f5ffbd2a1",
        "context": {"userId": "Practitioner/1", "patientId": "pt-unique-4711"},
        "prefetch": {
            "conditions": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": _condition("c9", "pt-unique-4711")}],
            }
        },
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    done = subprocess.run(
        [sys.executable, "-m", "cds.cli", "terminology", "gaps", "--json", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {
        "system": LOCAL,
        "code": "PL-20931",
        "resource_type": "Condition",
        "count": 1,
        "text_match": "calciphylaxis",
    } in rows
    assert "pt-unique-4711" not in done.stdout and "both calves" not in done.stdout
