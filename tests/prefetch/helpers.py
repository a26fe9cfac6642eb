from __future__ import annotations

import uuid
from typing import Any

from cds.hooks.models import CDSRequest
from tests.prefetch.conftest import SANDBOX_PATIENT_ID


def access_token(name: str = "a") -> str:
    # "test-access-token" is one of the markers the whole-run log scan (tests/log_scan.py) looks for.
    return f"test-access-token-{name}-{uuid.uuid4().hex}"


def cds_request(
    fhir_server: str | None = None,
    token: str | None = None,
    prefetch: dict[str, Any] | None = None,
    patient_id: str = SANDBOX_PATIENT_ID,
    user_id: str = "Practitioner/COREPRACTITIONER1",
) -> CDSRequest:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": user_id, "patientId": patient_id},
    }
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
    if token is not None:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "calciphylaxis-cds",
            "patient": patient_id,
        }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return CDSRequest.model_validate(body)


def tag() -> str:
    return uuid.uuid4().hex[:10]
