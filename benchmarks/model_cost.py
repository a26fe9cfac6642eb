"""Cost of the differential model (ADR 0004) against an older checkout, measured in one run.

    .venv/bin/python -m benchmarks.model_cost --baseline /path/to/old/checkout [--rounds 5] [--reps 300]

The driver runs, alternately, a child process on this checkout and one on the baseline checkout (its own
``cds`` package and ``rules/``), ``--rounds`` times each, so both share the machine's state of the moment.
Each child times ``Pipeline.evaluate`` on the shipped source case (in process, reference backend, request
already validated, as the web layer hands it) and the differential stage alone (``timings['differential']``),
and prints medians. The driver prints the median of the children's medians and the ratio new / baseline.
Target (issue 12): in-process median on the source case under 3 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASE = "fhir_examples/requests/source-case.patient-view.json"
TARGET_MS = 3.0


def child(root: Path, reps: int) -> dict[str, float]:
    from datetime import UTC, datetime

    import orjson

    import cds
    from cds.hooks.models import CDSRequest
    from cds.pipeline import Pipeline

    assert Path(cds.__file__).resolve().is_relative_to(root.resolve()), (cds.__file__, root)
    pipeline = Pipeline.load(root / "rules", "org.calciphylaxis-cds", engine="reference")
    raw = orjson.loads((root / CASE).read_bytes())
    request = CDSRequest.model_validate(raw)
    service = pipeline.service("calciphylaxis-risk")
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    for _ in range(20):  # warm-up: caches, lazy imports
        pipeline.evaluate(service, request, raw["prefetch"], now)
    whole, differential = [], []
    for _ in range(reps):
        started = time.perf_counter()
        evaluation = pipeline.evaluate(service, request, raw["prefetch"], now)
        whole.append(time.perf_counter() - started)
        differential.append(evaluation.timings.get("differential", float("nan")))
    return {"pipeline_ms": statistics.median(whole) * 1e3, "differential_ms": statistics.median(differential) * 1e3}


def run_child(root: Path, reps: int) -> dict[str, float]:
    # The script by path, from the checkout's root, with -P (benchmarks/http.py would shadow the standard library):
    # `cds` then comes from that checkout (PYTHONPATH), not from this one.
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-P", str(Path(__file__).resolve()), "--child", str(root), "--reps", str(reps)],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="checkout of the older version (e.g. d51f1a8)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.reps)))
        return 0
    if args.baseline is None:
        parser.error("--baseline is required")
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "new": []}
    for _ in range(args.rounds):
        runs["baseline"].append(run_child(args.baseline.resolve(), args.reps))
        runs["new"].append(run_child(REPO, args.reps))
    med = {
        k: {m: statistics.median(r[m] for r in v) for m in ("pipeline_ms", "differential_ms")} for k, v in runs.items()
    }
    print("| Version | Pipeline.evaluate median (ms) | Differential stage median (ms) |")
    print("|---|---|---|")
    for name in ("baseline", "new"):
        print(f"| {name} | {med[name]['pipeline_ms']:.3f} | {med[name]['differential_ms']:.4f} |")
    print(
        f"| ratio new / baseline | {med['new']['pipeline_ms'] / med['baseline']['pipeline_ms']:.2f} | "
        f"{med['new']['differential_ms'] / med['baseline']['differential_ms']:.2f} |"
    )
    ok = med["new"]["pipeline_ms"] < TARGET_MS
    print(
        f"\nTarget: in-process median on the source case under {TARGET_MS:g} ms: {'met' if ok else 'MISSED'} "
        f"({args.rounds} alternating rounds of {args.reps} requests each)."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
