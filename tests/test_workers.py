"""With several worker processes, /metrics counts every worker's requests."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cds.serving import reuseport_supported
from tests.conftest import LOG_SCANNER, REPO, RULES_DIR
from tests.serving import free_port, start_service, wait_until_healthy

pytestmark = pytest.mark.slow

SOURCE_CASE = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())


def hook_count(metrics_text: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if (
                s.name == "cds_request_duration_seconds_count"
                and s.labels.get("service") == "calciphylaxis-risk"
                and s.labels.get("status") == "200"
            ):
                return s.value
    return 0.0


def serving_pids(log_path) -> set[int]:
    pids = set()
    for line in log_path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:  # a line the server is still writing
            continue
        if isinstance(event, dict) and event.get("event") == "request" and event.get("service"):
            pids.add(event["pid"])
    return pids


def test_metrics_aggregate_across_two_workers(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "CDS_PROFILE": "demo",
        "CDS_AUTH_REQUIRED": "false",
        "CDS_RULES_DIR": str(RULES_DIR),
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}",
        # This test is about counting, not speed: a loaded CI machine must not turn answers into 503s.
        "CDS_REQUEST_DEADLINE_SECONDS": "30",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cds.cli", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(base, process, log_path, timeout=120)  # two workers start side by side on 2 cores
            sent = 0
            with httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
                # Concurrent, fresh connections; which worker accepts each is the kernel's choice, so
                # send batches until the log shows both workers answering (or give up after 40).
                def call(_: int) -> int:
                    return client.post("/cds-services/calciphylaxis-risk", json=SOURCE_CASE).status_code

                with ThreadPoolExecutor(max_workers=8) as pool:
                    for _ in range(40):
                        assert set(pool.map(call, range(16))) == {200}
                        sent += 16
                        if len(serving_pids(log_path)) == 2:
                            break
                scrapes = [hook_count(client.get("/metrics").text) for _ in range(6)]
            assert len(serving_pids(log_path)) == 2, "both workers served requests, so the sum below spans processes"
            assert scrapes == [sent] * 6, scrapes
        finally:
            process.terminate()
            process.wait(timeout=30)
    server_log = log_path.read_text()
    LOG_SCANNER.scan(server_log, "two-worker server log")
    events = [json.loads(line) for line in server_log.splitlines() if line.startswith("{")]
    served = [e for e in events if e.get("event") == "request" and e.get("status") == 200 and e.get("service")]
    assert len(served) == sent


def wait_for_workers(service, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(re.findall(r'"Application startup complete.","pid":(\d+)', service.log())) < count:
        assert time.monotonic() < deadline and service.process.poll() is None, service.log()[-3000:]
        time.sleep(0.2)


def _connect_together(port: int, count: int) -> list[socket.socket]:
    """``count`` keep-alive connections opened at once, as a load balancer's pool or a load generator does."""
    return [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]


def _post_on(conn: socket.socket, body: bytes) -> int:
    conn.sendall(
        b"POST /cds-services/calciphylaxis-risk HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    reader = conn.makefile("rb")
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    reader.read(length)
    return status


@pytest.mark.skipif(not reuseport_supported(), reason="the kernel balances SO_REUSEPORT listeners on Linux only")
def test_keep_alive_connections_opened_together_spread_over_both_workers(tmp_path):
    """Issue 20: with uvicorn's shared socket one worker accepted every keep-alive connection (ADR 0013).

    16 connections opened before any request, then one request on each: with one SO_REUSEPORT socket
    per worker the kernel hashes each connection to a worker, so both serve (all 16 on one worker has
    probability 2/65,536 if the hash spreads them evenly; with the shared socket it was the usual case).
    """
    service = start_service(tmp_path, {"CDS_WORKERS": "2", "CDS_REQUEST_DEADLINE_SECONDS": "30"})
    port = int(service.base.rsplit(":", 1)[1])
    wait_for_workers(service, 2)  # /healthz answers as soon as the first worker listens
    body = json.dumps(SOURCE_CASE).encode()
    try:
        connections = _connect_together(port, 16)
        try:
            assert [_post_on(conn, body) for conn in connections] == [200] * 16
        finally:
            for conn in connections:
                conn.close()
        assert len(serving_pids(service.log_path)) == 2, service.log()[-2000:]
        # The port is held: a second server on it is refused with a clear message, not silently sharing.
        second = subprocess.run(
            [sys.executable, "-m", "cds.cli", "serve", "--port", str(port), "--workers", "2"],
            env={**os.environ, "CDS_PROFILE": "demo", "CDS_AUTH_REQUIRED": "false", "CDS_RULES_DIR": str(RULES_DIR)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1, second.stderr[-2000:]
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    finally:
        assert service.stop() == 0
