"""JWT verification: good tokens pass, every forged or broken one is refused with the right check."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cds.auth import AuthFailure, JwtVerifier, KeyRing, MemoryReplayStore, load_trusted_clients
from cds.auth.clients import TrustedClient, TrustedClientsError
from cds.auth.replay import ReplayStoreUnavailable
from cds.auth.verify import loggable
from tests.auth.conftest import ISS, NOW, SERVICE_URL, claims, sign
from tests.conftest import shared_data


def verifier_for(clients_file: Path, now: datetime = NOW, **kwargs) -> JwtVerifier:
    clients = load_trusted_clients(clients_file)
    ring = KeyRing()
    for client in clients.values():
        if client.jwks_file:
            ring.load_file(client)
    return JwtVerifier(clients, ring, clock=lambda: now, **kwargs)


def verify(verifier: JwtVerifier, token: str, audience: str = SERVICE_URL):
    return asyncio.run(verifier.verify(token, audience))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, payload: dict, signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


def hmac_token(header: dict, payload: dict, secret: bytes, digest=hashlib.sha256) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


# ------------------------------------------------------------------ accepted


def test_a_good_es384_token_is_accepted(keys, clients_file):
    verified = verify(verifier_for(clients_file), sign(keys))
    assert verified.iss == ISS and verified.jti


def test_a_good_rs384_token_is_accepted(keys, clients_file):
    assert verify(verifier_for(clients_file), sign(keys, alg="RS384")).iss == ISS


def test_no_sub_is_needed_and_aud_may_be_a_list(keys, clients_file):
    token = sign(keys, claims(aud=["https://other.example.org", SERVICE_URL]))
    assert verify(verifier_for(clients_file), token).iss == ISS


def test_small_clock_skew_is_tolerated(keys, clients_file):
    now = int(NOW.timestamp())
    token = sign(keys, claims(iat=now + 20, exp=now + 300))
    assert verify(verifier_for(clients_file, clock_skew_seconds=30), token)
    late = sign(keys, claims(iat=now - 320, exp=now - 20))
    assert verify(verifier_for(clients_file, clock_skew_seconds=30), late)


@pytest.mark.parametrize(
    "capture",
    ["sandbox-patient-view-request.json", "sandbox-order-sign-request.json"],
)
def test_the_sandbox_tokens_verify_with_its_jwks_at_their_time(tmp_path, capture):
    """The CDS Hooks sandbox's real ES384 tokens, with its published JWK Set, at the time they were sent."""
    jwks = shared_data("cds-hooks-sandbox", "jwks.json")
    request = json.loads(shared_data("cds-hooks-sandbox", capture).read_text())
    token = request["headers"]["Authorization"].removeprefix("Bearer ")
    unverified = jwt.decode(token, options={"verify_signature": False})
    clients = tmp_path / "clients.yaml"
    clients.write_text(f"clients:\n  - iss: https://sandbox.cds-hooks.org\n    jwks_file: {jwks}\n")
    sent_at = datetime.fromtimestamp(unverified["iat"], UTC) + timedelta(seconds=5)
    audience = f"http://127.0.0.1:3100{request['path']}"
    verified = verify(verifier_for(clients, now=sent_at), token, audience)
    assert verified.iss == "https://sandbox.cds-hooks.org" and verified.jti == unverified["jti"]
    # The same token an hour later, or at another endpoint, is refused.
    with pytest.raises(AuthFailure) as late:
        verify(verifier_for(clients, now=sent_at + timedelta(hours=1)), token, audience)
    assert late.value.check == "exp"
    with pytest.raises(AuthFailure) as elsewhere:
        verify(verifier_for(clients, now=sent_at), token, "http://127.0.0.1:3100/cds-services")
    assert elsewhere.value.check == "aud"


# ------------------------------------------------------------------ refused


