"""Auth raises its own errors; the web layer alone turns them into OperationOutcomes (ADR 0012)."""

from __future__ import annotations

import orjson
import pytest

from cds.auth import AuthError, AuthFailure, AuthUnavailable, MissingCredentials
from cds.hooks.errors import HookError, WireError
from cds.web.problems import auth_problem


@pytest.mark.parametrize(
    ("error", "status", "header", "value"),
    [
        (MissingCredentials(), 401, "WWW-Authenticate", "Bearer"),
        (
            AuthFailure("signature", "https://ehr.example.org", "jti-1"),
            401,
            "WWW-Authenticate",
            'Bearer error="invalid_token"',
        ),
        (AuthUnavailable(), 503, "Retry-After", "5"),
    ],
)
def test_each_auth_error_becomes_its_outcome(error: AuthError, status: int, header: str, value: str) -> None:
    response = auth_problem(error).response("req-1")
    body = orjson.loads(response.body)
    assert response.status_code == status
    assert response.headers[header] == value
    assert response.headers["content-type"] == "application/fhir+json"
    assert body["resourceType"] == "OperationOutcome" and body["id"] == "req-1"
    text = orjson.dumps(body).decode()
    # The client never learns which check failed, nor the issuer or token id.
    assert "signature" not in text and "ehr.example.org" not in text and "jti-1" not in text


def test_auth_errors_are_not_wire_errors() -> None:
    """Nothing in cds.auth knows HTTP: its errors carry no status."""
    for error in (MissingCredentials(), AuthFailure("exp"), AuthUnavailable()):
        assert not isinstance(error, WireError)
        assert not hasattr(error, "status")


def test_a_wire_error_carries_status_and_its_fhir_issue_code() -> None:
    assert issubclass(HookError, WireError)
    assert (WireError(412, "x").code, WireError(401, "x").code, WireError(503, "x").code) == (
        "incomplete",
        "login",
        "transient",
    )
    assert WireError(418, "x").code == "processing"
