"""The CDS Hooks sandbox as a client (../shared/data/cds-hooks-sandbox, reviews/sandbox-client.md).

The sandbox builds every draft MedicationRequest with ``category`` as one object (R4 says a list),
without ``intent``, and codes the drug as an RxNorm clinical drug (SCD) with its name as text.
Such a draft must still be checked; a draft that cannot be read is named in the response.
"""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import shared_data
from tests.realdata.helpers import NOTICES, deep, example, post, rebind, summaries

SANDBOX = "cds-hooks-sandbox"


def _captured(name: str) -> dict:
    """The captured body, answered from its prefetch alone: its fhirServer (the sandbox's mock on
    port 8081) is not running here, so each key it left to the server is an empty searchset."""
    body = orjson.loads(shared_data(SANDBOX, name).read_bytes())["body"]
    body.pop("fhirServer", None)
    body.pop("fhirAuthorization", None)
    prefetch = body.setdefault("prefetch", {})
    for key in ("conditions", "labs", "meds", "procedures", "reports", "medstatements", "medadmins"):
        prefetch.setdefault(key, {"resourceType": "Bundle", "type": "searchset", "total": 0})
    return body


def _sandbox_draft(patient_id: str, coding: dict, text: str) -> dict:
    """The draft exactly as the sandbox's Rx Sign screen builds it (sandbox-client.md)."""
    return {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "request-123",
                    "status": "draft",
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "authoredOn": "2026-12-03",
                    "category": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                                "code": "community",
                            }
                        ]
                    },
                    "medicationCodeableConcept": {"text": text, "coding": [coding]},
                }
            }
        ],
    }


def _confirmed_case_as_sandbox_patient(draft_coding: dict, text: str) -> dict:
    """The captured sandbox order-sign call, with the confirmed-calciphylaxis history as its prefetch."""
    captured = _captured("sandbox-order-sign-request.json")
    patient_id = captured["context"]["patientId"]
    history = rebind(example("order-warfarin-confirmed.order-sign.json"), "cx-confirmed-calves", patient_id)
    body = deep(captured)
    body["prefetch"] = history["prefetch"]
    body["context"]["draftOrders"] = _sandbox_draft(patient_id, draft_coding, text)
    return body


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def test_sandbox_warfarin_draft_with_object_category_gives_the_critical_card() -> None:
    # RxNorm 855332: Warfarin Sodium 5 MG Oral Tablet (SCD), the sandbox's own pick.
    body = _confirmed_case_as_sandbox_patient(
        {"system": RXNORM, "code": "855332", "display": "Warfarin Sodium 5 MG Oral Tablet"},
        "Warfarin Sodium 5 MG Oral Tablet",
    )
    response = post("calciphylaxis-order-sign", body)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert any(c["indicator"] == "critical" and "arfarin" in c["summary"] for c in cards), summaries(response)
    # The malformed element was not used, so nothing is reported as unread.
    assert NOTICES not in (response.json().get("extension") or {})


def test_sandbox_branded_warfarin_is_recognised() -> None:
    # The sandbox's picker offers branded products (SBD) too: "... [Coumadin]". Whether or not the
    # product code is listed, the brand name in the text names the ingredient.
    body = _confirmed_case_as_sandbox_patient(
        {"system": RXNORM, "code": "999999990", "display": "Warfarin Sodium 5 MG Oral Tablet [Coumadin]"},
        "Coumadin 5 MG Oral Tablet",
    )
    response = post("calciphylaxis-order-sign", body)
    assert response.status_code == 200, response.text
    assert any(c["indicator"] == "critical" and "arfarin" in c["summary"] for c in response.json()["cards"])


def test_captured_order_sign_with_an_empty_draft_names_the_unchecked_order() -> None:
    # The sandbox's first call carries a draft without medication[x]: no card, but not silence.
    body = _captured("sandbox-order-sign-request.json")
    response = post("calciphylaxis-order-sign", body)
    assert response.status_code == 200, response.text
    notice = response.json()["extension"][NOTICES]
    assert notice["resourceType"] == "OperationOutcome"
    assert any("MedicationRequest/request-123" in i["diagnostics"] for i in notice["issue"])


def test_captured_patient_view_answers() -> None:
    body = _captured("sandbox-patient-view-request.json")
    response = post("calciphylaxis-risk", body)
    assert response.status_code == 200, response.text
    # A Synthea patient without kidney failure or skin lesions: no warning card.
    assert not [c for c in response.json()["cards"] if c["indicator"] in ("warning", "critical")]


def test_unreadable_draft_order_is_named_not_dropped() -> None:
    body = _confirmed_case_as_sandbox_patient(
        {"system": RXNORM, "code": "855332", "display": "Warfarin Sodium 5 MG Oral Tablet"}, "Warfarin"
    )
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft["status"] = 7  # an element the rules read, broken
    response = post("calciphylaxis-order-sign", body)
    assert response.status_code == 200, response.text
    issues = response.json()["extension"][NOTICES]["issue"]
    assert any("MedicationRequest/request-123" in i["diagnostics"] and "status" in i["diagnostics"] for i in issues)


@pytest.mark.slow
def test_synthea_patients_still_get_no_warning_card() -> None:
    """Real-looking records without calciphylaxis: the text layer and product codes add no alarm."""
    from tests.conftest import shared_data as data

    empty = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    checked = 0
    for path in sorted(p for p in data("synthea").glob("*.json") if "request" not in p.name):
        bundle = orjson.loads(path.read_bytes())
        patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        body = {
            "hook": "patient-view",
            "hookInstance": "5f8e1b3e-2a4c-4a53-9d0c-0b6c1f0e9a11",
            "context": {"userId": "Practitioner/p1", "patientId": patient["id"]},
            "prefetch": {
                "patient": patient,
                "conditions": bundle,
                "labs": empty,
                "meds": empty,
                "medstatements": empty,
                "medadmins": empty,
            },
        }
        response = post("calciphylaxis-risk", body)
        assert response.status_code == 200, (path.name, response.text)
        alarming = [c["summary"] for c in response.json()["cards"] if c["indicator"] in ("warning", "critical")]
        assert not alarming, (path.name, alarming)
        checked += 1
    assert checked >= 17


def test_unreadable_lab_result_is_named_in_the_notice() -> None:
    """A PTH result whose value cannot be read (a string where R4 needs a decimal) is not silently lost."""
    body = example("source-case.patient-view.json")
    labs = body["prefetch"]["labs"]["entry"]
    pth = next(
        e["resource"] for e in labs if any(c.get("code") == "2731-8" for c in e["resource"]["code"].get("coding", []))
    )
    pth["valueQuantity"]["value"] = "1,250"
    response = post("calciphylaxis-risk", body)
    assert response.status_code == 200
    issues = response.json()["extension"][NOTICES]["issue"]
    assert any(f"Observation/{pth['id']}" in i["diagnostics"] and "valueQuantity" in i["diagnostics"] for i in issues)
