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
