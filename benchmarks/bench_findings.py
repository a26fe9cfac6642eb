"""Speed of imaging-findings extraction (cds.findings).

    PYTHONPATH=. python benchmarks/bench_findings.py [--runs 300] [--json out.json]

Reports, in milliseconds:
* cold start: loading rules/findings, importing medspaCy/spaCy, building the pipeline (once per
  process; `cds.findings.warm_up` does it at service start);
* per report after warm-up, with the per-report caches cleared before every run ("uncached":
  validation + medspaCy parse + facts), and with the caches warm ("cached": what a second
  evaluation of the same report version costs);
* a coded report (result Observations, no text).
Target (issue 5): under 20 ms per typical report after warm-up. This is a measurement, not a
timed test: the machine is shared, so read the medians, not single runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cds.findings import FindingsKnowledge, extract_findings, warm_up
from tests.findings import fixtures as fx

NOW = datetime(2026, 10, 10, tzinfo=UTC)
LESIONS = [("calf", "left"), ("calf", "right")]

LONG_REPORT = (
    "EXAMINATION: Whole-body bone scintigraphy, 3-phase, with SPECT/CT of the lower legs.\n"
    "CLINICAL HISTORY: 62-year-old on hemodialysis for 6 years with painful violaceous plaques of both calves "
    "and the abdominal wall. Warfarin. Rule out calciphylaxis.\n"
    "TECHNIQUE: 25 mCi Tc-99m MDP IV; flow, blood pool and 3-hour delayed whole-body images.\n"
    "COMPARISON: Bone scan of 2026-06-01.\n"
    "FINDINGS: Flow and blood pool images show mild hyperemia of both calves. Delayed images show diffuse "
    "soft-tissue activity with high background, consistent with renal failure. In addition there is intense, "
    "heterogeneous subcutaneous uptake in both calves, right greater than left, and patchy subcutaneous uptake "
    "in the lower abdominal wall. No uptake in the lungs, stomach or myocardium. The kidneys are faint. "
    "Photopenia about the right knee arthroplasty. Degenerative uptake in the midfoot bilaterally and at the "
    "lumbar spine. No soft tissue uptake in the upper extremities. SPECT/CT shows subcutaneous calcification "
    "in the calves corresponding to the uptake.\n"
    "IMPRESSION: 1. Heterogeneous subcutaneous uptake in both calves and the abdominal wall, corresponding to "
    "the painful lesions, compatible with calciphylaxis. 2. Diffuse soft-tissue activity of renal failure. "
    "3. No visceral uptake to suggest metastatic calcification.\n"
)


def timed(fn, runs: int, before=None) -> list[float]:
    out = []
    for _ in range(runs):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
        "min_ms": round(ordered[0], 3),
        "runs": len(ordered),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    t0 = time.perf_counter()
    knowledge = FindingsKnowledge.load(REPO / "rules")
    load_ms = (time.perf_counter() - t0) * 1000
    cold = warm_up(knowledge)
    results: dict[str, object] = {
        "cold_start_ms": {
            "load_rules": round(load_ms, 1),
            "import_medspacy_spacy": round(cold["import_s"] * 1000, 1),
            "build_pipeline": round(cold["build_s"] * 1000, 1),
        },
    }

    def clear() -> None:
        knowledge.text_cache.clear()
        knowledge.validation_cache.clear()

    cases = {
        "source bone scan (text, 680 chars)": ([fx.source_bone_scan_text_only()], {}),
        "source CT (text, 200 chars)": ([fx.source_ct_text_only()], {}),
        "long bone scan report (text, 2.1k chars)": ([fx.report("long-1", fx.BONE_SCAN_CODE, text=LONG_REPORT)], {}),
        "source bone scan (coded, 7 Observations)": ([fx.source_bone_scan_coded()[0]], fx.source_bone_scan_coded()[1]),
    }
    per_report = {}
    for name, (reports, resources) in cases.items():

        def run(reports=reports, resources=resources):
            extract_findings(reports, resources, NOW, LESIONS, knowledge)

        for _ in range(20):  # warm-up
            clear()
            run()
        per_report[name] = {
            "uncached": summary(timed(run, args.runs, before=clear)),
            "cached": summary(timed(run, args.runs)),
        }
    results["per_report"] = per_report

    print(
        f"cold start: load rules {results['cold_start_ms']['load_rules']} ms, "
        f"import medspaCy+spaCy {results['cold_start_ms']['import_medspacy_spacy']} ms, "
        f"build pipeline {results['cold_start_ms']['build_pipeline']} ms"
    )
    print(f"{'report':45} {'uncached median':>16} {'p95':>8} {'cached median':>14}")
    for name, r in per_report.items():
        print(
            f"{name:45} {r['uncached']['median_ms']:>13.2f} ms {r['uncached']['p95_ms']:>5.2f} ms "
            f"{r['cached']['median_ms']:>11.3f} ms"
        )
    worst = max(r["uncached"]["median_ms"] for r in per_report.values())
    print(
        f"target < 20 ms per typical report after warm-up: {'met' if worst < 20 else 'NOT met'} "
        f"(worst uncached median {worst:.2f} ms)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
