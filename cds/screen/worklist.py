"""The worklist (Parquet and CSV) and the run record (JSON): what a screen writes.

Worklist schema (``WORKLIST_SCHEMA``; docs/screening.md describes each column). One row per
patient, sorted by what needs attention first: the most urgent card indicator (critical,
warning, info), then patients whose evaluation failed (they were not screened), then the
rest; within each, the higher calciphylaxis posterior first, then more cards, then the id.

The worklist is a clinical document with patient ids: every file here is created with
owner-only permissions (0600, in a folder created 0700) and nothing from it is logged. The
run record holds counts, digests and timings only.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from cds.screen.run import ScreenResult

WORKLIST_SCHEMA = pa.schema(
    [
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("patient_id", pa.string(), nullable=False),
        pa.field("population", pa.string(), nullable=False),
        pa.field("leading_cause", pa.string(), nullable=False),
        pa.field("leading_band", pa.string(), nullable=False),
        pa.field("calciphylaxis_posterior", pa.float64(), nullable=True),
        pa.field("calciphylaxis_band", pa.string(), nullable=False),
        pa.field("max_indicator", pa.string(), nullable=False),
        pa.field("card_count", pa.int32(), nullable=False),
        pa.field(
            "cards",
            pa.list_(
                pa.struct(
                    [
                        pa.field("family", pa.string(), nullable=False),
                        pa.field("indicator", pa.string(), nullable=False),
                        pa.field("summary", pa.string(), nullable=False),
                    ]
                )
            ),
            nullable=False,
        ),
        pa.field("key_evidence", pa.list_(pa.string()), nullable=False),
        pa.field("fact_warnings", pa.int32(), nullable=False),
        pa.field("ruleset_version", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
    ]
)
COLUMNS = [f.name for f in WORKLIST_SCHEMA]
RUN_RECORD_SCHEMA = "cds-screen-run/1"
_URGENCY = {"critical": 4, "warning": 3, "info": 2}


def attention_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    urgency = _URGENCY.get(row["max_indicator"], 1 if row["error"] else 0)
    posterior = row["calciphylaxis_posterior"] if row["calciphylaxis_posterior"] is not None else -1.0
    return (-urgency, -posterior, -row["card_count"], row["patient_id"])


def ranked(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    ordered = sorted(rows, key=attention_key)
    return [{"rank": number, **{k: row[k] for k in COLUMNS if k != "rank"}} for number, row in enumerate(ordered, 1)]


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to a file that only its owner can read, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
    finally:
        os.close(fd)
    return path


def worklist_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=WORKLIST_SCHEMA)


def write_worklist(rows: list[dict[str, Any]], out_dir: Path, stem: str = "worklist") -> tuple[Path, Path]:
    """``<stem>.parquet`` and ``<stem>.csv`` (cards as JSON, evidence joined by "; "), both 0600."""
    table = worklist_table(rows)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    parquet_path = write_private(out_dir / f"{stem}.parquet", sink.getvalue().to_pybytes())
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for row in rows:
        values = []
        for column in COLUMNS:
            value = row[column]
            if column == "cards":
                value = orjson.dumps(value).decode()
            elif column == "key_evidence":
                value = "; ".join(value)
            elif value is None:
                value = ""
            values.append(value)
        writer.writerow(values)
    csv_path = write_private(out_dir / f"{stem}.csv", text.getvalue().encode())
    return parquet_path, csv_path


def run_record(result: ScreenResult, outputs: Mapping[str, str], timings: Mapping[str, float]) -> dict[str, Any]:
    """Machine-readable account of the run: digests, counts, errors by kind, timings. No patient data:
    no patient id, no resource content, no Bundle file names (Synthea names them after the patient)."""
    rows = result.rows[0]
    error_kinds = Counter(row["error"].split(":", 1)[0] for row in rows if row["error"])
    return {
        "schema": RUN_RECORD_SCHEMA,
        "started": result.started,
        "evaluated_as_of": result.now,
        "scheduler": result.scheduler,
        "workers": result.workers,
        "input": {
            "digest": result.scan.digest,
            "files": [
                {
                    "name": os.path.basename(f.path) if f.kind == "ndjson" else f"bundle #{n}",
                    "kind": f.kind,
                    "type": f.resource_type,
                    "compressed": f.compressed,
                    "sha256": f.sha256,
                    "bytes": f.size,
                    "lines": f.lines,
                }
                for n, f in enumerate(result.scan.files, start=1)
            ],
        },
        "rules": [
            {"version": v, "bundle_digest": d} for v, d in zip(result.rule_versions, result.rule_digests, strict=True)
        ],
        "counts": {
            **{k: v for k, v in result.counts.items()},
            "resources_by_type": result.resources_by_type,
            "patients_with_cards": sum(1 for row in rows if row["card_count"]),
            "cards": sum(row["card_count"] for row in rows),
        },
        "errors": {"patients_failed_by_kind": dict(error_kinds), "malformed_lines": result.malformed_at},
        "timings": {k: round(v, 4) for k, v in {**result.timings, **timings}.items()},
        "outputs": dict(outputs),
    }


def write_run_record(record: Mapping[str, Any], out_dir: Path, name: str = "run.json") -> Path:
    return write_private(out_dir / name, orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
