"""The whole-run log scan itself must catch what it is there to catch."""

import logging

from tests.log_scan import LeakScanner


def scanned(message: str, **extra) -> list[str]:
    scanner = LeakScanner(needles=["source-case-patient", "Abshire"])
    scanner.emit(logging.makeLogRecord({"msg": message, "name": "cds.test", **extra}))
    return scanner.findings


def test_a_jwt_in_a_message_is_found():
    assert scanned("token eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL3gifQ.c2ln")


def test_a_bearer_token_in_an_extra_field_is_found():
    assert scanned("fetch", authorization="Bearer abcdefgh12345678")


def test_a_patient_id_or_name_is_found():
    assert scanned("patient %s", args=("source-case-patient",))
    assert scanned("resource", family="ABSHIRE")


def test_an_ordinary_event_passes():
    assert scanned("request", service="calciphylaxis-risk", status=200) == []


def test_under_xdist_a_workers_findings_reach_the_controller(monkeypatch):
    """`make test` runs on pytest-xdist workers: what a worker's scan found must fail the controller's run."""
    from types import SimpleNamespace

    from tests import conftest

    monkeypatch.setattr(conftest.LOG_SCANNER, "findings", ["logger cds.x (probe): contains sour…"])
    workeroutput: dict = {}
    worker = SimpleNamespace(config=SimpleNamespace(workeroutput=workeroutput), exitstatus=0)
    conftest.pytest_sessionfinish(worker, 0)
    assert workeroutput["log_scan"] == ["logger cds.x (probe): contains sour…"]
    assert worker.exitstatus == 0  # the worker only hands over; the controller decides

    monkeypatch.setattr(conftest.LOG_SCANNER, "findings", [])
    conftest.pytest_testnodedown(SimpleNamespace(workeroutput=workeroutput), None)
    plugins = SimpleNamespace(get_plugin=lambda name: None)
    controller = SimpleNamespace(config=SimpleNamespace(pluginmanager=plugins), exitstatus=0)
    conftest.pytest_sessionfinish(controller, 0)
    assert controller.exitstatus == 1  # pytest.ExitCode.TESTS_FAILED
