"""Report-text extraction per report (cds.findings), for each kind of imaging report in the cases."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import stages
from benchmarks.cases import Case
from benchmarks.results import Result
from benchmarks.timing import Budget, measure

FAMILY = "findings"


def reports_of(case: Case) -> list[dict[str, Any]]:
    reports = case.payload.get("prefetch", {}).get("reports") or {}
    return [e["resource"] for e in reports.get("entry", []) if isinstance(e.get("resource"), dict)]


def run(cases: list[Case], now: datetime, rules_dir: Path, budget: Budget) -> list[Result]:
    results: list[Result] = []
    seen: set[str] = set()
    for case in cases:
        for report in reports_of(case):
            code = ((report.get("code") or {}).get("coding") or [{}])[0].get("code", "?")
            label = f"{case.name}:{report.get('id')}"
            if code in seen and case.name != "source-case":
                continue
            seen.add(code)
            params = {"case": case.name, "report_code": code, "text_chars": len(report.get("conclusion") or "")}
            for variant, stage in stages.findings_stages([report], now, rules_dir).items():
                name = f"report-text/{variant}/{label}"
                if not stage.available:
                    results.append(Result.unavailable(FAMILY, name, stage.why_not, **params))
                    continue
                try:
                    stats = measure(stage.call, budget)
                except Exception as exc:
                    results.append(Result.failed(FAMILY, name, f"{type(exc).__name__}: {exc}"[:600], **params))
                    continue
                results.append(
                    Result(
                        FAMILY,
                        name,
                        params={**params, "variant": variant},
                        latency=stats,
                        requests=stats.n,
                        note="extract_findings on one report"
                        + (
                            ", text differs per call (no cache hit)"
                            if variant == "uncached"
                            else ", same text (cache hit)"
                        ),
                    )
                )
    try:
        from cds.findings import cold_start_seconds

        cold = cold_start_seconds()
        if cold:
            results.append(
                Result(
                    "startup",
                    "findings/medspacy-cold-start",
                    values={k: float(v) for k, v in cold.items()},
                    note="cds.findings.cold_start_seconds(): medspaCy import and pipeline build, once per process",
                )
            )
    except ImportError:
        pass
    return results
