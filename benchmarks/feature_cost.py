"""What each feature added to the request path costs, as a ratio to the path without it, in one run (issue 20).

    python -m benchmarks.feature_cost                      # synthetic-100 (seed-like), 400 calls
    python -m benchmarks.feature_cost --case source-case --calls 200

* ``text-recognition``: time inside the text layer of concept recognition (``Terminology.match_text``,
  medspaCy's lexicon matcher behind a text cache) per ``Pipeline.evaluate``; on a record whose concepts
  all carry recognised codes it should hardly run. Target: under 10%.
* ``bands``: the whole differential stage with its intervals (``timings['differential']``): an upper
  bound of what the uncertainty bands cost. Target: under 10%. ``bands-first-sight``: the same when the
  evidence was never weighed before (cds.engine.weighing keeps the differentials it weighed).
* ``patient-binding``: ``Intake.bind_patient`` (every resource's subject checked against the context's
  patient). No figure in the issue; held to the same 10% here.
* ``snooze-lookup``: the app through ASGI without a socket, snooze on and off (``CDS_SNOOZE_ENABLED``),
  alternating requests; the median of the paired differences. Target: under 1 ms.

Ratio = whole / (whole - inside the feature), from medians over the same calls: "how much slower the
request is with the feature than it would be without it". The wrappers add two clock reads per call of
the wrapped function, a few microseconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import cases, stages
from benchmarks.results import Result
from benchmarks.synthetic import DEFAULT_NOW
from benchmarks.timing import summarise

FAMILY = "in-process"
RATIO_TARGET = 1.10
SNOOZE_TARGET_MS = 1.0


class _Inside:
    """Seconds spent inside one function since the last reset (wraps it on a class while active)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def timing(self, owner: type, attribute: str) -> Iterator[None]:
        original = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        setattr(owner, attribute, timed)
        try:
            yield
        finally:
            setattr(owner, attribute, original)


def _ratio_result(name: str, case: cases.Case, whole: list[float], inside: list[float], what: str) -> Result:
    whole_ms = statistics.median(whole) * 1e3
    inside_ms = statistics.median(inside) * 1e3
    without = [w - i for w, i in zip(whole, inside, strict=True)]
    ratio = whole_ms / (statistics.median(without) * 1e3)
    return Result(
        FAMILY,
        f"feature-cost/{name}/{case.name}",
        params={"case": case.name, "feature": name},
        latency=summarise(inside),
        requests=len(whole),
        values={"ratio": round(ratio, 4), "feature_ms": round(inside_ms, 4), "pipeline_ms": round(whole_ms, 4)},
        note=f"{what}; ratio = Pipeline.evaluate / (Pipeline.evaluate - feature) = {ratio:.3f}",
    )


def pipeline_costs(pipeline: Any, case: cases.Case, now: datetime, calls: int) -> list[Result]:
    """Text layer, bands (differential) and patient binding inside the same Pipeline.evaluate calls.

    The differential of a set of evidence is kept once weighed (cds.engine.weighing), so a record seen again (the
    usual case: the same patient at every hook call) weighs nothing new. ``bands-first-sight`` is the cost when the
    evidence was never weighed before, from calls alternating with the others, the kept differentials dropped
    before each."""
    from cds.engine.weighing import forget_weighed
    from cds.fhir.intake import Intake
    from cds.fhir.terminology import Terminology

    prepared = stages.prepare_case(pipeline, case.name, case.payload, case.body, cases.SERVICE_ID, now)
    text, binding = _Inside(), _Inside()
    whole: list[float] = []
    whole_first: list[float] = []
    inside: dict[str, list[float]] = {
        "text-recognition": [],
        "bands": [],
        "patient-binding": [],
        "bands-first-sight": [],
    }
    with text.timing(Terminology, "match_text"), binding.timing(Intake, "bind_patient"):
        for n in range(2 * (calls + 10)):
            first_sight = n % 2 == 1
            if first_sight:
                forget_weighed()
            text.seconds = binding.seconds = 0.0
            started = time.perf_counter()
            evaluation = pipeline.evaluate(prepared.service, prepared.request, prepared.prefetch, now)
            elapsed = time.perf_counter() - started
            if n < 20:  # warm-up: caches, lazy imports
                continue
            differential = (stages.evaluation_timings(evaluation) or {}).get("differential", 0.0)
            if first_sight:
                whole_first.append(elapsed)
                inside["bands-first-sight"].append(differential)
                continue
            whole.append(elapsed)
            inside["text-recognition"].append(text.seconds)
            inside["bands"].append(differential)
            inside["patient-binding"].append(binding.seconds)
    notes = {
        "text-recognition": "time inside Terminology.match_text (the text layer) per Pipeline.evaluate",
        "bands": "the differential stage with its intervals (timings['differential']): an upper bound",
        "patient-binding": "time inside Intake.bind_patient per Pipeline.evaluate",
        "bands-first-sight": "the differential stage when its evidence was never weighed before (kept differentials "
        "dropped before each call)",
    }
    return [
        _ratio_result(name, case, whole_first if name == "bands-first-sight" else whole, inside[name], notes[name])
        for name in inside
    ]


