"""Prefetch: render templates and decide, per key, what the service has.

Each key of a service's prefetch is in one of four states in a request
(CDS Hooks 2.0 §prefetch): absent (fetch it from ``fhirServer`` or answer
412), ``null`` (no data: not missing), a resource or Bundle (use it), or an
OperationOutcome (the client failed: treat as missing).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from cds.hooks.fhir_client import FETCH_FAILED, FETCH_TIMEOUT, FetchBudget, FhirFetchError, current_budget
from cds.hooks.models import CDSRequest
from cds.hooks.services import ServiceDefinition

log = logging.getLogger("cds.prefetch")

_TOKEN = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_TODAY = re.compile(r"^today\(\)\s*(?:([+-])\s*(\d+)\s*(days?|weeks?|months?|years?))?$")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
_DAYS_PER_UNIT = {"day": 1, "week": 7, "month": 30, "year": 365}


class PrefetchUnavailable(Exception):
    """Required data is neither prefetched nor fetchable: the service answers 412."""

    def __init__(self, keys: list[str], reason: str) -> None:
        super().__init__(reason)
        self.keys = keys
        self.reason = reason


class FhirServerRefused(Exception):
    """Data must be fetched, but the request's fhirServer is not one this caller may name (answered 403)."""


NO_FHIR_SERVER = "no fhirServer was given to fetch it"
NOT_FILLABLE = "its query cannot be built from this request's context"


class TemplateError(ValueError):
    """A prefetch template names a token the request cannot fill."""


def render_template(template: str, context: Mapping[str, Any], today: date) -> str:
    """Fill ``{{context.x}}``, the user tokens and ``{{today() - N days}}``."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(1)
        if token.startswith("context."):
            value = context.get(token.removeprefix("context."))
            if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
                raise TemplateError(f"context has no primitive value for {token}")
            # Encoded so that a context value cannot add query parameters or path segments.
            return quote(str(value), safe="")
        if token in _USER_TOKENS:
            user = context.get("userId")
            prefix = f"{_USER_TOKENS[token]}/"
            if not isinstance(user, str) or not user.startswith(prefix):
                raise TemplateError(f"userId is not a {_USER_TOKENS[token]} reference")
            return quote(user.removeprefix(prefix), safe="")
        relative = _TODAY.match(token)
        if relative:
            sign, amount, unit = relative.groups()
            days = 0 if amount is None else int(amount) * _DAYS_PER_UNIT[unit.rstrip("s")]
            return (today - timedelta(days=days) if sign == "-" else today + timedelta(days=days)).isoformat()
        raise TemplateError(f"unsupported prefetch token {{{{{token}}}}}")

    return _TOKEN.sub(substitute, template)


def is_operation_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def has_next_page(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("resourceType") == "Bundle"
        and any(isinstance(link, dict) and link.get("relation") == "next" for link in value.get("link") or [])
    )


# fetch(query, request) -> resource or Bundle (or None when not found).
Fetcher = Callable[[str, CDSRequest], Awaitable[Any]]


@runtime_checkable
class PagingFetcher(Protocol):
    """A Fetcher that can also complete a paged Bundle (``cds.hooks.fhir_client.FhirClient``)."""

    total_timeout: float

    async def __call__(self, query: str, request: CDSRequest) -> Any: ...

    async def complete_bundle(self, bundle: dict[str, Any], request: CDSRequest) -> dict[str, Any]: ...


# Without a paging fetcher's own setting, all fetches of one hook call share this many seconds.
DEFAULT_FETCH_BUDGET_SECONDS = 1.5


@dataclass(frozen=True)
class PrefetchResult:
    data: dict[str, Any]  # key -> resource, Bundle or None
    fetched: tuple[str, ...] = ()  # keys the service fetched itself


def _split_sent(
    service: ServiceDefinition, request: CDSRequest
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, str]]:
    """The service's prefetch keys: complete as sent, sent but with more pages, and missing (key -> template)."""
    sent = request.prefetch or {}
    data: dict[str, Any] = {}
    to_page: dict[str, dict[str, Any]] = {}
    missing: dict[str, str] = {}
    for key, template in service.prefetch.items():
        if key not in sent or is_operation_outcome(sent[key]):
            missing[key] = template
        elif has_next_page(sent[key]):
            to_page[key] = sent[key]
        else:
            data[key] = sent[key]
    return data, to_page, missing


def complete_without_fetching(
    service: ServiceDefinition,
    request: CDSRequest,
    today: date,
    fetch: Fetcher | None = None,
    fhir_server_refusal: str | None = None,
) -> PrefetchResult | None:
    """What ``complete_prefetch`` answers (or raises) when it has nothing to await: every key sent
    complete, or nowhere to fetch the rest from (no fhirServer, no fetcher). None when something
    will be fetched. Synchronous, so the HTTP route can stay in its one worker thread."""
    data, to_page, missing = _split_sent(service, request)
    if not missing and not to_page:
        return PrefetchResult(data=data)
    if fhir_server_refusal is not None and request.fhirServer is not None:
        raise FhirServerRefused(fhir_server_refusal)
    if request.fhirServer is not None and fetch is not None:
        return None
    failures: dict[str, str] = {}
    jobs = _fetch_jobs(to_page, missing, request, today, fetch, failures)
    assert not jobs  # nothing is fetched without both a fhirServer and a fetcher
    return _concluded(service, data, failures, [])


