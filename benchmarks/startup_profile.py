"""Where `cds serve` spends its start, phase by phase, up to the first answer (issue 20 item 3).

    .venv/bin/python -m benchmarks.startup_profile              # 3 fresh interpreters
    .venv/bin/python -m benchmarks.startup_profile --repeat 5
    .venv/bin/python -m benchmarks.startup_profile --run-rule-tests   # the first start after a change

Each round starts a fresh interpreter that does what `cds serve` does before its first answer,
in the same order, timing each step: pause the garbage collector, import the command line, import
the web app (FastAPI, the store's SQLAlchemy, JWT), load the settings, load the knowledge bundle
(services, rule set, terminology, findings vocabularies; inside the YAML parse cache as
``create_app`` does, kept by the warm-up round, or parsed every round with
``--without-parse-cache``), bind the serving engine, start the
report-text pipeline (import medspaCy, then build its pipelines), the rule-test gate (by default a
pass recorded by the warm-up round, as at a restart; ``--run-rule-tests`` runs them every round),
open the store (the warm-up round's database, at the newest revision), build the app, and answer
the source case in-process (a bone-scan report). The phases of ``cds.pipeline._build`` are called
one by one here, so that each gets its own line (docs/adr/0014-cold-start.md).

Reported per phase: median wall and CPU seconds (CPU is steadier on a shared machine) and the
share of the total CPU, beside `python -c pass` run in the same rounds, and the load average.
The end-to-end cold start over HTTP is measured by `benchmarks/run.py` (``cold-start/1w``).
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
SOURCE_CASE = REPO / "fhir_examples" / "requests" / "source-case.patient-view.json"

CHILD = r"""
import gc
gc.disable()  # as `cds serve` does before its imports; the app's start-up resumes it (ADR 0014)
import json, os, resource, sys, tempfile, time
from pathlib import Path

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

marks = []
last = [time.perf_counter(), cpu()]

def mark(name):
    now = [time.perf_counter(), cpu()]
    marks.append((name, now[0] - last[0], now[1] - last[1]))
    last[:] = now

rules_dir, case = Path(sys.argv[1]), Path(sys.argv[2])
import cds.cli
mark("import cds.cli")
import cds.app
mark("import cds.app (FastAPI, store, auth)")
from cds.settings import load_settings
settings = load_settings(None, rules_dir=rules_dir)
mark("settings")
from cds.engine.runner import LoadedEngine
from cds.engine.verdicts import configured_record
from cds.knowledge import load_bundle, parse_cache_directory
from cds.pipeline import _rule_test_failures, rules_fingerprint
from cds.yamlio import cached_parses
verdicts = configured_record(settings)
on_disk = rules_fingerprint(rules_dir) if verdicts is not None else None
# what cds.pipeline._build does, step by step (create_app runs it inside the parse cache)
with cached_parses(rules_dir, parse_cache_directory(settings)) as parse_cache:
    bundle = load_bundle(rules_dir, settings.hook_namespace).raise_for_errors()
parses = "no parse cache" if parse_cache is None else f"{parse_cache.hits} parses cached, {parse_cache.misses} parsed"
services = bundle.services
mark("knowledge bundle (YAML, checks, compile; terminology, findings, services)")
marks[-1] = (marks[-1][0][:-1] + "; " + parses + ")",) + marks[-1][1:]
engine = LoadedEngine(bundle.ruleset, settings.engine)
mark("serving engine (" + engine.backend + ")")
from cds.fhir import extract_facts, warm_up
terminology = bundle.terminology
import cds.findings.nlp, medspacy
mark("import medspaCy and spaCy")
warm_up(terminology)
mark("build the text pipelines")

def extractor(context, prefetch, now):
    return extract_facts(context, prefetch, now, terminology)
failed = _rule_test_failures(bundle.ruleset, rules_dir, engine, extractor, verdicts, on_disk)
mark("rule tests (start-up gate" + (", pass recorded" if verdicts is not None else ", run") + ")")
from cds.pipeline import Pipeline, _Loaded
from datetime import UTC, datetime
pipeline = Pipeline(rules_dir, _Loaded(tuple(services), bundle.ruleset, engine, extractor,
                    datetime.now(UTC).isoformat(), bundle), settings.hook_namespace, settings.engine)
