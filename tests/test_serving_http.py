"""The bounded httptools protocol of `cds serve` (cds.serving, ADR 0015): headers bounded, bodies not."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cds.hooks.errors import operation_outcome
from cds.serving import BOUNDED_HTTPTOOLS

LIMIT = 8 * 1024


async def echo_length(request: Request) -> Response:
    return Response(str(len(await request.body())).encode())


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    app = Starlette(routes=[Route("/", echo_length, methods=["GET", "POST"])])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free, http=BOUNDED_HTTPTOOLS, h11_max_incomplete_event_size=LIMIT, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield free
    server.should_exit = True
    thread.join(timeout=10)


def exchange(port: int, chunks: list[bytes]) -> list[bytes]:
    """Send ``chunks`` (a short pause between) and read the answers until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:  # refused and closed mid-send: what a header bound should do
                break
            time.sleep(0.01)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return [b"HTTP/1.1 " + part for part in data.split(b"HTTP/1.1 ")[1:]]


def post(body: bytes, extra: bytes = b"", close: bool = True) -> bytes:
    """A POST; the server closes the connection after answering it unless ``close`` is false."""
    extra += b"Connection: close\r\n" if close else b""
    return b"POST / HTTP/1.1\r\nHost: x\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_headers_over_the_bound_get_431_and_the_connection_is_closed(port):
    # In one piece, and trickled in small pieces (the bound counts across chunks).
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (4 * LIMIT) + b"\r\n\r\n"
    for chunks in ([big], [big[i : i + 1024] for i in range(0, len(big), 1024)]):
        answers = exchange(port, chunks)
        assert len(answers) == 1 and answers[0].startswith(b"HTTP/1.1 431 "), answers
        head, _, body = answers[0].partition(b"\r\n\r\n")
        assert b"content-type: application/fhir+json" in head.lower()
        outcome = json.loads(body)
        assert outcome == operation_outcome(431, ["the request line and headers are too large"], None)
        assert outcome["issue"][0]["code"] == "too-long"


def test_bodies_and_headers_under_the_bound_are_served(port):
    headers = b"X-Pad: " + b"a" * (LIMIT // 2) + b"\r\n"
    body = b"x" * (1024 * 1024)  # far over the header bound, arriving with the head in the same chunks
    answers = exchange(port, [post(body, headers)])
    assert answers and answers[0].startswith(b"HTTP/1.1 200 ") and answers[0].endswith(b"\r\n\r\n1048576")


def test_each_request_on_a_kept_connection_has_its_own_bound(port):
    # Many requests whose heads add up to far more than the bound, on one connection (and pipelined).
    pad = b"X-Pad: " + b"a" * (LIMIT // 4) + b"\r\n"
    answers = exchange(port, [post(b"{}", pad, close=False) * 11 + post(b"{}", pad)])
    assert len(answers) == 12 and all(a.startswith(b"HTTP/1.1 200 ") for a in answers)
