"""Metrics, structured request logs, probes and fail-fast behaviour under load."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cds.app import create_app
from cds.observability.logs import JsonFormatter, scrub
from cds.pipeline import Pipeline
from cds.settings import Settings, SettingsError, load_settings
from tests.conftest import REPO, RULES_DIR, shipped_app

SOURCE_CASE = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())
HOOK = "/cds-services/calciphylaxis-risk"


def settings(**overrides) -> Settings:
    return Settings(**{"profile": "demo", "auth_required": False, "rules_dir": RULES_DIR, **overrides})


def sample(client: TestClient, name: str, **labels) -> float:
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_metrics_move_with_traffic(tmp_path):
    client = TestClient(shipped_app(settings(database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}")))
    latency = (
        "cds_request_duration_seconds_count",
        {"route": "/cds-services/{id}", "service": "calciphylaxis-risk", "status": "200"},
    )
    unavailable = ("cds_prefetch_unavailable_total", {"service": "calciphylaxis-risk"})
    feedback = ("cds_feedback_total", {"outcome": "overridden"})
    stage = ("cds_stage_duration_seconds_count", {"stage": "prefetch"})
    before = {name: sample(client, name, **labels) for name, labels in (latency, unavailable, feedback, stage)}

    answered = client.post(HOOK, json=SOURCE_CASE)
    assert answered.status_code == 200
    no_data = {k: v for k, v in SOURCE_CASE.items() if k not in {"prefetch", "fhirServer"}}
    assert client.post(HOOK, json=no_data).status_code == 412
    item = {
        "card": str(uuid.uuid4()),
        "outcome": "overridden",
        "overrideReason": {"userComment": "not relevant"},
        "outcomeTimestamp": "2026-11-21T10:00:00Z",
    }
    # A card this service never issued is refused (422) and not counted; a real one is.
    assert client.post(f"{HOOK}/feedback", json={"feedback": [item]}).status_code == 422
    client.app.state.store.flush()  # the audit record of the card just issued
    item["card"] = answered.json()["cards"][0]["uuid"]
    assert client.post(f"{HOOK}/feedback", json={"feedback": [item]}).status_code == 200

    after = {name: sample(client, name, **labels) for name, labels in (latency, unavailable, feedback, stage)}
    assert after["cds_request_duration_seconds_count"] == before["cds_request_duration_seconds_count"] + 1
    assert after["cds_prefetch_unavailable_total"] == before["cds_prefetch_unavailable_total"] + 1
    assert after["cds_feedback_total"] == before["cds_feedback_total"] + 1
    assert after["cds_stage_duration_seconds_count"] >= before["cds_stage_duration_seconds_count"] + 1
    for evaluation_stage in ("facts", "engine", "differential", "cards"):
        assert sample(client, "cds_stage_duration_seconds_count", stage=evaluation_stage) >= 1, evaluation_stage
    names = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert {
        "cds_auth_failures",
        "cds_fhir_fetch_duration_seconds",
        "cds_fhir_fetch_errors",
        "cds_rule_reloads",
        "cds_store_errors",
        "cds_cards_raised",
    } <= names


def test_one_structured_event_per_request_with_the_request_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    request_log = logging.getLogger("cds.request")
    request_log.addHandler(handler)
    try:
        response = TestClient(shipped_app(settings())).post(HOOK, json=SOURCE_CASE)
    finally:
        request_log.removeHandler(handler)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(events) == 1
    event = events[0]
    assert event["event"] == "request" and event["request_id"] == response.headers["x-request-id"]
    assert event["service"] == "calciphylaxis-risk" and event["hook"] == "patient-view"
    assert event["status"] == 200 and event["cards"] == len(response.json()["cards"])
    assert event["ruleset"] and "engine" in event and event["duration_ms"] > 0
    assert "source-case-patient" not in stream.getvalue()


def test_formatter_masks_tokens_that_slip_through():
    record = logging.makeLogRecord(
        {"msg": "calling with Bearer abc.def.ghi and eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.sig"}
    )
    line = JsonFormatter().format(record)
    assert "abc.def.ghi" not in line and "eyJhbGci" not in line
    assert scrub("Authorization: Bearer s3cr3t") == "Authorization: Bearer [redacted]"


class BlockingPipeline(Pipeline):
    release: threading.Event

    def evaluate(self, *args, **kwargs):
        self.release.wait(5)
        return super().evaluate(*args, **kwargs)


def test_saturated_service_answers_503_fast():
    pipeline = BlockingPipeline.load(RULES_DIR, run_tests=False)  # the gate is not what this tests
    pipeline.release = threading.Event()
    with TestClient(create_app(settings(max_concurrent_requests=1), pipeline=pipeline)) as client:
        first: dict = {}
        worker = threading.Thread(target=lambda: first.update(r=client.post(HOOK, json=SOURCE_CASE)))
        worker.start()
        time.sleep(0.3)  # the first request is now inside the engine
        started = time.perf_counter()
        refused = client.post(HOOK, json=SOURCE_CASE)
        elapsed = time.perf_counter() - started
        pipeline.release.set()
        worker.join(5)
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert elapsed < 1.0
    assert first["r"].status_code == 200


def test_a_hook_call_over_the_deadline_is_503():
    class SlowPipeline(Pipeline):
        def evaluate(self, *args, **kwargs):
            time.sleep(1.0)
            return super().evaluate(*args, **kwargs)

    pipeline = SlowPipeline.load(RULES_DIR, run_tests=False)
    client = TestClient(create_app(settings(request_deadline_seconds=0.2), pipeline=pipeline))
    started = time.perf_counter()
    response = client.post(HOOK, json=SOURCE_CASE)
    assert response.status_code == 503 and "deadline" in response.text
    assert time.perf_counter() - started < 0.9


def test_readyz_follows_the_rule_set_state():
    pipeline = Pipeline.load(RULES_DIR, run_tests=False)  # its own: the test marks it unready
    client = TestClient(create_app(settings(), pipeline=pipeline))
    assert client.get("/readyz").status_code == 200
    pipeline.load_errors.append("rules/x.yaml:3:5: E001 unknown key")
    unready = client.get("/readyz")
    assert unready.status_code == 503 and "rules/x.yaml:3:5" in unready.text
    pipeline.load_errors.clear()
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    "overrides, setting",
    [
        ({"auth_required": False, "host": "0.0.0.0"}, "CDS_AUTH_REQUIRED"),
        ({"profile": "production", "cors_origins": ["*"]}, "CDS_CORS_ORIGINS"),
        ({"rules_dir": "/nonexistent/rules"}, "CDS_RULES_DIR"),
    ],
)
def test_unsafe_settings_are_refused_by_name(overrides, setting):
    with pytest.raises(SettingsError, match=setting):
        load_settings(**overrides).check()


def test_settings_from_a_config_file_with_the_environment_winning(tmp_path, monkeypatch):
    config = tmp_path / "cds.yaml"
    config.write_text("port: 9001\nworkers: 3\n")
    monkeypatch.setenv("CDS_WORKERS", "2")
    loaded = load_settings(config)
    assert loaded.port == 9001 and loaded.workers == 2


def test_invalid_config_file_names_the_setting(tmp_path):
    config = tmp_path / "cds.yaml"
    config.write_text("max_body_bytes: tiny\n")
    with pytest.raises(SettingsError, match="CDS_MAX_BODY_BYTES"):
        load_settings(config)
