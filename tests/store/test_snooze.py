"""Snooze after an override (issue 15), end to end over HTTP on SQLite and PostgreSQL: an "already addressed"
override hides the card for that patient at the next call, a material change brings it back saying what
changed, and a database that is down or slow shows the card (fail open), counted in a metric."""

from __future__ import annotations

import copy
import functools
import json
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cds.app import create_app
from cds.observability import metrics
from cds.pipeline import Pipeline
from cds.settings import Settings
from cds.store.database import create_store_engine
from tests.conftest import REPO, RULES_DIR, shipped_pipeline

SOURCE_CASE = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())
HOOK = "/cds-services/calciphylaxis-risk"
NAMESPACE = "org.calciphylaxis-cds"
OVERRIDE_SYSTEM = "https://calciphylaxis-cds.org/fhir/CodeSystem/override-reason"
# Warfarin Sodium 5 MG Oral Tablet (RxNorm SCD 855332), as the CDS Hooks sandbox's medication picker offers it.
WARFARIN = {
    "resourceType": "MedicationRequest",
    "id": "warfarin-since-2024",
    "status": "active",
    "intent": "order",
    "medicationCodeableConcept": {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "855332",
                "display": "Warfarin Sodium 5 MG Oral Tablet",
            }
        ],
        "text": "Warfarin Sodium 5 MG Oral Tablet",
    },
    "subject": {"reference": "Patient/source-case-patient"},
    "authoredOn": "2024-01-15",
}


@functools.cache
def pipeline() -> Pipeline:
    return shipped_pipeline()


def make_app(database, **settings) -> TestClient:
    base = {
        "profile": "demo",
        "auth_required": False,
        "rules_dir": RULES_DIR,
        "database_url": database.url,
        "audit_hmac_key": "audit-key-for-tests-0123456789abcdef",
        "database_timeout_seconds": 0.5,
    }
    return TestClient(create_app(Settings(**{**base, **settings}), pipeline=pipeline()))


def call(client: TestClient, request: dict | None = None) -> dict:
    body = copy.deepcopy(request or SOURCE_CASE)
    body["hookInstance"] = str(uuid.uuid4())
    response = client.post(HOOK, json=body)
    assert response.status_code == 200, response.text
    client.app.state.store.flush()
    return response.json()


def family(card: dict) -> str:
    return card["source"]["topic"]["code"]


def override(client: TestClient, card: dict, code: str) -> None:
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        # as the CDS Hooks sandbox sends it: system and code, no display
        "overrideReason": {"reason": {"system": OVERRIDE_SYSTEM, "code": code}},
        "outcomeTimestamp": "2026-12-03T10:00:00Z",
    }
    response = client.post(f"{HOOK}/feedback", json={"feedback": [item]})
    assert response.status_code == 200, response.text


def with_warfarin() -> dict:
    request = copy.deepcopy(SOURCE_CASE)
    request["prefetch"]["meds"]["entry"].append({"resource": WARFARIN})
    return request


def counter(metric, *labels) -> float:
    return metric.labels(*labels)._value.get()


def test_already_addressed_hides_the_card_for_that_patient_only(database):
    client = make_app(database)
    (card,) = call(client)["cards"]
    assert family(card) == "calciphylaxis-risk-after-bone-scan"
    assert any(o["code"] == "already-discussed" for o in card["overrideReasons"])  # reasons that fit the card
    override(client, card, "already-discussed")

    answer = call(client)
    assert answer["cards"] == []
    (hidden,) = answer["extension"][f"{NAMESPACE}.snoozed"]
    assert hidden["template"] == family(card) and hidden["reason"] == "already-discussed"
    # The differential is still there for the EHR: the card is hidden, not the evaluation.
    assert answer["extension"][f"{NAMESPACE}.differential"]

    # Another patient with the same record: every resource is about that patient (the service ignores
    # resources whose subject is not context.patientId).
    other = json.loads(json.dumps(SOURCE_CASE).replace("source-case-patient", "another-patient"))
    assert [family(c) for c in call(client, other)["cards"]] == [family(card)]


def test_a_reason_that_does_not_mean_addressed_does_not_snooze(database):
    client = make_app(database)
    (card,) = call(client)["cards"]
    override(client, card, "some-other-reason")
    assert [family(c) for c in call(client)["cards"]] == [family(card)]


def test_a_new_finding_brings_the_card_back_and_says_what_changed(database):
    client = make_app(database)
    (card,) = call(client)["cards"]
    override(client, card, "diagnosis-established")
    assert call(client)["cards"] == []
    before = counter(metrics.CARDS_SNOOZED, family(card), "shown-again")

    (back,) = call(client, with_warfarin())["cards"]
    assert family(back) == family(card)
    assert back["detail"].startswith("**Shown again** (dismissed on ")
    assert "new finding: " in back["detail"] and "itamin K antagonist" in back["detail"]
    assert "warfarin" in back["detail"].lower()  # and now the advice names the patient's own warfarin
    assert counter(metrics.CARDS_SNOOZED, family(card), "shown-again") == before + 1


def test_a_higher_band_brings_the_card_back_and_says_so(database):
    """The card was overridden when its estimate was lower (the stored snooze says "intermediate"); the same
    findings at a high estimate are a material change."""
    client = make_app(database)
    (card,) = call(client)["cards"]
    assert card["extension"][f"{NAMESPACE}.ruleset"]["band"] == "high"
    override(client, card, "already-discussed")
    assert call(client)["cards"] == []
    engine = create_store_engine(database.url)
    try:
        with engine.begin() as connection:
            assert connection.execute(text("UPDATE card_snooze SET band = 'intermediate'")).rowcount == 1
    finally:
        engine.dispose()

    (back,) = call(client)["cards"]
    assert family(back) == family(card)
    assert back["detail"].startswith("**Shown again** (dismissed on ")
    assert "the estimate rose from intermediate to high" in back["detail"] and "new finding" not in back["detail"]