def _forged(keys, tmp_path):
    """(name, token, expected check): 30 forged or broken tokens."""
    now = int(NOW.timestamp())
    public_pem = keys.ec.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good_header = {"alg": "ES384", "typ": "JWT", "kid": keys.ec_kid}
    good = sign(keys)
    head, body, signature = good.split(".")
    tampered_body = b64(json.dumps({**claims(), "iss": ISS, "jti": "changed"}).encode())
    p256 = ec.generate_private_key(ec.SECP256R1())
    return [
        ("alg none", hand_made({**good_header, "alg": "none"}, claims()), "alg"),
        ("alg None", hand_made({**good_header, "alg": "None"}, claims()), "alg"),
        (
            "HS256 with the public key as secret",
            hmac_token({**good_header, "alg": "HS256"}, claims(), public_pem),
            "alg",
        ),
        (
            "HS384 with the public key as secret",
            hmac_token({**good_header, "alg": "HS384"}, claims(), public_pem, hashlib.sha384),
            "alg",
        ),
        (
            "HS512 with a guessed secret",
            hmac_token({**good_header, "alg": "HS512"}, claims(), b"secret", hashlib.sha512),
            "alg",
        ),
        ("ES256 not allow-listed", sign(keys, alg="ES256", key=p256), "alg"),
        ("RS384 header on the EC key", hand_made({**good_header, "alg": "RS384"}, claims(), b"x" * 256), "alg"),
        ("ES384 header naming the RSA key", sign(keys, alg="ES384", kid=keys.rsa_kid), "alg"),
        ("typ missing", sign(keys, typ=None), "typ"),
        ("typ at+jwt", sign(keys, typ="at+jwt"), "typ"),
        ("kid missing", sign(keys, kid=None), "kid"),
        ("kid unknown", sign(keys, kid="no-such-kid"), "key"),
        ("iss unknown", sign(keys, claims(iss="https://evil.example.org")), "iss"),
        ("iss missing", sign(keys, claims(iss=None)), "iss"),
        ("signed by another key with the right kid", sign(keys, key=keys.other_ec), "signature"),
        ("payload changed after signing", f"{head}.{tampered_body}.{signature}", "signature"),
        ("signature stripped", f"{head}.{body}.", "signature"),
        ("signature of another token", f"{head}.{body}.{sign(keys).split('.')[2]}", "signature"),
        ("expired", sign(keys, claims(iat=now - 900, exp=now - 600)), "exp"),
        ("exp missing", sign(keys, claims(exp=None)), "claims"),
        ("exp not a number", sign(keys, claims(exp=str(now + 300))), "claims"),
        ("iat in the future", sign(keys, claims(iat=now + 600, exp=now + 900)), "iat"),
        ("iat missing", sign(keys, claims(iat=None)), "claims"),
        ("nbf in the future", sign(keys, claims(nbf=now + 600)), "nbf"),
        ("jti missing", sign(keys, claims(jti=None)), "claims"),
        ("jti empty", sign(keys, claims(jti="")), "claims"),
        ("aud of another service", sign(keys, claims(aud="https://cds.example.org/cds-services/other")), "aud"),
        (
            "aud of another host",
            sign(keys, claims(aud="https://evil.example.org/cds-services/calciphylaxis-risk")),
            "aud",
        ),
        ("aud missing", sign(keys, claims(aud=None)), "claims"),
        ("lifetime over an hour", sign(keys, claims(exp=now + 7200)), "lifetime"),
        ("crit header", sign(keys, crit=["exp"]), "header"),
        ("not a JWT", "not-a-jwt", "header"),
        ("three junk parts", "a.b.c", "header"),
        ("payload not an object", f"{head}.{b64(b'[1,2]')}.{signature}", "header"),
    ]


def test_forged_and_broken_tokens_are_refused(keys, clients_file, tmp_path):
    cases = _forged(keys, tmp_path)
    assert len(cases) >= 20
    verifier = verifier_for(clients_file)
    wrong = []
    for name, token, check in cases:
        try:
            verify(verifier, token)
            wrong.append(f"{name}: accepted")
        except AuthFailure as failure:
            if failure.check != check:
                wrong.append(f"{name}: refused by {failure.check}, expected {check}")
    assert not wrong, wrong


def test_a_replayed_token_is_refused(keys, clients_file):
    verifier = verifier_for(clients_file)
    token = sign(keys)
    verify(verifier, token)
    with pytest.raises(AuthFailure) as caught:
        verify(verifier, token)
    assert caught.value.check == "replay"
    # The same jti from a new token (re-signed) is a replay too.
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    with pytest.raises(AuthFailure, match="replay"):
        verify(verifier, sign(keys, claims(jti=jti), alg="RS384"))


def test_a_refused_token_does_not_use_up_its_jti(keys, clients_file):
    verifier = verifier_for(clients_file)
    payload = claims()
    with pytest.raises(AuthFailure, match="aud"):
        verify(verifier, sign(keys, payload), "https://cds.example.org/cds-services")
    assert verify(verifier, sign(keys, payload)).jti == payload["jti"]


def test_memory_replay_store_forgets_expired_jtis():
    store = MemoryReplayStore(max_entries=2)
    assert asyncio.run(store.remember("i", "a", 1010, now=1000))
    assert not asyncio.run(store.remember("i", "a", 1010, now=1005))
    assert asyncio.run(store.remember("j", "a", 1010, now=1005))  # jtis are per issuer
    assert asyncio.run(store.remember("i", "b", 1100, now=1011)) and len(store) == 1  # full: expired ones purged


def test_memory_replay_store_fails_closed_when_full_of_live_jtis():
    store = MemoryReplayStore(max_entries=1)
    asyncio.run(store.remember("i", "a", 1010, now=1000))
    with pytest.raises(ReplayStoreUnavailable):
        asyncio.run(store.remember("i", "b", 1010, now=1000))


def test_tenant_allow_list(keys, tmp_path):
    (tmp_path / "jwks.json").write_text(json.dumps(keys.jwks()))
    path = tmp_path / "clients.yaml"
    path.write_text(f"clients:\n  - iss: {ISS}\n    jwks_file: jwks.json\n    tenants: [hospital-a]\n")
    verifier = verifier_for(path)
    assert verify(verifier, sign(keys, claims(tenant="hospital-a"))).tenant == "hospital-a"
    for tenant in ("hospital-b", None):
        with pytest.raises(AuthFailure) as caught:
            verify(verifier, sign(keys, claims(tenant=tenant)))
        assert caught.value.check == "tenant"


