"""Coverage telemetry in the audit store (issue 13 item 6): codes no value set recognised, with their
counts and the text layer's match, kept across workers and restarts without patient data. SQLite and
PostgreSQL (tests/store/conftest.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text

from cds.cli import main as cds_main
from cds.fhir.gaps import GAPS, GapCounter
from cds.settings import Settings
from cds.store.database import create_store_engine, migrate
from cds.store.gaps import GapRecorder, record_gaps, stored_gaps
from cds.store.models import TerminologyGap
from tests.conftest import RULES_DIR, shipped_app

SCT = "http://snomed.info/sct"
LOCAL = "http://hospital.example.org/fhir/CodeSystem/problem-list"
PATIENT = "pt-unique-4711"
# A site's own problem-list code for calciphylaxis, with its words: no value set lists the code, the
# text layer recognises the concept. And a SNOMED CT concept the service has no use for:
# 38341003 |Hypertensive disorder, systemic arterial| (SNOMED CT International, Clinical finding).
LOCAL_TEXT = "Calciphylaxis, both calves (biopsy 2026-02-11)"


def _engine(database):  # type: ignore[no-untyped-def]
    engine = create_store_engine(database.url, 2.0)
    migrate(engine)
    return engine


def _gap_rows(engine) -> list[dict]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(select(TerminologyGap.__table__))]


def test_migration_creates_the_gap_table_with_codes_and_counts_only(database) -> None:
    engine = _engine(database)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("terminology_gap")}
        assert columns == {"system", "code", "resource_type", "count", "text_match", "first_seen", "last_seen"}
    finally:
        engine.dispose()


def test_counts_add_up_across_writes_and_a_later_text_match_fills_an_empty_one(database) -> None:
    engine = _engine(database)
    counter = GapCounter()
    try:
        counter.add({(LOCAL, "PL-20931", "Condition"): "", (SCT, "38341003", "Condition"): ""})
        assert record_gaps(engine, counter.take_pending(), datetime(2026, 12, 1, tzinfo=UTC)) == 2
        counter.add({(LOCAL, "PL-20931", "Condition"): "calciphylaxis"})  # a second worker, say
        counter.add({(LOCAL, "PL-20931", "Condition"): ""})
        record_gaps(engine, counter.take_pending(), datetime(2026, 12, 2, tzinfo=UTC))
        assert counter.take_pending() == []  # taken once
        rows = stored_gaps(engine)
        assert [(r.code, r.count, r.text_match) for r in rows] == [
            ("PL-20931", 3, "calciphylaxis"),  # the text layer's match first: evidence for a value set
            ("38341003", 1, ""),
        ]
        local = next(r for r in _gap_rows(engine) if r["code"] == "PL-20931")
        assert local["first_seen"].date().isoformat() == "2026-12-01"
        assert local["last_seen"].date().isoformat() == "2026-12-02"
    finally:
        engine.dispose()


def test_a_database_that_is_down_loses_no_counts(database) -> None:
    engine = _engine(database)
    counter = GapCounter()
    recorder = GapRecorder(engine, counter, interval=3600)
    try:
        counter.add({(SCT, "38341003", "Condition"): ""})
        database.down()
        engine.dispose()
        assert recorder.flush() is False
        counter.add({(SCT, "38341003", "Condition"): ""})
        database.up()
        assert recorder.flush() is True
        assert [(r.code, r.count) for r in stored_gaps(engine)] == [("38341003", 2)]
    finally:
        engine.dispose()


def _request(patient: str) -> dict:
    condition = {
        "resourceType": "Condition",
        "id": "local-1",
        "subject": {"reference": f"Patient/{patient}"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": LOCAL, "code": "PL-20931", "display": LOCAL_TEXT}], "text": LOCAL_TEXT},
        "onsetDateTime": "2026-02-11",
    }
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": patient},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": patient, "gender": "female", "birthDate": "1961-04-02"},
            "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": condition}]},
            "labs": {"resourceType": "Bundle", "type": "searchset", "total": 0},
            "meds": {"resourceType": "Bundle", "type": "searchset", "total": 0},
        },
    }


def test_the_service_stores_what_it_could_not_recognise_without_patient_data(database, tmp_path, capsys) -> None:
    settings = Settings(
        profile="demo",
        auth_required=False,
        rules_dir=RULES_DIR,
        database_url=database.url,
        audit_hmac_key="audit-key-for-tests-0123456789abcdef",
        audit_spool_dir=tmp_path / "spool",
    )
    GAPS.clear()
    with TestClient(shipped_app(settings)) as client:
        for _ in range(2):
            response = client.post("/cds-services/calciphylaxis-risk", json=_request(PATIENT))
            assert response.status_code == 200, response.text
        assert client.app.state.store.gap_recorder.flush() is True
    engine = _engine(database)
    try:
        [row] = [r for r in _gap_rows(engine) if r["code"] == "PL-20931"]
        assert (row["system"], row["resource_type"], row["count"], row["text_match"]) == (
            LOCAL,
            "Condition",
            2,
            "calciphylaxis",
        )
        with engine.connect() as connection:
            dumped = json.dumps(
                [list(r) for r in connection.execute(text("SELECT * FROM terminology_gap"))], default=str
            )
        for phi in (PATIENT, "both calves", "2026-02-11", "1961-04-02"):
            assert phi not in dumped
    finally:
        engine.dispose()
    # `cds terminology gaps` without files lists what the service stored.
    capsys.readouterr()
    assert cds_main(["terminology", "gaps", "--database-url", database.url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"system": LOCAL, "code": "PL-20931", "resource_type": "Condition", "count": 2} | {
        "text_match": "calciphylaxis"
    } in listed


def test_cds_terminology_gaps_says_when_the_database_is_unreachable(capsys, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'is-a-file'}"
    (tmp_path / "missing-dir").write_text("not a directory")
    assert cds_main(["terminology", "gaps", "--database-url", url]) == 1
    assert "cds terminology gaps:" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_leftover_counts():  # type: ignore[no-untyped-def]
    yield
    GAPS.clear()
