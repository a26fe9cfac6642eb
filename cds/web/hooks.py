"""The CDS Hooks routes: discovery, the hook call (with its write-ahead audit records) and feedback."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cds.hooks import fhir_servers
from cds.hooks.errors import HookError, describe_validation_error
from cds.hooks.handler import prefetch_for
from cds.hooks.limits import RequestLimits
from cds.hooks.models import DiscoveryResponse, FeedbackItemResult, FeedbackRequest, FeedbackResponse
from cds.hooks.services import find_service
from cds.observability import metrics
from cds.pipeline import Pipeline
from cds.store import StoreUnavailable
from cds.store.snooze import record_snoozes
from cds.web.call import HookCall, NeedsFetch
from cds.web.collector import COLLECTOR_PAUSE, HookResponse
from cds.web.context import ContextDep, PipelineDep, WebContext
from cds.web.middleware import RETRY_AFTER_SECONDS, log
from cds.web.problems import json_response, log_fields, read_json_body, read_json_object

router = APIRouter()


@router.get("/cds-services")
async def discovery(request: Request, context: ContextDep, current: PipelineDep) -> Response:
    await context.check_caller(request, "/cds-services")
    body = DiscoveryResponse(services=[d for s in current.services for d in s.descriptors()])
    return json_response(body.to_wire())


def _known_service(current: Pipeline, service_id: str) -> None:
    if find_service(current.services, service_id) is None:
        raise HookError(404, f"no CDS service with id {service_id!r}")


async def call_service(request: Request) -> Response:
    """POST /cds-services/{service_id}: a plain Starlette endpoint, because FastAPI's dependency
    solving cost more per call than the route's own work on the event loop (issue 20). The CPU- and
    store-bound work runs in one worker thread (cds.web.call)."""
    service_id: str = request.path_params["service_id"]
    context: WebContext = request.app.state.context
    current: Pipeline = request.app.state.pipeline  # read per call: a reload or a test may replace it
    await context.check_caller(request, f"/cds-services/{service_id}")
    _known_service(current, service_id)
    body = await read_json_body(request)
    settings = context.settings
    declared = tuple(getattr(request.state, "fhir_servers", ()))

    def fhir_server_policy(url: str) -> str | None:
        return fhir_servers.refusal(
            url, auth_required=settings.auth_required, profile=settings.profile, allowed=declared
        )

    call = HookCall(
        context,
        current,
        service_id,
        body,
        context.clock(),
        log_fields(request),
        RequestLimits.from_settings(settings),
        context.audience(request, ""),
        fhir_server_policy,
    )
    # Taken right before the try whose every exit releases it: a pause never released would keep the
    # collector off for the life of the process.
    release_collector = COLLECTOR_PAUSE.hold()
    try:
        async with asyncio.timeout(settings.request_deadline_seconds):
            answer = await call.run_in_thread(call.start)
            if isinstance(answer, NeedsFetch):
                release_collector()  # not paused while waiting on the network
                prefetched = await prefetch_for(
                    answer.service, answer.request, call.now, context.fetch, fhir_server_policy
                )
                release_collector = COLLECTOR_PAUSE.hold()
                answer = await call.run_in_thread(call.finish, answer.service, answer.request, prefetched)
    except TimeoutError:
        release_collector()
        metrics.DEADLINE_EXCEEDED.inc()
        raise HookError(
            503,
            f"no answer within the {settings.request_deadline_seconds:g} s deadline",
            {"Retry-After": RETRY_AFTER_SECONDS},
        ) from None
    except BaseException:
        release_collector()
        raise
    assert isinstance(answer, bytes)  # only a call the loop took over is Abandoned, and the loop answered it
    # The call's objects (the parsed request, its evaluation) are freed after the answer is sent, then the
    # collector runs again (cds.web.collector).
    return HookResponse(answer, call, release_collector)


router.add_route("/cds-services/{service_id}", call_service, methods=["POST"])


@router.post("/cds-services/{service_id}/feedback")
async def feedback(service_id: str, request: Request, context: ContextDep, current: PipelineDep) -> Response:
    await context.check_caller(request, f"/cds-services/{service_id}/feedback")
    _known_service(current, service_id)
    log_fields(request)["service"] = service_id
    parsed = _parse_feedback(await read_json_object(request), context.settings.max_feedback_items)
    client_iss = getattr(request.state, "client_iss", None)
    store = context.store
    try:
        result = await run_in_threadpool(store.record_feedback, service_id, parsed.feedback, client_iss)
    except StoreUnavailable:
        raise HookError(503, "feedback cannot be stored now; send it again later", {"Retry-After": "30"}) from None
    if result.stored == 0 and result.duplicates == 0:
        # Nothing could be taken: a 4xx, since sending the same items again cannot succeed.
        raise HookError(422, result.problems)
    accepted = [item for item, status in zip(parsed.feedback, result.statuses, strict=True) if status == "accepted"]
    for item in accepted:  # counted once stored, so the metric agrees with the report
        metrics.FEEDBACK.labels(item.outcome).inc()
    problems = iter(result.problems)
    items = [
        FeedbackItemResult(
            status=status, diagnostics=None if status in ("accepted", "duplicate") else next(problems, None)
        )
        for status in result.statuses
    ]
    # The feedback is committed; a snooze that cannot be written now only means the card shows again.
    try:
        await run_in_threadpool(record_snoozes, store, accepted, context.snooze.policies(current))
    except (SQLAlchemyError, StoreUnavailable, OSError) as exc:
        metrics.STORE_ERRORS.labels("snooze").inc()
        log.warning("snooze not recorded (%s); the card will be shown again", type(exc).__name__)
    return json_response(FeedbackResponse(accepted=result.stored, duplicates=result.duplicates, items=items).to_wire())


def _parse_feedback(payload: dict[str, Any], max_items: int) -> FeedbackRequest:
    try:
        parsed = FeedbackRequest.model_validate(payload)
    except ValidationError as exc:
        raise HookError(422, describe_validation_error(exc)) from None
    if len(parsed.feedback) > max_items:
        raise HookError(422, f"feedback: at most {max_items} items per post")
    return parsed
