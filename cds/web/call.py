"""One hook call in one worker thread: parse, check, evaluate, snooze lookup, render, audit.

Each hand-off between the event loop and the thread pool is a thread wake-up and a GIL hand-over;
the route used to make three of them per call (evaluation, snooze lookup, audit write), and run the
JSON parse and the checks on the event loop, where a 1.6 MB body held every other connection for
tens of milliseconds (issue 20). Now the route reads the body and makes one hop: the worker thread
does everything CPU- or store-bound in order and returns the response bytes. Only a call whose
prefetch must be fetched goes back to the event loop for the fetch (``NeedsFetch``), then makes a
second hop.

The snooze lookup keeps its fail-open bound: a timer on the event loop watches it (``HandOff``); if
the lookup outlives its timeout, the loop takes the call over (``HandOff.take_over``),
shows every card and writes their audit itself, and the thread, once its lookup returns, finds the
call taken and leaves it (``HandOff.claim``). The same take-over applies when the request deadline
passes while the thread works, so a call answered 503 writes no audit for cards nobody received.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from cds.hooks.errors import HookError
from cds.hooks.evaluation import Evaluation
from cds.hooks.handler import check_hook_request, evaluate_prefetched, prefetch_without_fetching
from cds.hooks.limits import RequestLimits
from cds.hooks.models import CDSRequest
from cds.hooks.prefetch import PrefetchResult
from cds.hooks.services import ServiceDefinition, find_service
from cds.observability import metrics
from cds.pipeline import Pipeline
from cds.store import audit_records
from cds.web.context import WebContext


class HandOff:
    """Who finishes one hop of a call: the worker thread (the usual case) or the event loop (after a timeout).

    Created on the event loop for each hop. The thread claims the call (``claim``) before it touches the
    cards; the loop takes it over (``take_over``) when the snooze lookup outlives its timeout or the
    request its deadline. Whichever comes first wins; the other leaves the call alone.

    The lookup's timeout is watched from the loop without waking it from the thread: the thread only
    notes when its lookup starts (``lookup_starts``), and a timer on the loop, first due one timeout
    after the hop starts (no lookup can be late before then), compares the clock with that note and
    either expires the hop or sleeps until the lookup's own deadline. A call_soon_threadsafe per call
    cost a GIL hand-over and a loop wake-up (measured ~2-4 ms on a loaded machine).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_seconds: float) -> None:
        self._loop = loop
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._owner: str | None = None
        self._lookup_started: float | None = None
        self.expired: asyncio.Future[None] = loop.create_future()
        self.evaluation: Evaluation | None = None  # set by the thread before a lookup it may not finish
        self._timer: asyncio.TimerHandle = loop.call_later(timeout_seconds, self._check)

    def lookup_starts(self) -> None:
        """From the worker thread, just before the lookup: its timeout runs from now (loop.time's clock)."""
        self._lookup_started = time.monotonic()

    def _check(self) -> None:
        started, now = self._lookup_started, self._loop.time()
        if started is not None and now >= started + self._timeout:
            if not self.expired.done():
                self.expired.set_result(None)
            return
        wait = self._timeout if started is None else started + self._timeout - now
        self._timer = self._loop.call_later(wait, self._check)

    def claim(self) -> bool:
        """From the worker thread: True when it finishes the call, False when the loop took it over."""
        with self._lock:
            if self._owner is None:
                self._owner = "thread"
            return self._owner == "thread"

    def take_over(self) -> bool:
        """From the event loop: True when the loop finishes (or drops) the call, False when the thread
        claimed it first (it is rendering and will return shortly)."""
        with self._lock:
            if self._owner is None:
                self._owner = "loop"
            return self._owner == "loop"

    def close(self) -> None:
        """On the event loop, once it stops waiting."""
        self._timer.cancel()


@dataclass
class NeedsFetch:
    """The worker thread's answer when part of the prefetch must be fetched on the event loop."""

    service: ServiceDefinition
    request: CDSRequest


class Abandoned:
    """The worker thread's answer when the event loop took the call over."""


Answer = bytes | NeedsFetch | Abandoned


