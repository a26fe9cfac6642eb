"""The hook route's path, stage by stage, in CPU time: what one request costs outside the pipeline (issue 20).

    python -m benchmarks.http_path --case synthetic-100 --case synthea-esrd      # in process, through ASGI
    python -m benchmarks.http_path --case synthea-esrd --http                    # and over a socket, 1 worker

In process, the real app (as ``benchmarks.profile`` builds it: demo profile, authentication off, SQLite store,
snooze on, lifespan run) answers the case through ASGI, with a timer around each stage of ``cds.web.call``:
parse, checks (nesting depth, request model), prefetch completion, evaluation (the pipeline, with the patient
binding and resource count before it), snooze lookup, rendering, the audit write, and, on the event loop, the
answer's send and the freeing of the call's objects after it. Each stage is timed in **CPU time of its own
thread** (``time.thread_time``), so a shared, loaded machine inflates the figures less than wall time; the
event loop's CPU outside those stages (middleware, routing, the hop to the worker thread and back) is the row
"event loop: the rest". The cyclic collector's time is counted per request (``gc.callbacks``).

``--http`` also serves the app with ``cds serve`` (one worker) beside the empty route and drives each with
one keep-alive client: latency medians and the server's CPU per request (``/proc``), same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import cases
from benchmarks.profile import asgi_request, pick_case, service_app


class StageClock:
    """CPU seconds of each stage, per request, from wrappers installed around the route's functions."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.requests: list[dict[str, float]] = []
        self._gc_started = 0.0

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[name] = self.current.get(name, 0.0) + time.thread_time() - started

        return timed

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.thread_time()
        else:
            self.current["cyclic collector"] = self.current.get("cyclic collector", 0.0) + (
                time.thread_time() - self._gc_started
            )


@contextlib.contextmanager
def instrumented(clock: StageClock) -> Iterator[None]:
    """The stage wrappers, on the modules the route reads them from; removed on exit."""
    import orjson

    import cds.web.call as call
    import cds.web.collector as collector
    import cds.web.snooze as snooze
    from cds.store.store import Store

    patches: list[tuple[Any, str, Any]] = [
        (call, "check_hook_request", "checks: depth, request model"),
        (call, "prefetch_without_fetching", "prefetch completion"),
        (call, "evaluate_prefetched", "evaluation (binding, count, pipeline)"),
        (snooze.SnoozeGate, "look_up", "snooze lookup"),
        (Store, "record_issued", "audit write"),
        (collector.HookResponse, "release", "event loop: freeing the call after the answer"),
    ]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patches]
    real_loads = orjson.loads

    class TimedOrjson:  # cds.web.call reads ``orjson.loads`` and ``orjson.dumps`` through its module
        loads = staticmethod(clock.wrap("parse (orjson.loads)", real_loads))
        dumps = staticmethod(clock.wrap("render (orjson.dumps)", orjson.dumps))
        JSONDecodeError = orjson.JSONDecodeError

    try:
        for owner, attr, name in patches:
            setattr(owner, attr, clock.wrap(name, getattr(owner, attr)))
        call.orjson = TimedOrjson  # type: ignore[assignment]
        gc.callbacks.append(clock.on_gc)
        yield
    finally:
        gc.callbacks.remove(clock.on_gc)
        call.orjson = orjson  # type: ignore[assignment]
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def in_process(case: cases.Case, requests: int) -> list[tuple[str, float]]:
    """Median CPU ms of each stage of one request (and of the whole request on each thread)."""
    clock = StageClock()
    with service_app(cases.REPO / "rules") as app:
        call = asgi_request(app, case.body)

        async def run() -> None:
            async with app.router.lifespan_context(app):
                for _ in range(3):  # lazy imports, caches, the thread pool
                    await call()
                with instrumented(clock):
                    for _ in range(requests):
                        clock.current = {}
                        process_started, loop_started = time.process_time(), time.thread_time()
                        await call()
                        clock.current["whole request (all threads)"] = time.process_time() - process_started
                        clock.current["event loop thread"] = time.thread_time() - loop_started
                        clock.requests.append(clock.current)

        asyncio.run(run())
    names = list(dict.fromkeys(name for sample in clock.requests for name in sample))
    rows = [(name, statistics.median(r.get(name, 0.0) for r in clock.requests) * 1e3) for name in names]
    totals = dict(rows)
    loop_ms, whole_ms = totals["event loop thread"], totals["whole request (all threads)"]
    loop_stages = sum(ms for name, ms in rows if name.startswith("event loop:"))
    worker_stages = sum(
        ms for name, ms in rows if not name.startswith("event loop") and name not in ("cyclic collector", *_TOTALS)
    )
    rows.append(("event loop: the rest (middleware, routing, hop, send)", loop_ms - loop_stages))
    rows.append(
        ("worker thread: the rest (snooze gate, response model, audit records)", whole_ms - loop_ms - worker_stages)
    )
    return rows


