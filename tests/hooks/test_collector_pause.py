"""The cyclic collector paused during a hook call and the call's objects freed after its answer (issue 20).

* ``CollectorPause`` is counted: off while any call holds it, on again when the last lets go, left off
  when it was off before; a pause older than its bound takes no new calls, so overlapping calls cannot
  keep the collector off for ever; a release twice counts once;
* over HTTP the collector is off while the worker thread evaluates, and on again after the answer, an
  error answer (422) and a call that must fetch;
* ``HookResponse`` frees what the call held only once the body has been sent, and releases the pause
  even when the send fails.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import weakref
from typing import Any

import pytest
from fastapi.testclient import TestClient

import cds.web.hooks
from cds.app import create_app
from cds.settings import Settings
from cds.web.collector import CollectorPause, HookResponse
from tests.hooks.test_one_hop import HOOK, SOURCE_CASE, fresh, make_client, pipeline


@pytest.fixture(autouse=True)
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_the_pause_is_counted_and_ends_with_its_last_holder():
    pause = CollectorPause()
    first = pause.hold()
    assert not gc.isenabled()
    second = pause.hold()
    first()
    first()  # a second release of the same hold counts once
    assert not gc.isenabled() and pause.holders == 1
    second()
    assert gc.isenabled() and pause.holders == 0


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    pause = CollectorPause()
    release = pause.hold()
    release()
    assert not gc.isenabled()


def test_an_old_pause_takes_no_new_calls_so_overlapping_calls_cannot_keep_the_collector_off():
    now = [100.0]
    pause = CollectorPause(max_seconds=1.0, clock=lambda: now[0])
    first = pause.hold()
    now[0] += 0.5
    second = pause.hold()  # joins: the pause is young
    now[0] += 0.6
    late = pause.hold()  # does not join: the pause began 1.1 s ago
    assert pause.holders == 2
    first()
    second()
    assert gc.isenabled()
    late()  # its release changes nothing
    assert gc.isenabled() and pause.holders == 0
    again = pause.hold()  # the next call starts a new pause
    assert not gc.isenabled()
    again()
    assert gc.isenabled()


class _Held:
    """Something a call holds; weakly referenceable."""


def _run(response: HookResponse, fail: bool = False) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if fail and message["type"] == "http.response.body":
            raise OSError("the client went away")
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": HOOK, "headers": []}
    if fail:
        with pytest.raises(OSError):
            asyncio.run(response(scope, receive, send))
    else:
        asyncio.run(response(scope, receive, send))
    return sent


@pytest.mark.parametrize("fail", [False, True])
def test_the_answer_is_sent_before_what_the_call_held_is_freed(fail):
    held = _Held()
    alive = weakref.ref(held)
    events: list[str] = []
    response = HookResponse(b'{"cards":[]}', held, lambda: events.append("released"))
    del held
    assert alive() is not None
    sent = _run(response, fail)
    assert alive() is None and events == ["released"]
    if not fail:
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert sent[1]["body"] == b'{"cards":[]}'
        assert (b"content-type", b"application/json") in sent[0]["headers"]


def test_over_http_the_collector_is_off_while_the_call_is_worked_on_and_on_after(tmp_path, monkeypatch):
    during: list[bool] = []
    real = pipeline().evaluate

    def spy(*args: Any, **kwargs: Any) -> Any:
        during.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline(), "evaluate", spy)
    pause = CollectorPause()
    monkeypatch.setattr(cds.web.hooks, "COLLECTOR_PAUSE", pause)
    with make_client(tmp_path, snooze_enabled=False) as client:
        ok = client.post(HOOK, json=fresh(SOURCE_CASE))
        assert ok.status_code == 200 and len(ok.json()["cards"]) == 1
        assert during == [False] and gc.isenabled() and pause.holders == 0
        bad = fresh(SOURCE_CASE)
        bad["context"] = {"patientId": 7}
        assert client.post(HOOK, json=bad).status_code == 422
        assert client.post(HOOK, content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
        assert gc.isenabled() and pause.holders == 0


def test_a_call_that_must_fetch_is_not_paused_while_it_waits_and_ends_with_the_collector_on(tmp_path, monkeypatch):
    body = fresh(SOURCE_CASE)
    labs = body["prefetch"].pop("labs")
    waiting: list[bool] = []

    async def fetch(url: str, *args: Any, **kwargs: Any) -> Any:
        waiting.append(gc.isenabled())
        return copy.deepcopy(labs)

    pause = CollectorPause()
    monkeypatch.setattr(cds.web.hooks, "COLLECTOR_PAUSE", pause)
    body["fhirServer"] = "http://127.0.0.1:9/fhir"
    settings = {
        "profile": "demo",
        "auth_required": False,
        "rules_dir": pipeline().rules_dir,
        "database_url": f"sqlite:///{tmp_path / 'cds.sqlite3'}",
        "audit_hmac_key": "audit-key-for-tests-0123456789abcdef",
        "snooze_enabled": False,
    }
    app = create_app(Settings(**settings), pipeline=pipeline(), fetch=fetch)
    with TestClient(app) as client:
        response = client.post(HOOK, content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert waiting and all(waiting) and gc.isenabled() and pause.holders == 0