async def complete_prefetch(
    service: ServiceDefinition,
    request: CDSRequest,
    today: date,
    fetch: Fetcher | None = None,
    fhir_server_refusal: str | None = None,
    max_requests: int | None = None,
) -> PrefetchResult:
    """Every prefetch key of ``service``, from the request or fetched; 412 otherwise.

    Keys are fetched concurrently under one total deadline, so a slow FHIR
    server costs the hook at most the budget; a key not complete by then is
    unavailable. Required keys that are unavailable raise PrefetchUnavailable;
    optional ones are left out.

    ``fhir_server_refusal`` says why the request's fhirServer may not be used
    (``cds.hooks.fhir_servers.refusal``): when something must be fetched, that
    is FhirServerRefused before any connection. ``max_requests`` caps the GETs
    of the whole call. A 412's reasons are categories (``FETCH_*``); the details
    go to the log.
    """
    data, to_page, missing = _split_sent(service, request)
    if not missing and not to_page:
        return PrefetchResult(data=data)
    if fhir_server_refusal is not None and request.fhirServer is not None:
        raise FhirServerRefused(fhir_server_refusal)

    failures: dict[str, str] = {}
    jobs = _fetch_jobs(to_page, missing, request, today, fetch, failures)
    fetched: list[str] = []
    if jobs:
        for key, outcome in (await _run_jobs(jobs, fetch, max_requests)).items():
            if isinstance(outcome, _Failed):
                failures[key] = outcome.reason
            else:
                data[key] = outcome
                fetched.append(key)

    return _concluded(service, data, failures, fetched)


def _concluded(
    service: ServiceDefinition, data: dict[str, Any], failures: dict[str, str], fetched: list[str]
) -> PrefetchResult:
    """The completed prefetch, or PrefetchUnavailable when a required key failed (optional ones are left out)."""
    unavailable = [key for key in service.prefetch if key in failures and key not in service.optional_prefetch]
    for key, reason in failures.items():
        log.info("prefetch %r unavailable (%s): %s", key, "required" if key in unavailable else "optional", reason)
    if unavailable:
        reasons = "; ".join(f"{key}: {failures[key]}" for key in unavailable)
        raise PrefetchUnavailable(unavailable, f"required prefetch data missing and not fetchable ({reasons})")
    return PrefetchResult(data=data, fetched=tuple(fetched))


@dataclass(frozen=True)
class _Failed:
    reason: str


def _fetch_jobs(
    to_page: dict[str, dict[str, Any]],
    missing: dict[str, str],
    request: CDSRequest,
    today: date,
    fetch: Fetcher | None,
    failures: dict[str, str],
) -> dict[str, Awaitable[Any]]:
    """One fetch per key still to be completed or fetched; a key that cannot be goes to ``failures``."""
    jobs: dict[str, Awaitable[Any]] = {}
    for key, bundle in to_page.items():
        if request.fhirServer is None or not isinstance(fetch, PagingFetcher):
            failures[key] = "its Bundle has more pages and no fhirServer to fetch them from"
        else:
            jobs[key] = fetch.complete_bundle(bundle, request)
    for key, template in missing.items():
        if request.fhirServer is None or fetch is None:
            failures[key] = NO_FHIR_SERVER
            continue
        try:
            query = render_template(template, request.context, today)
        except TemplateError as exc:
            log.warning("prefetch %r not fetchable: %s", key, exc)
            failures[key] = NOT_FILLABLE
            continue
        jobs[key] = fetch(query, request)
    return jobs


async def _run_jobs(jobs: dict[str, Awaitable[Any]], fetch: Fetcher | None, max_requests: int | None) -> dict[str, Any]:
    """Each key's fetched data or ``_Failed``: all concurrently, under one budget of time and requests."""
    budget = fetch.total_timeout if isinstance(fetch, PagingFetcher) else DEFAULT_FETCH_BUDGET_SECONDS
    # The tasks copy this context, so they all draw on the one budget of this call.
    if max_requests is None:
        max_requests = getattr(getattr(fetch, "limits", None), "max_requests_per_call", None)
    budget_token = current_budget.set(FetchBudget(max_requests)) if max_requests is not None else None
    try:
        tasks = {key: asyncio.ensure_future(job) for key, job in jobs.items()}
    finally:
        if budget_token is not None:
            current_budget.reset(budget_token)
    try:
        _, pending = await asyncio.wait(tasks.values(), timeout=budget)
    finally:
        # Also when this hook call itself is cancelled (the request deadline): no fetch outlives it.
        for task in tasks.values():
            task.cancel()
    if pending:
        await asyncio.wait(pending)
    results: dict[str, Any] = {}
    for key, task in tasks.items():
        if task in pending:
            log.warning("prefetch %r: fhirServer did not answer within %g s", key, budget)
            results[key] = _Failed(FETCH_TIMEOUT)
        elif (error := task.exception()) is not None:
            results[key] = _Failed(_describe_failure(key, error))
        else:
            results[key] = task.result()
    return results


def _describe_failure(key: str, exc: BaseException) -> str:
    """The category the client is told; the detail (no patient, no token) goes to the log only."""
    if isinstance(exc, FhirFetchError):
        log.warning("prefetch %r: %s", key, exc)
        return exc.category
    # An unexpected error in a fetcher: its text might hold anything, so only its class is logged.
    log.error("prefetch fetcher raised %s", type(exc).__name__)
    return FETCH_FAILED
