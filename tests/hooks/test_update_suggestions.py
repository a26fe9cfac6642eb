"""An update suggestion is the clinician's draft, whole, with the advice appended (issue 16, item 1).

CDS Hooks 2.0.1 §Action: the resource of an update replaces the EHR's "in its
entirety". Each test compares every field of the draft before and after.
"""

from __future__ import annotations

import copy
import json

from fastapi.testclient import TestClient

from cds.cards.drafts import merge_into_draft
from cds.settings import Settings
from tests.conftest import REPO, RULES_DIR, shared_data, shipped_app

BONE_SCAN_REQUEST = REPO / "fhir_examples" / "requests" / "order-bone-scan-suspected.order-sign.json"

# What an EHR's draft ServiceRequest carries beyond the fixture's (FHIR R4 ServiceRequest elements).
CLINICIAN_FIELDS = {
    "meta": {"versionId": "3", "lastUpdated": "2026-11-21T09:14:00Z"},
    "identifier": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268", "value": "ORD-55821"}],
    "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"}]}],
    "priority": "urgent",
    "occurrenceDateTime": "2026-11-23T08:00:00Z",
    "encounter": {"reference": "Encounter/enc-771"},
    "performer": [{"reference": "Organization/nuclear-medicine"}],
    "supportingInfo": [{"reference": "Observation/egfr-2026-11-20"}],
    "reasonCode": [{"text": "Bone pain, rule out metastases"}],
    "note": [{"text": "Patient claustrophobic"}],
}


def updates(response: dict) -> list[dict]:
    return [
        action["resource"]
        for card in response["cards"]
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action["type"] == "update"
    ]


def answer(body: dict) -> dict:
    settings = Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, database_url="sqlite://")
    response = TestClient(shipped_app(settings)).post("/cds-services/calciphylaxis-order-sign", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_draft_kept(draft: dict, updated: dict) -> None:
    for field, value in draft.items():
        if isinstance(value, list):
            assert updated[field][: len(value)] == value, f"{field}: the clinician's items come first, unchanged"
        else:
            assert updated[field] == value, f"{field} changed or dropped"


def test_the_bone_scan_update_keeps_every_field_of_a_full_draft():
    body = json.loads(BONE_SCAN_REQUEST.read_text())
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft.update(copy.deepcopy(CLINICIAN_FIELDS))
    before = copy.deepcopy(draft)
    (updated,) = updates(answer(body))
    assert_draft_kept(before, updated)
    # The advice is appended, not written over the clinician's reason and note.
    assert len(updated["reasonCode"]) == 2 and "calciphylaxis" in updated["reasonCode"][1]["text"].lower()
    assert updated["note"][0] == {"text": "Patient claustrophobic"} and "calciphylaxis" in updated["note"][1]["text"]
    assert set(updated) == set(before) | {"reasonCode", "note"}


def test_the_fixture_draft_is_kept_whole_and_gains_reason_and_note():
    body = json.loads(BONE_SCAN_REQUEST.read_text())
    before = copy.deepcopy(body["context"]["draftOrders"]["entry"][0]["resource"])
    (updated,) = updates(answer(body))
    assert_draft_kept(before, updated)
    assert updated["code"] == before["code"]  # the clinician's coding (and its text), not the template's
    assert {"reasonCode", "note"} <= set(updated)


def test_an_update_for_a_draft_not_in_the_request_is_left_out_not_sent_partial():
    body = json.loads(BONE_SCAN_REQUEST.read_text())
    del body["context"]["draftOrders"]["entry"][0]["resource"]["id"]
    response = answer(body)
    assert updates(response) == []
    assert response["cards"], "the card stays; only the update that could not carry the draft goes"
    for card in response["cards"]:
        assert ("suggestions" in card) == ("selectionBehavior" in card)


def test_the_sandbox_draft_medication_request_is_kept_field_by_field():
    sandbox = json.loads(shared_data("cds-hooks-sandbox", "sandbox-order-sign-request.json").read_text())["body"]
    draft = sandbox["context"]["draftOrders"]["entry"][0]["resource"]
    proposed = {
        "resourceType": "MedicationRequest",
        "id": draft["id"],
        "status": "active",
        "subject": {"reference": "Patient/someone-else"},
        "reasonCode": [{"text": "Suspected calciphylaxis"}],
        "note": [{"text": "Reviewed against the calciphylaxis differential"}],
    }
    merged = merge_into_draft(draft, proposed)
    assert_draft_kept(draft, merged)
    assert merged["status"] == "draft" and merged["subject"] == draft["subject"]
    assert merged["reasonCode"] == proposed["reasonCode"] and merged["note"] == proposed["note"]
    assert merge_into_draft(merged, proposed) == merged, "merging the same advice twice adds nothing"


def test_a_selection_that_names_no_draft_order_is_an_error_not_silence():
    """Issue 16 item 6: the review's OS3 got 200 with no cards."""
    body = json.loads((REPO / "fhir_examples" / "requests" / "order-warfarin-suspected.order-select.json").read_text())
    settings = Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, database_url="sqlite://")
    client = TestClient(shipped_app(settings))
    assert client.post("/cds-services/calciphylaxis-order-select", json=body).status_code == 200
    body["context"]["selections"] = ["MedicationRequest/not-in-draftOrders"]
    response = client.post("/cds-services/calciphylaxis-order-select", json=body)
    assert response.status_code == 422
    assert "selections[0] name no resource of draftOrders" in response.json()["issue"][0]["diagnostics"]


