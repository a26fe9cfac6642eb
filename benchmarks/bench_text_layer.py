"""Cost of the text layer of concept recognition (ADR 0005), as ratios to the code-only path.

    .venv/bin/python -m benchmarks.bench_text_layer                 # source case and 10,000 resources
    .venv/bin/python -m benchmarks.bench_text_layer --repeat 9 --json benchmarks/results/text-layer.json

For each workload, fact extraction (``cds.fhir.extract_facts``) runs back to back with

* ``code``: the terminology with the text layer switched off (no synonyms, no biopsy terms);
* ``text-warm``: the full terminology, its per-text cache already filled (a service that has seen
  these problem-list and drug names before: the steady state);
* ``text-cold``: the full terminology with the per-text cache emptied before every run (every
  concept text parsed by medspaCy again: the first request after a start or reload).

Workloads: the source case (fhir_examples/requests/source-case.patient-view.json) and the
10,000-resource synthetic patient-view request of ``benchmarks.synthetic`` (the issue-4 size).
Medians of ``--repeat`` runs; the ratios (measured in the same run) are the figures to compare.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.synthetic import make_request
from cds.fhir import Terminology, extract_facts, warm_up

REPO = Path(__file__).resolve().parent.parent
SOURCE_CASE = REPO / "fhir_examples" / "requests" / "source-case.patient-view.json"
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def _median_seconds(call: Callable[[], Any], repeat: int, before: Callable[[], None] | None = None) -> float:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _code_only(term: Terminology) -> Terminology:
    plain = copy.copy(term)
    plain.synonyms = {}
    plain.biopsy_terms = set()
    plain._lexicon = None
    plain._biopsy_lexicon = None
    plain._text_cache = {}
    return plain


def run(repeat: int) -> list[dict[str, Any]]:
    term = Terminology.load(REPO / "rules")
    warm_up(term)
    code = _code_only(term)
    source = orjson.loads(SOURCE_CASE.read_bytes())
    synthetic = make_request(10_000)
    rows = []
    for name, request in (("source-case", source), ("synthetic-10000", synthetic)):
        context, prefetch = request["context"], request["prefetch"]

        def with_terminology(t: Terminology, context: dict = context, prefetch: dict = prefetch) -> Callable[[], Any]:
            return lambda: extract_facts(context, prefetch, NOW, t)

        with_terminology(term)()  # fill the per-text cache once
        seconds = {
            "code": _median_seconds(with_terminology(code), repeat),
            "text-warm": _median_seconds(with_terminology(term), repeat),
            "text-cold": _median_seconds(with_terminology(term), repeat, before=term._text_cache.clear),
        }
        rows.append(
            {
                "workload": name,
                "resources": sum(
                    len(v.get("entry") or []) if v.get("resourceType") == "Bundle" else 1
                    for v in prefetch.values()
                    if isinstance(v, dict)
                ),
                "median_ms": {k: round(v * 1000, 2) for k, v in seconds.items()},
                "ratio_to_code": {k: round(v / seconds["code"], 2) for k, v in seconds.items() if k != "code"},
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    rows = run(args.repeat)
    for row in rows:
        ms, ratio = row["median_ms"], row["ratio_to_code"]
        print(
            f"{row['workload']:<16} {row['resources']:>6} resources  code {ms['code']:>8.2f} ms  "
            f"text-warm {ms['text-warm']:>8.2f} ms (x{ratio['text-warm']:.2f})  "
            f"text-cold {ms['text-cold']:>8.2f} ms (x{ratio['text-cold']:.2f})"
        )
    if args.json:
        args.json.write_text(json.dumps({"repeat": args.repeat, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
