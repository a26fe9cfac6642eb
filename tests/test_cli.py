"""The command line: `cds evaluate` is the first thing a new user runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cds.cli import main, request_from_bundle
from tests.conftest import REPO, RULES_DIR, shared_data, shipped_pipeline

SOURCE_CASE = REPO / "fhir_examples" / "requests" / "source-case.patient-view.json"


def test_evaluate_prints_a_readable_summary(capsys):
    assert main(["evaluate", str(SOURCE_CASE), "--rules", str(RULES_DIR)]) == 0
    out = capsys.readouterr().out
    assert "calciphylaxis-risk" in out and "card(s)" in out


def test_evaluate_json_prints_a_valid_response(capsys):
    assert main(["evaluate", str(SOURCE_CASE), "--json", "--rules", str(RULES_DIR)]) == 0
    response = json.loads(capsys.readouterr().out)
    assert isinstance(response["cards"], list)


def test_evaluate_explains_a_request_the_service_would_refuse(tmp_path, capsys):
    request = json.loads(SOURCE_CASE.read_text())
    del request["context"]["patientId"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(request))
    assert main(["evaluate", str(path), "--rules", str(RULES_DIR)]) == 1
    err = capsys.readouterr().err
    assert "HTTP 422" in err and "context.patientId" in err


def test_evaluate_rejects_a_file_that_is_not_json(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("patient has an ulcer")
    assert main(["evaluate", str(path)]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_evaluate_missing_file(capsys):
    assert main(["evaluate", "/nonexistent/request.json"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_a_synthea_bundle_becomes_a_request_for_the_service():
    bundle = json.loads(shared_data("synthea", "esrd-dialysis-patient.bundle.json").read_text())
    service = shipped_pipeline().service("calciphylaxis-risk")
    request = request_from_bundle(bundle, service)
    assert request["hook"] == "patient-view"
    assert request["prefetch"]["patient"]["resourceType"] == "Patient"
    conditions = request["prefetch"]["conditions"]["entry"]
    assert conditions and all(e["resource"]["resourceType"] == "Condition" for e in conditions)


def test_evaluate_a_bundle_for_an_order_hook(tmp_path, capsys):
    bundle = json.loads(shared_data("synthea", "esrd-dialysis-patient.bundle.json").read_text())
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    assert main(["evaluate", str(path), "--service", "calciphylaxis-order-sign", "--json"]) == 0
    assert "cards" in json.loads(capsys.readouterr().out)


def test_unknown_service_is_a_usage_error(capsys):
    assert main(["evaluate", str(SOURCE_CASE), "--service", "nope"]) == 2
    assert "no service 'nope'" in capsys.readouterr().err


def test_console_script_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "cds.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "evaluate" in result.stdout


def test_config_show_masks_the_database_password(monkeypatch, capsys):
    monkeypatch.setenv("CDS_DATABASE_URL", "postgresql+psycopg://cds:hunter2@db.example.org/cds")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "cds:***@db.example.org" in out


def test_serve_refuses_auth_off_on_a_public_address(monkeypatch, capsys):
    monkeypatch.setenv("CDS_AUTH_REQUIRED", "false")
    assert main(["serve", "--host", "0.0.0.0", "--port", "8099"]) == 1
    assert "CDS_AUTH_REQUIRED" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["not-a-number", "0"])
def test_invalid_settings_name_the_setting(monkeypatch, capsys, value):
    monkeypatch.setenv("CDS_PORT", value)
    assert main(["config", "show"]) == 1
    assert "CDS_PORT" in capsys.readouterr().err
