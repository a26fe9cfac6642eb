"""Authentication through the HTTP app: every endpoint, 401 bodies, log lines, settings."""

from __future__ import annotations

import json
import logging
import uuid

import jwt
import pytest
from fastapi.testclient import TestClient

from cds.settings import Settings, SettingsError
from tests.auth.conftest import BASE, ISS, NOW, claims, sign
from tests.conftest import RULES_DIR, shared_data, shipped_app

ENDPOINTS = {
    "discovery": ("GET", "/cds-services"),
    "service": ("POST", "/cds-services/calciphylaxis-risk"),
    "feedback": ("POST", "/cds-services/calciphylaxis-risk/feedback"),
}


def app_client(clients_file, **settings) -> TestClient:
    base = {
        "profile": "production",
        "rules_dir": RULES_DIR,
        "external_base_url": BASE,
        "trusted_clients_file": clients_file,
        "database_url": "sqlite://",
    }
    return TestClient(shipped_app(Settings(**{**base, **settings}), clock=lambda: NOW))


def request_body(endpoint: str) -> dict | None:
    if endpoint == "service":
        body = json.loads(shared_data("cds-hooks-sandbox", "sandbox-patient-view-request.json").read_text())["body"]
        body.pop("fhirServer")
        return body
    if endpoint == "feedback":
        return {
            "feedback": [
                {
                    "card": str(uuid.uuid4()),
                    "outcome": "overridden",
                    "overrideReason": {"userComment": "not relevant"},
                    "outcomeTimestamp": "2026-11-21T06:00:00Z",
                }
            ]
        }
    return None


def call(client: TestClient, endpoint: str, token: str | None):
    method, path = ENDPOINTS[endpoint]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, path, json=request_body(endpoint), headers=headers)


