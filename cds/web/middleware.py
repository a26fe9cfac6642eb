"""``WireGuard``, the outermost application middleware (see its docstring)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds.hooks.errors import outcome_response
from cds.observability import metrics
from cds.observability.logs import request_id_var

log = logging.getLogger("cds.request")

REQUEST_ID_HEADER = "X-Request-ID"
RETRY_AFTER_SECONDS = "1"


class BodyTooLarge(Exception):
    """Raised from inside the body stream once it passes the limit; answered with 413."""


class BodyTooSlow(Exception):
    """The body did not arrive within the body-read deadline; answered with 408, the slot freed."""


def _route_label(path: str) -> str:
    """A low-cardinality route label for metrics and logs."""
    parts = path.strip("/").split("/")
    if parts[0] == "cds-services":
        return {1: "/cds-services", 2: "/cds-services/{id}"}.get(len(parts), "/cds-services/{id}/feedback")
    if parts[0] == "pages":
        return "/pages"
    return path if path in {"/healthz", "/readyz", "/metrics"} else "other"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class WireGuard:
    """Outermost application middleware.

    * gives every request an id (``X-Request-ID`` header, every OperationOutcome, every log line);
    * refuses work fast with 503 + Retry-After when too many hook calls are in flight;
    * enforces the body limit while the body streams in (a client cannot dodge it by
      omitting Content-Length), and the body-read deadline: a client that sends headers and
      holds the body back gets 408 and gives its in-flight slot back (issue 16);
    * turns any unhandled exception into a 500 OperationOutcome with the request id and no internals;
    * writes one structured log event and the latency metric per request.
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, max_in_flight: int, body_timeout_seconds: float = 3.0
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.body_timeout_seconds = body_timeout_seconds
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        token = request_id_var.set(request_id)
        fields: dict[str, Any] = {}
        scope.setdefault("state", {}).update(request_id=request_id, log_fields=fields)
        started_at = time.perf_counter()
        status = 500
        route = _route_label(scope.get("path", ""))
        counted = scope["method"] == "POST" and route != "other"

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
                ]
            await send(message)

        try:
            if counted and self.in_flight >= self.max_in_flight:
                metrics.SATURATED.inc()
                await outcome_response(
                    503, ["the service is saturated; retry shortly"], request_id, {"Retry-After": RETRY_AFTER_SECONDS}
                )(scope, receive, send_with_id)
                return
            if counted:
                self.in_flight += 1
                metrics.IN_FLIGHT.inc()
            try:
                await self._guarded(scope, receive, send_with_id, request_id)
            finally:
                if counted:
                    self.in_flight -= 1
                    metrics.IN_FLIGHT.dec()
        finally:
            duration = time.perf_counter() - started_at
            service = fields.get("service", "")
            metrics.REQUEST_LATENCY.labels(route, service, str(status)).observe(duration)
            if route != "/metrics":
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(duration * 1000, 3),
                        **fields,
                    },
                )
            request_id_var.reset(token)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            status = 400 if not declared.isdigit() else 413
            message = "invalid Content-Length" if status == 400 else self._too_large()
            await outcome_response(status, [message], request_id)(scope, receive, tracking_send)
            return

        received = 0
        body_complete = False
        body_deadline = time.monotonic() + self.body_timeout_seconds

        async def limited_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:
                return await receive()  # after the body: only a disconnect can come, wait for it as asked
            try:
                async with asyncio.timeout(max(0.0, body_deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
                body_complete = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await outcome_response(413, [self._too_large()], request_id)(scope, receive, tracking_send)
        except BodyTooSlow:
            if not started:
                message = f"the request body did not arrive within {self.body_timeout_seconds:g} s"
                await outcome_response(408, [message], request_id, {"Connection": "close"})(
                    scope, receive, tracking_send
                )
        except Exception:
            logging.getLogger("cds.app").exception("unhandled error")
            if not started:
                await outcome_response(500, [f"internal error; quote request id {request_id}"], request_id)(
                    scope, receive, tracking_send
                )

    def _too_large(self) -> str:
        return f"request body exceeds the limit of {self.max_body_bytes} bytes"
