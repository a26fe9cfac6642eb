"""Where the time goes: a cProfile of the in-process request path for one case.

    python -m benchmarks.profile                       # the source case
    python -m benchmarks.profile --case synthetic-1000 --sort tottime --top 30
    python -m benchmarks.profile --case synthea-esrd --stage facts

cProfile (standard library) rather than a sampling profiler: it needs no extra
install and attributes time per function exactly, which is what deciding what
to fix needs; its overhead inflates many-small-call code, so compare shares,
not absolute figures, with the benchmark.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("--case", default="source-case")
    parser.add_argument("--stage", choices=("pipeline", "facts", "request"), default="pipeline")
    parser.add_argument("--rules", type=Path, default=cases.REPO / "rules")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

    case = pick_case(args.case)
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
        f"{args.stage} on {case.name} ({case.resources} resources), {args.repeat} calls, engine {stages.engine_backend(pipeline)}"
    )
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
