"""Answering one hook call: validate the request, complete the prefetch, evaluate.

Shared by the HTTP route and ``cds evaluate`` so both apply the same checks. The pipeline is
passed in (an ``Evaluator``, cds.hooks.evaluation): this module does not import ``cds.pipeline``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from cds.engine.prepare import MAX_FACTS
from cds.fhir.patient import foreign_patient_keys
from cds.hooks.errors import HookError, describe_validation_error
from cds.hooks.evaluation import Evaluation, Evaluator, FactLimitExceeded
from cds.hooks.limits import RequestLimits, count_resources, deeper_than
from cds.hooks.models import CDSRequest, context_model_for
from cds.hooks.prefetch import (
    Fetcher,
    FhirServerRefused,
    PrefetchResult,
    PrefetchUnavailable,
    complete_prefetch,
    complete_without_fetching,
)
from cds.hooks.services import ServiceDefinition
from cds.observability import metrics


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


def check_hook_request(
    service: ServiceDefinition, payload: dict[str, Any], limits: RequestLimits, body: bytes | None = None
) -> CDSRequest:
    """The nesting limit, then ``parse_hook_request``. ``body`` is the JSON text ``payload`` was parsed
    from, when there is one (the depth check reads it rather than serialising the payload again)."""
    if deeper_than(payload, limits.max_json_depth, body):
        raise HookError(422, f"the request nests deeper than {limits.max_json_depth} levels (CDS_MAX_JSON_DEPTH)")
    return parse_hook_request(service, payload)


def evaluate_prefetched(
    pipeline: Evaluator,
    service: ServiceDefinition,
    request: CDSRequest,
    prefetched: PrefetchResult,
    now: datetime,
    trace_extension_key: str | None,
    limits: RequestLimits,
    pages_base_url: str | None = None,
) -> Evaluation:
    """The checks on the completed prefetch (patient binding, resource count, depth of what was fetched),
    then the evaluation. Synchronous and CPU-bound: callers run it off the event loop."""
    foreign = foreign_patient_keys(prefetched.data, request.context.get("patientId"))
    if foreign:
        # Another person's record under this patient's key: refuse rather than guess which is right.
        raise HookError(422, f"prefetch {', '.join(foreign)}: a Patient other than context.patientId")
    resources = sum(count_resources(v) for v in prefetched.data.values()) + count_resources(
        request.context.get("draftOrders")
    )
    if resources > limits.max_resources:
        raise HookError(
            413,
            f"{resources} FHIR resources in the prefetch and draft orders; the limit is "
            f"{limits.max_resources} (CDS_MAX_RESOURCES)",
        )
    # Only what was fetched from fhirServer: the keys sent in the request were checked with the payload.
    if any(deeper_than(prefetched.data[k], limits.max_json_depth) for k in prefetched.fetched):
        raise HookError(422, f"fetched FHIR data nests deeper than {limits.max_json_depth} levels (CDS_MAX_JSON_DEPTH)")
    want_trace = bool(trace_extension_key and (request.extension or {}).get(trace_extension_key))
    # The engine's own cap applies by default; a lower configured limit is passed on.
    extra = {"max_facts": limits.max_facts} if limits.max_facts < MAX_FACTS else {}
    try:
        evaluation = pipeline.evaluate(
            service, request, prefetched.data, now, want_trace, pages_base_url=pages_base_url, **extra
        )
    except FactLimitExceeded as exc:
        raise HookError(422, f"the request gives {exc.count} facts; the limit is {exc.limit} (CDS_MAX_FACTS)") from None
    for stage, seconds in evaluation.timings.items():
        metrics.STAGE_LATENCY.labels(stage).observe(seconds)
    return evaluation


def _refusal(request: CDSRequest, fhir_server_policy: Callable[[str], str | None] | None) -> str | None:
    if request.fhirServer is not None and fhir_server_policy is not None:
        return fhir_server_policy(request.fhirServer)
    return None


@contextmanager
def _prefetch_errors() -> Iterator[None]:
    """The prefetch's errors as HookErrors, and its time as the ``prefetch`` stage."""
    started = time.perf_counter()
    try:
        yield
    except FhirServerRefused as exc:
        raise HookError(403, f"prefetch data must be fetched, and {exc}") from None
    except PrefetchUnavailable as exc:
        raise HookError(412, exc.reason) from None
    finally:
        metrics.STAGE_LATENCY.labels("prefetch").observe(time.perf_counter() - started)


def prefetch_without_fetching(
    service: ServiceDefinition,
    request: CDSRequest,
    now: datetime,
    fetch: Fetcher | None,
    fhir_server_policy: Callable[[str], str | None] | None,
) -> PrefetchResult | None:
    """``prefetch_for`` when nothing needs awaiting (``complete_without_fetching``); None when it does."""
    with _prefetch_errors():
        return complete_without_fetching(service, request, now.date(), fetch, _refusal(request, fhir_server_policy))


async def prefetch_for(
    service: ServiceDefinition,
    request: CDSRequest,
    now: datetime,
    fetch: Fetcher | None,
    fhir_server_policy: Callable[[str], str | None] | None,
) -> PrefetchResult:
    """``complete_prefetch`` with this caller's fhirServer policy, its errors as HookErrors, and its metric."""
    with _prefetch_errors():
        return await complete_prefetch(service, request, now.date(), fetch, _refusal(request, fhir_server_policy))


async def answer_hook(
    pipeline: Evaluator,
    service: ServiceDefinition,
    payload: dict[str, Any],
    now: datetime,
    fetch: Fetcher | None = None,
    trace_extension_key: str | None = None,
    fhir_server_policy: Callable[[str], str | None] | None = None,
    limits: RequestLimits | None = None,
    pages_base_url: str | None = None,
) -> Evaluation:
    """The evaluation of one hook call.

    ``fhir_server_policy(fhirServer)`` says why this caller may not make the service fetch
    from that server (None: it may); refused, a call that needs fetching gets 403 before any
    connection is opened. ``limits`` bound nesting depth, resource and fact counts. The HTTP route
    runs the same steps (``check_hook_request``, ``prefetch_for``, ``evaluate_prefetched``) in one
    worker thread when the prefetch is complete (cds.web.hooks).
    """
    limits = limits or RequestLimits()
    request = check_hook_request(service, payload, limits)
    prefetched = await prefetch_for(service, request, now, fetch, fhir_server_policy)
    # The engine is CPU-bound and synchronous: keep it off the event loop.
    return await run_in_threadpool(
        functools.partial(
            evaluate_prefetched,
            pipeline,
            service,
            request,
            prefetched,
            now,
            trace_extension_key,
            limits,
            pages_base_url,
        )
    )
