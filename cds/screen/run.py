"""The screening job on Dask: read chunks -> spill by patient -> join Medications -> answer -> worklist.

Data flow (each arrow a Dask stage; see docs/adr/0010-population-screening-on-dask.md):

    chunks of NDJSON lines / Bundle files          (one read task per chunk, ~CHUNK_LINES lines)
      -> spill file per chunk, one section per     (cds.screen.spill: hash of the patient id;
         patient bucket, on disk                    medicationReference joins keyed by Medication id)
      -> one join task per Medication bucket       (each referenced Medication copied to the
                                                    buckets of the patients that reference it)
      -> one task per patient bucket               (its sections of every spill file, grouped by
                                                    patient; cds.screen.evaluate.answer_patients)
      -> gathered in the client as they finish     (progress bar; rows only, never resources)

No stage holds more than its own input: a read task one chunk, a join or answer task one bucket
(about PARTITION_BYTES of NDJSON). Records in flight are on disk, not in worker memory.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from cds.screen.evaluate import RuleBundle, answer_patients, parse_line
from cds.screen.export import (
    Chunk,
    ExportScan,
    bundle_resources,
    iter_chunk,
    medication_id,
    patient_of,
    scan_export,
)
from cds.screen.spill import bucket_of, encode, read_section, write_sections

PARTITION_BYTES = 16 << 20  # NDJSON per patient bucket: bounds a worker's working set
MALFORMED_LISTED = 50  # malformed lines named per chunk (the rest are counted)
ANSWER_BATCH = 32  # patients parsed and answered together (bounds the parsed resources held)
DEFAULT_SERVICE = "calciphylaxis-risk"


class ScreenError(RuntimeError):
    """The run could not complete (the export or the rules cannot be read, the cluster failed)."""


@dataclass(frozen=True)
class SpillLayout:
    """Where a run's spill files are (a folder every worker can read and write) and how many buckets."""

    root: str
    buckets: int

    def path(self, stage: str, index: int) -> Path:
        return Path(self.root) / stage / f"{index:06d}.spill"


# --------------------------------------------------------------------------- stage 1: read a chunk


def _location(chunk: Chunk, bundle_numbers: dict[str, int]) -> str:
    # NDJSON files are named by resource type; Bundle files (Synthea) are named after the patient,
    # so they are reported by their number in the export, never by name.
    if chunk.kind == "bundle":
        return f"bundle #{bundle_numbers.get(chunk.path, 0)}"
    return os.path.basename(chunk.path)


