"""In-process timings: parsing, fact extraction, engine stages, whole pipeline, per request size.

"Whole pipeline" is ``Pipeline.evaluate(service, request, prefetch, now)`` on a
request already validated and with its prefetch completed, which is exactly
what the web layer hands it; request parsing and validation are timed
separately (``parse``), and ``orjson.loads`` of the same body is the baseline.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks import stages
from benchmarks.cases import SERVICE_ID, Case
from benchmarks.results import Result
from benchmarks.timing import Budget, measure, summarise

BACKENDS = ("reference", "durable")


def budget_for(case: Case, base: Budget) -> Budget:
    """Fewer repetitions for the huge charts: they take seconds per call."""
    if case.resources >= 20_000:
        return Budget(min_reps=3, max_reps=base.max_reps, max_seconds=base.max_seconds, warmup=1)
    if case.resources >= 5_000:
        return Budget(min_reps=5, max_reps=base.max_reps, max_seconds=base.max_seconds, warmup=1)
    return base


def run(pipeline: Any, rules_dir: Path, cases: Iterable[Case], now: datetime, base: Budget) -> list[Result]:
    results: list[Result] = []
    terminology, terminology_error = _terminology(rules_dir)
    for case in cases:
        budget = budget_for(case, base)
        params = {"case": case.name, "resources": case.resources, "body_bytes": len(case.body)}
        body = case.body
        results.append(
            Result(
                "baseline",
                f"orjson.loads/{case.name}",
                params=params,
                latency=measure(lambda body=body: orjson.loads(body), budget),
            )
        )
        try:
            prepared = stages.prepare_case(pipeline, case.name, case.payload, case.body, SERVICE_ID, now)
        except Exception as exc:  # a case the service refuses is reported, not fatal
            results.append(Result.failed("in-process", f"pipeline/{case.name}", f"request refused: {exc}", **params))
            continue
        results.append(
            _timed(
                "in-process", f"parse/{case.name}", stages.parse_stage(pipeline, case.body, SERVICE_ID), budget, params
            )
        )
        results.append(
            _timed_inside(
                "in-process",
                f"request/{case.name}",
                stages.request_stage(pipeline, case.body, SERVICE_ID, now, budget),
                params,
            )
        )
        if terminology is None:
            facts_stage = stages.unavailable(terminology_error)
        else:
            facts_stage = stages.facts_stage(terminology, prepared, now)
        results.append(_timed("in-process", f"facts/{case.name}", facts_stage, budget, params))
        results.extend(_pipeline(pipeline, prepared, now, budget, params))
        factset = facts_stage.call() if facts_stage.available else None
        for backend in BACKENDS:
            if factset is None:
                probes = {
                    n: stages.unavailable("no facts: " + facts_stage.why_not)
                    for n in ("engine", "differential", "cards")
                }
            else:
                probes = stages.engine_stages(pipeline, factset, prepared, backend)
            for stage_name, probe in probes.items():
                results.append(
                    _timed(
                        "in-process",
                        f"{stage_name}/{backend}/{case.name}",
                        probe,
                        budget,
                        {**params, "backend": backend},
                    )
                )
    return results


def _terminology(rules_dir: Path) -> tuple[Any, str]:
    try:
        return stages.load_terminology(rules_dir), ""
    except ImportError as exc:
        return None, f"cds.fhir is not on this checkout ({exc.name or exc})"
    except Exception as exc:
        return None, f"Terminology.load failed: {type(exc).__name__}: {exc}"


def _pipeline(
    pipeline: Any, prepared: stages.PreparedCase, now: datetime, budget: Budget, params: dict
) -> list[Result]:
    stage = stages.pipeline_stage(pipeline, prepared, now)
    try:
        evaluation = stage.call()
    except Exception as exc:
        return [Result.failed("in-process", f"pipeline/{prepared.name}", f"{type(exc).__name__}: {exc}", **params)]
    cards = len(evaluation.response.cards)
    result = _timed("in-process", f"pipeline/{prepared.name}", stage, budget, {**params, "cards": cards})
    out = [result]
    # Per-stage timings reported by the pipeline itself (stages.evaluation_timings), when it offers them.
    samples: dict[str, list[float]] = {}
    for _ in range(min(50, max(3, result.requests))):
        timings = stages.evaluation_timings(stage.call())
        if timings is None:
            break
        for name, seconds in timings.items():
            samples.setdefault(name, []).append(seconds)
    for name, seconds in samples.items():
        out.append(
            Result(
                "in-process",
                f"pipeline-stage/{name}/{prepared.name}",
                params=params,
                latency=summarise(seconds),
                requests=len(seconds),
                note="reported by Evaluation.timings",
            )
        )
    return out


def _timed_inside(family: str, name: str, stage: stages.Stage, params: dict) -> Result:
    """A stage that times itself (its call returns the durations)."""
    if not stage.available:
        return Result.unavailable(family, name, stage.why_not, **params)
    try:
        stats = summarise(stage.call())
    except Exception as exc:
        return Result.failed(family, name, f"{type(exc).__name__}: {exc}", **params)
    return Result(family, name, params=params, latency=stats, requests=stats.n)


def _timed(family: str, name: str, stage: stages.Stage, budget: Budget, params: dict) -> Result:
    if not stage.available:
        return Result.unavailable(family, name, stage.why_not, **params)
    try:
        stats = measure(stage.call, budget)
    except Exception as exc:
        return Result.failed(family, name, f"{type(exc).__name__}: {exc}", **params)
    return Result(family, name, params=params, latency=stats, requests=stats.n)
