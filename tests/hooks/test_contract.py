"""openapi.yaml is the contract: it matches the models, and the live service keeps to it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from cds.hooks.openapi import contract_yaml
from tests.conftest import LOG_SCANNER, REPO, RULES_DIR
from tests.serving import free_port, wait_until_healthy

CONTRACT = REPO / "openapi.yaml"


def test_checked_in_contract_matches_the_models():
    assert CONTRACT.read_text() == contract_yaml(), "regenerate with: cds openapi > openapi.yaml"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """The real service in its own process, as `make run` starts it; its logs are scanned for leaks."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("live") / "server.log"
    env = {
        **os.environ,
        "CDS_PROFILE": "demo",
        "CDS_AUTH_REQUIRED": "false",
        "CDS_RULES_DIR": str(RULES_DIR),
        "CDS_LOG_LEVEL": "INFO",
    }
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor; ours is closed at once
        process = subprocess.Popen(
            [sys.executable, "-m", "cds.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, log_path, timeout=60)
        yield base
    finally:  # also when it never became healthy: no server left running behind the test
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    server_log = log_path.read_text()
    assert '"event":"request"' in server_log, "the service logs one JSON event per request"
    LOG_SCANNER.scan(server_log, "live server log")


schema = schemathesis.openapi.from_path(str(CONTRACT))


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_live_service_keeps_to_the_contract(case, live_server):
    # No 5xx, only documented statuses, documented media types and bodies that match the schema.
    case.call_and_validate(
        base_url=live_server,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