def test_order_select_and_order_sign_share_one_service_id_so_the_ehr_replaces_stale_cards(tmp_path):
    """Issue 16 item 6. CDS Hooks 2.0.1 §Discovery: "a CDS server can host multiple entries of CDS
    service with the same id for different hooks" (update stale guidance)."""
    settings = Settings(
        profile="demo", auth_required=False, rules_dir=RULES_DIR, database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}"
    )
    client = TestClient(shipped_app(settings))
    entries = [(s["id"], s["hook"]) for s in client.get("/cds-services").json()["services"]]
    assert ("calciphylaxis-order-select", "order-select") in entries
    assert ("calciphylaxis-order-select", "order-sign") in entries
    assert len(entries) == len(set(entries))

    sign = json.loads((REPO / "fhir_examples" / "requests" / "order-warfarin-confirmed.order-sign.json").read_text())
    at_sign_id = client.post("/cds-services/calciphylaxis-order-sign", json=sign)
    at_select_id = client.post("/cds-services/calciphylaxis-order-select", json=sign)
    assert at_sign_id.status_code == at_select_id.status_code == 200
    summaries = [c["summary"] for c in at_sign_id.json()["cards"]]
    assert summaries and summaries == [c["summary"] for c in at_select_id.json()["cards"]]
    # Feedback goes to the id the EHR called.
    card = at_select_id.json()["cards"][0]
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"userComment": "seen at selection"},
        "outcomeTimestamp": "2026-11-21T10:06:00Z",
    }
    assert (
        client.post("/cds-services/calciphylaxis-order-select/feedback", json={"feedback": [item]}).status_code == 200
    )
    # A hook no entry of that id answers is still a 400.
    view = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())
    assert client.post("/cds-services/calciphylaxis-order-select", json=view).status_code == 400


def test_one_id_may_not_offer_the_same_hook_twice(tmp_path):
    from cds.hooks.services import ServiceDefinitionError, load_services

    text = (
        (RULES_DIR / "services.yaml")
        .read_text()
        .replace(
            "also_at: [calciphylaxis-order-select]", "also_at: [calciphylaxis-order-select]\n    hook: order-select", 1
        )
    )
    path = tmp_path / "services.yaml"
    path.write_text(text.replace("    hook: order-sign\n", "", 1))
    try:
        load_services(path)
    except ServiceDefinitionError as exc:
        assert "calciphylaxis-order-select (order-select)" in str(exc)
    else:
        raise AssertionError("a second order-select entry under one id must be refused")
