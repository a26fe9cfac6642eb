"""Errors on the wire: FHIR OperationOutcome bodies with the right status.

Messages describe what was wrong with the request's *shape* (a field name, an
expected type); they never echo the values a client sent, which may be PHI.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import Response

# HTTP status -> FHIR IssueType (http://hl7.org/fhir/issue-type).
ISSUE_TYPE_BY_STATUS = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    408: "timeout",
    409: "conflict",
    412: "incomplete",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    500: "exception",
    503: "transient",
    504: "timeout",
}

OPERATION_OUTCOME_MEDIA_TYPE = "application/fhir+json"


class HookError(Exception):
    """An error answered with an OperationOutcome; raised anywhere below the app."""

    def __init__(self, status: int, diagnostics: str | Iterable[str], headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.diagnostics = [diagnostics] if isinstance(diagnostics, str) else list(diagnostics)
        self.headers = headers or {}
        super().__init__("; ".join(self.diagnostics))


def operation_outcome(status: int, diagnostics: list[str], request_id: str | None) -> dict[str, Any]:
    issue_type = ISSUE_TYPE_BY_STATUS.get(status, "processing")
    severity = "fatal" if status >= 500 else "error"
    outcome: dict[str, Any] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": issue_type, "diagnostics": d} for d in diagnostics or ["error"]],
    }
    if request_id:
        outcome["id"] = request_id
    return outcome


def outcome_response(
    status: int, diagnostics: list[str], request_id: str | None, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps(operation_outcome(status, diagnostics, request_id))
    return Response(body, status_code=status, media_type=OPERATION_OUTCOME_MEDIA_TYPE, headers=headers)


def describe_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem: the field path and what was wrong, without the input value."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False)[:20]:
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {message}" if loc else message)
    return lines
