"""Issue 16, items 5, 8 and 9: list settings, /metrics exposure, replay across workers, NaN claims."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import jwt
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cds.auth import AuthFailure
from cds.settings import Settings, SettingsError, load_settings
from tests.auth.conftest import BASE, ISS, NOW, SERVICE_URL, claims, sign
from tests.auth.test_verify import verifier_for
from tests.conftest import REPO, RULES_DIR, shipped_app
from tests.serving import loopback_client, start_service

SOURCE_CASE = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())


# ---------------------------------------------------------------- item 9: times and replay


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1.5e9 + 0.5, "1800000000", True])
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_non_finite_or_non_integer_times_are_refused(keys, clients_file, claim, bad):
    token = sign(keys, claims(**{claim: bad}))
    verifier = verifier_for(clients_file)
    with pytest.raises(AuthFailure) as caught:
        asyncio.run(verifier.verify(token, SERVICE_URL))
    assert caught.value.check == "claims"


def test_a_nan_token_is_refused_both_times(keys, clients_file):
    """The review's token: exp and iat NaN, accepted twice with the memory replay store."""
    token = sign(keys, claims(exp=float("nan"), iat=float("nan")))
    assert "NaN" in jwt.utils.base64url_decode(token.split(".")[1]).decode()
    verifier = verifier_for(clients_file)
    for _ in range(2):
        with pytest.raises(AuthFailure):
            asyncio.run(verifier.verify(token, SERVICE_URL))


def test_integral_times_still_pass(keys, clients_file):
    now = int(NOW.timestamp())
    token = sign(keys, claims(exp=float(now + 60), iat=now))
    assert asyncio.run(verifier_for(clients_file).verify(token, SERVICE_URL)).iss == ISS


def test_the_replay_store_is_shared_by_default_with_several_workers(clients_file):
    base = {
        "rules_dir": RULES_DIR,
        "external_base_url": BASE,
        "trusted_clients_file": clients_file,
        "audit_hmac_key": "k",
    }
    assert Settings(**base).replay_store == "memory"
    assert Settings(**base, workers=2).replay_store == "database"
    with pytest.raises(SettingsError, match="CDS_JWT_REPLAY_STORE=memory"):
        Settings(**base, workers=2, jwt_replay_store="memory").check()


def real_time_token(keys, audience: str) -> str:
    now = int(time.time())
    payload = {"iss": ISS, "aud": audience, "exp": now + 120, "iat": now, "jti": str(uuid.uuid4())}
    return jwt.encode(payload, keys.ec, algorithm="ES384", headers={"kid": keys.ec_kid, "typ": "JWT"})


@pytest.mark.slow
def test_two_workers_accept_a_token_once_and_list_settings_are_comma_separated(tmp_path, keys, clients_file):
    """Over HTTP: the image's 2 workers, no replay setting; lists written as the docs write them."""
    service = start_service(
        tmp_path,
        {
            "CDS_WORKERS": "2",
            "CDS_PROFILE": "production",
            "CDS_AUTH_REQUIRED": "true",
            "CDS_EXTERNAL_BASE_URL": BASE,
            "CDS_TRUSTED_CLIENTS_FILE": str(clients_file),
            "CDS_AUDIT_HMAC_KEY": "test-key",
            "CDS_CORS_ORIGINS": "http://127.0.0.1:8080, http://localhost:8080",
            "CDS_JWT_ALGORITHMS": "ES384,RS384",
            "CDS_REQUEST_DEADLINE_SECONDS": "30",
        },
    )
    try:
        accepted = []
        for _ in range(3):
            token = real_time_token(keys, f"{BASE}/cds-services/calciphylaxis-risk")
            statuses = []
            for _ in range(8):
                with loopback_client() as client:  # a new connection each time, so both workers see it
                    statuses.append(
                        client.post(
                            f"{service.base}/cds-services/calciphylaxis-risk",
                            json={**SOURCE_CASE, "hookInstance": str(uuid.uuid4())},
                            headers={"Authorization": f"Bearer {token}", "Origin": "http://localhost:8080"},
                            timeout=30,
                        ).status_code
                    )
            accepted.append(statuses.count(200))
            assert set(statuses) <= {200, 401}, statuses
        with loopback_client(timeout=30) as client:
            preflight = client.options(
                f"{service.base}/cds-services",
                headers={"Origin": "http://localhost:8080", "Access-Control-Request-Method": "GET"},
            )
    finally:
        service.stop()
    assert accepted == [1, 1, 1]
    assert preflight.headers.get("access-control-allow-origin") == "http://localhost:8080"


