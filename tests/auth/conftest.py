from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

NOW = datetime(2026, 11, 21, 6, 0, 0, tzinfo=UTC)
ISS = "https://ehr.example.org"
BASE = "https://cds.example.org"
SERVICE_URL = f"{BASE}/cds-services/calciphylaxis-risk"


@dataclass
class Keys:
    ec: Any
    ec_kid: str
    rsa: Any
    rsa_kid: str
    other_ec: Any  # not in the JWKS

    def jwks(self) -> dict[str, Any]:
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        return {
            "keys": [
                {**ec_jwk, "kid": self.ec_kid, "use": "sig", "alg": "ES384"},
                {**rsa_jwk, "kid": self.rsa_kid, "use": "sig"},
            ]
        }


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        ec=ec.generate_private_key(ec.SECP384R1()),
        ec_kid="ec-1",
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_kid="rsa-1",
        other_ec=ec.generate_private_key(ec.SECP384R1()),
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(NOW.timestamp())
    base = {"iss": ISS, "aud": SERVICE_URL, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(keys: Keys, payload: dict[str, Any] | None = None, alg: str = "ES384", key: Any = None, **header: Any) -> str:
    payload = claims() if payload is None else payload
    private = key if key is not None else (keys.ec if alg.startswith("ES") else keys.rsa)
    headers = {"typ": "JWT", "kid": keys.ec_kid if alg.startswith("ES") else keys.rsa_kid, **header}
    # PyJWT adds typ JWT unless typ is given as None, which removes it.
    headers = {k: v for k, v in headers.items() if v is not None or k == "typ"}
    return jwt.encode(payload, private, algorithm=alg, headers=headers)


@pytest.fixture
def clients_file(tmp_path: Path, keys: Keys) -> Path:
    (tmp_path / "ehr-jwks.json").write_text(json.dumps(keys.jwks()))
    path = tmp_path / "trusted-clients.yaml"
    path.write_text(f"clients:\n  - iss: {ISS}\n    jwks_file: ehr-jwks.json\n")
    return path
