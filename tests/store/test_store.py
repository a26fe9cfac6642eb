"""Feedback and audit store, on SQLite and PostgreSQL, through the HTTP app as an EHR uses it."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, select, text

from cds.app import create_app
from cds.auth import SqlReplayStore
from cds.cli import main as cds_main
from cds.hooks.models import Card, CDSResponse, Source, Suggestion
from cds.pipeline import Evaluation, Pipeline
from cds.settings import Settings
from cds.store.database import alembic_config, create_store_engine, engine_url
from cds.store.models import CardAudit, CardRule, CardSuggestion, FeedbackRecord
from tests.conftest import REPO, RULES_DIR

SOURCE_CASE = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())
PATIENT_ID = SOURCE_CASE["context"]["patientId"]
HMAC_KEY = "audit-key-for-tests-0123456789abcdef"
HOOK = "/cds-services/calciphylaxis-risk"
RULES = ("calciphylaxis.esrd-with-painful-ulcer", "warfarin.review-in-esrd")


class CardPipeline(Pipeline):
    """The real services, answering every call with one card that has two suggestions."""

    def evaluate(self, service, request, prefetch, now, want_trace=False, pages_base_url=None):
        card = Card(
            summary="Calciphylaxis is possible: painful ulcer in a patient on dialysis",
            indicator="warning",
            source=Source(label="Calciphylaxis CDS"),
            suggestions=[Suggestion(label="Order a skin biopsy"), Suggestion(label="Review warfarin")],
            selectionBehavior="any",
        )
        return Evaluation(response=CDSResponse(cards=[card]), rules_fired=RULES, card_rules={str(card.uuid): RULES})


def make_app(database, **settings) -> TestClient:
    base = {
        "profile": "demo",
        "auth_required": False,
        "rules_dir": RULES_DIR,
        "database_url": database.url,
        "audit_hmac_key": HMAC_KEY,
        "database_timeout_seconds": 0.5,
        # Outside the checkout (the default for PostgreSQL is ./data); one subfolder per database.
        "audit_spool_dir": Path(tempfile.gettempdir()) / "cds-test-audit-spool",
    }
    return TestClient(create_app(Settings(**{**base, **settings}), pipeline=card_pipeline()))


@functools.cache
def card_pipeline() -> CardPipeline:
    # Loading the rule set takes a second or two; the pipeline keeps no state between calls.
    return CardPipeline.load(RULES_DIR, run_tests=False)  # the gate is not what the store tests test


def issue_card(client: TestClient, written: bool | None = True) -> dict:
    """A card from the hook; its audit record written by the store's writer (``written=None``: not waited for)."""
    response = client.post(HOOK, json={**SOURCE_CASE, "hookInstance": str(uuid.uuid4())})
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    if written is not None:
        assert client.app.state.store.flush() is written
    return card


def accepted(card: dict, when: str = "2026-11-21T10:05:31Z") -> dict:
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": when,
    }


def overridden(card: dict, code: str = "not-relevant", comment: str | None = None) -> dict:
    reason: dict = {
        "reason": {"system": "http://example.org/override", "code": code, "display": code.replace("-", " ")}
    }
    if comment:
        reason["userComment"] = comment
    return {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": reason,
        "outcomeTimestamp": "2026-11-21T10:06:00Z",
    }


def counts(response) -> tuple[int, int]:
    body = response.json()
    return body["accepted"], body["duplicates"]


def rows(database, model) -> list:
    engine = create_engine(engine_url(database.url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(model)))
    finally:
        engine.dispose()


def test_migrations_create_the_schema(database):
    client = make_app(database)
    engine = create_store_engine(database.url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"card_audit", "card_rule", "card_suggestion", "feedback", "jwt_replay", "alembic_version"} <= tables
        assert {"card_state", "card_snooze"} <= tables
        with engine.connect() as connection:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()  # the newest migration
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
            if database.kind == "sqlite":
                assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        engine.dispose()
    assert client.get("/healthz").json()["store"]["status"] == "ok"
    make_app(database)  # a second start migrates nothing and fails nothing


