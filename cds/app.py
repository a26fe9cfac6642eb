"""FastAPI application factory: routes, middleware and error handling; no clinical logic.

Request bodies are read raw and parsed with orjson, then validated with the
CDS Hooks models, so every failure maps to a precise status (400 malformed
JSON, 415 content type, 413 size, 422 invalid request, 412 missing data) with
an OperationOutcome body instead of FastAPI's generic 422 or a bare 500.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds import __version__
from cds.auth import SqlReplayStore, build_authenticator
from cds.cards.snooze import apply_snoozes, card_state, snooze_policies
from cds.hooks import fhir_servers
from cds.hooks.errors import HookError, describe_validation_error, outcome_response
from cds.hooks.fhir_client import FetchLimits, FhirClient
from cds.hooks.handler import answer_hook
from cds.hooks.limits import RequestLimits
from cds.hooks.models import DiscoveryResponse, FeedbackItemResult, FeedbackRequest, FeedbackResponse
from cds.hooks.prefetch import Fetcher
from cds.hooks.services import find_service
from cds.observability import metrics
from cds.observability.logs import request_id_var
from cds.pages import Pages
from cds.pipeline import Pipeline, watch_rules
from cds.settings import Settings
from cds.store import Store, StoreUnavailable, audit_records, open_store
from cds.store.snooze import active_snoozes, record_snoozes

log = logging.getLogger("cds.request")

REQUEST_ID_HEADER = "X-Request-ID"
JSON_MEDIA_TYPES = ("application/json", "application/fhir+json")
RETRY_AFTER_SECONDS = "1"
# Pages are immutable under their versioned URL; the frame-ancestors default lets an EHR embed them.
PAGE_HEADERS = {
    "Cache-Control": "public, max-age=86400, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:",
}

# authenticate(request, audience_url) raises HookError(401) when the caller is not trusted.
Authenticator = Callable[[Request, str], Awaitable[None]]


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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def request_id_of(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def log_fields(request: Request) -> dict[str, Any]:
    """The request's log event fields; endpoints add what they learn (service, hook, cards)."""
    return request.scope.setdefault("state", {}).setdefault("log_fields", {})


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
    store: Store | None = None,
) -> FastAPI:
    pipeline = pipeline or Pipeline.load(settings.rules_dir, settings.hook_namespace, engine=settings.engine)
    fhir_client: FhirClient | None = None
    if fetch is None:
        fhir_client = FhirClient(
            FetchLimits(
                request_timeout=settings.fhir_request_timeout_seconds,
                total_timeout=settings.fhir_total_timeout_seconds,
                max_pages=settings.fhir_max_pages,
                max_requests_per_call=settings.fhir_max_requests_per_call,
            )
        )
        fetch = fhir_client
    active_store = store if store is not None else open_store(settings)
    if authenticate is None and settings.auth_required:
        replay = SqlReplayStore(active_store.engine) if settings.replay_store == "database" else None
        authenticate = build_authenticator(settings, clock, replay)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop_watch = watch_rules(pipeline, settings.rules_watch_seconds) if settings.rules_watch_seconds > 0 else None
        # Everything loaded so far (rules, terminology, NLP pipeline, libraries) lives as long as the
        # process: keep it out of the collector's scans, which otherwise dominate large requests.
        gc.freeze()
        yield
        if stop_watch is not None:
            stop_watch.set()
        if fhir_client is not None:
            await fhir_client.aclose()
        if store is None:
            active_store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Calciphylaxis CDS",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the contract is openapi.yaml, generated and checked in
    )
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.store = active_store

    def audience(request: Request, path: str) -> str:
        base = (settings.external_base_url or str(request.base_url)).rstrip("/")
        return f"{base}{path}"

    async def check_caller(request: Request, path: str) -> None:
        if authenticate is not None:
            await authenticate(request, audience(request, path))

    @app.exception_handler(HookError)
    async def on_hook_error(request: Request, exc: HookError) -> Response:
        if exc.status == 412:
            service = log_fields(request).get("service")
            if service:
                metrics.PREFETCH_UNAVAILABLE.labels(service).inc()
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
        body = DiscoveryResponse(services=[d for s in current.services for d in s.descriptors()])
        return json_response(body.to_wire())

    @app.post("/cds-services/{service_id}")
    async def call_service(service_id: str, request: Request) -> Response:
        await check_caller(request, f"/cds-services/{service_id}")
        current: Pipeline = app.state.pipeline
        if find_service(current.services, service_id) is None:
            raise HookError(404, f"no CDS service with id {service_id!r}")
        payload = await read_json_object(request)
        # One id may serve several hooks (CDS Hooks 2.0.1 §Discovery): the request's hook picks the entry.
        service = find_service(current.services, service_id, payload.get("hook"))
        assert service is not None
        fields = log_fields(request)
        fields.update(service=service_id, hook=service.hook, ruleset=current.version, engine=current.backend)
        now = clock()
        declared = tuple(getattr(request.state, "fhir_servers", ()))

        def fhir_server_policy(url: str) -> str | None:
            return fhir_servers.refusal(
                url, auth_required=settings.auth_required, profile=settings.profile, allowed=declared
            )

        snooze_lookup = start_snooze_lookup(current, service.id, payload, now)  # runs alongside the evaluation
        try:
            async with asyncio.timeout(settings.request_deadline_seconds):
                evaluation = await answer_hook(
                    current,
                    service,
                    payload,
                    now,
                    fetch,
                    settings.trace_extension_key,
                    fhir_server_policy,
                    RequestLimits.from_settings(settings),
                    pages_base_url=audience(request, ""),
                )
        except TimeoutError:
            metrics.DEADLINE_EXCEEDED.inc()
            raise HookError(
                503,
                f"no answer within the {settings.request_deadline_seconds:g} s deadline",
                {"Retry-After": RETRY_AFTER_SECONDS},
            ) from None
        patient_hash = active_store.patient_hash(payload["context"].get("patientId"))
        hidden = await snooze_cards(current, evaluation, snooze_lookup)
        response = evaluation.response.to_wire()
        if hidden:
            response.setdefault("extension", {})[f"{current.hook_namespace}.snoozed"] = hidden
        if evaluation.trace is not None:
            response.setdefault("extension", {})[settings.trace_extension_key] = evaluation.trace
        fields["cards"] = len(response["cards"])
        if response["cards"]:
            metrics.CARDS_RAISED.labels(service.id).inc(len(response["cards"]))
        answer = json_response(response)
        if evaluation.response.cards:
            # answer_hook validated hookInstance and context.patientId. Write-ahead (ADR 0008): the
            # records are in the database (or the durable spool) before the EHR sees the card, so
            # feedback for it is never refused by another worker and a kill -9 cannot lose them.
            records = audit_records(
                service_id,  # the id the EHR called: its feedback comes to that id's feedback route
                service.hook,
                str(payload["hookInstance"]),
                current.version,
                evaluation.response.cards,
                evaluation.card_rules,
                patient_hash,
                now,
            )
            await run_in_threadpool(active_store.record_issued, records)
        return answer

    # ------------------------------------------------------------ snooze after an override (cds.cards.snooze)
    policies_of: dict[str, dict[str, Any]] = {}

    def snooze_policies_for(current: Pipeline) -> dict[str, Any]:
        if current.version not in policies_of:
            policies_of.clear()
            policies_of[current.version] = snooze_policies(current.ruleset)
        return policies_of[current.version]

    def start_snooze_lookup(
        current: Pipeline, service_id: str, payload: dict[str, Any], now: datetime
    ) -> asyncio.Task | None:
        """Start the one indexed lookup of the patient's snoozes for the card families this service can
        raise, so that it overlaps the evaluation; None when nothing can be snoozed."""
        if not settings.snooze_enabled:
            return None
        context = payload.get("context")
        patient_hash = active_store.patient_hash(context.get("patientId")) if isinstance(context, dict) else None
        policies = snooze_policies_for(current)
        families = {f for f in policies if service_id in current.ruleset.cards[f].services}
        if patient_hash is None or not families:
            return None

        async def lookup() -> dict[str, Any] | None:
            try:
                return await run_in_threadpool(active_snoozes, active_store, patient_hash, families, now)
            except (SQLAlchemyError, StoreUnavailable, OSError) as exc:
                log.warning("snooze lookup failed (%s); cards shown", type(exc).__name__)
                return None

        return asyncio.create_task(lookup())

    async def snooze_cards(current: Pipeline, evaluation: Any, lookup: asyncio.Task | None) -> list:
        """Hide the cards a snooze covers. The lookup may take at most the evaluation's time plus
        ``snooze_lookup_timeout_seconds``; when it is slower or the store is down the cards are shown
        (fail open for advice), and both are counted."""
        if lookup is None:
            return []
        if not {card_state(c)[0] for c in evaluation.response.cards} & snooze_policies_for(current).keys():
            return []  # no card to hide: the lookup's answer is not needed
        done, _ = await asyncio.wait({lookup}, timeout=settings.snooze_lookup_timeout_seconds)
        if not done:
            metrics.SNOOZE_LOOKUPS.labels("timeout").inc()
            log.warning("snooze lookup timed out; cards shown")
            return []
        snoozes = lookup.result()
        if snoozes is None:
            metrics.SNOOZE_LOOKUPS.labels("error").inc()
            return []
        metrics.SNOOZE_LOOKUPS.labels("ok").inc()
        if not snoozes:
            return []
        titles = {rid: rule.title for rid, rule in current.ruleset.rules.items()}
        kept, hidden = apply_snoozes(evaluation.response.cards, snoozes, titles)
        shown_again = {card_state(c)[0] for c in kept} & snoozes.keys()
        for family in shown_again:
            metrics.CARDS_SNOOZED.labels(family, "shown-again").inc()
        for entry in hidden:
            metrics.CARDS_SNOOZED.labels(entry["template"], "hidden").inc()
        evaluation.response.cards = kept
        return hidden

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> Response:
        await check_caller(request, f"/cds-services/{service_id}/feedback")
        current: Pipeline = app.state.pipeline
        if find_service(current.services, service_id) is None:
            raise HookError(404, f"no CDS service with id {service_id!r}")
        log_fields(request)["service"] = service_id
        payload = await read_json_object(request)
        try:
            parsed = FeedbackRequest.model_validate(payload)
        except ValidationError as exc:
            raise HookError(422, describe_validation_error(exc)) from None
        if len(parsed.feedback) > settings.max_feedback_items:
            raise HookError(422, f"feedback: at most {settings.max_feedback_items} items per post")
        client_iss = getattr(request.state, "client_iss", None)
        try:
            result = await run_in_threadpool(active_store.record_feedback, service_id, parsed.feedback, client_iss)
        except StoreUnavailable:
            raise HookError(503, "feedback cannot be stored now; send it again later", {"Retry-After": "30"}) from None
        if result.stored == 0 and result.duplicates == 0:
            # Nothing could be taken: a 4xx, since sending the same items again cannot succeed.
            raise HookError(422, result.problems)
        for item, status in zip(parsed.feedback, result.statuses, strict=True):
            if status == "accepted":  # counted once stored, so the metric agrees with the report
                metrics.FEEDBACK.labels(item.outcome).inc()
        problems = iter(result.problems)
        items = [
            FeedbackItemResult(
                status=status, diagnostics=None if status in ("accepted", "duplicate") else next(problems, None)
            )
            for status in result.statuses
        ]
        # The feedback is committed; a snooze that cannot be written now only means the card shows again.
        accepted_items = [
            item for item, status in zip(parsed.feedback, result.statuses, strict=True) if status == "accepted"
        ]
        try:
            await run_in_threadpool(record_snoozes, active_store, accepted_items, snooze_policies_for(current))
        except (SQLAlchemyError, StoreUnavailable, OSError) as exc:
            metrics.STORE_ERRORS.labels("snooze").inc()
            log.warning("snooze not recorded (%s); the card will be shown again", type(exc).__name__)
        return json_response(
            FeedbackResponse(accepted=result.stored, duplicates=result.duplicates, items=items).to_wire()
        )

    # ------------------------------------------------------------ the pages behind the cards (cds.pages)
    # Built from the rules alone (no patient data), so no authentication; cacheable for as long as the
    # rule-set version in the URL exists. A link to an earlier version leads to the current page.
    pages_of: dict[str, Pages] = {}

    def current_pages() -> Pages:
        current: Pipeline = app.state.pipeline
        if current.version not in pages_of:
            pages_of.clear()
            pages_of[current.version] = Pages(current.ruleset)
        return pages_of[current.version]

    async def page_response(request: Request, version: str, kind: str, name: str) -> Response:
        if not name.endswith(".html"):
            raise HookError(404, "no such page")
        pages = current_pages()
        if version != pages.version:
            target = audience(request, f"/pages/{quote(pages.version, safe='')}/{kind + '/' if kind else ''}{name}")
            return Response(status_code=307, headers={"Location": target, "Cache-Control": "no-store"})
        html = await run_in_threadpool(pages.render, kind, name.removesuffix(".html"))
        if html is None:
            raise HookError(404, "no such page")
        return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @app.get("/pages/{version}/index.html")
    async def page_index(version: str, request: Request) -> Response:
        return await page_response(request, version, "", "index.html")

    @app.get("/pages/{version}/{kind}/{name}")
    async def page(version: str, kind: str, name: str, request: Request) -> Response:
        if kind not in ("cards", "causes"):
            raise HookError(404, "no such page")
        return await page_response(request, version, kind, name)

    @app.get("/healthz")
    async def healthz() -> Response:
        current: Pipeline = app.state.pipeline
        return json_response(
            {
                "status": "ok",
                "version": __version__,
                "ruleset": current.status(),
                "store": await run_in_threadpool(active_store.status),
            }
        )

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        current: Pipeline = app.state.pipeline
        status = current.status()
        if status.get("errors"):
            return outcome_response(503, [f"rules not ready: {e}" for e in status["errors"]], request_id_of(request))
        if settings.store_required_for_readiness:
            store_status = await run_in_threadpool(active_store.status)
            if store_status["status"] != "ok":
                return outcome_response(503, ["feedback and audit store unreachable"], request_id_of(request))
        return json_response({"status": "ready", "ruleset": status["version"], "engine": status["engine"]})

    if settings.metrics_enabled:
        metrics_token = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None

        @app.get("/metrics")
        async def metrics_endpoint(request: Request) -> Response:
            # Behind its own bearer token (never an EHR's JWT): what is counted is operational,
            # but who is refused and how often is still for the operators only.
            if metrics_token is not None:
                scheme, _, given = request.headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), metrics_token):
                    raise HookError(401, "authentication failed", {"WWW-Authenticate": "Bearer"})
            elif settings.profile != "demo":
                raise HookError(404, "no such resource")  # Settings.check warns at start
            body, content_type = metrics.exposition()
            return Response(body, media_type=content_type)

    app.add_middleware(
        WireGuard,
        max_body_bytes=settings.max_body_bytes,
        max_in_flight=settings.max_concurrent_requests,
        body_timeout_seconds=settings.request_deadline_seconds,
    )
    origins = settings.cors_origins or (["*"] if settings.profile == "demo" else [])
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization"],
        expose_headers=[REQUEST_ID_HEADER, "Location", "Content-Location", "Retry-After"],
        max_age=600,
    )
    return app
