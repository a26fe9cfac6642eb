"""Where the benchmarks plug into the service's stages.

Each probe returns a ``Stage``: a zero-argument callable to time, or the reason
it cannot be timed on this checkout (the package is not merged yet, or its
entry point changed). The public entry points come from notes/contracts.md:

* facts:    ``cds.fhir.Terminology.load(rules_dir)`` + ``cds.fhir.extract_facts(context, prefetch, now, terminology)``
* pipeline: ``cds.pipeline.Pipeline.load(rules_dir).evaluate(service, request, prefetch, now)``

The engine, differential and card stages have no public entry point of their
own in the contract; ``engine_stages`` reaches them through the engine
package's current modules (``cds.engine.runner.LoadedEngine``,
``cds.engine.differential.weigh``, ``cds.cards.render.render_cards``) and says
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


def prepare_case(pipeline: Any, name: str, payload: dict[str, Any], body: bytes, service_id: str, now: datetime) -> PreparedCase:
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
        from cds.engine.differential import weigh

        derived = {f.attrs["name"] for f in outcome.derived}
        evidence = list(outcome.evidence)
        weigh(ruleset.hypotheses, ruleset.populations, derived, evidence)
        stages["differential"] = Stage(lambda: weigh(ruleset.hypotheses, ruleset.populations, derived, evidence))
    except _PROBE_ERRORS as exc:
        stages["differential"] = unavailable(f"cds.engine.differential.weigh is not usable here ({exc})")
    try:
        from cds.cards.render import render_cards

        context = dict(case.request.context)
        namespace = getattr(pipeline, "hook_namespace", "org.calciphylaxis-cds")
        render_cards(ruleset, outcome, context, f"{namespace}.ruleset")
        stages["cards"] = Stage(lambda: render_cards(ruleset, outcome, context, f"{namespace}.ruleset"))
    except _PROBE_ERRORS as exc:
        stages["cards"] = unavailable(f"cds.cards.render.render_cards is not usable here ({exc})")
    return stages


def findings_stage(reports: list[dict[str, Any]], now: datetime, rules_dir: Path) -> Stage:
    """Report-text extraction for a list of DiagnosticReports, through cds.findings' public function."""
    try:
        import cds.findings as findings
    except ImportError as exc:
        return unavailable(f"cds.findings is not importable ({exc.name or exc})")
    extract = getattr(findings, "extract_findings", None)
    if extract is None:
        return unavailable("cds.findings has no extract_findings yet")
    try:
        knowledge = _findings_knowledge(findings, rules_dir)
        lesion_sites: tuple[tuple[str, str], ...] = ()
        extract(reports, {}, now, lesion_sites, knowledge)
    except _PROBE_ERRORS as exc:
        return unavailable(f"cds.findings.extract_findings has a signature this harness does not know ({exc})")
    return Stage(lambda: extract(reports, {}, now, lesion_sites, knowledge))


def _findings_knowledge(findings: Any, rules_dir: Path) -> Any:
    knowledge_type = getattr(findings, "FindingsKnowledge", None)
    if knowledge_type is None:
        raise AttributeError("cds.findings has no FindingsKnowledge")
    for factory in ("load", "from_rules_dir", "default"):
        make = getattr(knowledge_type, factory, None)
        if make is not None:
            return make(rules_dir) if factory != "default" else make()
    return knowledge_type()


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
