"""Memory: RSS of a service process after start, after many requests, after many rule reloads.

Each measurement runs in a fresh child process (``python -m benchmarks.memory ...``)
so that nothing the harness itself allocated is counted. Requests go through the
whole ASGI application (middleware, routing, validation, pipeline, JSON
response) by calling it directly with an ASGI scope: the same code path as under
uvicorn minus the socket, which is what lets 100,000 requests fit in the time
budget on two cores. RSS is read from /proc (Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.results import Result
from benchmarks.timing import summarise

FAMILY = "memory"
PATH = "/cds-services/calciphylaxis-risk"


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size in MiB, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class AsgiCaller:
    """Calls an ASGI app with one POST, as uvicorn would; returns the status."""

    app: Any
    path: str = PATH

    async def post(self, body: bytes) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8080"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        delivered = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        return status


def _make_app(rules_dir: Path) -> Any:
    from cds.app import create_app
    from cds.settings import Settings

    return create_app(Settings(profile="demo", auth_required=False, rules_dir=rules_dir))


async def _soak(rules_dir: Path, body: bytes, requests: int, max_seconds: float, warmup: int) -> dict[str, Any]:
    rss_before_app = rss_mb()
    app = _make_app(rules_dir)
    caller = AsgiCaller(app)
    statuses: dict[int, int] = {}
    warmup_statuses: dict[int, int] = {}
    for _ in range(warmup):
        status = await caller.post(body)
        warmup_statuses[status] = warmup_statuses.get(status, 0) + 1
    gc.collect()
    rss_start = rss_mb()
    checkpoints: list[tuple[int, float]] = [(0, rss_start)]
    every = max(1, requests // 20)
    started = time.perf_counter()
    done = 0
    while done < requests and time.perf_counter() - started < max_seconds:
        status = await caller.post(body)
        statuses[status] = statuses.get(status, 0) + 1
        done += 1
        if done % every == 0:
            checkpoints.append((done, rss_mb()))
    elapsed = time.perf_counter() - started
    gc.collect()
    rss_end = rss_mb()
    return {
        "rss_before_app_mb": rss_before_app,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "requests": done,
        "requested": requests,
        "warmup": warmup,
        "elapsed_s": elapsed,
        "statuses": {str(k): v for k, v in statuses.items()},
        "warmup_statuses": {str(k): v for k, v in warmup_statuses.items()},
        "checkpoints": checkpoints,
    }


def _reloads(rules_dir: Path, reloads: int) -> dict[str, Any]:
    from benchmarks import stages

    pipeline = stages.load_pipeline(rules_dir)
    reload, how = stages.reload_call(pipeline, rules_dir)
    reload()  # the first reload allocates caches that stay; growth is measured after it
    gc.collect()
    rss_start = rss_mb()
    durations = []
    for _ in range(reloads):
        started = time.perf_counter()
        reload()
        durations.append(time.perf_counter() - started)
    gc.collect()
    return {"rss_start_mb": rss_start, "rss_end_mb": rss_mb(), "reloads": reloads, "how": how, "durations": durations}


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,  # a failed child is reported with its stderr below
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory child failed ({completed.returncode}): {completed.stderr[-800:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run(
    rules_dir: Path, body_file: Path, requests: int, max_seconds: float, reloads: int, warmup: int = 200
) -> list[Result]:
    results: list[Result] = []
    try:
        soak = _child(
            [
                "soak",
                "--rules",
                str(rules_dir),
                "--body",
                str(body_file),
                "--requests",
                str(requests),
                "--max-seconds",
                str(max_seconds),
                "--warmup",
                str(warmup),
            ],
            timeout=max_seconds + 120,
        )
        errors = sum(v for k, v in soak["statuses"].items() if not k.startswith("2"))
        completed = soak["requests"]
        note = "in-process through the whole ASGI app (no socket), source-case body, one process"
        if completed < requests:
            note += f"; stopped by the {max_seconds:g} s time cap after {completed} of {requests} requests"
        warm = ", ".join(f"{n}x{s}" for s, n in sorted(soak["warmup_statuses"].items()))
        results.append(
            Result(
                FAMILY,
                "rss/after-start",
                values={"rss_mb": soak["rss_start_mb"], "rss_before_app_mb": soak["rss_before_app_mb"]},
                requests=soak["warmup"],
                note=f"app created and {soak['warmup']} warm-up requests answered ({warm})",
            )
        )
        results.append(
            Result(
                FAMILY,
                "rss/after-requests",
                params={"requested": requests},
                requests=completed,
                errors=errors,
                throughput_rps=completed / soak["elapsed_s"] if soak["elapsed_s"] else None,
                values={
                    "rss_mb": soak["rss_end_mb"],
                    "growth_mb": soak["rss_end_mb"] - soak["rss_start_mb"],
                    "growth_per_10k_requests_mb": (soak["rss_end_mb"] - soak["rss_start_mb"])
                    * 10_000
                    / max(1, completed),
                    "peak_mb": max(r for _, r in soak["checkpoints"]),
                },
                note=note,
            )
        )
    except Exception as exc:
        results.append(Result.failed(FAMILY, "rss/after-requests", f"{type(exc).__name__}: {exc}"[:600]))
    try:
        reloaded = _child(["reloads", "--rules", str(rules_dir), "--reloads", str(reloads)], timeout=600)
        results.append(
            Result(
                FAMILY,
                "rss/after-reloads",
                params={"reloads": reloads},
                requests=reloaded["reloads"],
                latency=summarise(reloaded["durations"]),
                values={
                    "rss_mb": reloaded["rss_end_mb"],
                    "growth_mb": reloaded["rss_end_mb"] - reloaded["rss_start_mb"],
                },
                note=f"{reloaded['how']}, repeated; latency is one reload",
            )
        )
    except Exception as exc:
        results.append(Result.failed(FAMILY, "rss/after-reloads", f"{type(exc).__name__}: {exc}"[:600]))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    sub = parser.add_subparsers(dest="command", required=True)
    soak = sub.add_parser("soak")
    soak.add_argument("--rules", type=Path, required=True)
    soak.add_argument("--body", type=Path, required=True)
    soak.add_argument("--requests", type=int, default=100_000)
    soak.add_argument("--max-seconds", type=float, default=240.0)
    soak.add_argument("--warmup", type=int, default=200)
    reloads = sub.add_parser("reloads")
    reloads.add_argument("--rules", type=Path, required=True)
    reloads.add_argument("--reloads", type=int, default=100)
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.INFO)  # the request log line is not what is measured here; records are still built
    if args.command == "soak":
        out = asyncio.run(_soak(args.rules, args.body.read_bytes(), args.requests, args.max_seconds, args.warmup))
    else:
        out = _reloads(args.rules, args.reloads)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
