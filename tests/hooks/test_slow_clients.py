"""Slow and oversized clients against a real `cds serve` (issue 16, items 11 and 12).

* a huge header is refused at once instead of stalling the worker's event loop;
* a request that sends its headers and holds the body back gets 408 at the body-read
  deadline, and its in-flight slot is free again for others;
* SIGTERM ends a single-worker server cleanly with exit status 0.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO
from tests.serving import loopback_client, start_service

SOURCE_CASE = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())
HOOK = "/cds-services/calciphylaxis-risk"


def raw_request(port: int, head: bytes, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    with contextlib.suppress(OSError):  # the server refused the rest and closed: what a header limit should do
        sock.sendall(head + body)
    return sock


def read_status(sock: socket.socket) -> int | None:
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def hook_post(client: httpx.Client) -> httpx.Response:
    return client.post(HOOK, json={**SOURCE_CASE, "hookInstance": str(uuid.uuid4())})


def in_flight(client: httpx.Client) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "cds_requests_in_flight":
                return sample.value
    return 0.0


@pytest.mark.slow
def test_huge_headers_stalled_bodies_and_sigterm(tmp_path):
    service = start_service(tmp_path, {"CDS_MAX_CONCURRENT_REQUESTS": "4", "CDS_REQUEST_DEADLINE_SECONDS": "2"})
    port = int(service.base.rsplit(":", 1)[1])
    client = loopback_client(base_url=service.base, timeout=10)
    try:
        # One answered call first: the first answer of a process starts what it loads lazily, and the
        # 2 s deadline below is for the body read, not for a cold start on a loaded machine (a call
        # cut by the deadline still finishes loading, so a retry is warm).
        warm_until = time.monotonic() + 60
        while (warm := hook_post(client)).status_code != 200 and time.monotonic() < warm_until:
            time.sleep(0.2)
        assert warm.status_code == 200, warm.text

        # A 16 MB header: refused (or the connection dropped) within a second, and health stays fast.
        started = time.monotonic()
        sock = raw_request(
            port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (16 * 1024 * 1024) + b"\r\n\r\n"
        )
        status = read_status(sock)
        sock.close()
        assert status in (None, 400, 431), status
        assert time.monotonic() - started < 5
        assert client.get("/healthz", timeout=2).status_code == 200

        # Four hook POSTs that hold their bodies fill every in-flight slot...
        body = json.dumps({**SOURCE_CASE, "hookInstance": str(uuid.uuid4())}).encode()
        head = (
            f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        held = [raw_request(port, head, body[:2]) for _ in range(4)]
        # Once the server holds all four (not a fixed sleep, which a loaded machine can outlast).
        holding_until = time.monotonic() + 1.5
        while in_flight(client) < 4 and time.monotonic() < holding_until:
            time.sleep(0.02)
        busy = hook_post(client)
        assert busy.status_code == 503  # saturated while they hold the slots
        # ...until the body-read deadline: each gets 408 and its slot is free again.
        statuses = [read_status(sock) for sock in held]
        assert statuses == [408] * 4
        for sock in held:
            sock.close()
        after = hook_post(client)
        assert after.status_code == 200
    finally:
        client.close()
        returncode = service.stop()
    assert returncode == 0, f"SIGTERM must end the server with 0, not {returncode}:\n{service.log()[-2000:]}"
