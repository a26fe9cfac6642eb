"""The screening benchmark cannot rot: its baseline measures the real per-patient work, and its
results fit the benchmark results schema (no timing asserted: the machine is shared)."""

from __future__ import annotations

import json
from dataclasses import asdict

import jsonschema

from benchmarks import screen_bench
from cds.screen import synth
from tests.conftest import REPO, RULES_DIR

SCHEMA = json.loads((REPO / "benchmarks" / "results.schema.json").read_text())


def test_in_process_baseline_answers_every_patient_and_fits_the_schema():
    result = screen_bench.in_process(RULES_DIR, 12, synth.DEFAULT_NOW)
    assert result.family == "screen" and result.requests == 12 and result.errors == 0
    assert result.throughput_rps and result.throughput_rps > 0
    only_a_result = {
        k: v for k, v in SCHEMA.items() if k not in ("required", "properties", "additionalProperties", "type")
    }
    jsonschema.validate(asdict(result), {**only_a_result, "$ref": "#/$defs/result"})


def test_worker_peak_memory_is_read_from_the_process_itself():
    assert 10 < screen_bench._peak_rss_mb() < 100_000


def test_memory_trend_is_the_ratio_of_the_peaks_and_fits_the_schema():
    from benchmarks.results import Result

    def run(patients, peak):
        return Result(
            "screen",
            f"screen/2w/{patients}",
            params={"patients": patients, "workers": 2},
            values={"peak_worker_rss_mb": peak},
        )

    trend = screen_bench.memory_trend([run(100_000, 330.0), run(1_000, 300.0)])
    assert trend.values["peak_ratio_largest_to_smallest"] == 1.1 and trend.values["population_ratio"] == 100.0
    assert trend.values["peak_worker_rss_mb_1000"] == 300.0 and trend.params["patients"] == "1000,100000"
    only_a_result = {
        k: v for k, v in SCHEMA.items() if k not in ("required", "properties", "additionalProperties", "type")
    }
    jsonschema.validate(asdict(trend), {**only_a_result, "$ref": "#/$defs/result"})
