"""The CDS Hooks routes: discovery, the hook call (with its write-ahead audit records) and feedback."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cds.hooks import fhir_servers
from cds.hooks.errors import HookError, describe_validation_error
from cds.hooks.evaluation import Evaluation
from cds.hooks.handler import answer_hook
from cds.hooks.limits import RequestLimits
from cds.hooks.models import DiscoveryResponse, FeedbackItemResult, FeedbackRequest, FeedbackResponse
from cds.hooks.services import ServiceDefinition, find_service
from cds.observability import metrics
from cds.pipeline import Pipeline
from cds.store import StoreUnavailable, audit_records
from cds.store.snooze import record_snoozes
from cds.web.context import ContextDep, PipelineDep, WebContext
from cds.web.middleware import RETRY_AFTER_SECONDS, log
from cds.web.problems import json_response, log_fields, read_json_object

router = APIRouter()


@router.get("/cds-services")
async def discovery(request: Request, context: ContextDep, current: PipelineDep) -> Response:
    await context.check_caller(request, "/cds-services")
    body = DiscoveryResponse(services=[d for s in current.services for d in s.descriptors()])
    return json_response(body.to_wire())


def _known_service(current: Pipeline, service_id: str) -> None:
    if find_service(current.services, service_id) is None:
        raise HookError(404, f"no CDS service with id {service_id!r}")


@router.post("/cds-services/{service_id}")
async def call_service(service_id: str, request: Request, context: ContextDep, current: PipelineDep) -> Response:
    await context.check_caller(request, f"/cds-services/{service_id}")
    _known_service(current, service_id)
    payload = await read_json_object(request)
    # One id may serve several hooks (CDS Hooks 2.0.1 §Discovery): the request's hook picks the entry.
    service = find_service(current.services, service_id, payload.get("hook"))
    assert service is not None
    fields = log_fields(request)
    fields.update(service=service_id, hook=service.hook, ruleset=current.version, engine=current.backend)
    now = context.clock()
    snooze_lookup = context.snooze.start_lookup(current, service.id, payload, now)  # alongside the evaluation
    evaluation = await _evaluate(request, context, current, service, payload, now)
    hidden = await context.snooze.hide(current, evaluation, snooze_lookup)
    response = evaluation.response.to_wire()
    if hidden:
        response.setdefault("extension", {})[f"{current.hook_namespace}.snoozed"] = hidden
    if evaluation.trace is not None:
        response.setdefault("extension", {})[context.settings.trace_extension_key] = evaluation.trace
    fields["cards"] = len(response["cards"])
    if response["cards"]:
        metrics.CARDS_RAISED.labels(service.id).inc(len(response["cards"]))
    answer = json_response(response)
    if evaluation.response.cards:
        await _write_audit(context, current, service_id, service, payload, evaluation, now)
    return answer


async def _evaluate(
    request: Request,
    context: WebContext,
    current: Pipeline,
    service: ServiceDefinition,
    payload: dict[str, Any],
    now: datetime,
) -> Evaluation:
    """``answer_hook`` under the request deadline, with this caller's fhirServer policy."""
    settings = context.settings
    declared = tuple(getattr(request.state, "fhir_servers", ()))

    def fhir_server_policy(url: str) -> str | None:
        return fhir_servers.refusal(
            url, auth_required=settings.auth_required, profile=settings.profile, allowed=declared
        )

    try:
        async with asyncio.timeout(settings.request_deadline_seconds):
            return await answer_hook(
                current,
                service,
                payload,
                now,
                context.fetch,
                settings.trace_extension_key,
                fhir_server_policy,
                RequestLimits.from_settings(settings),
                pages_base_url=context.audience(request, ""),
            )
    except TimeoutError:
        metrics.DEADLINE_EXCEEDED.inc()
        raise HookError(
            503,
            f"no answer within the {settings.request_deadline_seconds:g} s deadline",
            {"Retry-After": RETRY_AFTER_SECONDS},
        ) from None


async def _write_audit(
    context: WebContext,
    current: Pipeline,
    service_id: str,
    service: ServiceDefinition,
    payload: dict[str, Any],
    evaluation: Evaluation,
    now: datetime,
) -> None:
    """answer_hook validated hookInstance and context.patientId. Write-ahead (ADR 0008): the records
    are in the database (or the durable spool) before the EHR sees the card, so feedback for it is
    never refused by another worker and a kill -9 cannot lose them."""
    records = audit_records(
        service_id,  # the id the EHR called: its feedback comes to that id's feedback route
        service.hook,
        str(payload["hookInstance"]),
        current.version,
        evaluation.response.cards,
        evaluation.card_rules,
        context.store.patient_hash(payload["context"].get("patientId")),
        now,
    )
    await run_in_threadpool(context.store.record_issued, records)


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
