"""The hook path's snooze lookup on the store's pooled SQLite connections (ADR 0015): right after the database
file is replaced or removed, and from many threads at once."""

from __future__ import annotations

import shutil
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import SQLAlchemyError

from cds.store import Store
from cds.store.models import CardSnooze, table_of
from cds.store.snooze import active_snoozes

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PATIENT = "a" * 64
FAMILY = "calciphylaxis-risk-card"


def open_store(path: Path) -> Store:
    return Store.open(f"sqlite:///{path}", b"k" * 32)


def snooze(store: Store, family: str = FAMILY, patient: str = PATIENT) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            table_of(CardSnooze).insert(),
            {
                "patient_hash": patient,
                "card_family": family,
                "card_uuid": str(uuid.uuid4()),
                "reason_code": "already-discussed",
                "band": "high",
                "findings": '["rule-a"]',
                "snoozed_at": NOW - timedelta(days=1),
                "until": NOW + timedelta(days=30),
            },
        )


def test_a_lookup_after_the_database_file_is_replaced_reads_the_new_file(tmp_path: Path):
    path = tmp_path / "cds.sqlite3"
    other_path = tmp_path / "other" / "cds.sqlite3"
    store, other = open_store(path), open_store(other_path)
    try:
        snooze(store)
        snooze(other, family="other-family")
        assert set(active_snoozes(store, PATIENT, {FAMILY, "other-family"}, NOW)) == {FAMILY}  # connections kept
        other.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(other_path, tmp_path / "incoming")
        (tmp_path / "incoming").replace(path)  # a restored backup, moved into place under the running service
        assert set(active_snoozes(store, PATIENT, {FAMILY, "other-family"}, NOW)) == {"other-family"}
    finally:
        store.close()


@pytest.mark.parametrize("replacement", ["nothing", "directory"])
def test_a_lookup_after_the_database_file_is_gone_fails_and_creates_nothing(tmp_path: Path, replacement: str):
    path = tmp_path / "cds.sqlite3"
    store = open_store(path)
    try:
        snooze(store)
        assert set(active_snoozes(store, PATIENT, {FAMILY}, NOW)) == {FAMILY}
        parked = tmp_path / "parked"
        parked.mkdir()
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                shutil.move(f"{path}{suffix}", parked)
        if replacement == "directory":
            path.mkdir()
        with pytest.raises((SQLAlchemyError, OSError)):  # the caller (SnoozeGate) shows the card
            active_snoozes(store, PATIENT, {FAMILY}, NOW)
        assert path.is_dir() if replacement == "directory" else not path.exists()
    finally:
        store.close()


def test_concurrent_lookups_each_get_their_own_patients_snoozes(tmp_path: Path):
    store = open_store(tmp_path / "cds.sqlite3")
    patients = [f"{n:064x}" for n in range(16)]
    try:
        for patient in patients[::2]:
            snooze(store, patient=patient)
        found: dict[str, bool] = {}
        errors: list[BaseException] = []

        def look(patient: str) -> None:
            try:
                for _ in range(20):
                    found[patient] = FAMILY in active_snoozes(store, patient, {FAMILY}, NOW)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=look, args=(p,)) for p in patients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert found == {p: i % 2 == 0 for i, p in enumerate(patients)}
    finally:
        store.close()
