"""The cyclic garbage collector paused while a hook call holds its request, and the call freed after its answer.

Why (docs/adr/0016-the-http-path-of-one-request.md): a hook call builds its request's whole object graph
(the parsed JSON, then facts, outcome and cards) and drops it at the end; almost none of it is cyclic, so
reference counting frees it and the cyclic collector finds nothing. Yet every 700 allocations the collector
scans the young objects, and every hundred scans all objects not frozen at start, the live request
included: on the 1.6 MB Synthea ESRD request that was about a fifth of the request's CPU time, on the
10,000-resource request more (issue 20). ``CollectorPause`` turns it off from the start of a call until its
objects are freed, which is after its answer has been sent (``HookResponse``): freeing the parsed JSON of a
large request costs about two thirds of parsing it, and the caller need not wait for that.

The pause is shared: the collector is off while at least one call holds it, and on again once none does
(unless it was off before the first). So that calls that overlap without end (a busy worker) cannot keep it
off for ever, a call that starts more than ``max_seconds`` after the pause began does not join it: the
calls already holding it finish, the collector runs again, and the next call starts a new pause.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

DEFAULT_MAX_PAUSE_SECONDS = 1.0


class CollectorPause:
    """Counted, thread-safe pauses of ``gc`` (one per process: the collector is process-wide)."""

    def __init__(self, max_seconds: float = DEFAULT_MAX_PAUSE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._max_seconds = max_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._holders = 0
        self._since = 0.0
        self._resume = False

    @property
    def holders(self) -> int:
        return self._holders

    def hold(self) -> Callable[[], None]:
        """Pause the collector (or join the pause under way); returns the release, idempotent."""
        with self._lock:
            now = self._clock()
            if self._holders == 0:
                self._resume = gc.isenabled()
                gc.disable()
                self._since = now
            elif now - self._since >= self._max_seconds:
                return _nothing  # the pause is old: let it end with the calls that hold it
            self._holders += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self._holders -= 1
                if self._holders == 0 and self._resume:
                    gc.enable()

        return release


def _nothing() -> None:
    return None


COLLECTOR_PAUSE = CollectorPause()


class HookResponse(Response):
    """The hook call's JSON answer; what the call held (``spent``) is freed once the answer is sent,
    then the collector pause is released (``on_sent``), whether the send succeeded or not."""

    media_type = "application/json"

    def __init__(self, content: bytes, spent: Any, on_sent: Callable[[], None]) -> None:
        super().__init__(content)
        self._spent: Any = spent
        self._on_sent = on_sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()

    def release(self) -> None:
        self._spent = None  # the request's objects go here, by reference counting, after the answer
        self._on_sent()