def assert_refused(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    # Nothing useful to an attacker: the same words whatever check failed.
    assert [i["diagnostics"] for i in outcome["issue"]] == ["authentication failed"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_each_endpoint_accepts_its_own_audience_only(keys, clients_file, endpoint):
    client = app_client(clients_file)
    own = f"{BASE}{ENDPOINTS[endpoint][1]}"
    response = call(client, endpoint, sign(keys, claims(aud=own)))
    # Authenticated; feedback about a card never issued is then refused for that reason.
    assert response.status_code == (422 if endpoint == "feedback" else 200), response.text
    for other, (_, path) in ENDPOINTS.items():
        if other != endpoint:
            assert_refused(call(client, endpoint, sign(keys, claims(aud=f"{BASE}{path}"))))
    assert_refused(call(client, endpoint, sign(keys, claims(aud=f"http://testserver{ENDPOINTS[endpoint][1]}"))))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_no_token_is_refused_everywhere(clients_file, endpoint):
    assert_refused(call(app_client(clients_file), endpoint, None))


def test_a_replayed_token_is_refused_by_the_app(keys, clients_file):
    client = app_client(clients_file)
    token = sign(keys, claims(aud=f"{BASE}/cds-services"))
    assert call(client, "discovery", token).status_code == 200
    assert_refused(call(client, "discovery", token))


@pytest.mark.slow
def test_workers_sharing_the_database_refuse_each_others_jtis(keys, clients_file, tmp_path):
    """Two app instances (two worker processes) with the replay store in their shared database."""
    shared = {"database_url": f"sqlite:///{tmp_path / 'shared.sqlite3'}", "jwt_replay_store": "database"}
    worker_a, worker_b = app_client(clients_file, **shared), app_client(clients_file, **shared)
    token = sign(keys, claims(aud=f"{BASE}/cds-services"))
    assert call(worker_a, "discovery", token).status_code == 200
    assert_refused(call(worker_b, "discovery", token))
    # With the default in-memory store each process only knows its own jtis.
    alone_a, alone_b = app_client(clients_file), app_client(clients_file)
    token = sign(keys, claims(aud=f"{BASE}/cds-services"))
    assert call(alone_a, "discovery", token).status_code == 200
    assert call(alone_b, "discovery", token).status_code == 200


def test_the_log_line_names_the_check_iss_and_jti_never_the_token(keys, clients_file, caplog):
    client = app_client(clients_file)
    payload = claims(aud=f"{BASE}/cds-services/other")
    token = sign(keys, payload)
    with caplog.at_level(logging.WARNING, logger="cds.auth"):
        assert_refused(call(client, "discovery", token))
    [line] = [r.getMessage() for r in caplog.records if r.name == "cds.auth"]
    assert "check=aud" in line and f"iss={ISS}" in line and f"jti={payload['jti']}" in line
    assert token not in line and token.split(".")[2] not in line


def test_other_schemes_and_junk_headers_are_refused(clients_file):
    client = app_client(clients_file)
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "eyJ.eyJ.x", "Bearer a.b.c"):
        assert_refused(client.get("/cds-services", headers={"Authorization": header}))


def test_no_trusted_clients_refuses_every_call(keys):
    client = TestClient(
        shipped_app(
            Settings(profile="production", rules_dir=RULES_DIR, external_base_url=BASE, database_url="sqlite://"),
            clock=lambda: NOW,
        )
    )
    assert_refused(call(client, "discovery", sign(keys, claims(aud=f"{BASE}/cds-services"))))


def test_the_sandbox_token_is_checked_by_the_app(tmp_path):
    """The sandbox's real token reaches our order-sign service: refused, since its aud is the sandbox's stub URL."""
    capture = json.loads(shared_data("cds-hooks-sandbox", "sandbox-order-sign-request.json").read_text())
    clients = tmp_path / "clients.yaml"
    clients.write_text(
        "clients:\n  - iss: https://sandbox.cds-hooks.org\n"
        f"    jwks_file: {shared_data('cds-hooks-sandbox', 'jwks.json')}\n"
    )
    token = capture["headers"]["Authorization"].removeprefix("Bearer ")
    sent_at = jwt.decode(token, options={"verify_signature": False})["iat"]
    from datetime import UTC, datetime

    settings = Settings(
        profile="production",
        rules_dir=RULES_DIR,
        external_base_url="http://127.0.0.1:3100",
        trusted_clients_file=clients,
        database_url="sqlite://",
    )
    client = TestClient(shipped_app(settings, clock=lambda: datetime.fromtimestamp(sent_at + 5, UTC)))
    response = client.post(
        "/cds-services/calciphylaxis-order-sign", json=capture["body"], headers={"Authorization": f"Bearer {token}"}
    )
    assert_refused(response)


def test_auth_off_needs_loopback_and_on_needs_base_url_and_clients(clients_file):
    key = {"audit_hmac_key": "k" * 32}
    Settings(auth_required=False, host="127.0.0.1", **key).check()
    Settings(external_base_url=BASE, trusted_clients_file=clients_file, **key).check()
    with pytest.raises(SettingsError, match="loopback"):
        Settings(auth_required=False, host="0.0.0.0", **key).check()
    with pytest.raises(SettingsError, match="CDS_EXTERNAL_BASE_URL"):
        Settings(trusted_clients_file=clients_file, **key).check()
    with pytest.raises(SettingsError, match="CDS_TRUSTED_CLIENTS_FILE"):
        Settings(external_base_url=BASE, **key).check()
    with pytest.raises(SettingsError, match="CDS_AUDIT_HMAC_KEY"):
        Settings(external_base_url=BASE, trusted_clients_file=clients_file).check()
    with pytest.raises(ValueError, match="asymmetric"):
        Settings(jwt_algorithms=["ES384", "HS256"])
    with pytest.raises(ValueError, match="asymmetric"):
        Settings(jwt_algorithms=["none"])


def test_an_unavailable_replay_store_fails_closed_with_503(keys, clients_file):
    from cds.auth import BearerAuthenticator, JwtVerifier, KeyRing, MemoryReplayStore, load_trusted_clients

    clients = load_trusted_clients(clients_file)
    ring = KeyRing()
    ring.load_file(clients[ISS])
    verifier = JwtVerifier(clients, ring, replay=MemoryReplayStore(max_entries=1), clock=lambda: NOW)
    settings = Settings(profile="production", rules_dir=RULES_DIR, external_base_url=BASE, database_url="sqlite://")
    client = TestClient(shipped_app(settings, authenticate=BearerAuthenticator(verifier), clock=lambda: NOW))
    assert call(client, "discovery", sign(keys, claims(aud=f"{BASE}/cds-services"))).status_code == 200
    # The store is full of live jtis: the next token cannot be checked for replay, so it is not let in.
    response = call(client, "discovery", sign(keys, claims(aud=f"{BASE}/cds-services")))
    assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
