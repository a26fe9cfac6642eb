"""Population screening on Dask (issue 19): patients per second and peak memory per worker.

What is measured, in one run on one seeded synthetic population (``cds.screen.synth``):

* ``screen/in-process``: the per-patient work alone, no Dask, no files, no shuffle:
  ``cds.screen.evaluate.answer_patients`` (request building + ``answer_hook``, the service's own
  path) on the first ``IN_PROCESS_SAMPLE`` patients of the population, in this process. The baseline.
* ``screen/<w>w/<N>-patients``: ``cds.screen.run.screen`` on a local cluster of ``w`` single-threaded
  worker processes, from the scan of the NDJSON files to the last worklist row (the workers' rule
  sets are loaded before the clock starts: a once-per-worker cost reported as ``worker_load_s``).
  ``ratio_to_in_process`` = the screen's patients/s over the baseline's: 1.0 would mean Dask,
  reading and the shuffle cost nothing and a second worker doubles nothing either.
* ``peak_worker_rss_mb``: the highest peak RSS (VmHWM) among the workers after the run, and
  ``worker_rss_loaded_mb`` the same once the rule set is loaded, before the run: the difference is
  what the screen itself holds. Measured at two population sizes; ``screen/memory`` gives the ratio
  of the peaks (1.0 = flat: the shuffle spills to disk, docs/adr/0010).

Standalone, for the 100,000-patient memory figure that does not fit ``make bench``'s budget
(populations generated once and kept under ``--keep``):
``python -m benchmarks.screen_bench --patients 1000 10000 100000 --workers 2 --keep /tmp/screen-bench``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.results import Result

IN_PROCESS_SAMPLE = 1_000


def _peak_rss_mb() -> float:
    """Peak RSS of this process. VmHWM, not ru_maxrss: ru_maxrss survives fork and exec, so a worker
    started from a big parent would report the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass  # no /proc (not Linux): fall back to getrusage below
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _cpu_seconds() -> float:
    """CPU time of this process (user + system): unlike wall time, not stretched by a loaded machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _warm(bundle: Any) -> tuple[float, float]:
    """Load the rule set in a worker: (seconds, peak RSS in MB once loaded)."""
    from cds.screen.evaluate import pipeline_for

    started = time.perf_counter()
    pipeline_for(bundle)
    return time.perf_counter() - started, _peak_rss_mb()


def in_process(rules_dir: Path, patients: int, now: Any) -> Result:
    from cds.screen import synth
    from cds.screen.evaluate import RuleBundle, answer_patients, pipeline_for

    bundle = RuleBundle.from_directory(rules_dir)
    pipeline_for(bundle)
    population = [(resources[0]["id"], resources) for resources in synth.generate(patients, seed=19, now=now)]
    started, cpu = time.perf_counter(), _cpu_seconds()
    rows = answer_patients(bundle, "calciphylaxis-risk", population, now)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    return Result(
        "screen",
        f"screen/in-process/{patients}-patients",
        params={"patients": patients},
        throughput_rps=patients / seconds,
        requests=patients,
        errors=sum(1 for r in rows if r["error"]),
        values={
            "patients_per_s": round(patients / seconds, 2),
            "seconds": round(seconds, 2),
            "cpu_ms_per_patient": round(1000 * cpu / patients, 2),
        },
        note="answer_patients in this process: request building + answer_hook, no Dask, no files",
    )


def on_dask(rules_dir: Path, export: Path, patients: int, workers: int, now: Any, baseline: float | None) -> Result:
    from cds.screen.evaluate import RuleBundle
    from cds.screen.run import local_client, screen

    client = local_client(workers)
    try:
        bundle = RuleBundle.from_directory(rules_dir)
        warmed = list(client.run(_warm, bundle).values())
        load_seconds = max(w[0] for w in warmed)
        loaded_rss = max(w[1] for w in warmed)
        cpu_before = sum(client.run(_cpu_seconds).values())
        client_cpu = _cpu_seconds()
        started = time.perf_counter()
        result = screen(export, [rules_dir], client=client, now=now)
        seconds = time.perf_counter() - started
        client_cpu = _cpu_seconds() - client_cpu
        worker_cpu = sum(client.run(_cpu_seconds).values()) - cpu_before
        peak = max(client.run(_peak_rss_mb).values())
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    rate = result.counts.get("patients", 0) / seconds
    values = {
        "patients_per_s": round(rate, 2),
        "seconds": round(seconds, 2),
        "peak_worker_rss_mb": round(peak, 1),
        "worker_rss_loaded_mb": round(loaded_rss, 1),
        "worker_load_s": round(load_seconds, 2),
        "export_mb": round(result.scan.total_raw_bytes / 1e6, 1),
        "partitions": result.counts.get("partitions", 0),
        "client_rss_mb": round(_peak_rss_mb(), 1),
        # CPU per patient, all workers and the client (scan, gather): the figure a cluster is sized by.
        "worker_cpu_ms_per_patient": round(1000 * worker_cpu / max(result.counts.get("patients", 0), 1), 2),
        "client_cpu_ms_per_patient": round(1000 * client_cpu / max(result.counts.get("patients", 0), 1), 2),
    }
    if baseline:
        values["ratio_to_in_process"] = round(rate / baseline, 3)
    return Result(
        "screen",
        f"screen/{workers}w/{patients}-patients",
        params={"patients": patients, "workers": workers},
        throughput_rps=rate,
        requests=result.counts.get("patients", 0),
        errors=result.counts.get("patients_failed", 0),
        values=values,
        note=f"cds.screen.run.screen on a local cluster of {workers} process(es), NDJSON scan to last row",
    )


def run(rules_dir: Path, quick: bool, now: Any, say: Any = print) -> list[Result]:
    from cds.screen import synth

    try:
        import dask.distributed  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:
        return [Result.unavailable("screen", "screen", f"cds screen needs the screen extra: {exc}")]
    sizes = (200, 1_000) if quick else (1_000, 10_000)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="cds-bench-screen-") as tmp:
        exports = {}
        for size in sizes:
            exports[size] = Path(tmp) / f"population-{size}"
            synth.write_population(exports[size], size, seed=19, now=now)
        say(f"screen: in-process baseline on {min(IN_PROCESS_SAMPLE, sizes[-1]):,} patients")
        baseline = in_process(rules_dir, min(IN_PROCESS_SAMPLE, sizes[-1]), now)
        results.append(baseline)
        big = sizes[-1]
        for workers in (1, 2):
            say(f"screen: {big:,} patients on {workers} worker(s)")
            results.append(on_dask(rules_dir, exports[big], big, workers, now, baseline.throughput_rps))
        say(f"screen: {sizes[0]:,} patients on 2 workers (memory against population size)")
        small = on_dask(rules_dir, exports[sizes[0]], sizes[0], 2, now, baseline.throughput_rps)
        largest_on_two = results[-1]  # the 2-worker run of the larger population, appended above
        results.append(small)
        results.append(memory_trend([small, largest_on_two]))
    return results


def memory_trend(runs: list[Result]) -> Result:
    """Peak worker RSS of the largest population over the smallest's (same worker count)."""
    runs = sorted(runs, key=lambda r: r.params["patients"])
    low, high = runs[0], runs[-1]
    ratio = high.values["peak_worker_rss_mb"] / low.values["peak_worker_rss_mb"]
    return Result(
        "screen",
        "screen/memory",
        params={"patients": ",".join(str(r.params["patients"]) for r in runs), "workers": high.params["workers"]},
        values={
            **{f"peak_worker_rss_mb_{r.params['patients']}": r.values["peak_worker_rss_mb"] for r in runs},
            "peak_ratio_largest_to_smallest": round(ratio, 3),
            "population_ratio": float(high.params["patients"]) / float(low.params["patients"]),
        },
        note="peak RSS per worker against population size: 1.0 = flat",
    )


def main(argv: list[str] | None = None) -> int:
    import orjson

    from cds.screen import synth

    parser = argparse.ArgumentParser(prog="python -m benchmarks.screen_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rules", type=Path, default=Path(__file__).resolve().parent.parent / "rules")
    parser.add_argument(
        "--keep", type=Path, help="keep the populations here (population-<N>) and reuse them on the next run"
    )
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="cds-bench-screen-") as tmp:
        for patients in args.patients:
            export = (args.keep or Path(tmp)) / f"population-{patients}"
            if not (export / "manifest.json").exists():
                started = time.perf_counter()
                synth.write_population(export, patients, seed=19)
                print(f"generated {patients:,} patients in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            result = on_dask(args.rules.resolve(), export, patients, args.workers, synth.DEFAULT_NOW, None)
            print(orjson.dumps(result.__dict__, default=str).decode(), flush=True)
            runs.append(result)
    if len(runs) > 1:
        print(orjson.dumps(memory_trend(runs).__dict__, default=str).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
