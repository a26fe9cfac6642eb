"""Where the time goes: a cProfile of the in-process request path for one case.

    python -m benchmarks.profile                       # the source case
    python -m benchmarks.profile --case synthetic-1000 --sort tottime --top 30
    python -m benchmarks.profile --case synthea-esrd --stage facts
    python -m benchmarks.profile --case synthetic-100 --breakdown     # medians per stage, no profiler
    python -m benchmarks.profile --case synthea-esrd --stage app      # cProfile of the whole app, no socket

``--breakdown`` times, alternately in the same rounds, each layer of one request on its own and
the whole app through ASGI without a socket (middleware, authentication off, the snooze lookup,
the write-ahead audit, logging and metrics), and prints a Markdown table of medians with each
stage's share of the whole: the table behind docs/performance.md, "Where the time goes".

cProfile (standard library) rather than a sampling profiler: it needs no extra
install and attributes time per function exactly, which is what deciding what
to fix needs; its overhead inflates many-small-call code, so compare shares,
not absolute figures, with the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import cases, stages
from benchmarks.synthetic import DEFAULT_NOW


def pick_case(name: str) -> cases.Case:
    if name == "source-case":
        return cases.source_case()
    if name == "synthea-esrd":
        case = cases.synthea_esrd_case()
        if case is None:
            raise SystemExit(f"shared data not found: {cases.SYNTHEA_ESRD}")
        return case
    if name.startswith("synthetic-"):
        return cases.synthetic_case(int(name.removeprefix("synthetic-")))
    raise SystemExit(f"unknown case {name!r}: source-case, synthea-esrd or synthetic-<resources>")


HOOK_PATH = f"/cds-services/{cases.SERVICE_ID}"


def asgi_request(app: Any, body: bytes) -> Callable[[], Awaitable[int]]:
    """One POST of ``body`` to the hook route through the ASGI interface: everything but the socket."""
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": HOOK_PATH,
        "raw_path": HOOK_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }

    async def call() -> int:
        delivered = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # the client stays connected
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope), receive, send)
        if status != 200:
            raise RuntimeError(f"the app answered {status}")
        return status

    return call


@contextlib.contextmanager
def service_app(rules_dir: Path) -> Iterator[Any]:
    """The real app as `cds serve` builds it (demo profile, authentication off, SQLite store, snooze on)."""
    with tempfile.TemporaryDirectory(prefix="cds-profile-") as tmp:
        env = {
            "CDS_PROFILE": "demo",
            "CDS_AUTH_REQUIRED": "false",
            "CDS_RULES_DIR": str(rules_dir),
            "CDS_DATABASE_URL": f"sqlite:///{Path(tmp) / 'cds.sqlite3'}",
            "CDS_RULES_WATCH_SECONDS": "0",
            "CDS_LOG_LEVEL": os.environ.get("CDS_LOG_LEVEL", "WARNING"),
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            from cds.app import create_app
            from cds.settings import load_settings

            yield create_app(load_settings(None))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _empty_app() -> Any:
    from benchmarks.empty_app import app

    return app


def breakdown(case: cases.Case, rules_dir: Path, rounds: int, per_round: int) -> list[tuple[str, float, str]]:
    """Median ms of each layer of one request, all sampled in the same interleaved rounds."""
    import orjson

    pipeline = stages.load_pipeline(rules_dir)
    prepared = stages.prepare_case(pipeline, case.name, case.payload, case.body, cases.SERVICE_ID, DEFAULT_NOW)
    parse = stages.parse_stage(pipeline, case.body, cases.SERVICE_ID).call
    samples: dict[str, list[float]] = {}

    def keep(name: str, seconds: float) -> None:
        samples.setdefault(name, []).append(seconds)

    def evaluate() -> None:
        started = time.perf_counter()
        evaluation = pipeline.evaluate(prepared.service, prepared.request, prepared.prefetch, DEFAULT_NOW)
        keep("pipeline", time.perf_counter() - started)
        for name, seconds in (stages.evaluation_timings(evaluation) or {}).items():
            keep(f"pipeline: {name}", seconds)

    with service_app(rules_dir) as app:

        async def run() -> None:
            whole, empty = asgi_request(app, case.body), asgi_request(_empty_app(), case.body)
            async with app.router.lifespan_context(app):
                for _ in range(5):  # warm-up: lazy imports, caches, the thread pool
                    await whole()
                    evaluate()
                for _ in range(rounds):
                    for _ in range(per_round):
                        for name, call in (("empty app", empty), ("app", whole)):
                            started = time.perf_counter()
                            await call()
                            keep(name, time.perf_counter() - started)
                        for name, sync in (("orjson.loads", lambda: orjson.loads(case.body)), ("parse", parse)):
                            started = time.perf_counter()
                            sync()
                            keep(name, time.perf_counter() - started)
                        evaluate()

        asyncio.run(run())
    whole_ms = statistics.median(samples["app"]) * 1e3
    rows = []
    for name, values in samples.items():
        ms = statistics.median(values) * 1e3
        rows.append((name, ms, f"{ms / whole_ms:.0%}"))
    return rows


def print_breakdown(case: cases.Case, rows: list[tuple[str, float, str]]) -> None:
    print(f"{case.name} ({case.resources} resources, {len(case.body) / 1024:.0f} KB), medians, load {os.getloadavg()}")
    print("| stage | median ms | share of the app |")
    print("|---|---:|---:|")
    for name, ms, share in rows:
        print(f"| {name} | {ms:.3f} | {share} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("--case", default="source-case")
    parser.add_argument("--stage", choices=("pipeline", "facts", "request", "app"), default="pipeline")
    parser.add_argument("--breakdown", action="store_true", help="medians per stage instead of a profile")
    parser.add_argument("--rounds", type=int, default=5, help="--breakdown: interleaved rounds")
    parser.add_argument("--rules", type=Path, default=cases.REPO / "rules")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

    case = pick_case(args.case)
    if args.breakdown:
        print_breakdown(case, breakdown(case, args.rules, args.rounds, max(1, args.repeat // args.rounds)))
        return 0
    if args.stage == "app":
        return profile_app(case, args)
    pipeline = stages.load_pipeline(args.rules)
    prepared = stages.prepare_case(pipeline, case.name, case.payload, case.body, cases.SERVICE_ID, DEFAULT_NOW)
    if args.stage == "facts":
        stage = stages.facts_stage(stages.load_terminology(args.rules), prepared, DEFAULT_NOW)
    elif args.stage == "request":
        stage = stages.parse_stage(pipeline, case.body, cases.SERVICE_ID)
        evaluate = stages.pipeline_stage(pipeline, prepared, DEFAULT_NOW)
        parse = stage.call
        stage = stages.Stage(lambda: (parse(), evaluate.call()))
    else:
        stage = stages.pipeline_stage(pipeline, prepared, DEFAULT_NOW)
    if not stage.available:
        raise SystemExit(f"{args.stage} not available: {stage.why_not}")
    stage.call()  # warm caches and lazy imports: profile the steady state
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.repeat):
        stage.call()
    profiler.disable()
    print(
        f"{args.stage} on {case.name} ({case.resources} resources), {args.repeat} calls,",
        f"engine {stages.engine_backend(pipeline)}",
    )
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


def profile_app(case: cases.Case, args: argparse.Namespace) -> int:
    with service_app(args.rules) as app:
        call = asgi_request(app, case.body)
        profiler = cProfile.Profile()

        async def run() -> None:
            async with app.router.lifespan_context(app):
                await call()
                profiler.enable()
                for _ in range(args.repeat):
                    await call()
                profiler.disable()

        asyncio.run(run())
    print(f"the whole app (ASGI, no socket) on {case.name} ({case.resources} resources), {args.repeat} calls")
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
