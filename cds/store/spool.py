"""The durable spool of audit records that could not reach the database (ADR 0008)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cds.store.records import AuditRecord


class AuditSpool:
    """Audit records that could not reach the database, in append-only JSON-lines files.

    One file per process (``spool-<pid>.jsonl``) in a shared folder; each append is
    fsynced before the hook answers, so a kill -9 keeps it. Any process may replay
    any file: an exclusive ``flock`` on the file serialises appends and replays.
    """

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"spool-{os.getpid()}.jsonl"

    def append(self, records: Sequence[AuditRecord]) -> bool:
        """Durably append ``records``; False when the spool is full (nothing is written then)."""
        with open(self.path, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if self.count() + len(records) > self.limit:
                    return False
                handle.write(b"".join(r.to_json() + b"\n" for r in records))
                handle.flush()
                os.fsync(handle.fileno())
                return True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def count(self) -> int:
        total = 0
        for path in self.folder.glob("spool-*.jsonl"):
            try:
                with open(path, "rb") as handle:
                    total += sum(1 for line in handle if line.strip())
            except OSError:
                continue
        return total

    def replay(self, write: Any) -> None:
        """Give every spooled record to ``write(records)``; a file is emptied only after ``write`` returned."""
        for path in sorted(self.folder.glob("spool-*.jsonl")):
            try:
                handle = open(path, "r+b")  # noqa: SIM115 -- closed by the `with` below; only open() may skip a file
            except OSError:
                continue
            with handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    records = [AuditRecord.from_json(line) for line in handle.read().splitlines() if line.strip()]
                    if records:
                        write(records)  # raises if the database refuses: the file is kept
                    handle.truncate(0)
                    handle.flush()
                    os.fsync(handle.fileno())
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            if path != self.path:
                path.unlink(missing_ok=True)  # an ended process's file, now empty
