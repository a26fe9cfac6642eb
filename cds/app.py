"""FastAPI application factory: routes, middleware and error handling; no clinical logic.

Request bodies are read raw and parsed with orjson, then validated with the
CDS Hooks models, so every failure maps to a precise status (400 malformed
JSON, 415 content type, 413 size, 422 invalid request, 412 missing data) with
an OperationOutcome body instead of FastAPI's generic 422 or a bare 500.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds import __version__
from cds.hooks.errors import HookError, describe_validation_error, outcome_response
from cds.hooks.handler import answer_hook
from cds.hooks.models import DiscoveryResponse, FeedbackRequest, FeedbackResponse
from cds.hooks.prefetch import Fetcher
from cds.pipeline import Pipeline
from cds.settings import Settings

log = logging.getLogger("cds.app")

REQUEST_ID_HEADER = "X-Request-ID"
JSON_MEDIA_TYPES = ("application/json", "application/fhir+json")

# authenticate(request, audience_url) raises HookError(401) when the caller is not trusted.
Authenticator = Callable[[Request, str], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


class WireGuard:
    """Outermost application middleware.

    Gives every request an id (echoed in ``X-Request-ID`` and every
    OperationOutcome), enforces the body limit while the body streams in (so a
    client cannot bypass it by omitting Content-Length), and turns any
    unhandled exception into a 500 OperationOutcome with the request id and no
    internals.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            status = 400 if not declared.isdigit() else 413
            message = "invalid Content-Length" if status == 400 else self._too_large()
            await outcome_response(status, [message], request_id, {REQUEST_ID_HEADER: request_id})(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.lower().encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            if not started:
                await outcome_response(413, [self._too_large()], request_id)(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            if not started:
                await outcome_response(
                    500, [f"internal error; quote request id {request_id}"], request_id
                )(scope, receive, send_with_id)

    def _too_large(self) -> str:
        return f"request body exceeds the limit of {self.max_body_bytes} bytes"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def request_id_of(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 415/400/422 HookError."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in JSON_MEDIA_TYPES:
        raise HookError(415, "Content-Type must be application/json")
    body = await request.body()
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HookError(400, f"malformed JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(payload, dict):
        raise HookError(422, "the request body must be a JSON object")
    return payload


def create_app(
    settings: Settings,
    pipeline: Pipeline | None = None,
    fetch: Fetcher | None = None,
    authenticate: Authenticator | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    pipeline = pipeline or Pipeline.load(settings.rules_dir, settings.hook_namespace, engine=settings.engine)
    app = FastAPI(
        title="Calciphylaxis CDS",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the contract is openapi.yaml, generated and checked in
    )
    app.state.settings = settings
    app.state.pipeline = pipeline

    def audience(request: Request, path: str) -> str:
        base = (settings.external_base_url or str(request.base_url)).rstrip("/")
        return f"{base}{path}"

    async def check_caller(request: Request, path: str) -> None:
        if authenticate is not None:
            await authenticate(request, audience(request, path))

    @app.exception_handler(HookError)
    async def on_hook_error(request: Request, exc: HookError) -> Response:
        return outcome_response(exc.status, exc.diagnostics, request_id_of(request), exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "no such resource", 405: "method not allowed"}
        detail = messages.get(exc.status_code, str(exc.detail))
        return outcome_response(exc.status_code, [detail], request_id_of(request), dict(exc.headers or {}))

    @app.get("/cds-services")
    async def discovery(request: Request) -> Response:
        await check_caller(request, "/cds-services")
        current: Pipeline = app.state.pipeline
        body = DiscoveryResponse(services=[s.descriptor() for s in current.services])
        return json_response(body.to_wire())

    @app.post("/cds-services/{service_id}")
    async def call_service(service_id: str, request: Request) -> Response:
        current: Pipeline = app.state.pipeline
        service = current.service(service_id)
        if service is None:
            raise HookError(404, f"no CDS service with id {service_id!r}")
        await check_caller(request, f"/cds-services/{service_id}")
        payload = await read_json_object(request)
        evaluation = await answer_hook(
            current, service, payload, clock(), fetch, settings.trace_extension_key
        )
        body = evaluation.response.to_wire()
        if evaluation.trace is not None:  # only when the request's extension asked for it
            body.setdefault("extension", {})[settings.trace_extension_key] = evaluation.trace
        return json_response(body)

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> Response:
        current: Pipeline = app.state.pipeline
        if current.service(service_id) is None:
            raise HookError(404, f"no CDS service with id {service_id!r}")
        await check_caller(request, f"/cds-services/{service_id}/feedback")
        payload = await read_json_object(request)
        try:
            parsed = FeedbackRequest.model_validate(payload)
        except ValidationError as exc:
            raise HookError(422, describe_validation_error(exc)) from None
        return json_response(FeedbackResponse(accepted=len(parsed.feedback)).to_wire())

    @app.get("/healthz")
    async def healthz() -> Response:
        current: Pipeline = app.state.pipeline
        return json_response(
            {
                "status": "ok",
                "version": __version__,
                "ruleset": current.status(),
                "store": {"status": "not-configured"},
            }
        )

    app.add_middleware(WireGuard, max_body_bytes=settings.max_body_bytes)
    origins = settings.cors_origins or (["*"] if settings.profile == "demo" else [])
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization"],
        expose_headers=[REQUEST_ID_HEADER, "Location", "Content-Location"],
        max_age=600,
    )
    return app
