"""The HTTP surface: statuses, OperationOutcome bodies, CORS, and real-world requests."""

from __future__ import annotations

import json
import uuid

import orjson
import pytest
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.pipeline import Pipeline
from cds.settings import Settings
from tests.conftest import REPO, RULES_DIR, shared_data, shipped_app

SOURCE_CASE = REPO / "fhir_examples" / "requests" / "source-case.patient-view.json"


def make_client(**settings) -> TestClient:
    base = {"profile": "demo", "auth_required": False, "rules_dir": RULES_DIR}
    return TestClient(shipped_app(Settings(**{**base, **settings})))


@pytest.fixture(scope="module")
def client() -> TestClient:
    return make_client()


@pytest.fixture
def request_body() -> dict:
    return json.loads(SOURCE_CASE.read_text())


def post(client: TestClient, path: str, body, content_type: str = "application/json"):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(path, content=data, headers={"Content-Type": content_type})


def assert_outcome(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"] and all(i["diagnostics"] for i in outcome["issue"])
    assert outcome["id"] == response.headers["x-request-id"]
    return outcome


def test_source_case_is_answered(client, request_body):
    response = post(client, "/cds-services/calciphylaxis-risk", request_body)
    assert response.status_code == 200
    assert isinstance(response.json()["cards"], list)
    assert response.headers["x-request-id"]


def test_healthz_reports_ruleset_engine_and_store(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["ruleset"]["version"] and health["ruleset"]["content_hash"] in health["ruleset"]["version"]
    assert "engine" in health["ruleset"] and "status" in health["store"]


# ------------------------------------------------------------------ error statuses


def test_malformed_json_is_400(client):
    outcome = assert_outcome(post(client, "/cds-services/calciphylaxis-risk", b'{"hook": '), 400)
    assert "malformed JSON" in outcome["issue"][0]["diagnostics"]


def test_unknown_service_is_404(client, request_body):
    assert_outcome(post(client, "/cds-services/no-such-service", request_body), 404)
    assert_outcome(post(client, "/cds-services/no-such-service/feedback", {"feedback": []}), 404)
    assert_outcome(client.get("/no/such/route"), 404)


def test_wrong_method_is_405(client):
    response = client.delete("/cds-services")
    assert_outcome(response, 405)
    assert "GET" in response.headers["allow"]
    assert_outcome(client.get("/cds-services/calciphylaxis-risk"), 405)


def test_body_over_the_limit_is_413():
    small = make_client(max_body_bytes=2048)
    assert_outcome(post(small, "/cds-services/calciphylaxis-risk", b"{" + b" " * 4096 + b"}"), 413)


def test_body_over_the_limit_without_content_length_is_413():
    small = make_client(max_body_bytes=2048)

    def chunks():
        for _ in range(10):
            yield b" " * 1024

    response = small.post(
        "/cds-services/calciphylaxis-risk", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_outcome(response, 413)


def test_default_limit_accepts_a_large_real_patient(client):
    # AHRQ's 1 MB default rejected real ESRD patients; the 1.6 MB Synthea request must pass the limit.
    body = shared_data("synthea", "esrd-dialysis-patient.patient-view-request.json").read_bytes()
    assert len(body) > 1_000_000
    response = post(client, "/cds-services/calciphylaxis-risk", body)
    assert response.status_code != 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(client, request_body, content_type):
    assert_outcome(post(client, "/cds-services/calciphylaxis-risk", request_body, content_type), 415)


def test_content_type_with_charset_is_accepted(client, request_body):
    response = post(client, "/cds-services/calciphylaxis-risk", request_body, "application/json; charset=utf-8")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda b: b.pop("context"), "context"),
        (lambda b: b.pop("hookInstance"), "hookInstance"),
        (lambda b: b.update(hookInstance=42), "hookInstance"),
        (lambda b: b.update(context="Patient/1"), "context"),
        (lambda b: b["context"].pop("patientId"), "context.patientId"),
        (lambda b: b["context"].update(userId="nurse"), "context.userId"),
        (lambda b: b.update(prefetch={"patient": "Patient/1"}), "prefetch.patient"),
        (lambda b: b.update(prefetch=[1, 2]), "prefetch"),
        (
            lambda b: b.update(
                fhirAuthorization={
                    "access_token": "t",
                    "token_type": "Bearer",
                    "expires_in": 1,
                    "scope": "s",
                    "subject": "c",
                },
                fhirServer=None,
            ),
            "cds-r-1",
        ),
    ],
)
def test_invalid_requests_are_422_naming_the_field(client, request_body, mutate, where):
    mutate(request_body)
    outcome = assert_outcome(post(client, "/cds-services/calciphylaxis-risk", request_body), 422)
    assert where in " ".join(i["diagnostics"] for i in outcome["issue"])


@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_json_that_is_not_an_object_is_422(client, body):
    assert_outcome(post(client, "/cds-services/calciphylaxis-risk", orjson.dumps(body)), 422)


def test_hook_must_match_the_service(client, request_body):
    request_body["hook"] = "order-sign"
    outcome = assert_outcome(post(client, "/cds-services/calciphylaxis-risk", request_body), 400)
    assert "patient-view" in outcome["issue"][0]["diagnostics"]


def test_error_bodies_do_not_echo_request_values(client, request_body):
    request_body["context"]["userId"] = "Jane Doe 1970-01-01"
    response = post(client, "/cds-services/calciphylaxis-risk", request_body)
    assert response.status_code == 422
    assert "Jane Doe" not in response.text


