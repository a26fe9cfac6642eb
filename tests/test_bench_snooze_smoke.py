"""benchmarks/bench_snooze.py cannot rot: a tiny run of it (three loopback servers).

Its own module, apart from tests/test_bench_smoke.py: under `make test` (pytest-xdist, --dist
loadscope) a module runs on one worker, and the two together were the longest module of the suite.
No timing is asserted."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_the_snooze_benchmark_runs_and_compares_like_with_like():
    """benchmarks/bench_snooze.py, tiny: three loopback servers; the snoozed one sends no card, the others one."""
    import tempfile
    from pathlib import Path

    from benchmarks import bench_snooze

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "snooze.json"
        status = bench_snooze.main(
            [
                *("--rounds", "1", "--requests", "3", "--snoozes", "100", "--lookups", "20"),
                *("--max-ratio", "100", "--max-lookup-ms", "1000", "--json", str(out)),
            ]
        )
        assert status == 0
        results = json.loads(out.read_text())
    assert (
        results["off"]["cards"] == 1
        and results["on, not snoozed"]["cards"] == 1
        and results["on, snoozed"]["cards"] == 0
    )
    assert results["off"]["ratio_to_off"] == 1.0 and results["on, snoozed"]["n"] == 3
    assert results["off"]["paired_ratio"] == 1.0 and results["on, not snoozed"]["paired_ratio"] > 0
    assert results["lookup"]["snoozed"]["n"] == 20 and results["lookup"]["not snoozed"]["median_ms"] > 0