from cds.store import open_store
store = open_store(settings)
mark("open the store (migrations)")
app = cds.app.create_app(settings, pipeline=pipeline, store=store, resume_collector=True)
mark("create the app")
from starlette.testclient import TestClient
with TestClient(app) as client:
    answer = client.post("/cds-services/calciphylaxis-risk", content=case.read_bytes(),
                         headers={"Content-Type": "application/json"})
mark("first answer in-process (source case)")
store.close()
print(json.dumps({"marks": marks, "status": answer.status_code, "failed": failed}))
"""


def run_child(rules: Path, tmp: Path, verdicts: Path | None, parse_cache: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        PYTHONPATH=str(REPO),
        CDS_PROFILE="demo",
        CDS_AUTH_REQUIRED="false",
        CDS_DATABASE_URL=f"sqlite:///{tmp / 'cds.sqlite3'}",
        CDS_LOG_LEVEL="WARNING",
    )
    # A recorded rule-test pass (docs/adr/0014-cold-start.md): the warm-up round records it, as an
    # earlier start or `cds rules test` would; without one, every round runs the tests.
    if verdicts is None:
        env["CDS_RULE_TEST_VERDICTS"] = "false"
    else:
        env["CDS_RULE_TEST_VERDICTS_DIR"] = str(verdicts)
    # The YAML parse results of rules/ (ADR 0014): kept by the warm-up round, as by an earlier start.
    if parse_cache is None:
        env["CDS_RULES_PARSE_CACHE"] = "false"
    else:
        env["CDS_RULES_PARSE_CACHE_DIR"] = str(parse_cache)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(rules), str(SOURCE_CASE)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"start-up probe failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["process_s"] = time.perf_counter() - started
    return report


def interpreter_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup_profile", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rules", type=Path, default=REPO / "rules")
    parser.add_argument(
        "--run-rule-tests",
        action="store_true",
        help="run the rule tests in every round (the first start after a change), not a recorded pass",
    )
    parser.add_argument(
        "--without-parse-cache",
        action="store_true",
        help="parse the YAML under rules/ in every round (no parse results kept between starts)",
    )
    args = parser.parse_args(argv)
    rounds, baseline = [], []
    with tempfile.TemporaryDirectory(prefix="cds-startup-") as tmp:
        verdicts = None if args.run_rule_tests else Path(tmp) / "verdicts"
        parse_cache = None if args.without_parse_cache else Path(tmp) / "parsed-rules"
        # warm-up, not counted: bytecode and file caches, the rule-test pass and the parse results
        run_child(args.rules.resolve(), Path(tmp), verdicts, parse_cache)
        for _ in range(args.repeat):
            baseline.append(interpreter_seconds())
            # the database the warm-up created, as at a restart (a new one would also run Alembic)
            rounds.append(run_child(args.rules.resolve(), Path(tmp), verdicts, parse_cache))
    names = [name for name, _, _ in rounds[0]["marks"]]
    wall = {n: statistics.median(r["marks"][i][1] for r in rounds) for i, n in enumerate(names)}
    cpu = {n: statistics.median(r["marks"][i][2] for r in rounds) for i, n in enumerate(names)}
    total_cpu = sum(cpu.values())
    load = os.getloadavg()
    print(
        f"`cds serve` start-up to the first answer, {args.repeat} fresh interpreters, load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores; answers "
        f"{sorted({r['status'] for r in rounds})}, failing rule tests {sorted({len(r['failed']) for r in rounds})}\n"
    )
    print("| phase | median wall s | median CPU s | share of CPU |")
    print("|---|---|---|---|")
    print(f"| `python -c pass` (baseline, whole process) | {statistics.median(baseline):.3f} | | |")
    for name in names:
        print(f"| {name} | {wall[name]:.3f} | {cpu[name]:.3f} | {cpu[name] / total_cpu:.0%} |")
    process = statistics.median(r["process_s"] for r in rounds)
    print(f"| **whole process** (wall) / sum of phases (CPU) | {process:.3f} | {total_cpu:.3f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
