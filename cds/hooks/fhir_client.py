"""Fetching prefetch data the EHR did not send, from the request's ``fhirServer``.

One ``FhirClient`` (one pooled ``httpx.AsyncClient``) serves the whole
process; nothing of a request is kept on it:

* the app has already checked ``fhirServer`` against the servers the caller
  may name (``cds.hooks.fhir_servers``); the bearer token from
  ``fhirAuthorization`` is passed per call, only to URLs under that
  ``fhirServer`` (``next`` links elsewhere, also percent-encoded ``..``, are
  refused), and never logged or stored;
* one hook call makes at most ``max_requests_per_call`` GETs in all;
* cookies are refused (a cookie set by one EHR's server would otherwise be
  sent on another request), redirects are not followed;
* each GET has its own timeout; the caller puts a total deadline around all of
  them (``complete_prefetch``); connection failures are retried by the
  transport (GET is idempotent), nothing else is;
* responses are size-capped, must be JSON FHIR resources, and a Bundle's
  ``next`` pages are followed up to ``max_pages``; a loop, a foreign ``next``
  link or too many pages make the data incomplete, which is a failure, never
  silently partial data.

Log lines name the prefetch key's resource type, the FHIR server's origin and
what went wrong; never the query (it carries the patient id) nor the token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import orjson

from cds.hooks.fhir_servers import is_under, origin_and_path
from cds.hooks.models import CDSRequest
from cds.observability import metrics

if TYPE_CHECKING:  # imported where a fetch starts: `cds evaluate` never fetches and need not pay for it
    import httpx

log = logging.getLogger("cds.fhir_client")
# httpx logs every request URL at INFO; our URLs carry patient ids.
logging.getLogger("httpx").setLevel(logging.WARNING)

NOT_FOUND_STATUSES = frozenset({404, 410})


# What a 412 may tell the client about a failed fetch: a category, never the host, port or
# exception (the detail would make the service a port scanner for whoever sends fhirServer).
FETCH_FAILED = "the FHIR server gave no usable answer"
FETCH_TIMEOUT = "the FHIR server did not answer in time"
FETCH_PAGING = "the search's next pages could not be followed"
FETCH_BUDGET = "more FHIR requests than one hook call may make"


class FhirFetchError(Exception):
    """The FHIR server did not give usable data.

    ``category`` is what the client is told; the message (for the log) holds no PHI and no token.
    """

    def __init__(self, message: str, category: str = FETCH_FAILED) -> None:
        super().__init__(message)
        self.category = category


class FetchBudget:
    """GETs left for one hook call: all its keys and pages share it (``complete_prefetch`` sets it)."""

    def __init__(self, requests: int) -> None:
        self.left = requests

    def take(self) -> None:
        if self.left <= 0:
            raise FhirFetchError("the hook call's FHIR request budget is spent", FETCH_BUDGET)
        self.left -= 1


# The budget of the hook call being answered; tasks it starts share the same object.
current_budget: ContextVar[FetchBudget | None] = ContextVar("cds_fetch_budget", default=None)


@dataclass(frozen=True)
class FetchLimits:
    request_timeout: float = 1.0  # seconds per GET (connect, read, write, pool)
    total_timeout: float = 1.5  # seconds for all fetches of one hook call, leaving time to evaluate
    max_pages: int = 10  # pages of one search, the first included
    # GETs for one hook call, all keys and pages together: endless next links cannot turn one
    # call into an amplified scan, and the requests fit the total timeout.
    max_requests_per_call: int = 30
    connect_retries: int = 1  # extra attempts after a connection failure
    max_response_bytes: int = 16 * 1024 * 1024
    max_connections: int = 50


def _origin(url: str) -> str:
    scheme, host, port, _ = origin_and_path(url)
    return f"{scheme}://{host}:{port}"


class FhirClient:
    """The process-wide FHIR fetcher; a ``Fetcher`` for ``complete_prefetch``."""

    def __init__(self, limits: FetchLimits | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.limits = limits or FetchLimits()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def total_timeout(self) -> float:
        return self.limits.total_timeout

    def _pool(self) -> httpx.AsyncClient:
        """The pooled client of the running event loop.

        A pool's connections belong to the loop that opened them; under uvicorn
        there is one loop for the process, but test clients may run each call in
        a fresh loop, which then gets a fresh pool.
        """
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.limits.request_timeout),
                limits=httpx.Limits(max_connections=self.limits.max_connections, max_keepalive_connections=20),
                transport=self._transport or httpx.AsyncHTTPTransport(retries=self.limits.connect_retries),
                follow_redirects=False,
                cookies=no_cookies,
                trust_env=False,  # no proxy from the environment sees the token
                headers={"Accept": "application/fhir+json"},
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    # ------------------------------------------------------------------ Fetcher

    async def __call__(self, query: str, request: CDSRequest) -> Any:
        """The resource or Bundle a rendered prefetch query gives; None for a read that found nothing."""
        base = self._base(request)
        url = f"{base.rstrip('/')}/{query.lstrip('/')}"
        if not is_under(url, base):
            raise FhirFetchError("the query leaves fhirServer")
        is_read = "?" not in query and query.count("/") == 1
        status, body = await self._get(url, request)
        if status in NOT_FOUND_STATUSES and is_read:
            return None
        resource = self._resource(status, body, base)
        if resource.get("resourceType") == "Bundle":
            return await self.complete_bundle(resource, request)
        if not is_read:
            raise FhirFetchError(f"a search at {_origin(base)} did not answer with a Bundle")
        return resource

    async def complete_bundle(self, bundle: dict[str, Any], request: CDSRequest) -> dict[str, Any]:
        """``bundle`` with the entries of all its ``next`` pages, as one Bundle without a ``next`` link."""
        next_url = _next_link(bundle)
        if next_url is None:
            return bundle
        base = self._base(request)
        entries = list(bundle.get("entry") or [])
        seen: set[str] = set()
        pages = 1
        while next_url is not None:
            next_url = urljoin(base.rstrip("/") + "/", next_url)
            if not is_under(next_url, base):
                # The token must not leave fhirServer, and data from elsewhere is not the EHR's.
                raise FhirFetchError("a next link points outside fhirServer", FETCH_PAGING)
            if next_url in seen:
                raise FhirFetchError("the next links loop", FETCH_PAGING)
            if pages >= self.limits.max_pages:
                raise FhirFetchError(f"more than {self.limits.max_pages} pages", FETCH_PAGING)
            seen.add(next_url)
            status, body = await self._get(next_url, request)
            page = self._resource(status, body, base)
            if page.get("resourceType") != "Bundle":
                raise FhirFetchError("a next page is not a Bundle", FETCH_PAGING)
            entries.extend(page.get("entry") or [])
            pages += 1
            next_url = _next_link(page)
        merged = {k: v for k, v in bundle.items() if k not in {"entry", "link"}}
        links = [link for link in bundle.get("link") or [] if isinstance(link, dict) and link.get("relation") != "next"]
        if links:
            merged["link"] = links
        if entries:
            merged["entry"] = entries
        return merged

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _base(request: CDSRequest) -> str:
        if request.fhirServer is None:
            raise FhirFetchError("the request names no fhirServer")
        return request.fhirServer

    async def _get(self, url: str, request: CDSRequest) -> tuple[int, bytes]:
        import httpx

        headers = {}
        if request.fhirAuthorization is not None:
            headers["Authorization"] = f"Bearer {request.fhirAuthorization.access_token.get_secret_value()}"
        budget = current_budget.get()
        if budget is not None:
            budget.take()
        started = time.perf_counter()
        try:
            async with self._pool().stream("GET", url, headers=headers) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.limits.max_response_bytes:
                    raise FhirFetchError("the response is too large")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.limits.max_response_bytes:
                        raise FhirFetchError("the response is too large")
                    chunks.append(chunk)
                if response.status_code >= 400:
                    metrics.FHIR_FETCH_ERRORS.labels(f"http-{response.status_code // 100}xx").inc()
                return response.status_code, b"".join(chunks)
        except httpx.TimeoutException:
            metrics.FHIR_FETCH_ERRORS.labels("timeout").inc()
            raise FhirFetchError(
                f"timed out after {self.limits.request_timeout:g} s at {_origin(url)}", FETCH_TIMEOUT
            ) from None
        except httpx.HTTPError as exc:
            metrics.FHIR_FETCH_ERRORS.labels("connection").inc()
            # The exception text may contain the URL (patient id): name its class only.
            raise FhirFetchError(f"{type(exc).__name__} at {_origin(url)}") from None
        except FhirFetchError:
            metrics.FHIR_FETCH_ERRORS.labels("too-large").inc()
            raise
        finally:
            metrics.FHIR_FETCH_LATENCY.observe(time.perf_counter() - started)

    @staticmethod
    def _resource(status: int, body: bytes, base: str) -> dict[str, Any]:
        if not 200 <= status < 300:
            raise FhirFetchError(f"HTTP {status} from {_origin(base)}")
        try:
            resource = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FhirFetchError(f"a response from {_origin(base)} is not JSON") from None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise FhirFetchError(f"a response from {_origin(base)} is not a FHIR resource")
        if resource["resourceType"] == "OperationOutcome":
            raise FhirFetchError(f"{_origin(base)} answered with an OperationOutcome")
        return resource


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None