# ---------------------------------------------------------------- item 5: list settings


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://127.0.0.1:8080", ["http://127.0.0.1:8080"]),
        ("http://127.0.0.1:8080,http://localhost:8080", ["http://127.0.0.1:8080", "http://localhost:8080"]),
        ('["http://127.0.0.1:8080"]', ["http://127.0.0.1:8080"]),
    ],
)
def test_cors_origins_from_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv("CDS_CORS_ORIGINS", raw)
    monkeypatch.setenv("CDS_JWT_ALGORITHMS", "ES384, RS256")
    settings = load_settings()
    assert settings.cors_origins == expected
    assert settings.jwt_algorithms == ["ES384", "RS256"]


def test_a_refused_algorithm_in_a_comma_list_is_still_refused(monkeypatch):
    monkeypatch.setenv("CDS_JWT_ALGORITHMS", "ES384,HS256")
    with pytest.raises(SettingsError, match="HS256"):
        load_settings()


# ---------------------------------------------------------------- item 8: /metrics


def metrics_app(clients_file, **settings) -> TestClient:
    base = {
        "profile": "production",
        "rules_dir": RULES_DIR,
        "external_base_url": BASE,
        "trusted_clients_file": clients_file,
        "database_url": "sqlite://",
        "audit_hmac_key": "k",
    }
    return TestClient(shipped_app(Settings(**{**base, **settings}), clock=lambda: NOW))


def test_metrics_need_their_own_token_in_production(clients_file):
    assert metrics_app(clients_file).get("/metrics").status_code == 404
    # An empty token (an unset variable) is no token, not "any bearer".
    empty = metrics_app(clients_file, metrics_token="")
    assert empty.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
    client = metrics_app(clients_file, metrics_token="scrape-secret")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    good = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert good.status_code == 200 and "cds_request_duration_seconds" in good.text


def samples(client: TestClient) -> dict[tuple[str, tuple], float]:
    text = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_reveal_neither_the_failed_check_nor_the_rules_of_a_patient(keys, clients_file):
    client = metrics_app(clients_file, metrics_token="scrape-secret")
    before = samples(client)
    # A token with the wrong audience and one signed by an unknown key: refused for different reasons.
    for token in (sign(keys, claims(aud=f"{BASE}/elsewhere")), sign(keys, key=keys.other_ec)):
        assert (
            client.post(
                "/cds-services/calciphylaxis-risk", json=SOURCE_CASE, headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 401
        )
    good = client.post(
        "/cds-services/calciphylaxis-risk", json=SOURCE_CASE, headers={"Authorization": f"Bearer {sign(keys)}"}
    )
    assert good.status_code == 200 and good.json()["cards"]
    rule_ids = {
        rule for card in good.json()["cards"] for rule in card["extension"]["org.calciphylaxis-cds.ruleset"]["rules"]
    }
    after = samples(client)
    changed = {key for key, value in after.items() if before.get(key) != value}
    labels = {name for _, label_items in changed for name, _ in label_items}
    values = {value for _, label_items in changed for _, value in label_items}
    assert "reason" not in labels and "rule" not in labels
    assert not rule_ids & values, "no rule of this patient's cards may appear in /metrics"
    assert after[("cds_auth_failures_total", ())] == before.get(("cds_auth_failures_total", ()), 0) + 2
