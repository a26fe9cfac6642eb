"""Where the benchmarks plug into the service's stages.

Each probe returns a ``Stage``: a zero-argument callable to time, or the reason
it cannot be timed on this checkout (the package is not merged yet, or its
entry point changed). The public entry points come from notes/contracts.md:

* facts:    ``cds.fhir.Terminology.load(rules_dir)`` + ``cds.fhir.extract_facts(context, prefetch, now, terminology)``
* pipeline: ``cds.pipeline.Pipeline.load(rules_dir).evaluate(service, request, prefetch, now)``

The engine, differential and card stages have no public entry point of their
own in the contract; ``engine_stages`` reaches them through the engine
package's current modules (``cds.engine.runner.LoadedEngine``,
``cds.engine.weighing.weigh``, ``cds.cards.render.render_cards``) and says
"not available" when those move. PER-STAGE TIMINGS PLUG IN HERE: if
``Evaluation`` gains a ``timings`` mapping (stage -> seconds), ``evaluation_timings``
picks it up and the in-process benchmark reports it per stage.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

_PROBE_ERRORS = (ImportError, AttributeError, TypeError, KeyError, ValueError)


@dataclass(frozen=True)
class Stage:
    call: Callable[[], Any] | None
    why_not: str = ""

    @property
    def available(self) -> bool:
        return self.call is not None


def unavailable(why: str) -> Stage:
    return Stage(None, why)


@dataclass(frozen=True)
class PreparedCase:
    """One request, parsed and with its prefetch completed exactly as the web layer does it."""

    name: str
    service: Any  # cds.hooks.services.ServiceDefinition
    request: Any  # cds.hooks.models.CDSRequest
    prefetch: Mapping[str, Any]
    body: bytes


def load_pipeline(rules_dir: Path, engine: str | None = None) -> Any:
    from cds.pipeline import Pipeline

    if engine is None:
        return Pipeline.load(rules_dir)
    if "engine" not in inspect.signature(Pipeline.load).parameters:
        raise TypeError("Pipeline.load takes no engine choice on this checkout")
    return Pipeline.load(rules_dir, engine=engine)


def engine_backend(pipeline: Any) -> str:
    try:
        return str(pipeline.status().get("engine", "unknown"))
    except Exception as exc:  # status() is the web layer's; a benchmark must still report
        return f"unknown ({type(exc).__name__})"


def prepare_case(
    pipeline: Any, name: str, payload: dict[str, Any], body: bytes, service_id: str, now: datetime
) -> PreparedCase:
    """Validate the request and complete its prefetch without a fetcher (all keys must be present)."""
    from cds.hooks.handler import parse_hook_request
    from cds.hooks.prefetch import complete_prefetch

    service = pipeline.service(service_id)
    if service is None:
        raise KeyError(f"no service {service_id!r} in the rule set")
    request = parse_hook_request(service, payload)
    completed = asyncio.run(complete_prefetch(service, request, now.date(), None))
    return PreparedCase(name, service, request, dict(completed.data), body)


def parse_stage(pipeline: Any, payload_body: bytes, service_id: str) -> Stage:
    """orjson + CDS Hooks request validation: what the web layer does before the pipeline."""
    import orjson

    from cds.hooks.handler import parse_hook_request

    service = pipeline.service(service_id)
    return Stage(lambda: parse_hook_request(service, orjson.loads(payload_body)))


def request_stage(pipeline: Any, payload_body: bytes, service_id: str, now: datetime, budget: Any) -> Stage:
    """A whole request without the socket: orjson.loads, then the web layer's own handler
    (``cds.hooks.handler.answer_hook``: validation, prefetch completion, Pipeline.evaluate in the
    thread pool). All repetitions run inside one event loop, as under uvicorn; the Stage's call
    returns the list of durations (seconds) rather than being timed from outside."""
    import orjson

    from benchmarks.timing import sample_async
    from cds.hooks.handler import answer_hook

    service = pipeline.service(service_id)

    async def one() -> Any:
        return await answer_hook(pipeline, service, orjson.loads(payload_body), now)

    try:
        asyncio.run(one())
    except Exception as exc:
        return unavailable(f"answer_hook could not be called this way ({type(exc).__name__}: {exc})")
    return Stage(lambda: asyncio.run(sample_async(one, budget)))


def pipeline_stage(pipeline: Any, case: PreparedCase, now: datetime) -> Stage:
    return Stage(lambda: pipeline.evaluate(case.service, case.request, case.prefetch, now))


def load_terminology(rules_dir: Path) -> Any:
    from cds.fhir import Terminology

    return Terminology.load(rules_dir)


def facts_stage(terminology: Any, case: PreparedCase, now: datetime) -> Stage:
    try:
        from cds.fhir import extract_facts
    except ImportError as exc:
        return unavailable(f"cds.fhir.extract_facts is not importable ({exc.name or exc})")
    context = dict(case.request.context)
    return Stage(lambda: extract_facts(context, case.prefetch, now, terminology))


def evaluation_timings(evaluation: Any) -> dict[str, float] | None:
    """Per-stage seconds from an Evaluation, if the pipeline reports them (``Evaluation.timings``)."""
    timings = getattr(evaluation, "timings", None)
    if isinstance(timings, Mapping) and all(isinstance(v, int | float) for v in timings.values()):
        return {str(k): float(v) for k, v in timings.items()}
    return None


def engine_stages(pipeline: Any, factset: Any, case: PreparedCase, backend: str) -> dict[str, Stage]:
    """engine (match + evidence + intents), differential and cards, for one backend ('reference' | 'durable')."""
    names = ("engine", "differential", "cards")
    try:
        from cds.engine.runner import LoadedEngine

        ruleset = pipeline.ruleset
        engine = LoadedEngine(ruleset, backend)
    except _PROBE_ERRORS as exc:
        return {n: unavailable(f"cds.engine is not on this checkout or changed ({exc})") for n in names}
    except Exception as exc:  # the durable backend raises its own error when it cannot be used
        return {n: unavailable(f"backend {backend!r} cannot run here ({type(exc).__name__}: {exc})") for n in names}
    service_id = case.service.id
    stages: dict[str, Stage] = {"engine": Stage(lambda: engine.evaluate(factset, service_id))}
    try:
        outcome = engine.evaluate(factset, service_id)
    except Exception as exc:
        why = f"engine.evaluate failed: {type(exc).__name__}: {exc}"
        return {"engine": Stage(None, why), "differential": unavailable(why), "cards": unavailable(why)}
    try:
        from cds.engine.weighing import weigh

        derived = {f.attrs["name"] for f in outcome.derived}
        evidence = list(outcome.evidence)
        # The evidence groups are part of the model (ADR 0004); older rule sets have none.
        groups = getattr(ruleset, "evidence_groups", None)
        args = (ruleset.hypotheses, ruleset.populations, derived, evidence, *((groups,) if groups else ()))
        weigh(*args)
        stages["differential"] = Stage(lambda: weigh(*args))
    except _PROBE_ERRORS as exc:
        stages["differential"] = unavailable(f"cds.engine.weighing.weigh is not usable here ({exc})")
    try:
        from cds.cards.render import render_cards

        context = dict(case.request.context)
        namespace = getattr(pipeline, "hook_namespace", "org.calciphylaxis-cds")
        render_cards(ruleset, outcome, context, f"{namespace}.ruleset")
        stages["cards"] = Stage(lambda: render_cards(ruleset, outcome, context, f"{namespace}.ruleset"))
    except _PROBE_ERRORS as exc:
        stages["cards"] = unavailable(f"cds.cards.render.render_cards is not usable here ({exc})")
    return stages


def findings_stages(reports: list[dict[str, Any]], now: datetime, rules_dir: Path) -> dict[str, Stage]:
    """Report-text extraction through cds.findings' public function, per report.

    ``uncached``: every call gets a report whose text differs (a numbered addendum), so the
    findings layer's text cache never answers; ``cached``: the same report again and again.
    """
    names = ("uncached", "cached")
    try:
        from cds.findings import FindingsKnowledge, extract_findings, warm_up
    except ImportError as exc:
        return {n: unavailable(f"cds.findings is not importable ({exc.name or exc})") for n in names}
    try:
        knowledge = FindingsKnowledge.load(rules_dir)
        warm_up(knowledge)
        lesion_sites: tuple[tuple[str, str | None], ...] = ()
        extract_findings(reports[:1], {}, now, lesion_sites, knowledge)
    except _PROBE_ERRORS as exc:
        return {n: unavailable(f"cds.findings.extract_findings is not usable here ({exc})") for n in names}
    variants = iter(_distinct_reports(reports[0], 100_000))
    return {
        "uncached": Stage(lambda: extract_findings([next(variants)], {}, now, lesion_sites, knowledge)),
        "cached": Stage(lambda: extract_findings(reports[:1], {}, now, lesion_sites, knowledge)),
    }


def _distinct_reports(report: dict[str, Any], count: int) -> Any:
    import base64

    text = base64.b64decode(report["presentedForm"][0]["data"]).decode() if report.get("presentedForm") else ""
    for n in range(count):
        suffix = f" Addendum {n}: no change."
        form = [{"contentType": "text/plain", "data": base64.b64encode((text + suffix).encode()).decode("ascii")}]
        yield {
            **report,
            "id": f"{report.get('id', 'report')}-{n}",
            "conclusion": (report.get("conclusion") or "") + suffix,
            **({"presentedForm": form} if text else {}),
        }


def reload_call(pipeline: Any, rules_dir: Path) -> tuple[Callable[[], Any], str]:
    """The engine's hot-reload API when there is one, else a fresh Pipeline.load."""
    reload = getattr(pipeline, "reload", None)
    if callable(reload):
        return reload, "Pipeline.reload()"
    from cds.pipeline import Pipeline

    return (lambda: Pipeline.load(rules_dir)), "Pipeline.load(rules_dir) (no reload API on this checkout)"


def has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