def test_every_card_is_audited_with_a_keyed_patient_hash_and_no_phi(database):
    client = make_app(database)
    card = issue_card(client)
    [audit] = rows(database, CardAudit)
    assert audit.card_uuid == card["uuid"] and audit.service_id == "calciphylaxis-risk"
    assert audit.hook == "patient-view" and uuid.UUID(audit.hook_instance)
    assert audit.ruleset_version == client.app.state.pipeline.version and audit.indicator == "warning"
    assert audit.patient_hash == hmac.new(HMAC_KEY.encode(), PATIENT_ID.encode(), hashlib.sha256).hexdigest()
    assert abs((audit.issued_at.replace(tzinfo=audit.issued_at.tzinfo or UTC) - datetime.now(UTC)).total_seconds()) < 60
    assert {r.rule_id for r in rows(database, CardRule)} == set(RULES)
    assert {r.suggestion_uuid for r in rows(database, CardSuggestion)} == {s["uuid"] for s in card["suggestions"]}
    everything = json.dumps(
        [list(map(str, r)) for m in (CardAudit, CardRule, CardSuggestion) for r in rows(database, m)]
    )
    assert PATIENT_ID not in everything and "Practitioner" not in everything and "dialysis-visit" not in everything


def test_feedback_is_stored_once_however_often_it_is_posted(database):
    client = make_app(database)
    card = issue_card(client)
    body = {"feedback": [accepted(card)]}
    first = client.post(f"{HOOK}/feedback", json=body)
    assert first.status_code == 200 and counts(first) == (1, 0)
    again = client.post(f"{HOOK}/feedback", json=body)
    assert again.status_code == 200 and counts(again) == (0, 1)
    # A batch repeating an item and adding a new one stores only the new one.
    batch = client.post(f"{HOOK}/feedback", json={"feedback": [accepted(card), overridden(card), overridden(card)]})
    assert counts(batch) == (1, 2)
    assert [i["status"] for i in batch.json()["items"]] == ["duplicate", "accepted", "duplicate"]
    stored = rows(database, FeedbackRecord)
    assert sorted(r.outcome for r in stored) == ["accepted", "overridden"]
    assert all(r.card_uuid == card["uuid"] for r in stored)


def test_feedback_on_an_unknown_card_or_suggestion_is_refused_per_item(database):
    client = make_app(database)
    card = issue_card(client)
    unknown = {**overridden(card), "card": str(uuid.uuid4())}
    alone = client.post(f"{HOOK}/feedback", json={"feedback": [unknown]})
    assert alone.status_code == 422
    outcome = alone.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "feedback[0].card" in outcome["issue"][0]["diagnostics"]
    # In a batch, the unknown card does not cost the known one its feedback.
    mixed = client.post(f"{HOOK}/feedback", json={"feedback": [overridden(card), unknown]})
    assert mixed.status_code == 200 and counts(mixed) == (1, 0)
    assert [i["status"] for i in mixed.json()["items"]] == ["accepted", "unknown-card"]
    assert "feedback[1].card" in mixed.json()["items"][1]["diagnostics"]
    assert [r.card_uuid for r in rows(database, FeedbackRecord)] == [card["uuid"]]
    bad_suggestion = {**accepted(card), "acceptedSuggestions": [{"id": str(uuid.uuid4())}]}
    assert client.post(f"{HOOK}/feedback", json={"feedback": [bad_suggestion]}).status_code == 422
    # The card was issued by another service: unknown here.
    other = client.post("/cds-services/calciphylaxis-order-sign/feedback", json={"feedback": [overridden(card)]})
    assert other.status_code == 422
    assert len(rows(database, FeedbackRecord)) == 1


def test_hooks_keep_answering_while_the_database_is_down_and_the_audit_catches_up(database, caplog):
    client = make_app(database)
    first = issue_card(client)
    database.down()
    try:
        during = issue_card(client, written=None)  # answered while the database is down
        assert client.app.state.store.flush() is False
        health = client.get("/healthz").json()["store"]
        assert health["status"] == "unavailable"
        assert health["pending_audit_records"] == 1 and health["audit_write_failures"] >= 1
        assert any("audit write failed" in r.getMessage() for r in caplog.records)
    finally:
        database.up()
    after = issue_card(client)
    audited = {r.card_uuid for r in rows(database, CardAudit)}
    assert audited == {first["uuid"], during["uuid"], after["uuid"]}
    assert client.get("/healthz").json()["store"]["pending_audit_records"] == 0
    # Feedback on the card issued during the outage is now accepted.
    assert client.post(f"{HOOK}/feedback", json={"feedback": [overridden(during)]}).status_code == 200


