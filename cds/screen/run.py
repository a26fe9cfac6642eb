"""The screening job on Dask: read chunks -> shuffle by patient -> answer each patient -> worklist.

Data flow (each arrow a Dask stage; see docs/adr/0010-population-screening-on-dask.md):

    chunks of NDJSON lines / Bundle files          (one read task per chunk, ~CHUNK_LINES lines)
      -> (patient id, raw resource) records        (+ one statistics record per chunk)
      -> groupby patient id, task-based shuffle     (output partitions sized to PARTITION_BYTES)
      -> one row per patient per rule set          (cds.screen.evaluate.answer_patients)
      -> gathered in the client as they finish     (progress bar; rows only, never resources)

No stage holds the whole export: a read task holds one chunk, a shuffle task a share of one
partition, an evaluation task one output partition (about PARTITION_BYTES of NDJSON).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from cds.screen.evaluate import RuleBundle, answer_patients, parse_line
from cds.screen.export import Chunk, ExportScan, bundle_resources, iter_chunk, patient_of, scan_export

PARTITION_BYTES = 32 << 20  # NDJSON per evaluation partition: bounds a worker's working set
STATS_PREFIX = "\x00stats:"  # keys of the per-chunk statistics records (cannot be a FHIR id)
MALFORMED_LISTED = 50  # malformed lines named per chunk (the rest are counted)
DEFAULT_SERVICE = "calciphylaxis-risk"


class ScreenError(RuntimeError):
    """The run could not complete (the export or the rules cannot be read, the cluster failed)."""


# --------------------------------------------------------------------------- stage 1: read a chunk


def _location(chunk: Chunk, bundle_numbers: dict[str, int]) -> str:
    # NDJSON files are named by resource type; Bundle files (Synthea) are named after the patient,
    # so they are reported by their number in the export, never by name.
    if chunk.kind == "bundle":
        return f"bundle #{bundle_numbers.get(chunk.path, 0)}"
    return os.path.basename(chunk.path)


def read_chunk(chunk: Chunk, bundle_numbers: dict[str, int]) -> list[tuple[str, Any, Any]]:
    """(patient id, position, raw resource bytes) for each resource of the chunk, then one statistics
    record. The position (chunk, line or entry) restores the export's order after the shuffle, so that
    every run sends each patient the same request whatever the cluster."""
    out: list[tuple[str, Any, Any]] = []
    by_type: Counter[str] = Counter()
    unlinked: Counter[str] = Counter()
    malformed: list[str] = []
    malformed_count = 0
    where = _location(chunk, bundle_numbers)
    if chunk.kind == "bundle":
        try:
            resources = bundle_resources(chunk.path)
        except (OSError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
            resources = []
            malformed_count = 1
            malformed.append(f"{where}: {type(exc).__name__}: {str(exc)[:120]}")
        for entry, resource in enumerate(resources):
            rtype = str(resource.get("resourceType"))
            by_type[rtype] += 1
            patient = patient_of(resource)
            if patient is None:
                unlinked[rtype] += 1
            else:
                out.append((patient, (chunk.index, entry), orjson.dumps(resource)))
    else:
        for number, raw in iter_chunk(chunk):
            if not raw.strip():
                continue
            try:
                resource = parse_line(raw)
            except ValueError as exc:
                malformed_count += 1
                if len(malformed) < MALFORMED_LISTED:
                    # orjson's message names a position, never the content.
                    malformed.append(f"{where}:{number}: {str(exc).splitlines()[0][:120]}")
                continue
            rtype = resource["resourceType"]
            by_type[rtype] += 1
            patient = patient_of(resource)
            if patient is None:
                unlinked[rtype] += 1
            else:
                out.append((patient, (chunk.index, number), raw))
    out.append(
        (
            f"{STATS_PREFIX}{chunk.index}",
            (chunk.index, 0),
            {
                "resources": sum(by_type.values()),
                "by_type": dict(by_type),
                "unlinked": dict(unlinked),
                "malformed": malformed_count,
                "malformed_at": malformed,
            },
        )
    )
    return out


def record_key(record: tuple[str, Any, Any]) -> str:
    return record[0]


# --------------------------------------------------------------------------- stage 3: answer a partition


def evaluate_partition(
    groups: Sequence[tuple[str, list[tuple[str, Any, Any]]]],
    bundles: Sequence[RuleBundle],
    service_id: str,
    now_iso: str,
    keep_cards: bool,
    engine: str | None,
) -> list[dict[str, Any]]:
    """Statistics records pass through; each patient is answered under every rule bundle."""
    now = datetime.fromisoformat(now_iso)
    out: list[dict[str, Any]] = []
    patients: list[tuple[str, list[dict[str, Any]]]] = []
    for key, items in groups:
        if key.startswith(STATS_PREFIX):
            out.extend({"kind": "stats", **payload} for _, _, payload in items)
            continue
        resources = [orjson.loads(raw) for _, _, raw in sorted(items, key=lambda item: item[1])]
        if not any(r.get("resourceType") == "Patient" for r in resources):
            # Resources that point at a patient the export does not contain: counted and skipped.
            out.append(
                {
                    "kind": "unknown",
                    "resources": len(resources),
                    "by_type": dict(Counter(str(r.get("resourceType")) for r in resources)),
                }
            )
            continue
        patients.append((key, resources))
    if patients:
        answers = [answer_patients(bundle, service_id, patients, now, keep_cards, engine) for bundle in bundles]
        for index, (patient_id, resources) in enumerate(patients):
            out.append(
                {
                    "kind": "patient",
                    "patient_id": patient_id,
                    "resources": len(resources),
                    "rows": [rows[index] for rows in answers],
                }
            )
    return out


# --------------------------------------------------------------------------- progress


class Progress:
    """Patients done, rate and time left on the terminal (a bar on a TTY, a line per 10% otherwise)."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(total, 0)
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.done = 0
        self._last_decile = -1

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        total = max(self.total, self.done)
        left = (total - self.done) / rate if rate > 0 else math.inf
        eta = "--:--" if math.isinf(left) else time.strftime("%H:%M:%S", time.gmtime(left))
        width = 30
        filled = int(width * self.done / total) if total else width
        return f"[{'#' * filled}{'.' * (width - filled)}] {self.done:,}/{total:,} patients  {rate:,.1f}/s  left {eta}"

    def update(self, done: int) -> None:
        self.done = done
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()
            return
        decile = int(10 * done / self.total) if self.total else 10
        if decile > self._last_decile:
            self._last_decile = decile
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()