def test_per_client_algorithms_narrow_the_global_list(keys, tmp_path):
    (tmp_path / "jwks.json").write_text(json.dumps(keys.jwks()))
    path = tmp_path / "clients.yaml"
    path.write_text(f"clients:\n  - iss: {ISS}\n    jwks_file: jwks.json\n    algorithms: [ES384]\n")
    with pytest.raises(AuthFailure, match="alg"):
        verify(verifier_for(path), sign(keys, alg="RS384"))


# ------------------------------------------------------------------ jku


class JwksServer:
    """An httpx transport serving a JWK Set, counting fetches per URL."""

    def __init__(self, jwks: dict) -> None:
        self.jwks = jwks
        self.fetches: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.fetches.append(str(request.url))
        return httpx.Response(200, json=self.jwks)


JKU = "https://ehr.example.org/.well-known/jwks.json"


def jku_verifier(server: JwksServer, clock_box: list[float], min_refresh: float = 30) -> JwtVerifier:
    client = TrustedClient(iss=ISS, jku=(JKU,))
    ring = KeyRing(
        min_refresh_seconds=min_refresh, monotonic=lambda: clock_box[0], transport=httpx.MockTransport(server)
    )
    return JwtVerifier({ISS: client}, ring, clock=lambda: NOW)


def test_an_allow_listed_jku_is_fetched_once_and_cached(keys):
    server, clock = JwksServer(keys.jwks()), [0.0]
    verifier = jku_verifier(server, clock)
    verify(verifier, sign(keys, jku=JKU))
    verify(verifier, sign(keys))  # no jku in the header: the client's listed jku
    verify(verifier, sign(keys, alg="RS384", jku=JKU))
    assert server.fetches == [JKU]


def test_an_unknown_kid_refetches_the_jku_for_key_rotation_but_not_too_often(keys):
    server, clock = JwksServer({"keys": [keys.jwks()["keys"][1]]}), [0.0]
    verifier = jku_verifier(server, clock)
    with pytest.raises(AuthFailure, match="key"):
        verify(verifier, sign(keys, jku=JKU))  # EC key not published yet
    server.jwks = keys.jwks()  # the EHR rotates its keys in
    with pytest.raises(AuthFailure, match="key"):
        verify(verifier, sign(keys, jku=JKU))  # too soon to refetch
    clock[0] = 31.0
    assert verify(verifier, sign(keys, jku=JKU))
    with pytest.raises(AuthFailure, match="key"):
        verify(verifier, sign(keys, kid="made-up", jku=JKU))
    assert len(server.fetches) == 2


def test_a_jku_that_is_not_allow_listed_is_never_fetched(keys):
    server, clock = JwksServer(keys.jwks()), [0.0]
    verifier = jku_verifier(server, clock)
    with pytest.raises(AuthFailure) as caught:
        verify(verifier, sign(keys, jku="https://evil.example.org/jwks.json"))
    assert caught.value.check == "jku" and server.fetches == []


def test_symmetric_keys_in_a_jwks_are_ignored(keys):
    oct_key = {"kty": "oct", "kid": "shared", "k": b64(b"secret"), "alg": "HS256"}
    server, clock = JwksServer({"keys": [oct_key, *keys.jwks()["keys"]]}), [0.0]
    verifier = jku_verifier(server, clock)
    token = hmac_token({"alg": "HS256", "typ": "JWT", "kid": "shared"}, claims(), b"secret")
    with pytest.raises(AuthFailure, match="alg"):
        verify(verifier, token)
    assert "shared" not in asyncio.run(_keys_of(verifier))


async def _keys_of(verifier: JwtVerifier) -> set[str]:
    await verifier.keys.key(verifier.clients[ISS], "ec-1", None)
    return set(verifier.keys._jku[JKU].keys)


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "text, message",
    [
        ("clients:\n  - iss: x\n", "jwks_file or jku"),
        ("clients:\n  - iss: x\n    jku: [http://ehr.example.org/jwks]\n", "https"),
        ("clients:\n  - iss: x\n    jku: [https://a]\n    algorithms: [HS256]\n", "asymmetric"),
        ("clients:\n  - iss: x\n    jku: [https://a]\n  - iss: x\n    jku: [https://b]\n", "twice"),
        ("clients: [\n", "invalid YAML"),
    ],
)
def test_bad_trusted_client_files_are_refused(tmp_path, text, message):
    path = tmp_path / "clients.yaml"
    path.write_text(text)
    with pytest.raises(TrustedClientsError, match=message):
        load_trusted_clients(path)


def test_loggable_withholds_token_shaped_values():
    assert loggable("eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2ln") == "(token-like value withheld)"
    assert loggable("abc.def.ghi") == "(token-like value withheld)"
    assert loggable("a\nb c" + "x" * 200) == "a?b?c" + "x" * 91
    assert loggable(None) == "-" and loggable(42) == "-"
