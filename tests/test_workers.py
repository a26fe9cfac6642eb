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
from tests.serving import READY_TIMEOUT_SECONDS, loopback_client, start_service

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


def request_events(log_text: str) -> list[dict]:
    """The hook-call request events in a server log (a line the server is still writing is left out)."""
    events = []
    for line in log_text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "request" and event.get("service"):
            events.append(event)
    return events


def serving_pids(log_text: str) -> set[int]:
    return {event["pid"] for event in request_events(log_text)}


def wait_for_workers(service, count: int, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while len(re.findall(r'"Application startup complete.","pid":(\d+)', service.log())) < count:
        assert time.monotonic() < deadline and service.process.poll() is None, service.log()[-3000:]
        time.sleep(0.1)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """One two-worker `cds serve` for this module's tests: starting two workers on two cores is most of
    each test's time, and every test here reads only what its own requests add (metrics and log lines
    counted from where the test began). Its shutdown is checked when the module is done."""
    tmp_path = tmp_path_factory.mktemp("two-workers")
    service = start_service(
        tmp_path,
        {
            "CDS_WORKERS": "2",
            # These tests are about counting and spreading, not speed: a loaded CI machine must not turn
            # answers into 503s.
            "CDS_REQUEST_DEADLINE_SECONDS": "30",
            # cds serve makes its own multiprocess metrics folder for its workers (empty is unset).
            "PROMETHEUS_MULTIPROC_DIR": "",
        },
    )
    try:
        wait_for_workers(service, 2)  # /healthz answers as soon as the first worker listens
    except BaseException:
        service.kill()
        raise
    yield service
    returncode = service.stop()
    server_log = service.log()
    LOG_SCANNER.scan(server_log, "two-worker server log")
    assert returncode == 0, f"SIGTERM must end the two-worker server with 0, not {returncode}:\n{server_log[-2000:]}"


def test_metrics_aggregate_across_two_workers(two_workers):
    base = two_workers.base
    log_start = len(two_workers.log())
    sent = 0
    with loopback_client(base_url=base, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        before = hook_count(client.get("/metrics").text)

        # Concurrent, fresh connections; which worker accepts each is the kernel's choice, so
        # send batches until the log shows both workers answering (or give up after 40).
        def call(_: int) -> int:
            return client.post("/cds-services/calciphylaxis-risk", json=SOURCE_CASE).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(40):
                assert set(pool.map(call, range(16))) == {200}
                sent += 16
                if len(serving_pids(two_workers.log()[log_start:])) == 2:
                    break
        # A worker counts a request as its answer leaves, so the last ones may land just after the client
        # has them: wait (bounded) until a scrape sees every request, then every scrape must see them all.
        settle = time.monotonic() + 30
        while hook_count(client.get("/metrics").text) - before < sent and time.monotonic() < settle:
            time.sleep(0.05)
        scrapes = [hook_count(client.get("/metrics").text) - before for _ in range(6)]
    assert len(serving_pids(two_workers.log()[log_start:])) == 2, "both workers served requests, so the sum spans them"
    assert scrapes == [sent] * 6, scrapes
    # A worker writes the request's log line as the answer leaves: wait for the last ones.
    deadline = time.monotonic() + 30
    while len(request_events(two_workers.log()[log_start:])) < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    served = [e for e in request_events(two_workers.log()[log_start:]) if e.get("status") == 200]
    assert len(served) == sent


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
def test_keep_alive_connections_opened_together_spread_over_both_workers(two_workers):
    """Issue 20: with uvicorn's shared socket one worker accepted every keep-alive connection (ADR 0013).

    16 connections opened before any request, then one request on each: with one SO_REUSEPORT socket
    per worker the kernel hashes each connection to a worker, so both serve (all 16 on one worker has
    probability 2/65,536 if the hash spreads them evenly; with the shared socket it was the usual case).
    """
    port = int(two_workers.base.rsplit(":", 1)[1])
    log_start = len(two_workers.log())
    body = json.dumps(SOURCE_CASE).encode()
    connections = _connect_together(port, 16)
    try:
        assert [_post_on(conn, body) for conn in connections] == [200] * 16
    finally:
        for conn in connections:
            conn.close()
    assert len(serving_pids(two_workers.log()[log_start:])) == 2, two_workers.log()[-2000:]
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
