"""fhirServer is an SSRF vector: only servers the caller may name are ever contacted (issue 16, item 7).

Over HTTP against a real `cds serve`, a loopback listener counts the connections
it accepts; addresses that must be refused and are not on loopback are checked
in-process with a mock transport, never by connecting.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

from cds.hooks.fhir_client import FetchLimits, FhirClient, FhirFetchError
from cds.hooks.fhir_servers import is_under, refusal
from cds.settings import Settings
from tests.auth.conftest import ISS, Keys
from tests.conftest import RULES_DIR, shared_data, shipped_app
from tests.prefetch.conftest import SANDBOX_PATIENT_ID
from tests.prefetch.helpers import access_token, cds_request, tag
from tests.serving import start_service

DECLARED = "https://ehr.example.org/fhir"


@pytest.fixture(scope="module")
def keys() -> Keys:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    return Keys(
        ec=ec.generate_private_key(ec.SECP384R1()),
        ec_kid="ec-1",
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_kid="rsa-1",
        other_ec=ec.generate_private_key(ec.SECP384R1()),
    )


class CountingListener:
    """A loopback TCP listener that accepts and counts connections (and answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


def sandbox_patient_view(fhir_server: str, token: str) -> dict:
    body = json.loads(shared_data("cds-hooks-sandbox", "sandbox-patient-view-request.json").read_text())["body"]
    body["hookInstance"] = str(uuid.uuid4())
    body["prefetch"] = {"patient": body["prefetch"]["patient"]}  # the rest must be fetched
    body["fhirServer"] = fhir_server
    body["fhirAuthorization"] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "calciphylaxis-cds",
    }
    return body


def real_time_token(keys: Keys, audience: str) -> str:
    now = int(time.time())
    payload = {"iss": ISS, "aud": audience, "exp": now + 120, "iat": now, "jti": str(uuid.uuid4())}
    return jwt.encode(payload, keys.ec, algorithm="ES384", headers={"kid": keys.ec_kid, "typ": "JWT"})