def snooze_cost(rules_dir: Path, case: cases.Case, calls: int) -> Result:
    """The app without a socket, snooze on and off, alternating; median of the paired differences."""
    import os

    from benchmarks.profile import asgi_request, service_app

    async def drive(on: Any, off: Any) -> tuple[list[float], list[float]]:
        first, second = asgi_request(on, case.body), asgi_request(off, case.body)
        times_on, times_off = [], []
        async with on.router.lifespan_context(on), off.router.lifespan_context(off):
            for n in range(calls + 10):
                pair = []
                for call in (first, second) if n % 2 else (second, first):
                    started = time.perf_counter()
                    await call()
                    pair.append((call is first, time.perf_counter() - started))
                if n >= 10:
                    times_on += [s for is_on, s in pair if is_on]
                    times_off += [s for is_on, s in pair if not is_on]
        return times_on, times_off

    saved = os.environ.get("CDS_SNOOZE_ENABLED")
    try:
        os.environ["CDS_SNOOZE_ENABLED"] = "true"
        with service_app(rules_dir) as on:
            os.environ["CDS_SNOOZE_ENABLED"] = "false"
            with service_app(rules_dir) as off:
                times_on, times_off = asyncio.run(drive(on, off))
    finally:
        if saved is None:
            os.environ.pop("CDS_SNOOZE_ENABLED", None)
        else:
            os.environ["CDS_SNOOZE_ENABLED"] = saved
    added = [a - b for a, b in zip(times_on, times_off, strict=True)]
    added_ms = statistics.median(added) * 1e3
    on_ms, off_ms = statistics.median(times_on) * 1e3, statistics.median(times_off) * 1e3
    return Result(
        FAMILY,
        f"feature-cost/snooze-lookup/{case.name}",
        params={"case": case.name, "feature": "snooze-lookup"},
        latency=summarise(times_on),
        requests=len(added),
        values={"added_ms": round(added_ms, 4), "on_ms": round(on_ms, 4), "off_ms": round(off_ms, 4)},
        note=(
            f"the app via ASGI (no socket), SQLite store, snooze on vs off alternating: median on {on_ms:.2f} ms, "
            f"off {off_ms:.2f} ms, median paired difference {added_ms:+.2f} ms"
        ),
    )


def run(pipeline: Any, rules_dir: Path, case: cases.Case, now: datetime, calls: int) -> list[Result]:
    out: list[Result] = []
    for name, measure in (
        ("pipeline", lambda: pipeline_costs(pipeline, case, now, calls)),
        ("snooze-lookup", lambda: [snooze_cost(rules_dir, case, max(20, calls // 2))]),
    ):
        out += _guarded(name, case, measure)
    return out


def _guarded(name: str, case: cases.Case, measure: Callable[[], list[Result]]) -> list[Result]:
    try:
        return measure()
    except Exception as exc:  # a feature that moved is reported, never dropped
        return [Result.failed(FAMILY, f"feature-cost/{name}/{case.name}", f"{type(exc).__name__}: {exc}"[:600])]


def main(argv: list[str] | None = None) -> int:
    from benchmarks.profile import pick_case

    parser = argparse.ArgumentParser(prog="python -m benchmarks.feature_cost")
    parser.add_argument("--case", default="synthetic-100")
    parser.add_argument("--rules", type=Path, default=cases.REPO / "rules")
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args(argv)
    case = pick_case(args.case)
    results = run(stages.load_pipeline(args.rules), args.rules, case, DEFAULT_NOW, args.calls)
    missed = False
    for result in results:
        if result.status != "ok":
            print(f"{result.name}: {result.status}: {result.note}")
            missed = True
            continue
        print(f"{result.name}: {result.note}")
        ratio, added = result.values.get("ratio"), result.values.get("added_ms")
        missed |= (ratio is not None and ratio >= RATIO_TARGET) or (added is not None and added >= SNOOZE_TARGET_MS)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
