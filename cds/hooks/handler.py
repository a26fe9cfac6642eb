"""Answering one hook call: validate the request, complete the prefetch, evaluate.

Shared by the HTTP route and ``cds evaluate`` so both apply the same checks.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from cds.hooks.errors import HookError, describe_validation_error
from cds.hooks.models import CDSRequest, context_model_for
from cds.hooks.prefetch import Fetcher, PrefetchUnavailable, complete_prefetch
from cds.hooks.services import ServiceDefinition
from cds.observability import metrics
from cds.pipeline import Evaluation, Pipeline


def parse_hook_request(service: ServiceDefinition, payload: dict[str, Any]) -> CDSRequest:
    """The validated request, or a HookError with 400/422 naming what is wrong."""
    try:
        request = CDSRequest.model_validate(payload)
    except ValidationError as exc:
        raise HookError(422, describe_validation_error(exc)) from None
    if request.hook != service.hook:
        raise HookError(400, f"service {service.id!r} answers hook {service.hook!r}, not {request.hook!r}")
    try:
        context_model_for(request.hook).model_validate(request.context)
    except ValidationError as exc:
        raise HookError(422, describe_validation_error(exc, "context")) from None
    for key, value in (request.prefetch or {}).items():
        if value is not None and not (isinstance(value, dict) and isinstance(value.get("resourceType"), str)):
            raise HookError(422, f"prefetch.{key}: must be a FHIR resource, a Bundle or null")
    return request


async def answer_hook(
    pipeline: Pipeline,
    service: ServiceDefinition,
    payload: dict[str, Any],
    now: datetime,
    fetch: Fetcher | None = None,
    trace_extension_key: str | None = None,
    pages_base_url: str | None = None,
) -> Evaluation:
    request = parse_hook_request(service, payload)
    started = time.perf_counter()
    try:
        prefetched = await complete_prefetch(service, request, now.date(), fetch)
    except PrefetchUnavailable as exc:
        raise HookError(412, exc.reason) from None
    finally:
        metrics.STAGE_LATENCY.labels("prefetch").observe(time.perf_counter() - started)
    want_trace = bool(trace_extension_key and (request.extension or {}).get(trace_extension_key))
    # The engine is CPU-bound and synchronous: keep it off the event loop.
    evaluation = await run_in_threadpool(
        pipeline.evaluate, service, request, prefetched.data, now, want_trace, pages_base_url
    )
    for stage, seconds in evaluation.timings.items():
        metrics.STAGE_LATENCY.labels(stage).observe(seconds)
    return evaluation