@dataclass
class HookCall:
    """Everything one call needs in the worker thread, gathered on the event loop before the hop."""

    context: WebContext
    current: Pipeline
    service_id: str
    body: bytes
    now: datetime
    fields: dict[str, Any]
    limits: RequestLimits
    pages_base_url: str
    fhir_server_policy: Callable[[str], str | None]
    payload: dict[str, Any] | None = None
    hand_off: HandOff | None = None  # the current hop's, set on the event loop before the hop

    # ------------------------------------------------------------------ in the worker thread

    def start(self) -> bytes | NeedsFetch | Abandoned:
        """Parse and check the request; with its prefetch complete, the whole answer."""
        try:
            payload = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise HookError(400, f"malformed JSON: {exc.msg} at position {exc.pos}") from None
        if not isinstance(payload, dict):
            raise HookError(422, "the request body must be a JSON object")
        self.payload = payload
        current = self.current
        # One id may serve several hooks (CDS Hooks 2.0.1 §Discovery): the request's hook picks the entry.
        service = find_service(current.services, self.service_id, payload.get("hook"))
        assert service is not None  # the route checked the id
        self.fields.update(service=self.service_id, hook=service.hook, ruleset=current.version, engine=current.backend)
        request = check_hook_request(service, payload, self.limits, self.body)
        prefetched = prefetch_without_fetching(service, request, self.now, self.context.fetch, self.fhir_server_policy)
        if prefetched is None:
            return NeedsFetch(service, request)
        return self.finish(service, request, prefetched)

    def finish(self, service: ServiceDefinition, request: CDSRequest, prefetched: PrefetchResult) -> bytes | Abandoned:
        """Evaluate, look the snoozes up when a card could be hidden, render, audit."""
        assert self.payload is not None
        context, current = self.context, self.current
        evaluation = evaluate_prefetched(
            current,
            service,
            request,
            prefetched,
            self.now,
            context.settings.trace_extension_key,
            self.limits,
            self.pages_base_url,
        )
        gate = context.snooze
        query = gate.query_for(current, service.id, self.payload)
        snoozes = None
        looked_up = gate.needed(current, evaluation, query)
        hand_off = self.hand_off
        assert hand_off is not None
        if looked_up:
            assert query is not None
            hand_off.evaluation = evaluation
            hand_off.lookup_starts()
            snoozes = gate.look_up(query, self.now)
        if not hand_off.claim():
            return Abandoned()
        hidden = gate.hide(current, evaluation, snoozes) if looked_up else []
        return self.render(service, evaluation, hidden)

    def render(self, service: ServiceDefinition, evaluation: Evaluation, hidden: list[Any]) -> bytes:
        """The response body; the cards' audit records are committed first (write-ahead, ADR 0008)."""
        assert self.payload is not None
        context, current = self.context, self.current
        response = evaluation.response.to_wire()
        if hidden:
            response.setdefault("extension", {})[f"{current.hook_namespace}.snoozed"] = hidden
        if evaluation.trace is not None:
            response.setdefault("extension", {})[context.settings.trace_extension_key] = evaluation.trace
        self.fields["cards"] = len(response["cards"])
        if response["cards"]:
            metrics.CARDS_RAISED.labels(service.id).inc(len(response["cards"]))
        answer = orjson.dumps(response)
        if evaluation.response.cards:
            # answer_hook validated hookInstance and context.patientId. Write-ahead: the records are in
            # the database (or the durable spool) before the EHR sees the card, so feedback for it is
            # never refused by another worker and a kill -9 cannot lose them.
            records = audit_records(
                self.service_id,  # the id the EHR called: its feedback comes to that id's feedback route
                service.hook,
                str(self.payload["hookInstance"]),
                current.version,
                evaluation.response.cards,
                evaluation.card_rules,
                context.store.patient_hash(self.payload["context"].get("patientId")),
                self.now,
            )
            context.store.record_issued(records)
        return answer

    # ------------------------------------------------------------------ on the event loop

    async def run_in_thread(self, step: Callable[..., Answer], *args: Any) -> Answer:
        """``step`` in the worker thread; if the snooze lookup outlives its timeout, the loop takes over."""
        hand_off = self.hand_off = HandOff(asyncio.get_running_loop(), self.context.snooze.timeout_seconds)
        # The request's context variables (its id in log lines) go with it, as run_in_threadpool would carry them.
        run = functools.partial(contextvars.copy_context().run, step, *args)
        work: asyncio.Future[Answer] = asyncio.get_running_loop().run_in_executor(_hook_threads(), run)
        work.add_done_callback(_retrieve)
        try:
            await asyncio.wait((work, hand_off.expired), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the request deadline (or a disconnect): nobody will receive these cards
            hand_off.take_over()
            hand_off.close()
            raise
        if work.done():
            hand_off.close()
            return work.result()
        if not hand_off.take_over():  # the lookup returned as the timer fired: the thread is finishing
            hand_off.close()
            return await work
        hand_off.close()
        self.context.snooze.timed_out()
        evaluation = hand_off.evaluation
        assert evaluation is not None
        service = find_service(self.current.services, self.service_id, (self.payload or {}).get("hook"))
        assert service is not None
        return await run_in_threadpool(self.render, service, evaluation, [])


@functools.cache
def _hook_threads() -> ThreadPoolExecutor:
    """The hook calls' worker threads, as many as Starlette's thread pool (anyio's default limit of 40).

    Not ``run_in_threadpool``: with its anyio task and worker around the same function, a seed-like call
    in process measured wall time well above its CPU time on the loaded 2-core machine (13-32 ms wall for
    12-16 ms CPU), where a plain executor future kept the two equal (9-14 ms for 9-13 ms)."""
    return ThreadPoolExecutor(max_workers=40, thread_name_prefix="cds-hook")


def _retrieve(task: asyncio.Future[Any]) -> None:
    """A worker the loop stopped waiting for may still fail; its error was answered for already."""
    if not task.cancelled():
        task.exception()
