"""Fact extraction speed against ``orjson.loads`` of the same JSON, measured in the same run.

    .venv/bin/python -m benchmarks.bench_facts            # 100, 1,000, 10,000 Observations
    .venv/bin/python -m benchmarks.bench_facts --repeat 9 --sizes 10000

Target (issue 4): extracting facts from 10,000 Observations takes at most 3x the
time ``orjson.loads`` takes to parse the same JSON. Two workloads:

* ``labs``: the worst case: every Observation is a result of a declared analyte
  (calcium, phosphate, PTH, albumin, ... in Synthea's JSON shape, with UUIDs,
  categories, encounter references), dated over the last two years so about half
  fall inside the look-back window;
* ``synthea``: the Observations of the shared Synthea bundles, cycled to size
  (about a quarter are analytes; the rest are vitals, surveys and panels that the
  pre-filter drops), when ../shared/data is available.

Medians of ``--repeat`` runs; the machine's other load shows as spread, so the
ratio (both measured back to back) is the figure to compare.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from cds.fhir import Terminology, extract_facts

REPO = Path(__file__).resolve().parent.parent
SYNTHEA = REPO.parent / "shared" / "data" / "synthea"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
TARGET_RATIO = 3.0

# (LOINC, display, unit, typical value, spread) in Synthea's observation shape.
_LABS = [
    ("49765-1", "Calcium", "mg/dL", 9.2, 0.8),
    ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", 5.2, 1.5),
    ("2731-8", "Parathyrin.intact [Mass/volume] in Serum or Plasma", "pg/mL", 420.0, 200.0),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.6, 0.4),
    ("38483-4", "Creatinine", "mg/dL", 7.5, 1.5),
    ("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 140.0, 40.0),
    ("33914-3", "Estimated Glomerular Filtration Rate", "mL/min/{1.73_m2}", 8.0, 2.0),
    ("2000-8", "Calcium [Moles/volume] in Serum or Plasma", "mmol/L", 2.3, 0.2),
]


def lab_observations(count: int) -> list[dict[str, Any]]:
    patient = f"urn:uuid:{uuid.UUID(int=1)}"
    out = []
    for i in range(count):
        loinc, display, unit, typical, spread = _LABS[i % len(_LABS)]
        when = NOW - timedelta(days=(i * 730) // max(count, 1), hours=i % 24)
        oid = str(uuid.UUID(int=10_000_000 + i))
        out.append(
            {
                "resourceType": "Observation",
                "id": oid,
                "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"]},
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "laboratory",
                                "display": "Laboratory",
                            }
                        ]
                    }
                ],
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": loinc, "display": display}],
                    "text": display,
                },
                "subject": {"reference": patient},
                "encounter": {"reference": f"urn:uuid:{uuid.UUID(int=20_000_000 + i // 8)}"},
                "effectiveDateTime": when.isoformat(),
                "issued": (when + timedelta(hours=2)).isoformat(timespec="milliseconds"),
                "valueQuantity": {
                    "value": round(typical + spread * ((i * 7919) % 200 - 100) / 100.0, 2),
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
            }
        )
    return out


def synthea_observations(count: int) -> list[dict[str, Any]] | None:
    if not SYNTHEA.is_dir():
        return None
    pool: list[dict[str, Any]] = []
    for path in sorted(SYNTHEA.glob("*.json")):
        if "request" in path.name:
            continue
        bundle = orjson.loads(path.read_bytes())
        pool.extend(e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == "Observation")
    if not pool:
        return None
    out = []
    for i in range(count):
        obs = dict(pool[i % len(pool)])
        obs["id"] = str(uuid.UUID(int=30_000_000 + i))  # distinct resources, as in one patient's record
        if "effectiveDateTime" in obs:  # re-dated over the last two years, so that facts come out
            obs["effectiveDateTime"] = (NOW - timedelta(days=(i * 730) // count, hours=i % 24)).isoformat()
        out.append(obs)
    return out


def as_prefetch_json(observations: list[dict[str, Any]]) -> bytes:
    entries = [{"fullUrl": f"urn:uuid:{o['id']}", "resource": o} for o in observations]
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})


def paired_medians(
    first: Callable[[], Any], second: Callable[[], Any], repeat: int, gc_off: bool
) -> tuple[float, float]:
    """Median seconds of two functions timed back to back in each round (so load drifts hit both)."""
    a, b = [], []
    for _ in range(repeat):
        gc.collect()
        if gc_off:
            gc.disable()
        try:
            start = time.perf_counter()
            first()
            a.append(time.perf_counter() - start)
            start = time.perf_counter()
            second()
            b.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return statistics.median(a), statistics.median(b)


def run(sizes: list[int], repeat: int, workloads: list[str]) -> list[dict[str, Any]]:
    terminology = Terminology.load(REPO / "rules")
    context = {"patientId": str(uuid.UUID(int=1))}
    rows = []
    # Warm-up: the first R4B validation of a type builds its model.
    extract_facts(context, {"labs": orjson.loads(as_prefetch_json(lab_observations(50)))}, NOW, terminology)
    for workload in workloads:
        for size in sizes:
            observations = lab_observations(size) if workload == "labs" else synthea_observations(size)
            if observations is None:
                print(f"skipping {workload}: ../shared/data/synthea not available", file=sys.stderr)
                continue
            raw = as_prefetch_json(observations)
            parsed = orjson.loads(raw)
            result = extract_facts(context, {"labs": parsed}, NOW, terminology)
            row: dict[str, Any] = {
                "workload": workload,
                "observations": size,
                "json_mb": len(raw) / 1e6,
                "facts": len(result.facts),
                "warnings": len(result.warnings),
            }
            # With the cyclic GC on (as the service runs) and off (parsing allocates far more
            # objects than extraction, so GC pauses weigh on orjson.loads more).
            for label, gc_off in (("gc", False), ("nogc", True)):
                loads, extract = paired_medians(
                    lambda raw=raw: orjson.loads(raw),
                    lambda parsed=parsed: extract_facts(context, {"labs": parsed}, NOW, terminology),
                    repeat,
                    gc_off,
                )
                row[f"orjson_ms_{label}"] = loads * 1e3
                row[f"extract_ms_{label}"] = extract * 1e3
                row[f"ratio_{label}"] = extract / loads
            rows.append(row)
    return rows


def full_validation_us(sample: int = 300) -> float:
    """What validating every Observation with the R4B model would cost (per Observation)."""
    from fhir.resources.R4B.observation import Observation

    observations = lab_observations(sample)
    start = time.perf_counter()
    for obs in observations:
        Observation.model_validate(obs)
    return (time.perf_counter() - start) / sample * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workloads", nargs="+", default=["labs", "synthea"], choices=["labs", "synthea"])
    args = parser.parse_args(argv)
    rows = run(args.sizes, args.repeat, args.workloads)
    print(f"python {sys.version.split()[0]}, median of {args.repeat} paired runs, target ratio <= {TARGET_RATIO}")
    print(
        "| workload | Observations | JSON MB | orjson.loads ms | extract_facts ms | ratio | ratio, GC off"
        " | µs/Observation | facts | warnings |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['workload']} | {r['observations']:,} | {r['json_mb']:.1f} | {r['orjson_ms_gc']:.1f} | "
            f"{r['extract_ms_gc']:.1f} | {r['ratio_gc']:.2f} | {r['ratio_nogc']:.2f} | "
            f"{r['extract_ms_gc'] / r['observations'] * 1e3:.1f} | {r['facts']} | {r['warnings']} |"
        )
    print(f"full R4B validation of one Observation (what the design avoids per row): {full_validation_us():.0f} µs")
    worst = [r for r in rows if r["observations"] == 10_000]
    failed = [r for r in worst if max(r["ratio_gc"], r["ratio_nogc"]) > TARGET_RATIO]
    for r in failed:
        print(
            f"target missed: {r['workload']} ratio {max(r['ratio_gc'], r['ratio_nogc']):.2f} > {TARGET_RATIO}",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