@pytest.mark.slow
def test_undeclared_fhir_servers_get_403_and_no_connection_over_http(tmp_path, keys):
    listener = CountingListener()
    (tmp_path / "ehr-jwks.json").write_text(json.dumps(keys.jwks()))
    clients = tmp_path / "trusted-clients.yaml"
    clients.write_text(f"clients:\n  - iss: {ISS}\n    jwks_file: ehr-jwks.json\n    fhir_servers: [{DECLARED}]\n")
    base_url = "https://cds.example.org"
    service = start_service(
        tmp_path,
        {
            "CDS_PROFILE": "production",
            "CDS_AUTH_REQUIRED": "true",
            "CDS_EXTERNAL_BASE_URL": base_url,
            "CDS_TRUSTED_CLIENTS_FILE": str(clients),
            "CDS_AUDIT_HMAC_KEY": "test-key",
        },
    )
    secret = access_token()
    try:
        port = listener.port
        targets = [
            f"http://127.0.0.1:{port}/admin",  # another local port: the attack of the review
            f"http://localhost:{port}/fhir",
            f"http://127.1:{port}/fhir",
            f"http://0.0.0.0:{port}/fhir",
            f"https://127.0.0.1:{port}/fhir",
            f"http://user:pw@127.0.0.1:{port}/fhir",
        ]
        for target in targets:
            token = real_time_token(keys, f"{base_url}/cds-services/calciphylaxis-risk")
            response = httpx.post(
                f"{service.base}/cds-services/calciphylaxis-risk",
                json=sandbox_patient_view(target, secret),
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert response.status_code == 403, (target, response.text)
            outcome = response.json()
            assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "forbidden"
            assert str(port) not in response.text and secret not in response.text
        time.sleep(0.3)
        assert listener.accepted == 0, "no connection may be opened to a fhirServer the client did not declare"
    finally:
        service.stop()
        listener.close()
    assert secret not in service.log()


def test_auth_off_fetches_only_from_loopback_and_never_connects_elsewhere():
    """Non-loopback targets are checked through a mock transport: nothing leaves the machine."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})

    fetcher = FhirClient(FetchLimits(), transport=httpx.MockTransport(handler))
    settings = Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, database_url="sqlite://")
    client = TestClient(shipped_app(settings, fetch=fetcher))
    for target in [
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/latest",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://10.0.0.1:8500/v1/kv",
        "https://ehr.example.org/fhir",
    ]:
        response = client.post("/cds-services/calciphylaxis-risk", json=sandbox_patient_view(target, access_token()))
        assert response.status_code == 403, (target, response.text)
        assert "loopback" in response.json()["issue"][0]["diagnostics"]
    assert sent == []


def test_a_complete_prefetch_is_answered_whatever_the_fhir_server_because_nothing_is_fetched():
    """Lenient where it is safe: no connection is needed, so an undeclared fhirServer does not cost the advice."""
    body = json.loads((RULES_DIR.parent / "fhir_examples/requests/source-case.patient-view.json").read_text())
    assert body["fhirServer"] == DECLARED
    settings = Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, database_url="sqlite://")
    response = TestClient(shipped_app(settings)).post("/cds-services/calciphylaxis-risk", json=body)
    assert response.status_code == 200 and response.json()["cards"]


@pytest.mark.parametrize(
    ("url", "auth", "profile", "allowed", "refused"),
    [
        ("https://ehr.example.org/fhir", True, "production", (DECLARED,), False),
        ("https://ehr.example.org/fhir/tenant-a", True, "production", (DECLARED,), False),
        ("https://ehr.example.org/fhirx", True, "production", (DECLARED,), True),  # not under, only a prefix
        ("https://ehr.example.org/fhir/%2e%2e/admin", True, "production", (DECLARED,), True),
        ("https://ehr.example.org:8443/fhir", True, "production", (DECLARED,), True),
        ("http://ehr.example.org/fhir", True, "production", ("http://ehr.example.org/fhir",), True),
        ("https://ehr.example.org/fhir", True, "production", (), True),
        ("http://127.0.0.1:9/fhir", False, "demo", (), False),
        ("http://localhost:9/fhir", False, "demo", (), False),
        ("http://127.1:9/fhir", False, "demo", (), True),
        ("http://0.0.0.0:9/fhir", False, "demo", (), True),
    ],
)
def test_the_policy(url, auth, profile, allowed, refused):
    assert (refusal(url, auth_required=auth, profile=profile, allowed=allowed) is not None) is refused


def test_production_refuses_a_declared_plain_http_fhir_server_at_start(tmp_path, keys):
    from cds.auth import TrustedClientsError, build_authenticator

    (tmp_path / "ehr-jwks.json").write_text(json.dumps(keys.jwks()))
    clients = tmp_path / "trusted-clients.yaml"
    clients.write_text(
        f"clients:\n  - iss: {ISS}\n    jwks_file: ehr-jwks.json\n    fhir_servers: [http://127.0.0.1:8081/fhir]\n"
    )
    settings = Settings(
        rules_dir=RULES_DIR,
        external_base_url="https://cds.example.org",
        trusted_clients_file=clients,
        audit_hmac_key="k",
        database_url="sqlite://",
    )
    with pytest.raises(TrustedClientsError, match="https in the production profile"):
        build_authenticator(settings, lambda: datetime.now(UTC))


def test_percent_encoded_dot_segments_are_normalised_before_the_path_check():
    assert not is_under("http://h/fhir/%2e%2e/%2E%2E/admin/fhir/Condition", "http://h/fhir")
    assert not is_under("http://h/fhir/..%2fadmin", "http://h/fhir")
    assert not is_under("http://h/fhir/%2e%2e%5cadmin", "http://h/fhir")
    assert is_under("http://h/fhir/Condition?x=%2e%2e", "http://h/fhir")


def test_an_encoded_dot_dot_next_link_is_not_followed(fhir):
    t = tag()
    fetch = FhirClient(FetchLimits(max_pages=5))

    async def go():
        try:
            return await fetch(
                f"Observation?patient={SANDBOX_PATIENT_ID}&_count=10", cds_request(fhir.base("dotdot", t))
            )
        finally:
            await fetch.aclose()

    with pytest.raises(FhirFetchError, match="outside fhirServer"):
        asyncio.run(go())
    paths = [r["path"] for r in fhir.requests(t)]
    assert len(paths) == 1 and not any("admin" in p or "%2e" in p.lower() for p in paths)


def test_endless_next_links_are_capped_per_hook_call(fhir):
    """The review saw 101 GETs for one call; now all keys and pages share one budget."""
    t = tag()
    settings = Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, database_url="sqlite://")
    body = sandbox_patient_view(fhir.base("endless", t), access_token())
    response = TestClient(shipped_app(settings)).post("/cds-services/calciphylaxis-risk", json=body)
    assert response.status_code == 412
    assert len(fhir.requests(t)) <= settings.fhir_max_requests_per_call
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert str(fhir.port) not in diagnostics and "127.0.0.1" not in diagnostics