def _chunk_resources(
    chunk: Chunk, where: str, malformed: list[str]
) -> Iterator[tuple[int, dict[str, Any], bytes | None]]:
    """(line or entry number, resource, raw line or None) of a chunk; malformed lines go to ``malformed``."""
    if chunk.kind == "bundle":
        try:
            resources = bundle_resources(chunk.path)
        except (OSError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
            malformed.append(f"{where}: {type(exc).__name__}: {str(exc)[:120]}")
            return
        for entry, resource in enumerate(resources):
            yield entry, resource, None
        return
    for number, raw in iter_chunk(chunk):
        if not raw.strip():
            continue
        try:
            resource = parse_line(raw)
        except ValueError as exc:
            # orjson's message names a position, never the content.
            malformed.append(f"{where}:{number}: {str(exc).splitlines()[0][:120]}")
            continue
        yield number, resource, raw


def spill_chunk(chunk: Chunk, bundle_numbers: dict[str, int], layout: SpillLayout) -> dict[str, Any]:
    """Read one chunk and write its resources to the chunk's spill files: each resource in the section
    of its patient's bucket; each Medication, and each reference to one, in the section of the
    Medication's bucket (for the join). Returns the chunk's statistics (counts, malformed lines).

    The position (chunk, line or entry) restores the export's order inside a patient, so that every
    run sends each patient the same request whatever the cluster."""
    buckets = layout.buckets
    patients: list[list[bytes]] = [[] for _ in range(buckets)]
    joins: list[list[bytes]] = [[] for _ in range(buckets)]
    by_type: Counter[str] = Counter()
    unlinked: Counter[str] = Counter()
    malformed: list[str] = []
    for number, resource, raw in _chunk_resources(chunk, _location(chunk, bundle_numbers), malformed):
        rtype = str(resource.get("resourceType"))
        by_type[rtype] += 1
        position = (chunk.index, number)
        line = raw if raw is not None else orjson.dumps(resource)
        patient = patient_of(resource)
        if patient is not None:
            patients[bucket_of(patient, buckets)].append(encode(patient, position, line))
            wanted = medication_id(resource)
            if wanted is not None:
                joins[bucket_of(wanted, buckets)].append(encode(wanted, ("want", patient), b""))
        elif rtype == "Medication" and isinstance(resource.get("id"), str):
            joins[bucket_of(resource["id"], buckets)].append(encode(resource["id"], position, line))
        else:
            unlinked[rtype] += 1
    if any(patients):
        write_sections(layout.path("patients", chunk.index), patients)
    if any(joins):
        write_sections(layout.path("joins", chunk.index), joins)
    return {
        "resources": sum(by_type.values()),
        "by_type": dict(by_type),
        "unlinked": dict(unlinked),
        "malformed": len(malformed),
        "malformed_at": malformed[:MALFORMED_LISTED],
    }


# --------------------------------------------------------------------------- stage 2: join Medications


def join_medications(bucket: int, layout: SpillLayout, chunks: int, _after: Any) -> dict[str, int]:
    """Copy every Medication of this bucket into the patient buckets of the patients whose
    MedicationRequest/-Statement/-Administration/-Dispense references it (as an EHR answering
    ``_include=MedicationRequest:medication`` would). ``_after``: the read stage, which must be done."""
    medications: dict[str, tuple[tuple[Any, ...], bytes]] = {}
    wanted: dict[str, set[str]] = {}
    for index in range(chunks):
        for key, position, raw in read_section(layout.path("joins", index), bucket, layout.buckets):
            if position[0] == "want":
                wanted.setdefault(key, set()).add(str(position[1]))
            elif key not in medications or position < medications[key][0]:
                medications[key] = (position, raw)  # a duplicated id: the first in the export wins
    out: list[list[bytes]] = [[] for _ in range(layout.buckets)]
    resolved = unresolved = 0
    for key, patients in wanted.items():
        found = medications.get(key)
        if found is None:
            unresolved += len(patients)
            continue
        position, raw = found
        for patient in sorted(patients):
            out[bucket_of(patient, layout.buckets)].append(encode(patient, position, raw))
            resolved += 1
    if any(out):
        write_sections(layout.path("medications", bucket), out)
    return {
        "medications": len(medications),
        "medication_references_resolved": resolved,
        "medication_references_unresolved": unresolved,
        "medications_unreferenced": sum(1 for key in medications if key not in wanted),
    }


# --------------------------------------------------------------------------- stage 3: answer a bucket


def evaluate_bucket(
    bucket: int,
    layout: SpillLayout,
    chunks: int,
    _after: Any,
    bundles: Sequence[RuleBundle],
    service_id: str,
    now_iso: str,
    keep_cards: bool,
    engine: str | None,
) -> list[dict[str, Any]]:
    """Group this bucket's records of every spill file by patient and answer each patient.
    ``_after``: the join stage, which must be done."""
    groups: dict[str, list[tuple[tuple[Any, ...], bytes]]] = {}
    for stage, files in (("patients", chunks), ("medications", layout.buckets)):
        for index in range(files):
            for key, position, raw in read_section(layout.path(stage, index), bucket, layout.buckets):
                groups.setdefault(key, []).append((position, raw))
    return evaluate_groups(sorted(groups.items()), bundles, service_id, now_iso, keep_cards, engine)


def evaluate_groups(
    groups: Iterable[tuple[str, list[tuple[tuple[Any, ...], bytes]]]],
    bundles: Sequence[RuleBundle],
    service_id: str,
    now_iso: str,
    keep_cards: bool,
    engine: str | None,
) -> list[dict[str, Any]]:
    """Each patient (id, [(position, raw resource)]) answered under every rule bundle, a batch at a
    time; groups without a Patient resource are patients the export does not contain: counted."""
    now = datetime.fromisoformat(now_iso)
    out: list[dict[str, Any]] = []
    batch: list[tuple[str, list[dict[str, Any]]]] = []

    def answer(batch: list[tuple[str, list[dict[str, Any]]]]) -> None:
        answers = [answer_patients(bundle, service_id, batch, now, keep_cards, engine) for bundle in bundles]
        for index, (patient_id, resources) in enumerate(batch):
            rows = [rows[index] for rows in answers]
            out.append({"kind": "patient", "patient_id": patient_id, "resources": len(resources), "rows": rows})

    for key, items in groups:
        resources = [orjson.loads(raw) for _, raw in sorted(items, key=lambda item: item[0])]
        if not any(r.get("resourceType") == "Patient" for r in resources):
            # Resources that point at a patient the export does not contain: counted and skipped.
            types = Counter(str(r.get("resourceType")) for r in resources)
            out.append({"kind": "unknown", "resources": len(resources), "by_type": dict(types)})
            continue
        batch.append((key, resources))
        if len(batch) >= ANSWER_BATCH:
            answer(batch)
            batch = []
    if batch:
        answer(batch)
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
    """Patient buckets: about ``partition_bytes`` of decompressed input each, and enough to keep
    every worker busy and the progress bar moving."""
    size = scan.total_raw_bytes
    by_size = math.ceil(size / partition_bytes) if size else 1
    return max(1, by_size, 4 * workers)


def local_client(workers: int, memory_limit: str | None = None) -> Any:
    """A local Dask cluster of ``workers`` single-threaded processes on loopback."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit=memory_limit or "auto",
        silence_logs=40,
    )
    return Client(cluster)  # type: ignore[no-untyped-call]


class _Tally:
    """What the client adds up from the stages' results: counts, rows, malformed lines."""

    def __init__(self, rule_sets: int) -> None:
        self.rows: list[list[dict[str, Any]]] = [[] for _ in range(rule_sets)]
        self.counts: Counter[str] = Counter()
        self.by_type: Counter[str] = Counter()
        self.unlinked: Counter[str] = Counter()
        self.malformed_at: list[str] = []

    def read_stats(self, stats: list[dict[str, Any]]) -> None:
        for item in stats:
            self.counts["resources_read"] += item["resources"]
            self.counts["malformed_lines"] += item["malformed"]
            self.by_type.update(item["by_type"])
            self.unlinked.update(item["unlinked"])
            self.malformed_at.extend(item["malformed_at"])

    def join_stats(self, stats: list[dict[str, int]]) -> None:
        for item in stats:
            self.counts.update(item)

    def answers(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            if item["kind"] == "patient":
                self.counts["patients"] += 1
                self.counts["patient_resources"] += item["resources"]
                for index, row in enumerate(item["rows"]):
                    self.rows[index].append(row)
                if any(row["error"] for row in item["rows"]):
                    self.counts["patients_failed"] += 1
            elif item["kind"] == "unknown":
                self.counts["unknown_patients"] += 1
                self.counts["unknown_patient_resources"] += item["resources"]


def _result(future: Any) -> Any:
    try:
        return future.result()
    except Exception as exc:
        raise ScreenError(f"a screening task failed: {type(exc).__name__}: {str(exc)[:300]}") from exc


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
    spill_dir: Path | None = None,
) -> ScreenResult:
    """Screen every patient of the export under each rules directory (one for a screen, two to compare).

    ``client``: an existing ``dask.distributed.Client``; else ``scheduler`` (``tcp://host:port``)
    is connected to; else a local cluster of ``workers`` processes is started and stopped.
    ``spill_dir``: where the shuffle's files go (a fresh owner-only folder inside it, removed at the
    end); every worker must be able to read and write it (default: the system's temporary folder).
    """
    import dask
    from dask.distributed import Client, as_completed

    started_wall = datetime.now(UTC)
    now = now or started_wall
    t0 = time.perf_counter()
    scan = scan_export(Path(source))
    bundles = [RuleBundle.from_directory(Path(d)) for d in rules_dirs]
    t_scan = time.perf_counter()

    own_client = client is None
    if client is None:
        client = (
            Client(scheduler, timeout="30s")  # type: ignore[no-untyped-call]
            if scheduler
            else local_client(workers or default_workers())
        )
    spill_root = tempfile.mkdtemp(prefix="cds-screen-spill-", dir=spill_dir)  # 0700: it holds patient data
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        scheduler_name = scheduler or ("local" if own_client else str(client.scheduler.address))
        bundle_numbers = {f.path: n for n, f in enumerate((f for f in scan.files if f.kind == "bundle"), start=1)}
        layout = SpillLayout(spill_root, partitions_for(scan, n_workers, partition_bytes))
        chunks = len(scan.chunks)
        delayed = dask.delayed  # type: ignore[attr-defined]
        # The rule bundles become one task each: every worker fetches them once, whatever the buckets.
        shipped = delayed(list(bundles), pure=True, traverse=False)
        read_stats = delayed(list)([delayed(spill_chunk, pure=True)(c, bundle_numbers, layout) for c in scan.chunks])
        join_stats = delayed(list)(
            [delayed(join_medications, pure=True)(b, layout, chunks, read_stats) for b in range(layout.buckets)]
        )
        answered = [
            delayed(evaluate_bucket, pure=True)(
                b, layout, chunks, join_stats, shipped, service_id, now.isoformat(), keep_cards, engine
            )
            for b in range(layout.buckets)
        ]
        stats_futures = client.compute([read_stats, join_stats])
        futures = client.compute(answered)

        progress = progress or Progress(scan.expected_patients, enabled=False)
        progress.total = progress.total or scan.expected_patients  # the export's Patient count
        tally = _Tally(len(bundles))
        for finished_partitions, future in enumerate(as_completed(futures), start=1):  # type: ignore[no-untyped-call]
            tally.answers(_result(future))
            future.release()  # the rows are in the client now; the worker may drop them
            progress.update(tally.counts["patients"])
            if on_partition is not None:
                on_partition(finished_partitions)
        progress.close()
        tally.read_stats(_result(stats_futures[0]))
        tally.join_stats(_result(stats_futures[1]))
        t_eval = time.perf_counter()
        return _finish(tally, scan, bundles, layout, scheduler_name, n_workers, now, started_wall, (t0, t_scan, t_eval))
    finally:
        shutil.rmtree(spill_root, ignore_errors=True)
        if own_client:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()


def _finish(
    tally: _Tally,
    scan: ExportScan,
    bundles: Sequence[RuleBundle],
    layout: SpillLayout,
    scheduler_name: str,
    n_workers: int,
    now: datetime,
    started_wall: datetime,
    times: tuple[float, float, float],
) -> ScreenResult:
    t0, t_scan, t_eval = times
    rows, counts = tally.rows, tally.counts
    per_set_versions = [(sorted({r["ruleset_version"] for r in set_rows}) or ["(no patients)"])[0] for set_rows in rows]
    ids = Counter(row["patient_id"] for row in rows[0]) if rows else Counter()
    counts["patients_evaluated_twice"] = sum(1 for n in ids.values() if n > 1)
    counts["unlinked_resources"] = sum(tally.unlinked.values())
    counts["patients_expected"] = scan.expected_patients
    counts["partitions"] = layout.buckets
    return ScreenResult(
        scan=scan,
        rule_versions=per_set_versions,
        rule_digests=[b.digest for b in bundles],
        rows=rows,
        counts=dict(counts) | {"unlinked_by_type": dict(tally.unlinked)},
        malformed_at=sorted(tally.malformed_at, key=_location_sort_key),
        timings={
            "scan_seconds": t_scan - t0,
            "evaluate_seconds": t_eval - t_scan,
            "patients_per_second": counts["patients"] / max(t_eval - t_scan, 1e-9),
        },
        scheduler=scheduler_name,
        workers=n_workers,
        now=now.isoformat(),
        started=started_wall.isoformat(timespec="seconds"),
        resources_by_type=dict(tally.by_type),
    )


def _location_sort_key(text: str) -> tuple[str, int]:
    name, _, rest = text.partition(":")
    number = rest.split(":", 1)[0]
    return (name, int(number) if number.isdigit() else 0)


def iter_rows(result: ScreenResult, index: int = 0) -> Iterator[dict[str, Any]]:
    yield from result.rows[index]