def test_a_database_outage_shows_the_card(database):
    client = make_app(database)
    (card,) = call(client)["cards"]
    override(client, card, "already-discussed")
    assert call(client)["cards"] == []
    before = counter(metrics.SNOOZE_LOOKUPS, "error") + counter(metrics.SNOOZE_LOOKUPS, "timeout")
    database.down()
    try:
        body = copy.deepcopy(SOURCE_CASE) | {"hookInstance": str(uuid.uuid4())}
        started = time.perf_counter()
        response = client.post(HOOK, json=body)
        elapsed = time.perf_counter() - started
    finally:
        database.up()
    assert response.status_code == 200
    assert [family(c) for c in response.json()["cards"]] == [family(card)]  # fail open: advice is shown
    assert counter(metrics.SNOOZE_LOOKUPS, "error") + counter(metrics.SNOOZE_LOOKUPS, "timeout") == before + 1
    assert elapsed < 3


def test_a_slow_lookup_is_cut_short_and_shows_the_card(database, monkeypatch):
    import cds.web.snooze

    client = make_app(database, snooze_lookup_timeout_seconds=0.05)
    (card,) = call(client)["cards"]
    override(client, card, "already-discussed")
    real = cds.web.snooze.active_snoozes

    def slow(*args):
        time.sleep(0.5)
        return real(*args)

    monkeypatch.setattr(cds.web.snooze, "active_snoozes", slow)
    before = counter(metrics.SNOOZE_LOOKUPS, "timeout")
    assert [family(c) for c in call(client)["cards"]] == [family(card)]
    assert counter(metrics.SNOOZE_LOOKUPS, "timeout") == before + 1


def test_the_lookup_uses_its_index(database):
    make_app(database)  # migrates
    engine = create_store_engine(database.url)
    query = (
        "SELECT * FROM card_snooze WHERE patient_hash = 'x' AND card_family IN ('a', 'b') "
        "AND until > CURRENT_TIMESTAMP ORDER BY snoozed_at DESC"
    )
    try:
        with engine.connect() as connection:
            if database.kind == "sqlite":
                plan = " ".join(str(r) for r in connection.execute(text(f"EXPLAIN QUERY PLAN {query}")))
            else:
                connection.execute(text("SET enable_seqscan = off"))
                plan = " ".join(str(r) for r in connection.execute(text(f"EXPLAIN {query}")))
    finally:
        engine.dispose()
    assert "ix_card_snooze_lookup" in plan, plan


def test_a_critical_card_cannot_be_snoozed():
    from pydantic import ValidationError

    from cds.engine.model import CardTemplate

    card = {
        "id": "x",
        "services": ["s"],
        "summary": "s",
        "indicator": "critical",
        "source": {"label": "l"},
        "when": {"intent": True},
        "snooze_days": 30,
    }
    with pytest.raises(ValidationError, match="never snoozed"):
        CardTemplate.model_validate(card)
    assert CardTemplate.model_validate({**card, "indicator": "warning"}).snooze_days == 30


def test_feedback_report_gives_rates_per_card_family_and_per_reason(database, capsys):
    """Overrides sent as the sandbox sends them (code, no display) are named by the card's own reasons."""
    from cds.cli import main as cds_main

    client = make_app(database)
    first = call(client)["cards"][0]
    override(client, first, "already-discussed")
    # Every resource is about the second patient (the service ignores resources about another patient).
    second = json.loads(json.dumps(SOURCE_CASE).replace("source-case-patient", "second-patient"))
    override(client, call(client, second)["cards"][0], "diagnosis-established")
    # A card of another family, accepted: the warfarin order of a patient with suspected calciphylaxis.
    order = json.loads((REPO / "fhir_examples" / "requests" / "order-warfarin-suspected.order-select.json").read_text())
    answer = client.post("/cds-services/calciphylaxis-order-select", json=order).json()
    client.app.state.store.flush()
    (vka,) = [c for c in answer["cards"] if c.get("suggestions")]
    accepted = {
        "card": vka["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": vka["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-12-03T10:01:00Z",
    }
    assert (
        client.post("/cds-services/calciphylaxis-order-select/feedback", json={"feedback": [accepted]}).status_code
        == 200
    )

    assert cds_main(["feedback", "report", "--database-url", database.url, "--rules", str(RULES_DIR), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    families = {f["family"]: f for f in report["families"]}
    family_entry = families[family(first)]
    assert (family_entry["cards"], family_entry["accepted"], family_entry["overridden"]) == (2, 0, 2)
    assert family_entry["override_rate"] == 1.0 and family_entry["accept_rate"] == 0.0
    assert (families[family(vka)]["accepted"], families[family(vka)]["accept_rate"]) == (1, 1.0)
    assert report["families"][0]["family"] == family(first)  # the most overridden first
    discussed = f"Already discussed with nephrology or dermatology ({OVERRIDE_SYSTEM}|already-discussed)"
    assert family_entry["reasons"][discussed] == 1
    by_reason = {r["reason"]: r for r in report["reasons"]}
    assert by_reason[discussed]["families"] == {family(first): 1}

    assert cds_main(["feedback", "report", "--database-url", database.url, "--rules", str(RULES_DIR)]) == 0
    text_report = capsys.readouterr().out
    assert f"{family(first)}: 2 card(s), 0 accepted, 2 overridden (0% accepted, 100% overridden)" in text_report
    assert f"{family(vka)}: 1 card(s), 1 accepted, 0 overridden (100% accepted, 0% overridden)" in text_report
    assert "Per override reason" in text_report and "Already discussed with nephrology or dermatology" in text_report
