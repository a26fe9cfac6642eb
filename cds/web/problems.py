"""Responses, request bodies, and the mapping of every error to an OperationOutcome.

The wire error hierarchy is defined in ``cds.hooks.errors`` (``WireError``); this module maps the
errors of other layers onto it and installs the application's exception handlers.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from cds.auth import AuthError, AuthFailure, AuthUnavailable
from cds.hooks.errors import HookError, WireError, outcome_response
from cds.observability import metrics

JSON_MEDIA_TYPES = ("application/json", "application/fhir+json")
UNAUTHORIZED = "authentication failed"


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def request_id_of(request: Request) -> str | None:
    request_id = request.scope.get("state", {}).get("request_id")
    return request_id if isinstance(request_id, str) else None


def log_fields(request: Request) -> dict[str, Any]:
    """The request's log event fields; endpoints add what they learn (service, hook, cards)."""
    fields: dict[str, Any] = request.scope.setdefault("state", {}).setdefault("log_fields", {})
    return fields


async def read_json_body(request: Request) -> bytes:
    """The request body, unparsed, or a 415 HookError (the hook route parses it in its worker thread)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in JSON_MEDIA_TYPES:
        raise HookError(415, "Content-Type must be application/json")
    return await request.body()


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 415/400/422 HookError."""
    body = await read_json_body(request)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HookError(400, f"malformed JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(payload, dict):
        raise HookError(422, "the request body must be a JSON object")
    return payload


def auth_problem(exc: AuthError) -> WireError:
    """What the client is told when authentication refuses a call (never which check failed)."""
    if isinstance(exc, AuthUnavailable):
        return WireError(503, "authentication is temporarily unavailable", {"Retry-After": "5"})
    if isinstance(exc, AuthFailure):
        return WireError(401, UNAUTHORIZED, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return WireError(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})


async def on_wire_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WireError)
    if exc.status == 412:
        service = log_fields(request).get("service")
        if service:
            metrics.PREFETCH_UNAVAILABLE.labels(service).inc()
    return exc.response(request_id_of(request))


async def on_auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return auth_problem(exc).response(request_id_of(request))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    messages = {404: "no such resource", 405: "method not allowed"}
    detail = messages.get(exc.status_code, str(exc.detail))
    return outcome_response(exc.status_code, [detail], request_id_of(request), dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(WireError, on_wire_error)
    app.add_exception_handler(AuthError, on_auth_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