def test_feedback_is_503_while_the_database_is_down_and_never_lost_once_acknowledged(database):
    client = make_app(database)
    card = issue_card(client)
    body = {"feedback": [overridden(card, comment="patient declined")]}
    database.down()
    try:
        response = client.post(f"{HOOK}/feedback", json=body)
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
        assert response.json()["issue"][0]["code"] == "transient"
    finally:
        database.up()
    assert rows(database, FeedbackRecord) == []
    retried = client.post(f"{HOOK}/feedback", json=body)
    assert retried.status_code == 200 and counts(retried) == (1, 0)
    # Acknowledged means committed: a fresh app (another process) sees it.
    [stored] = rows(database, FeedbackRecord)
    assert stored.override_comment == "patient declined" and stored.override_code == "not-relevant"


def test_the_service_starts_while_the_database_is_down(database):
    make_app(database)  # creates the schema
    database.down()
    try:
        client = make_app(database)
        assert client.get("/healthz").json()["store"]["status"] == "unavailable"
        issue_card(client, written=False)
    finally:
        database.up()


def test_feedback_report_per_rule_and_per_card(database, capsys):
    client = make_app(database)
    cards = [issue_card(client) for _ in range(3)]
    client.post(f"{HOOK}/feedback", json={"feedback": [accepted(cards[0])]})
    client.post(f"{HOOK}/feedback", json={"feedback": [overridden(cards[1], "already-biopsied")]})
    client.post(f"{HOOK}/feedback", json={"feedback": [overridden(cards[2], "already-biopsied", "done last week")]})

    assert cds_main(["feedback", "report", "--database-url", database.url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cards_issued"] == 3 and report["feedback_items"] == 3
    by_rule = {r["rule"]: r for r in report["rules"]}
    assert set(by_rule) == set(RULES)
    for entry in by_rule.values():
        assert (entry["cards"], entry["accepted"], entry["overridden"]) == (3, 1, 2)
        assert entry["reasons"] == {"already biopsied (http://example.org/override|already-biopsied)": 2}
    by_card = {c["card"]: c for c in report["cards"]}
    assert by_card[cards[2]["uuid"]]["comments"] == ["done last week"]
    assert by_card[cards[0]["uuid"]]["accepted"] == 1 and by_card[cards[0]["uuid"]]["rules"] == sorted(RULES)

    assert cds_main(["feedback", "report", "--database-url", database.url]) == 0
    text_report = capsys.readouterr().out
    assert f"{RULES[0]}: 3 card(s), 1 accepted, 2 overridden (33% accepted)" in text_report
    assert "override: already biopsied" in text_report


def test_the_shared_replay_store_refuses_a_jti_seen_by_another_worker(database):
    make_app(database)  # schema
    engines = [create_store_engine(database.url), create_store_engine(database.url)]
    try:
        worker_a, worker_b = (SqlReplayStore(e) for e in engines)
        assert asyncio.run(worker_a.remember("https://ehr.example.org", "jti-1", 1300.0, now=1000.0))
        assert not asyncio.run(worker_b.remember("https://ehr.example.org", "jti-1", 1300.0, now=1001.0))
        assert asyncio.run(worker_b.remember("https://other.example.org", "jti-1", 1300.0, now=1001.0))
        # Its token expired long ago: the jti is forgotten (and such a token is refused as expired anyway).
        assert asyncio.run(worker_a.remember("https://ehr.example.org", "jti-1", 2300.0, now=2000.0))
    finally:
        for engine in engines:
            engine.dispose()


def test_the_report_cli_says_when_the_database_is_unreachable(capsys, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    assert cds_main(["feedback", "report", "--database-url", f"sqlite:///{blocked}/cds.sqlite3"]) == 1
    assert "cds feedback report" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["postgresql://u:p@h/db", "postgres://u:p@h/db"])
def test_postgres_urls_use_psycopg_3(url):
    assert engine_url(url) == "postgresql+psycopg://u:p@h/db"


def test_the_audit_queue_is_bounded_while_the_database_is_down(database):
    client = make_app(database, audit_queue_limit=2, audit_spool=False)  # the memory queue, without the spool
    cards = []
    database.down()
    try:
        cards = [issue_card(client, written=None) for _ in range(3)]
        assert client.app.state.store.flush() is False
        health = client.get("/healthz").json()["store"]
        assert (health["pending_audit_records"], health["audit_records_dropped"]) == (2, 1)
    finally:
        database.up()
    assert client.app.state.store.flush() is True
    assert {r.card_uuid for r in rows(database, CardAudit)} == {c["uuid"] for c in cards[1:]}  # the oldest was dropped


def test_readyz_needs_the_store_only_when_configured(database):
    optional = make_app(database)
    required = make_app(database, store_required_for_readiness=True)
    assert optional.get("/readyz").status_code == 200 and required.get("/readyz").status_code == 200
    database.down()
    try:
        assert optional.get("/readyz").status_code == 200  # hooks still answer without the store
        unready = required.get("/readyz")
        assert unready.status_code == 503 and "store" in unready.json()["issue"][0]["diagnostics"]
    finally:
        database.up()
    assert required.get("/readyz").status_code == 200


def test_cards_answered_while_the_database_is_down_survive_the_process_in_the_spool(database, tmp_path):
    spool = tmp_path / "spool"
    client = make_app(database, audit_spool_dir=spool)
    database.down()
    try:
        during = [issue_card(client, written=None) for _ in range(3)]
        assert client.get("/healthz").json()["store"]["pending_audit_records"] == 3
    finally:
        database.up()
    # This process dies without flushing; a new one (another worker, or after a restart) takes over the spool.
    client.app.state.store._stopping = True
    restarted = make_app(database, audit_spool_dir=spool)
    feedback = restarted.post(f"{HOOK}/feedback", json={"feedback": [overridden(c) for c in during]})
    assert feedback.status_code == 200 and counts(feedback) == (3, 0)
    assert {c["uuid"] for c in during} <= {r.card_uuid for r in rows(database, CardAudit)}
    assert restarted.get("/healthz").json()["store"]["pending_audit_records"] == 0


def test_feedback_is_idempotent_on_card_outcome_and_time_and_bounded_per_card(database):
    client = make_app(database, feedback_per_card_limit=3)
    card = issue_card(client)
    item = overridden(card, comment="first wording")
    assert counts(client.post(f"{HOOK}/feedback", json={"feedback": [item]})) == (1, 0)
    # The same decision re-sent with other details and the instant in another zone is the same item.
    reworded = {
        **overridden(card, code="other", comment="second wording"),
        "outcomeTimestamp": "2026-11-21T12:06:00+02:00",
    }
    assert counts(client.post(f"{HOOK}/feedback", json={"feedback": [reworded]})) == (0, 1)
    # 10,000 re-stamped items in one post: refused before the store; in small posts: capped per card.
    flood = [{**item, "outcomeTimestamp": f"2026-11-21T10:{i // 60:02d}:{i % 60:02d}Z"} for i in range(10000)]
    assert client.post(f"{HOOK}/feedback", json={"feedback": flood}).status_code == 422
    capped = client.post(f"{HOOK}/feedback", json={"feedback": flood[1:5]})
    assert [i["status"] for i in capped.json()["items"]] == ["accepted", "accepted", "over-limit", "over-limit"]
    assert len(rows(database, FeedbackRecord)) == 3


def test_healthz_sees_a_deleted_sqlite_file_and_does_not_create_a_new_one(tmp_path):
    path = tmp_path / "cds.sqlite3"
    client = make_app(type("Db", (), {"url": f"sqlite:///{path}"})())
    card = issue_card(client)
    assert client.get("/healthz").json()["store"]["status"] == "ok"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = client.get("/healthz").json()["store"]
    assert store["status"] == "unavailable"
    assert not path.exists(), "a health check must not create an empty database in the lost one's place"
    feedback = client.post(f"{HOOK}/feedback", json={"feedback": [overridden(card)]})
    assert feedback.status_code == 503
    assert not path.exists()


def test_a_restarted_store_moves_spooled_records_in_without_waiting_for_feedback(database, tmp_path):
    spool = tmp_path / "spool"
    client = make_app(database, audit_spool_dir=spool)
    database.down()
    try:
        during = issue_card(client, written=None)
    finally:
        database.up()
    client.app.state.store._stopping = True  # the process that spooled is gone
    restarted = make_app(database, audit_spool_dir=spool)
    deadline = time.monotonic() + 10
    while during["uuid"] not in {r.card_uuid for r in rows(database, CardAudit)} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert during["uuid"] in {r.card_uuid for r in rows(database, CardAudit)}
    assert restarted.get("/healthz").json()["store"]["pending_audit_records"] == 0
