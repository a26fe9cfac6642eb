"""Prefetch completion through the HTTP app, as an EHR sees it."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from cds.settings import Settings
from tests.conftest import RULES_DIR, shared_data, shipped_app
from tests.prefetch.conftest import SANDBOX_PATIENT_ID
from tests.prefetch.helpers import access_token, tag

ORDER_SIGN = "/cds-services/calciphylaxis-order-sign"


def client(**settings) -> TestClient:
    base = {"profile": "demo", "auth_required": False, "rules_dir": RULES_DIR, "database_url": "sqlite://"}
    return TestClient(shipped_app(Settings(**{**base, **settings})))


def sandbox_order_sign() -> dict:
    return json.loads(shared_data("cds-hooks-sandbox", "sandbox-order-sign-request.json").read_text())["body"]


def test_the_sandbox_order_sign_request_is_answered_from_the_fhir_server(fhir):
    body = sandbox_order_sign()
    assert set(body["prefetch"]) == {"patient"} and "fhirAuthorization" not in body
    t = tag()
    body["fhirServer"] = fhir.base("ok", t)
    response = client().post(ORDER_SIGN, json=body)
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["cards"], list)
    fetched = {r["path"].split("/fhir/", 1)[1].split("?", 1)[0] for r in fhir.requests(t)}
    assert fetched == {
        "Condition",
        "Observation",
        "MedicationRequest",
        "Procedure",
        "DiagnosticReport",
        "MedicationStatement",
        "MedicationAdministration",
    }
    assert {r["authorization"] for r in fhir.requests(t)} == {None}


def test_the_token_goes_with_the_fetch(fhir):
    body = sandbox_order_sign()
    t, token = tag(), access_token()
    body["fhirServer"] = fhir.base(f"token-{token}", t)
    body["fhirAuthorization"] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "calciphylaxis-cds",
    }
    assert client().post(ORDER_SIGN, json=body).status_code == 200
    assert {r["authorization"] for r in fhir.requests(t)} == {f"Bearer {token}"}


def test_a_slow_fhir_server_gives_412_within_the_default_budget(fhir):
    body = sandbox_order_sign()
    body["fhirServer"] = fhir.base("slow-5")
    app = client()
    started = time.monotonic()
    response = app.post(ORDER_SIGN, json=body)
    elapsed = time.monotonic() - started
    assert response.status_code == 412, response.text
    assert elapsed < 2.0, f"answered after {elapsed:.2f} s"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "incomplete"


def test_a_failing_fhir_server_gives_412_naming_no_patient_or_token(fhir):
    body = sandbox_order_sign()
    token = access_token()
    body["fhirServer"] = fhir.base("fail")
    body["fhirAuthorization"] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "calciphylaxis-cds",
    }
    response = client().post(ORDER_SIGN, json=body)
    assert response.status_code == 412
    diagnostics = response.json()["issue"][0]["diagnostics"]
    # The key and a reason category; never what was found at the address (an SSRF port-scan oracle).
    assert "conditions: the FHIR server gave no usable answer" in diagnostics
    assert "HTTP 500" not in diagnostics and "127.0.0.1" not in diagnostics and str(fhir.port) not in diagnostics
    assert SANDBOX_PATIENT_ID not in response.text and token not in response.text
