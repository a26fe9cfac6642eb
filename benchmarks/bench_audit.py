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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args(argv)
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