def test_internal_fault_is_a_500_outcome_without_internals(request_body):
    class BrokenPipeline(Pipeline):
        def evaluate(self, *args, **kwargs):
            raise RuntimeError("secret internal detail")

    pipeline = BrokenPipeline.load(RULES_DIR, run_tests=False)  # the gate is not what this tests
    app = create_app(Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR), pipeline=pipeline)
    response = post(TestClient(app, raise_server_exceptions=False), "/cds-services/calciphylaxis-risk", request_body)
    outcome = assert_outcome(response, 500)
    assert "secret internal detail" not in response.text
    assert outcome["id"] in outcome["issue"][0]["diagnostics"]


# ------------------------------------------------------------------ prefetch states


def test_no_prefetch_member_and_no_fhir_server_is_412(client, request_body):
    request_body.pop("prefetch")
    request_body.pop("fhirServer")
    outcome = assert_outcome(post(client, "/cds-services/calciphylaxis-risk", request_body), 412)
    assert "patient" in outcome["issue"][0]["diagnostics"]


def test_empty_prefetch_object_without_fhir_server_is_412(client, request_body):
    request_body["prefetch"] = {}
    request_body.pop("fhirServer")
    assert_outcome(post(client, "/cds-services/calciphylaxis-risk", request_body), 412)


def test_null_prefetch_values_mean_no_data_not_missing(client, request_body):
    for key in request_body["prefetch"]:
        request_body["prefetch"][key] = None
    request_body.pop("fhirServer")
    assert post(client, "/cds-services/calciphylaxis-risk", request_body).status_code == 200


def test_operation_outcome_prefetch_counts_as_missing(client, request_body):
    request_body.pop("fhirServer")
    request_body["prefetch"]["conditions"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    outcome = assert_outcome(post(client, "/cds-services/calciphylaxis-risk", request_body), 412)
    assert "conditions" in outcome["issue"][0]["diagnostics"]


def test_optional_prefetch_keys_may_be_missing(client, request_body):
    request_body.pop("fhirServer")
    del request_body["prefetch"]["procedures"]
    del request_body["prefetch"]["reports"]
    assert post(client, "/cds-services/calciphylaxis-risk", request_body).status_code == 200


def test_unknown_extension_is_ignored(client, request_body):
    request_body["extension"] = {"com.example.unknown": {"anything": [1, {"x": None}]}}
    assert post(client, "/cds-services/calciphylaxis-risk", request_body).status_code == 200


def test_unknown_top_level_members_are_ignored(client, request_body):
    request_body["com.example.vendor"] = {"x": 1}
    assert post(client, "/cds-services/calciphylaxis-risk", request_body).status_code == 200


# ------------------------------------------------------------------ sandbox captures


def sandbox_capture(name: str) -> dict:
    return json.loads(shared_data("cds-hooks-sandbox", name).read_text())


def test_sandbox_patient_view_request_is_accepted(client):
    capture = sandbox_capture("sandbox-patient-view-request.json")
    body = capture["body"]
    body.pop("fhirServer")  # its FHIR server is not running; every required key is prefetched
    response = post(client, "/cds-services/calciphylaxis-risk", body)
    assert response.status_code == 200, response.text
    assert response.json()["cards"] == [] or all("summary" in c for c in response.json()["cards"])


def test_sandbox_order_sign_request_is_valid_up_to_its_missing_prefetch(client):
    body = sandbox_capture("sandbox-order-sign-request.json")["body"]
    # The sandbox omitted the keys it could not resolve and has no FHIR server here:
    # a 412 naming exactly those keys, not a 4xx about the request's shape.
    body.pop("fhirServer")
    outcome = assert_outcome(post(client, "/cds-services/calciphylaxis-order-sign", body), 412)
    assert "conditions" in outcome["issue"][0]["diagnostics"]
    body["prefetch"].update(conditions=None, labs=None, meds=None)
    assert post(client, "/cds-services/calciphylaxis-order-sign", body).status_code == 200


# ------------------------------------------------------------------ feedback


def feedback_body(**overrides) -> dict:
    item = {
        "card": str(uuid.uuid4()),
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": "http://example.org/reasons", "code": "not-relevant"}},
        "outcomeTimestamp": "2026-11-21T10:05:31Z",
    }
    return {"feedback": [{**item, **overrides}]}


def test_feedback_is_validated(client):
    bad = feedback_body(outcome="accepted", overrideReason=None)
    assert_outcome(post(client, "/cds-services/calciphylaxis-risk/feedback", bad), 422)
    assert_outcome(post(client, "/cds-services/calciphylaxis-risk/feedback", {"feedback": []}), 422)
    assert_outcome(post(client, "/cds-services/calciphylaxis-risk/feedback", b"[", "application/json"), 400)


# ------------------------------------------------------------------ CORS


@pytest.mark.parametrize(
    "path, method",
    [
        ("/cds-services", "GET"),
        ("/cds-services/calciphylaxis-risk", "POST"),
        ("/cds-services/calciphylaxis-risk/feedback", "POST"),
    ],
)
def test_cors_preflight_on_every_route(client, path, method):
    response = client.options(
        path,
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in {"*", "http://localhost:3000"}
    assert method in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_cors_origins_are_restricted_when_configured():
    restricted = make_client(profile="production", cors_origins=["https://ehr.example.org"])
    allowed = restricted.options(
        "/cds-services",
        headers={"Origin": "https://ehr.example.org", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://ehr.example.org"
    refused = restricted.options(
        "/cds-services",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in refused.headers
    simple = restricted.get("/cds-services", headers={"Origin": "https://ehr.example.org"})
    assert simple.headers["access-control-allow-origin"] == "https://ehr.example.org"