_TOTALS = ("whole request (all threads)", "event loop thread")


def over_http(
    case: cases.Case, rounds: int, per_round: int, before: Path | None = None
) -> list[tuple[str, float, float]]:
    """Latency median and server CPU per request, the service beside the empty route (and, with ``before``,
    beside the same service served from another checkout, e.g. main), in rounds that alternate their order."""
    from benchmarks import http

    async def drive(server: http.Server) -> tuple[float, float]:
        connection = http.RawConnection(server.port)
        headers = {"Content-Type": "application/json"}
        for _ in range(3):
            await connection.post(http.HOOK_PATH, case.body, headers)
        cpu_before = sum(server.cpu_seconds().values())
        latencies = []
        for _ in range(per_round):
            started = time.perf_counter()
            status = await connection.post(http.HOOK_PATH, case.body, headers)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"{server.name} answered {status}")
        cpu = (sum(server.cpu_seconds().values()) - cpu_before) / per_round
        await connection.close()
        return statistics.median(latencies), cpu

    def start_before(tmp: Path) -> http.Server:
        assert before is not None
        port = http.free_port()
        env = {**http.cds_env(tmp, before / "rules"), "PYTHONPATH": str(before)}
        # Not ``-m cds.cli``: the server starts in this checkout, and ``-m`` puts the working directory
        # first on sys.path, so the other checkout's ``cds`` would never be imported.
        run = f"import sys; sys.path.insert(0, {str(before)!r}); from cds.cli import main; sys.exit(main())"
        command = [sys.executable, "-c", run, "serve", "--host", http.LOOPBACK, "--port", str(port)]
        return http._start("before", 1, command, port, env, tmp, None)

    samples: dict[str, list[tuple[float, float]]] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cds-http-path-")))
        servers = [
            ("empty route", stack.enter_context(http.running(lambda: http.start_empty(1, tmp)))),
            ("service", stack.enter_context(http.running(lambda: http.start_cds("cds", 1, tmp, cases.REPO / "rules")))),
        ]
        if before is not None:
            (tmp / "before").mkdir()
            servers.append(
                (f"service at {before}", stack.enter_context(http.running(lambda: start_before(tmp / "before"))))
            )
        for index in range(rounds):
            for name, server in servers if index % 2 == 0 else servers[::-1]:
                samples.setdefault(name, []).append(asyncio.run(drive(server)))
    return [
        (name, statistics.median(s[0] for s in values) * 1e3, statistics.median(s[1] for s in values) * 1e3)
        for name, values in samples.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_path")
    parser.add_argument("--case", action="append", help="source-case, synthea-esrd, synthetic-<n> (repeatable)")
    parser.add_argument("--requests", type=int, default=30, help="in-process requests per case")
    parser.add_argument("--http", action="store_true", help="also over a socket, beside the empty route")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--before", type=Path, help="--http: also serve this checkout (e.g. main's worktree)")
    args = parser.parse_args(argv)
    for name in args.case or ["synthetic-100"]:
        case = pick_case(name)
        print(f"\n{case.name} ({case.resources} resources, {len(case.body) / 1024:.0f} KB), load {os.getloadavg()}")
        print("| stage (in process, CPU time of its thread) | median ms |")
        print("|---|---:|")
        for stage, ms in in_process(case, args.requests):
            print(f"| {stage} | {ms:.2f} |")
        if args.http:
            print("\n| over HTTP, 1 worker, 1 client | latency median ms | server CPU ms per request |")
            print("|---|---:|---:|")
            for server, latency, cpu in over_http(case, args.rounds, args.per_round, args.before):
                print(f"| {server} | {latency:.2f} | {cpu:.2f} |")
        print(f"load after {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
