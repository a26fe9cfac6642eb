"""Run every benchmark family and write the results, the report and the plot.

python -m benchmarks.run            # everything (what `make bench` runs), under 10 minutes on 2 cores
python -m benchmarks.run --quick    # fewer repetitions and shorter loads
python -m benchmarks.run --only memory --soak-seconds 900
                                    # re-run some families, merged into the existing latest.json
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import cases, feature_cost, findings_bench, inprocess, memory, report, rulepacks, stages, targets
from benchmarks import http as http_bench
from benchmarks.results import FAMILIES, BenchReport, Environment, Result, Stats
from benchmarks.synthetic import DEFAULT_NOW, SIZES
from benchmarks.timing import Budget

REPO = cases.REPO
DEFAULT_JSON = REPO / "benchmarks" / "results" / "latest.json"
DEFAULT_DOC = REPO / "docs" / "performance.md"
DEFAULT_PLOT = REPO / "docs" / report.PLOT_NAME
GROUPS = ("in-process", "findings", "rule-packs", "memory", "http", "startup", "screen")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, shorter loads, a shorter soak")
    parser.add_argument("--only", nargs="+", choices=GROUPS, help="run only these groups and merge into --json")
    parser.add_argument(
        "--sizes",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        default=SIZES,
        help="synthetic patient sizes (resources), comma-separated",
    )
    parser.add_argument(
        "--rule-counts", type=lambda s: tuple(int(x) for x in s.split(",")), default=rulepacks.RULE_COUNTS
    )
    parser.add_argument("--no-synthea", action="store_true", help="leave out the Synthea ESRD request")
    parser.add_argument("--rules", type=Path, default=REPO / "rules", help="rules directory")
    parser.add_argument("--soak-requests", type=int, default=100_000)
    parser.add_argument("--soak-seconds", type=float, default=None, help="time cap of the memory soak")
    parser.add_argument("--reloads", type=int, default=None, help="rule reloads of the memory run (100; quick: 10)")
    parser.add_argument("--cold-starts", type=int, default=None)
    # A smoke run of the harness (tests/test_bench_smoke.py): every measurement runs, a few times each;
    # its figures say nothing about speed.
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help="exactly this many timed repetitions of each in-process, findings and rule-pack measurement"
        " (after one warm-up), instead of the time budget",
    )
    parser.add_argument(
        "--feature-calls", type=int, default=None, help="calls per feature-cost measurement (400; quick: 60)"
    )
    parser.add_argument("--memory-warmup", type=int, default=None, help="warm-up requests of the memory soak (200)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _cold_starts(source: cases.Case, repeats: int, rules_dir: Path) -> list[Result]:
    """``cold-start/1w``: a restart, the rule-test pass recorded by an earlier start of the same rules,
    code and libraries (or by `cds rules test`; docs/adr/0014-cold-start.md); and
    ``cold-start/1w-after-change``: the first start after a change, which runs the rule tests (and records
    the pass the restarts use). Each in a fresh verdict directory, never the user's cache."""
    saved = os.environ.get("CDS_RULE_TEST_VERDICTS_DIR")
    with tempfile.TemporaryDirectory(prefix="cds-bench-verdicts-") as verdicts:
        os.environ["CDS_RULE_TEST_VERDICTS_DIR"] = verdicts  # the servers' environment (http.cds_env)
        try:
            first = [
                replace(r, name="cold-start/1w-after-change", note=f"{r.note}; rule tests run")
                for r in http_bench.cold_start(source, 1, rules_dir)
            ]
            restarts = http_bench.cold_start(source, repeats, rules_dir)
        finally:
            if saved is None:
                os.environ.pop("CDS_RULE_TEST_VERDICTS_DIR", None)
            else:
                os.environ["CDS_RULE_TEST_VERDICTS_DIR"] = saved
    return [*restarts, *first]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The service's own warnings (e.g. an optional prefetch key absent from the Synthea request)
    # would otherwise print once per repetition; errors still show.
    logging.basicConfig(level=logging.ERROR)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    load_average = os.getloadavg()
    groups = set(args.only or GROUPS)
    quick = args.quick
    budget = (
        Budget(min_reps=3, max_reps=300, max_seconds=0.15, warmup=1)
        if quick
        else Budget(min_reps=5, max_reps=1000, max_seconds=0.6)
    )
    if args.reps is not None:
        budget = Budget(min_reps=args.reps, max_reps=args.reps, max_seconds=0.0, warmup=1)
    now = DEFAULT_NOW
    rules_dir = args.rules.resolve()
    results: list[Result] = []

    say("loading the pipeline")
    pipeline = None
    try:
        pipeline = stages.load_pipeline(rules_dir)
        load_stats = _time_once(lambda: stages.load_pipeline(rules_dir), 1 if quick else 3)
        results.append(
            Result(
                "startup",
                "pipeline-load",
                latency=load_stats,
                requests=1,
                note="Pipeline.load(rules), in-process, once warm",
            )
        )
    except Exception as exc:  # report it and measure what can be measured
        results.append(
            Result.failed("in-process", "pipeline-load", f"Pipeline.load failed: {type(exc).__name__}: {exc}"[:800])
        )
    backend = stages.engine_backend(pipeline) if pipeline is not None else "unavailable (rules did not load)"
    version = str(pipeline.version) if pipeline is not None else "-"

    say("building the requests")
    source = cases.source_case()
    synthetic = [cases.synthetic_case(n) for n in args.sizes]
    synthea = None if args.no_synthea else cases.synthea_esrd_case()
    all_cases = [source, *synthetic, *([synthea] if synthea else [])]
    if synthea is None and not args.no_synthea:
        results.append(
            Result.unavailable("http", "http/cds/1w/c1/synthea-esrd", f"shared data not found: {cases.SYNTHEA_ESRD}")
        )

    if "in-process" in groups and pipeline is not None:
        say("in-process stages")
        results += inprocess.run(pipeline, rules_dir, all_cases, now, budget)
        say("feature costs on the seed-like request")
        seed = next((c for c in synthetic if c.resources == 100), source)
        feature_calls = args.feature_calls or (60 if quick else 400)
        results += feature_cost.run(pipeline, rules_dir, seed, now, feature_calls)
    if "findings" in groups:
        say("report-text extraction")
        results += findings_bench.run([source, *synthetic[:1]], now, rules_dir, budget)
    if "rule-packs" in groups:
        say("rule-pack scaling")
        results += rulepacks.run(rules_dir, source, now, budget, args.rule_counts)
    if "memory" in groups:
        say("memory")
        soak_seconds = args.soak_seconds if args.soak_seconds is not None else (20.0 if quick else 60.0)
        soak_requests = min(args.soak_requests, 5_000) if quick else args.soak_requests
        with tempfile.TemporaryDirectory(prefix="cds-bench-mem-") as tmp:
            body = Path(tmp) / "source-case.json"
            body.write_bytes(source.body)
            results += memory.run(
                rules_dir,
                body,
                soak_requests,
                soak_seconds,
                args.reloads or (10 if quick else 100),
                warmup=args.memory_warmup if args.memory_warmup is not None else (20 if quick else 200),
            )
    if "http" in groups:
        say("HTTP on loopback")
        http_sizes = [c for c in synthetic if c.resources <= 10_000]  # 50,000 resources exceed the 8 MB body limit
        plan = http_bench.HttpPlan(
            source, (*http_sizes, *([synthea] if synthea else [])), quick=quick, rules_dir=rules_dir
        )
        results += http_bench.run(plan)
    if "startup" in groups:
        say("cold start")
        results += _cold_starts(source, args.cold_starts or (1 if quick else 3), rules_dir)

    if "screen" in groups:
        say("population screening on Dask")
        from benchmarks import screen_bench

        results += screen_bench.run(rules_dir, quick, now, say)

    if args.only and args.json.exists():
        results = _merge(args.json, results, groups)
    checks = [*targets.issue_targets(results), *targets.peer_comparison(results)]
    environment = Environment(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        cpu_count=os.cpu_count() or 0,
        cpu_model=_cpu_model(),
        load_average_start=tuple(round(x, 2) for x in load_average),
        load_average_end=tuple(round(x, 2) for x in os.getloadavg()),
        engine_backend=backend,
        ruleset_version=version,
        git_commit=_git_commit(),
        started_at=started_at.isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 1),
        quick=quick,
        rerun_groups=tuple(args.only or ()),
        available_stages={
            name: stages.has_module(name)
            for name in ("cds.fhir", "cds.engine", "cds.cards", "cds.findings", "cds.auth", "cds.hooks.fhir_client")
        },
    )
    bench_report = BenchReport(environment, tuple(results), tuple(checks))
    report.write_json(bench_report, args.json)
    drawn = report.plot(bench_report, args.plot)
    plot_ref = os.path.relpath(args.plot, args.doc.parent) if drawn else None
    report.update_doc(args.doc, report.render(bench_report, plot_ref))
    say(f"done in {environment.duration_s:.0f} s: {args.json}, {args.doc}" + (f", {args.plot}" if drawn else ""))
    for check in checks:
        if not check.id.startswith("peer-"):
            say(f"  {check.id:22} {check.target:>12}  measured {check.measured}  -> {check.met}")
    return 0


def _time_once(call, reps: int) -> Stats:
    from benchmarks.timing import measure

    return measure(call, Budget(min_reps=1, max_reps=reps, max_seconds=2.0, warmup=0))


def _merge(path: Path, fresh: list[Result], groups: set[str]) -> list[Result]:
    """Keep the previous run's results of the families not re-run."""
    from benchmarks.results import Stats as S

    previous = report.load_json(path).get("results", [])
    rerun_families = {f for g in groups for f in _families_of(g)} - {"baseline"}  # baselines are shared by groups
    kept = []
    for raw in previous:
        if raw["family"] in rerun_families:
            continue
        latency = S(**raw["latency"]) if raw.get("latency") else None
        kept.append(Result(**{**raw, "latency": latency}))
    fresh_names = {r.name for r in fresh}
    return [r for r in kept if r.name not in fresh_names] + fresh


def _families_of(group: str) -> set[str]:
    return {"in-process": {"in-process", "baseline"}, "http": {"http", "baseline"}}.get(group, {group}) & set(FAMILIES)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:

        def git(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10, check=False
            )

        out = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
