"""Write-ahead audit (ADR 0008) against the old background audit, in the same run.

    .venv/bin/python -m benchmarks.bench_audit [--rounds 15] [--calls 20]

Two apps on two SQLite files, alike except for the audit path of a hook answer:

* ``background`` (the path before issue 16): the records are queued for a writer
  thread and the answer does not wait (``Store.submit``);
* ``write-ahead`` (now): the records are committed (or fsynced to the spool)
  before the answer is sent (``Store.record_issued``).

Each round times ``--calls`` source-case hook calls through the whole ASGI app
(no socket) on each, alternating which goes first. Reports the medians of the
per-call latency and their ratio; the target is a ratio of at most 1.25, and the
write-ahead median within the 500 ms CDS Hooks budget by a wide margin.

    .venv/bin/python -m benchmarks.bench_audit --concurrent [--processes 2] [--threads 8] [--rounds 4]

Group commit under concurrency (ADR 0015): ``--processes`` worker processes on one SQLite file, each
with ``--threads`` threads that do ``--work-ms`` of Python work (holding the GIL, like an evaluation)
and then commit one card's audit records write-ahead, for ``--seconds``; ``group`` (now: callers at the
same time share a transaction) against ``single`` (before: one transaction per caller), alternating
rounds. Reports answers/s, process CPU per answer, transactions per answer and the median wait.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cds.app import create_app
from cds.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SOURCE_CASE = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())
HOOK = "/cds-services/calciphylaxis-risk"
TARGET_RATIO = 1.25


def make_client(folder: Path, background: bool) -> TestClient:
    settings = Settings(
        profile="demo",
        auth_required=False,
        rules_dir=REPO / "rules",
        database_url=f"sqlite:///{folder / 'cds.sqlite3'}",
        rules_watch_seconds=0,
    )
    client = TestClient(create_app(settings))
    if background:
        store = client.app.state.store
        store.record_issued = store.submit  # the old path: queue and answer at once
    return client


def time_calls(client: TestClient, calls: int) -> list[float]:
    seconds = []
    for _ in range(calls):
        body = {**SOURCE_CASE, "hookInstance": str(uuid.uuid4())}
        started = time.perf_counter()
        response = client.post(HOOK, json=body)
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200 and response.json()["cards"], response.text
    return seconds


def _audit_record(n: int) -> Any:
    from datetime import UTC, datetime

    from cds.store.records import AuditRecord

    return AuditRecord(
        card_uuid=str(uuid.uuid4()),
        service_id="calciphylaxis-risk",
        hook="patient-view",
        hook_instance=str(uuid.uuid4()),
        ruleset_version="bench",
        indicator="warning",
        rule_ids=tuple(f"rule-{i}" for i in range(4)),
        suggestion_uuids=(str(uuid.uuid4()), str(uuid.uuid4())),
        patient_hash=f"{n:064x}",
        issued_at=datetime.now(UTC),
        card_family="calciphylaxis-risk",
        band="high",
        findings=("rule-0", "rule-1"),
    )


def _hammer(url: str, mode: str, threads: int, seconds: float, work_ms: float, out: Any) -> None:
    """One worker process: ``threads`` callers, each working then committing its record, for ``seconds``."""
    import threading

    if ":" in mode:  # e.g. "group:0.001": the interpreter's switch interval for this process
        mode, interval = mode.split(":")
        sys.setswitchinterval(float(interval))

    from cds.store import Store

    store = Store.open(url, b"bench-key-0123456789abcdef012345")
    if mode == "single":
        store.audit_commits.commit = store._write_audit  # type: ignore[method-assign]  # before: one each
    waits: list[float] = []
    deadline = time.perf_counter() + seconds
    cpu_before = time.process_time()

    def caller(index: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            spin_until = time.thread_time() + work_ms / 1000  # CPU of this thread, as an evaluation would use
            while time.thread_time() < spin_until:
                pass
            started = time.perf_counter()
            store.record_issued([_audit_record(index * 1_000_000 + n)])
            waits.append(time.perf_counter() - started)
            n += 1

    workers = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cpu = time.process_time() - cpu_before
    out.put((len(waits), cpu, store.audit_commits.groups, statistics.median(waits), store.audit_failures))
    store.close()


def concurrent(args: argparse.Namespace) -> int:
    import multiprocessing
    import os

    context = multiprocessing.get_context("spawn")
    rows: dict[str, list[tuple[float, float, float, float]]] = {mode: [] for mode in args.modes.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'cds.sqlite3'}"
        from cds.store import Store

        Store.open(url, b"bench-key-0123456789abcdef012345").close()  # migrated once, before the workers
        for round_no in range(args.rounds):
            for mode in list(rows) if round_no % 2 == 0 else reversed(rows):
                queue = context.Queue()
                procs = [
                    context.Process(target=_hammer, args=(url, mode, args.threads, args.seconds, args.work_ms, queue))
                    for _ in range(args.processes)
                ]
                for proc in procs:
                    proc.start()
                results = [queue.get(timeout=args.seconds + 60) for _ in procs]
                for proc in procs:
                    proc.join()
                answers = sum(r[0] for r in results)
                failures = sum(r[4] for r in results)
                if failures:
                    print(f"{mode}: {failures} audit writes failed (spooled)")
                row = (
                    answers / args.seconds,
                    1000 * sum(r[1] for r in results) / answers,
                    sum(r[2] for r in results) / answers if mode.startswith("group") else 1.0,
                    1000 * statistics.median(r[3] for r in results),
                )
                rows[mode].append(row)
                print(f"round {round_no} {mode}: " + ", ".join(f"{v:.2f}" for v in row), file=sys.stderr)
    print(
        f"{args.processes} process(es) x {args.threads} threads, {args.work_ms:g} ms of work per answer, "
        f"{args.rounds} alternating rounds of {args.seconds:g} s, load average {os.getloadavg()[0]:.1f}"
    )
    print("| audit commit | answers/s | CPU ms per answer | transactions per answer | median wait ms |")
    print("|---|---:|---:|---:|---:|")
    for mode, values in rows.items():
        medians = [statistics.median(v[i] for v in values) for i in range(4)]
        print(f"| {mode} | {medians[0]:.0f} | {medians[1]:.2f} | {medians[2]:.2f} | {medians[3]:.2f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--concurrent", action="store_true", help="group commit against one commit per caller")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--work-ms", type=float, default=3.0)
    parser.add_argument(
        "--modes", default="single,group", help="single, group; 'group:0.001' also sets sys.setswitchinterval"
    )
    args = parser.parse_args(argv)
    if args.concurrent:
        return concurrent(args)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bg").mkdir()
        (root / "wa").mkdir()
        with make_client(root / "bg", True) as background, make_client(root / "wa", False) as write_ahead:
            time_calls(background, 5)  # warm-up: rules, NLP pipeline, connections
            time_calls(write_ahead, 5)
            samples: dict[str, list[float]] = {"background": [], "write-ahead": []}
            for round_no in range(args.rounds):
                order = [("background", background), ("write-ahead", write_ahead)]
                for name, client in order if round_no % 2 == 0 else reversed(order):
                    samples[name].extend(time_calls(client, args.calls))
            background.app.state.store.flush()
    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    ratio = medians["write-ahead"] / medians["background"]
    print("| audit path | calls | median ms | p90 ms |")
    print("|---|---|---|---|")
    for name, values in samples.items():
        p90 = sorted(values)[int(len(values) * 0.9)] * 1000
        print(f"| {name} | {len(values)} | {medians[name]:.2f} | {p90:.2f} |")
    print(f"\nratio write-ahead / background (medians): {ratio:.3f} (target <= {TARGET_RATIO})")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
