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

With ``--compare REV`` (a git revision), each command also runs, interleaved in the same rounds,
in a copy of the repository at REV (`git archive`), and a second table gives after/before
ratios of wall and CPU time: the honest way to show what a change did on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUESTS = REPO / "fhir_examples" / "requests"
SMALL_CASE = REQUESTS / "control-esrd-no-skin-findings.patient-view.json"
SOURCE_CASE = REQUESTS / "source-case.patient-view.json"
TARGETS = {"rules test (both)": 10.0, "evaluate small case": 2.0}


def commands(root: Path, rules: Path) -> dict[str, list[str]]:
    cds = [sys.executable, "-m", "cds.cli"]
    requests = root / "fhir_examples" / "requests"
    small, source = requests / SMALL_CASE.name, requests / SOURCE_CASE.name
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import cds'": [sys.executable, "-c", "import cds"],
        "rules validate": [*cds, "rules", "validate", "--rules", str(rules)],
        "rules test (reference)": [*cds, "rules", "test", "--engine", "reference", "--rules", str(rules)],
        "rules test (durable)": [*cds, "rules", "test", "--engine", "durable", "--rules", str(rules)],
        "rules test (both)": [*cds, "rules", "test", "--engine", "both", "--rules", str(rules)],
        "evaluate small case": [*cds, "evaluate", str(small), "--rules", str(rules)],
        "evaluate source case": [*cds, "evaluate", str(source), "--rules", str(rules)],
        "rules diff (same set)": [*cds, "rules", "diff", str(rules), "--rules", str(rules)],
    }


def timed(argv: list[str], root: Path = REPO) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system of the child: what the command costs on an idle core,
    nearly independent of other load on a shared machine), exit code."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(root)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=root, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.returncode


class Samples:
    """Wall and CPU seconds and exit codes per command name."""

    def __init__(self, names: list[str]) -> None:
        self.wall: dict[str, list[float]] = {name: [] for name in names}
        self.cpu: dict[str, list[float]] = {name: [] for name in names}
        self.codes: dict[str, set[int]] = {name: set() for name in names}

    def add(self, name: str, sample: tuple[float, float, int]) -> None:
        self.wall[name].append(sample[0])
        self.cpu[name].append(sample[1])
        self.codes[name].add(sample[2])


def measure(trees: dict[str, tuple[Path, dict[str, list[str]]]], repeat: int) -> dict[str, Samples]:
    """Every command in every tree, interleaved round by round, after one uncounted warm-up round."""
    samples = {label: Samples(list(runs)) for label, (_, runs) in trees.items()}
    for root, runs in trees.values():  # warm-up: bytecode caches, the OS's file cache
        for command in runs.values():
            timed(command, root)
    for _ in range(repeat):
        for name in next(iter(trees.values()))[1]:  # interleaved, so that load changes hit every command alike
            for label, (root, runs) in trees.items():
                samples[label].add(name, timed(runs[name], root))
    return samples


def report(samples: Samples) -> list[str]:
    """The table of one tree; returns the names of the targets missed."""
    baseline = statistics.median(samples.wall["rules validate"])
    interpreter = statistics.median(samples.wall["python -c pass"])
    print(
        "| command | median s | min s | max s | median CPU s | over `python -c pass` s | × rules validate "
        "| exit codes | target |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    missed = []
    for name, values in samples.wall.items():
        median = statistics.median(values)
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"< {target:g} s: {'met' if median < target else 'MISSED'}"
            if median >= target:
                missed.append(name)
        print(
            f"| `{name}` | {median:.2f} | {min(values):.2f} | {max(values):.2f} | "
            f"{statistics.median(samples.cpu[name]):.2f} | {median - interpreter:.2f} | {median / baseline:.2f} | "
            f"{','.join(map(str, sorted(samples.codes[name])))} | {verdict} |"
        )
    return missed


def compare(before: Samples, after: Samples, revision: str) -> None:
    print(f"\nAgainst {revision} (same rounds, interleaved): medians and after/before ratios\n")
    print("| command | wall s before | wall s after | wall ratio | CPU s before | CPU s after | CPU ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in after.wall:
        wb, wa = statistics.median(before.wall[name]), statistics.median(after.wall[name])
        cb, ca = statistics.median(before.cpu[name]), statistics.median(after.cpu[name])
        print(f"| `{name}` | {wb:.2f} | {wa:.2f} | {wa / wb:.2f} | {cb:.2f} | {ca:.2f} | {ca / cb:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_authoring", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rules", type=Path, default=None, help="rule set (default: each tree's own rules/)")
    parser.add_argument("--compare", metavar="REV", help="also run the commands at this git revision, interleaved")
    parser.add_argument("--only", metavar="REGEX", help="only the commands whose name matches (baselines always run)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cds-bench-authoring-") as tmp:
        trees = {"this": (REPO, commands(REPO, (args.rules or REPO / "rules").resolve()))}
        if args.compare:
            old = Path(tmp)
            archive = subprocess.run(["git", "archive", args.compare], cwd=REPO, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
            trees["before"] = (old, commands(old, (args.rules or old / "rules").resolve()))
        if args.only:
            keep = re.compile(f"{args.only}|python -c|rules validate").search
            trees = {label: (root, {n: c for n, c in runs.items() if keep(n)}) for label, (root, runs) in trees.items()}
        samples = measure(trees, args.repeat)
    load = os.getloadavg()
    print(
        f"Rule-author loop, {args.repeat} rounds, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"on {os.cpu_count()} cores\n"
    )
    missed = report(samples["this"])
    if args.compare:
        compare(samples["before"], samples["this"], args.compare)
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
