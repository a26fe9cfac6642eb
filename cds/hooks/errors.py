"""Errors on the wire: FHIR OperationOutcome bodies with the right status.

The wire error hierarchy (docs/adr/0012-layers-and-wire-errors.md)::

    WireError                 answered as an OperationOutcome: status, FHIR issue code, diagnostics, headers
    └── HookError             a hook call, feedback post or page refused (4xx) or not answerable now (412, 503)

Every error that reaches a client as an HTTP status is a ``WireError``; ``cds.app`` has one handler
for it. Other layers raise their own errors and the web layer maps them here:

* ``cds.auth.AuthError`` (``MissingCredentials``, ``AuthFailure`` -> 401; ``AuthUnavailable`` -> 503),
  mapped by ``cds.web.problems.auth_problem``;
* ``cds.hooks.prefetch`` ``FhirServerRefused`` (403) and ``PrefetchUnavailable`` (412), and
  ``cds.hooks.evaluation.FactLimitExceeded`` (422), mapped by ``cds.hooks.handler.answer_hook``;
* ``cds.store.StoreUnavailable`` (503 on feedback), mapped by the feedback route;
* Starlette's ``HTTPException`` (404, 405 of the router) and anything unhandled (500, in the
  request guard ``cds.web.middleware.WireGuard``, with the request id and no internals).

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
    431: "too-long",
    500: "exception",
    503: "transient",
    504: "timeout",
}

OPERATION_OUTCOME_MEDIA_TYPE = "application/fhir+json"


class WireError(Exception):
    """An error answered with an OperationOutcome: ``status``, its FHIR issue ``code``, the diagnostics
    (one issue each; never a value the client sent) and extra response headers."""

    def __init__(self, status: int, diagnostics: str | Iterable[str], headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.diagnostics = [diagnostics] if isinstance(diagnostics, str) else list(diagnostics)
        self.headers = headers or {}
        super().__init__("; ".join(self.diagnostics))

    @property
    def code(self) -> str:
        """The FHIR IssueType of the status (http://hl7.org/fhir/issue-type)."""
        return issue_type(self.status)

    def response(self, request_id: str | None) -> Response:
        return outcome_response(self.status, self.diagnostics, request_id, self.headers)


class HookError(WireError):
    """A hook call, feedback post or page request refused, or not answerable now."""


def issue_type(status: int) -> str:
    return ISSUE_TYPE_BY_STATUS.get(status, "processing")


def operation_outcome(status: int, diagnostics: list[str], request_id: str | None) -> dict[str, Any]:
    code = issue_type(status)
    severity = "fatal" if status >= 500 else "error"
    outcome: dict[str, Any] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": d} for d in diagnostics or ["error"]],
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
