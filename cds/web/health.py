"""Operations: ``/healthz``, ``/readyz`` and (when enabled) ``/metrics``."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cds import __version__
from cds.hooks.errors import HookError, outcome_response
from cds.observability import metrics
from cds.web.context import ContextDep, PipelineDep
from cds.web.problems import json_response, request_id_of

router = APIRouter()
metrics_router = APIRouter()


@router.get("/healthz")
async def healthz(context: ContextDep, current: PipelineDep) -> Response:
    store_status = await run_in_threadpool(context.store.status)
    return json_response({"status": "ok", "version": __version__, "ruleset": current.status(), "store": store_status})


@router.get("/readyz")
async def readyz(request: Request, context: ContextDep, current: PipelineDep) -> Response:
    status = current.status()
    if status.get("errors"):
        return outcome_response(503, [f"rules not ready: {e}" for e in status["errors"]], request_id_of(request))
    if context.settings.store_required_for_readiness:
        store_status = await run_in_threadpool(context.store.status)
        if store_status["status"] != "ok":
            return outcome_response(503, ["feedback and audit store unreachable"], request_id_of(request))
    return json_response({"status": "ready", "ruleset": status["version"], "engine": status["engine"]})


@metrics_router.get("/metrics")
async def metrics_endpoint(request: Request, context: ContextDep) -> Response:
    # Behind its own bearer token (never an EHR's JWT): what is counted is operational,
    # but who is refused and how often is still for the operators only.
    settings = context.settings
    if settings.metrics_token:
        expected = settings.metrics_token.get_secret_value().encode()
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise HookError(401, "authentication failed", {"WWW-Authenticate": "Bearer"})
    elif settings.profile != "demo":
        raise HookError(404, "no such resource")  # Settings.check warns at start
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
