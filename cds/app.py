"""FastAPI application factory: wiring only (docs/adr/0012-layers-and-wire-errors.md).

``create_app`` builds what the routes are given (``cds.web.context.WebContext``), includes the
routers of ``cds.web`` and adds the middleware. Request bodies are read raw and parsed with orjson,
then validated with the CDS Hooks models, so every failure maps to a precise status (400 malformed
JSON, 415 content type, 413 size, 422 invalid request, 412 missing data) with an OperationOutcome
body instead of FastAPI's generic 422 or a bare 500.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

import cds.deferred_imports  # noqa: F401  (before httpx is imported: ADR 0014)
from cds import __version__
from cds.auth import SqlReplayStore, build_authenticator
from cds.engine.verdicts import configured_record
from cds.hooks.fhir_client import FetchLimits, FhirClient
from cds.hooks.prefetch import Fetcher
from cds.knowledge import parse_cache_directory
from cds.pipeline import Pipeline, watch_rules
from cds.settings import Settings
from cds.store import Store, open_store
from cds.web import health, hooks, pages
from cds.web.context import Authenticator, WebContext
from cds.web.middleware import REQUEST_ID_HEADER, WireGuard
from cds.web.problems import install_error_handlers
from cds.web.snooze import SnoozeGate
from cds.yamlio import cached_parses

__all__ = ["Authenticator", "create_app"]


def fhir_client_for(settings: Settings) -> FhirClient:
    return FhirClient(
        FetchLimits(
            request_timeout=settings.fhir_request_timeout_seconds,
            total_timeout=settings.fhir_total_timeout_seconds,
            max_pages=settings.fhir_max_pages,
            max_requests_per_call=settings.fhir_max_requests_per_call,
        )
    )


def create_app(
    settings: Settings,
    pipeline: Pipeline | None = None,
    fetch: Fetcher | None = None,
    authenticate: Authenticator | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    store: Store | None = None,
    resume_collector: bool = False,
) -> FastAPI:
    """The service; ``pipeline``, ``fetch``, ``authenticate``, ``clock`` and ``store`` replace what
    ``settings`` would build (tests, benchmarks). ``resume_collector``: the caller (``cds serve``,
    ``cds.asgi``) paused Python's cyclic garbage collector for the start, and it runs again from the
    app's start-up, before the first request. A start makes about a million objects that live as long
    as the process (modules, the rule set, the spaCy pipelines) and almost no garbage: the collector's
    passes over that growing heap took ~0.5 s of ~2.5 s of CPU to the first answer (ADR 0014). The
    little garbage the start leaves (~11,000 objects) is frozen with the rest."""
    if pipeline is None:
        # the rules' YAML parse results of the last start with exactly these files (ADR 0014)
        with cached_parses(settings.rules_dir, parse_cache_directory(settings)):
            pipeline = Pipeline.load(
                settings.rules_dir,
                settings.hook_namespace,
                engine=settings.engine,
                verdicts=configured_record(settings),
            )
    fhir_client = fhir_client_for(settings) if fetch is None else None
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
        if resume_collector:
            gc.enable()
        yield
        if stop_watch is not None:
            stop_watch.set()
        if fhir_client is not None:
            await fhir_client.aclose()
        if store is None:
            active_store.close()

    # openapi_url=None: the contract is openapi.yaml, generated and checked in.
    app = FastAPI(
        lifespan=lifespan,
        title="Calciphylaxis CDS",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.store = active_store
    app.state.context = WebContext(
        settings, active_store, fetch or fhir_client, authenticate, clock, SnoozeGate(settings, active_store)
    )
    install_error_handlers(app)
    for router in (hooks.router, pages.router, health.router):
        app.include_router(router)
    if settings.metrics_enabled:
        app.include_router(health.metrics_router)
    add_middleware(app, settings)
    return app


def add_middleware(app: FastAPI, settings: Settings) -> None:
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
