"""The hook route's one worker-thread hop (cds.web.call, issue 20).

* the evaluation, the snooze lookup and the audit write run in one worker thread, not on the event loop;
* the route answers every shipped case exactly as ``answer_hook`` (the path ``cds evaluate`` takes) does;
* when the snooze lookup outlives its timeout the event loop takes the call over: the card is shown and
  its audit is written (its feedback is accepted), and the late lookup changes nothing.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import cds.web.hooks
import cds.web.snooze
from cds.app import create_app
from cds.hooks.errors import HookError
from cds.hooks.handler import answer_hook
from cds.observability import metrics
from cds.pipeline import Pipeline
from cds.settings import Settings
from tests.conftest import REPO, RULES_DIR

REQUESTS = sorted((REPO / "fhir_examples" / "requests").glob("*.json"))
SOURCE_CASE = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())
HOOK = "/cds-services/calciphylaxis-risk"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OVERRIDE_SYSTEM = "https://calciphylaxis-cds.org/fhir/CodeSystem/override-reason"


@functools.cache
def pipeline() -> Pipeline:
    return Pipeline.load(RULES_DIR)


def make_client(tmp_path: Path, **settings: Any) -> TestClient:
    base = {
        "profile": "demo",
        "auth_required": False,
        "rules_dir": RULES_DIR,
        "database_url": f"sqlite:///{tmp_path / 'cds.sqlite3'}",
        "audit_hmac_key": "audit-key-for-tests-0123456789abcdef",
    }
    return TestClient(create_app(Settings(**{**base, **settings}), pipeline=pipeline(), clock=lambda: NOW))


def fresh(body: dict) -> dict:
    body = copy.deepcopy(body)
    body["hookInstance"] = str(uuid.uuid4())
    return body


def without_uuids(value: Any) -> Any:
    """Card and suggestion uuids are random per answer; everything else must be equal."""
    if isinstance(value, dict):
        return {k: "<uuid>" if k == "uuid" else without_uuids(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_uuids(v) for v in value]
    return value


def override(client: TestClient, card: dict, code: str) -> None:
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": OVERRIDE_SYSTEM, "code": code}},
        "outcomeTimestamp": NOW.isoformat(),
    }
    response = client.post(f"{HOOK}/feedback", json={"feedback": [item]})
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text


def test_evaluation_snooze_lookup_and_audit_share_one_worker_thread(tmp_path, monkeypatch):
    with make_client(tmp_path) as client:
        _one_thread(client, monkeypatch)


def _one_thread(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    (card,) = client.post(HOOK, json=fresh(SOURCE_CASE)).json()["cards"]
    override(client, card, "already-discussed")
    seen: dict[str, int] = {}
    loop_threads: set[int] = set()

    def spy(name: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen[name] = threading.get_ident()
            return real(*args, **kwargs)

        return wrapper

    store = client.app.state.store
    monkeypatch.setattr(cds.web.snooze, "active_snoozes", spy("lookup", cds.web.snooze.active_snoozes))
    monkeypatch.setattr(store, "record_issued", spy("audit", store.record_issued))
    monkeypatch.setattr(pipeline(), "evaluate", spy("evaluate", pipeline().evaluate))

    real_read = cds.web.hooks.read_json_body

    async def read_on_the_loop(request: Any) -> bytes:
        loop_threads.add(threading.get_ident())
        return await real_read(request)

    monkeypatch.setattr(cds.web.hooks, "read_json_body", read_on_the_loop)
    # Snoozed: evaluation and lookup, no audit (no card sent). A changed band: all three.
    assert client.post(HOOK, json=fresh(SOURCE_CASE)).json()["cards"] == []
    assert set(seen) == {"evaluate", "lookup"} and seen["evaluate"] == seen["lookup"]
    seen.clear()
    other = fresh(SOURCE_CASE)
    other["context"]["patientId"] = other["prefetch"]["patient"]["id"] = "another-patient"
    text = json.dumps(other).replace('"Patient/source-case-patient"', '"Patient/another-patient"')
    assert len(client.post(HOOK, json=json.loads(text)).json()["cards"]) == 1
    assert set(seen) == {"evaluate", "lookup", "audit"} and len(set(seen.values())) == 1
    (loop_thread,) = loop_threads  # one event loop for the client's life (``with``)
    assert loop_thread not in seen.values()


@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.name)
def test_the_route_answers_like_answer_hook(tmp_path, path):
    body = json.loads(path.read_text())
    service = next(s for s in pipeline().services if s.hook == body.get("hook"))
    client = make_client(tmp_path, snooze_enabled=False)
    over_http = client.post(f"/cds-services/{service.id}", json=body)
    try:
        evaluation = asyncio.run(
            answer_hook(pipeline(), service, copy.deepcopy(body), NOW, pages_base_url="http://testserver")
        )
    except HookError as exc:  # e.g. a prefetch that must be fetched, with no FHIR server to fetch from
        assert over_http.status_code == exc.status, over_http.text
        assert over_http.json()["issue"][0]["diagnostics"] == exc.diagnostics[0]
        return
    assert over_http.status_code == 200, over_http.text
    assert without_uuids(over_http.json()) == without_uuids(evaluation.response.to_wire())


def test_a_lookup_past_its_timeout_shows_the_card_and_audits_it(tmp_path, monkeypatch):
    client = make_client(tmp_path, snooze_lookup_timeout_seconds=0.05)
    (card,) = client.post(HOOK, json=fresh(SOURCE_CASE)).json()["cards"]
    override(client, card, "already-discussed")
    real = cds.web.snooze.active_snoozes
    finished = threading.Event()

    def slow(*args: Any) -> Any:
        time.sleep(0.5)
        try:
            return real(*args)
        finally:
            finished.set()

    monkeypatch.setattr(cds.web.snooze, "active_snoozes", slow)
    timeouts = metrics.SNOOZE_LOOKUPS.labels("timeout")._value.get()
    hidden = metrics.CARDS_SNOOZED.labels(card["source"]["topic"]["code"], "hidden")._value.get()
    started = time.perf_counter()
    (shown,) = client.post(HOOK, json=fresh(SOURCE_CASE)).json()["cards"]
    assert time.perf_counter() - started < 0.45  # answered before the lookup returned
    assert metrics.SNOOZE_LOOKUPS.labels("timeout")._value.get() == timeouts + 1
    assert finished.wait(5)
    time.sleep(0.1)  # the worker, back from its lookup, finds the call taken over and leaves it
    assert metrics.CARDS_SNOOZED.labels(card["source"]["topic"]["code"], "hidden")._value.get() == hidden
    client.app.state.store.flush()
    override(client, shown, "already-discussed")  # its audit record exists: the feedback is accepted
