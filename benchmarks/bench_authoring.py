"""The rule author's loop, timed as an author runs it: separate processes, wall clock.

    .venv/bin/python -m benchmarks.bench_authoring                 # 5 rounds
    .venv/bin/python -m benchmarks.bench_authoring --repeat 3 --rules /elsewhere/rules

Each round runs, back to back: the baselines (`python -c pass`, the interpreter alone;
`python -c "import cds"`, the package; `cds rules validate`, loading and checking the rule set),
`cds rules test` on each backend and on both, `cds evaluate` of a small case (no report text) and
of the source case (a bone-scan report, so the text pipeline starts), and `cds rules diff` of the
rule set against itself. One warm-up round comes first and is not counted (it also writes the
bytecode caches an installed package has, even where PYTHONDONTWRITEBYTECODE is set). Reported:
medians, the CPU seconds of each child (steadier than wall time on a shared machine), what each
command costs over `python -c pass`, and ratios to `cds rules validate` in the same run. Targets
(issue 17): `cds rules test` on both backends under 10 s, `cds evaluate` of a small case under
2 s. Exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUESTS = REPO / "fhir_examples" / "requests"
SMALL_CASE = REQUESTS / "control-esrd-no-skin-findings.patient-view.json"
SOURCE_CASE = REQUESTS / "source-case.patient-view.json"
TARGETS = {"rules test (both)": 10.0, "evaluate small case": 2.0}


def commands(rules: Path) -> dict[str, list[str]]:
    cds = [sys.executable, "-m", "cds.cli"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import cds'": [sys.executable, "-c", "import cds"],
        "rules validate": [*cds, "rules", "validate", "--rules", str(rules)],
        "rules test (reference)": [*cds, "rules", "test", "--engine", "reference", "--rules", str(rules)],
        "rules test (durable)": [*cds, "rules", "test", "--engine", "durable", "--rules", str(rules)],
        "rules test (both)": [*cds, "rules", "test", "--engine", "both", "--rules", str(rules)],
        "evaluate small case": [*cds, "evaluate", str(SMALL_CASE), "--rules", str(rules)],
        "evaluate source case": [*cds, "evaluate", str(SOURCE_CASE), "--rules", str(rules)],
        "rules diff (same set)": [*cds, "rules", "diff", str(rules), "--rules", str(rules)],
    }


def timed(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system of the child: what the command costs on an idle core,
    nearly independent of other load on a shared machine), exit code."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_authoring", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rules", type=Path, default=REPO / "rules")
    args = parser.parse_args(argv)
    runs = commands(args.rules.resolve())
    samples: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    codes: dict[str, set[int]] = {name: set() for name in runs}
    for command in runs.values():  # warm-up, not counted: bytecode caches, the OS's file cache
        timed(command)
    for _ in range(args.repeat):
        for name, command in runs.items():  # interleaved, so that load changes hit every command alike
            seconds, cpu_seconds, code = timed(command)
            samples[name].append(seconds)
            cpu[name].append(cpu_seconds)
            codes[name].add(code)
    baseline = statistics.median(samples["rules validate"])
    interpreter = statistics.median(samples["python -c pass"])
    load = os.getloadavg()
    print(
        f"Rule-author loop, {args.repeat} rounds, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"on {os.cpu_count()} cores\n"
    )
    print(
        "| command | median s | min s | max s | median CPU s | over `python -c pass` s | × rules validate "
        "| exit codes | target |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    missed = []
    for name, values in samples.items():
        median = statistics.median(values)
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"< {target:g} s: {'met' if median < target else 'MISSED'}"
            if median >= target:
                missed.append(name)
        print(
            f"| `{name}` | {median:.2f} | {min(values):.2f} | {max(values):.2f} | "
            f"{statistics.median(cpu[name]):.2f} | {median - interpreter:.2f} | {median / baseline:.2f} | "
            f"{','.join(map(str, sorted(codes[name])))} | {verdict} |"
        )
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