# --------------------------------------------------------------------------- the run


@dataclass
class ScreenResult:
    """Everything a run produced; ``rows[i]`` are the worklist rows under rule set i."""

    scan: ExportScan
    rule_versions: list[str]
    rule_digests: list[str]
    rows: list[list[dict[str, Any]]]
    counts: dict[str, Any]
    malformed_at: list[str]
    timings: dict[str, float]
    scheduler: str
    workers: int
    now: str
    started: str
    resources_by_type: dict[str, int] = field(default_factory=dict)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def partitions_for(scan: ExportScan, workers: int, partition_bytes: int = PARTITION_BYTES) -> int:
    """Output partitions of the shuffle: about ``partition_bytes`` of input each, and enough to keep
    every worker busy and the progress bar moving."""
    by_size = math.ceil(scan.total_bytes / partition_bytes) if scan.total_bytes else 1
    return max(1, by_size, 4 * workers, min(len(scan.chunks), 256))


def local_client(workers: int, memory_limit: str | None = None) -> Any:
    """A local Dask cluster of ``workers`` single-threaded processes on loopback."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit=memory_limit or "auto",
        silence_logs=40,
    )
    return Client(cluster)


def screen(
    source: Path,
    rules_dirs: Sequence[Path],
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    now: datetime | None = None,
    service_id: str = DEFAULT_SERVICE,
    keep_cards: bool = False,
    engine: str | None = None,
    progress: Progress | None = None,
    partition_bytes: int = PARTITION_BYTES,
    on_partition: Callable[[int], None] | None = None,
) -> ScreenResult:
    """Screen every patient of the export under each rules directory (one for a screen, two to compare).

    ``client``: an existing ``dask.distributed.Client``; else ``scheduler`` (``tcp://host:port``)
    is connected to; else a local cluster of ``workers`` processes is started and stopped.
    """
    import dask
    import dask.bag as db
    from dask.distributed import Client, as_completed

    started_wall = datetime.now(UTC)
    now = now or started_wall
    t0 = time.perf_counter()
    scan = scan_export(Path(source))
    bundles = [RuleBundle.from_directory(Path(d)) for d in rules_dirs]
    t_scan = time.perf_counter()

    own_client = client is None
    if client is None:
        client = Client(scheduler, timeout="30s") if scheduler else local_client(workers or default_workers())
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        scheduler_name = scheduler or ("local" if own_client else str(client.scheduler.address))
        bundle_numbers = {f.path: n for n, f in enumerate((f for f in scan.files if f.kind == "bundle"), start=1)}
        # The rule bundles become one task each: every worker fetches them once, whatever the partitions.
        shipped = dask.delayed(list(bundles), pure=True, traverse=False)
        records = db.from_delayed([dask.delayed(read_chunk, pure=True)(c, bundle_numbers) for c in scan.chunks])
        grouped = records.groupby(
            record_key, shuffle="tasks", npartitions=partitions_for(scan, n_workers, partition_bytes)
        )
        answered = grouped.map_partitions(evaluate_partition, shipped, service_id, now.isoformat(), keep_cards, engine)
        futures = client.compute(answered.to_delayed())

        progress = progress or Progress(scan.expected_patients, enabled=False)
        progress.total = progress.total or scan.expected_patients  # the export's Patient count
        rows: list[list[dict[str, Any]]] = [[] for _ in bundles]
        counts: Counter[str] = Counter()
        by_type: Counter[str] = Counter()
        unlinked: Counter[str] = Counter()
        malformed_at: list[str] = []
        for finished_partitions, future in enumerate(as_completed(futures), start=1):
            try:
                items = future.result()
            except Exception as exc:
                raise ScreenError(f"a screening task failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
            for item in items:
                kind = item["kind"]
                if kind == "patient":
                    counts["patients"] += 1
                    counts["patient_resources"] += item["resources"]
                    for index, row in enumerate(item["rows"]):
                        rows[index].append(row)
                    if any(row["error"] for row in item["rows"]):
                        counts["patients_failed"] += 1
                elif kind == "unknown":
                    counts["unknown_patients"] += 1
                    counts["unknown_patient_resources"] += item["resources"]
                elif kind == "stats":
                    counts["resources_read"] += item["resources"]
                    counts["malformed_lines"] += item["malformed"]
                    by_type.update(item["by_type"])
                    unlinked.update(item["unlinked"])
                    malformed_at.extend(item["malformed_at"])
            future.release()  # the rows are in the client now; the worker may drop them
            progress.update(counts["patients"])
            if on_partition is not None:
                on_partition(finished_partitions)
        progress.close()
        t_eval = time.perf_counter()
        per_set_versions = [
            (sorted({r["ruleset_version"] for r in set_rows}) or ["(no patients)"])[0] for set_rows in rows
        ]
        ids = Counter(row["patient_id"] for row in rows[0]) if rows else Counter()
        counts["patients_evaluated_twice"] = sum(1 for n in ids.values() if n > 1)
        counts["unlinked_resources"] = sum(unlinked.values())
        counts["patients_expected"] = scan.expected_patients
        counts["partitions"] = len(futures)
        return ScreenResult(
            scan=scan,
            rule_versions=per_set_versions,
            rule_digests=[b.digest for b in bundles],
            rows=rows,
            counts=dict(counts) | {"unlinked_by_type": dict(unlinked)},
            malformed_at=sorted(malformed_at, key=_location_sort_key),
            timings={
                "scan_seconds": t_scan - t0,
                "evaluate_seconds": t_eval - t_scan,
                "patients_per_second": counts["patients"] / max(t_eval - t_scan, 1e-9),
            },
            scheduler=scheduler_name,
            workers=n_workers,
            now=now.isoformat(),
            started=started_wall.isoformat(timespec="seconds"),
            resources_by_type=dict(by_type),
        )
    finally:
        if own_client:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()


def _location_sort_key(text: str) -> tuple[str, int]:
    name, _, rest = text.partition(":")
    number = rest.split(":", 1)[0]
    return (name, int(number) if number.isdigit() else 0)


def iter_rows(result: ScreenResult, index: int = 0) -> Iterator[dict[str, Any]]:
    yield from result.rows[index]
