"""Rule-pack scaling: the real rule set grown (or cut) to 10, 100 and 1,000 rules.

A synthetic pack is the project's rules directory copied to a temporary
folder, with its rule files (``rules/rules/*.yaml``, each a ``rules:`` list in
the language of docs/writing-rules.md) replaced by one file of N rules. Rules
beyond the real ones are clones of the real evidence-only rules under new ids
(``<id>-bench-<k>``), so every synthetic rule has realistic conditions and
facts to match; rule tests are left out of the pack because clones change
what the tests expect. Where the rule language is not on this checkout, every
figure is reported "not available".
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks import stages
from benchmarks.cases import SERVICE_ID, Case
from benchmarks.results import Result
from benchmarks.timing import Budget, measure

RULE_COUNTS = (10, 100, 1_000)
BACKENDS = ("reference", "durable")
FAMILY = "rule-packs"


def real_rules(rules_dir: Path) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in sorted((rules_dir / "rules").glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        rules.extend(r for r in document.get("rules", []) if isinstance(r, dict) and "id" in r)
    return rules


def synthetic_rules(originals: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    if count <= len(originals):
        return [copy.deepcopy(r) for r in originals[:count]]
    # Clones only of rules that add evidence and nothing else: a clone that derives a fact or
    # raises a card would duplicate them, which the linter rightly refuses.
    clonable = [r for r in originals if set((r.get("then") or {}).keys()) <= {"evidence"}] or originals
    out = [copy.deepcopy(r) for r in originals]
    k = 0
    while len(out) < count:
        template = clonable[k % len(clonable)]
        clone = copy.deepcopy(template)
        clone["id"] = f"{template['id']}-bench-{k + 1}"
        clone["title"] = f"{template.get('title', template['id'])} (benchmark clone {k + 1})"
        out.append(clone)
        k += 1
    return out


def write_pack(rules_dir: Path, dest: Path, count: int) -> Path:
    shutil.copytree(rules_dir, dest, ignore=shutil.ignore_patterns("tests"))
    rule_dir = dest / "rules"
    originals = real_rules(rules_dir)
    for path in rule_dir.glob("*.yaml"):
        path.unlink()
    document = {"rules": synthetic_rules(originals, count)}
    (rule_dir / "benchmark-pack.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return dest


def unavailable_reason(rules_dir: Path) -> str | None:
    if not stages.has_module("cds.engine"):
        return "the rules engine (cds.engine) is not on this checkout"
    if not real_rules(rules_dir):
        return f"no rule files under {rules_dir / 'rules'} to grow a pack from"
    return None


def run(
    rules_dir: Path, case: Case, now: datetime, base: Budget, counts: tuple[int, ...] = RULE_COUNTS
) -> list[Result]:
    why = unavailable_reason(rules_dir)
    names = [f"compile/{n}-rules" for n in counts] + [
        f"{kind}/{backend}/{n}-rules" for n in counts for kind in ("load", "pipeline") for backend in BACKENDS
    ]
    if why:
        return [Result.unavailable(FAMILY, name, why) for name in names]
    results: list[Result] = []
    real = len(real_rules(rules_dir))
    load_budget = Budget(min_reps=min(2, base.min_reps), max_reps=10, max_seconds=base.max_seconds, warmup=0)
    with tempfile.TemporaryDirectory(prefix="cds-bench-rules-") as tmp:
        for count in counts:
            pack = write_pack(rules_dir, Path(tmp) / f"pack-{count}", count)
            params = {"rules": count, "real_rules": real, "case": case.name}
            results.append(_compile(pack, load_budget, params))
            for backend in BACKENDS:
                results.append(_load(pack, backend, load_budget, {**params, "backend": backend}))
                results.append(_evaluate(pack, backend, case, now, base, {**params, "backend": backend}))
    return results


def _load(pack: Path, backend: str, budget: Budget, params: dict) -> Result:
    name = f"load/{backend}/{params['rules']}-rules"
    try:
        stats = measure(lambda: stages.load_pipeline(pack, backend), budget)
    except Exception as exc:
        return Result.failed(
            FAMILY, name, f"Pipeline.load refused the synthetic pack: {type(exc).__name__}: {exc}"[:600], **params
        )
    return Result(
        FAMILY,
        name,
        params=params,
        latency=stats,
        requests=stats.n,
        note="Pipeline.load: services, terminology, rules, rule tests",
    )


def _compile(pack: Path, budget: Budget, params: dict) -> Result:
    name = f"compile/{params['rules']}-rules"
    try:
        from cds.engine.loader import load_ruleset
        from cds.hooks.services import load_services
    except ImportError as exc:
        return Result.unavailable(FAMILY, name, f"cds.engine.loader.load_ruleset is not importable ({exc})", **params)
    try:
        service_ids = [s.id for s in load_services(pack / "services.yaml", "org.calciphylaxis-cds")]
        stats = measure(lambda: load_ruleset(pack, service_ids), budget)
    except Exception as exc:
        return Result.failed(FAMILY, name, f"{type(exc).__name__}: {exc}"[:600], **params)
    return Result(
        FAMILY, name, params=params, latency=stats, requests=stats.n, note="load_ruleset: parse, lint, compile"
    )


def _evaluate(pack: Path, backend: str, case: Case, now: datetime, budget: Budget, params: dict) -> Result:
    name = f"pipeline/{backend}/{params['rules']}-rules"
    try:
        pipeline = stages.load_pipeline(pack, backend)
        prepared = stages.prepare_case(pipeline, case.name, case.payload, case.body, SERVICE_ID, now)
        stage = stages.pipeline_stage(pipeline, prepared, now)
        started = time.perf_counter()
        stage.call()
        first = time.perf_counter() - started
        stats = measure(stage.call, budget)
    except Exception as exc:
        return Result.failed(FAMILY, name, f"{type(exc).__name__}: {exc}"[:600], **params)
    return Result(
        FAMILY,
        name,
        params=params,
        latency=stats,
        requests=stats.n,
        values={"first_call_ms": first * 1000},
        note=f"engine {stages.engine_backend(pipeline)}",
    )
