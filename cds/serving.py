"""Several uvicorn workers, each with its own listening socket (SO_REUSEPORT), for ``cds serve --workers N``.

Why (docs/adr/0013-workers-with-their-own-sockets.md): with uvicorn's own multi-worker mode every worker
waits on one shared listening socket, and whichever event loop wakes first accepts *all* pending
connections in one go (asyncio and uvloop both accept in a loop until the backlog is empty). Keep-alive
clients that connect together therefore all land on one worker, which then serves them alone for the
life of the connections. With ``SO_REUSEPORT`` each worker listens on its own socket bound to the same
address and the kernel spreads new connections over the sockets by a hash of the connection's addresses.

uvicorn's supervisor (``uvicorn.supervisors.Multiprocess``: health checks, restart of a dead worker,
rolling restart on SIGHUP, clean stop on SIGTERM) is kept. It hands each worker process the sockets it
was given by pickling them; ``WorkerSocket`` pickles as "open your own SO_REUSEPORT socket on this
address", so every worker, a restarted one included, unpickles a socket of its own. The parent keeps
its ``WorkerSocket`` bound but not listening: it holds the port (a second server without SO_REUSEPORT
cannot bind it) and receives no connections (Linux only balances between listening sockets).
"""

from __future__ import annotations

import functools
import socket
import sys
from multiprocessing.reduction import ForkingPickler
from typing import Any


def reuseport_supported() -> bool:
    """Linux >= 3.9 balances connections between SO_REUSEPORT listeners; other systems do not (BSD, macOS)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bind(host: str, port: int, *, reuseport: bool) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def worker_listener(host: str, port: int) -> socket.socket:
    """In a worker process: a listening socket of its own on the shared address (uvicorn calls listen())."""
    return _bind(host, port, reuseport=True)


class WorkerSocket(socket.socket):
    """The parent's placeholder: bound with SO_REUSEPORT, never listening; pickles as a fresh worker socket."""

    @classmethod
    def hold(cls, host: str, port: int) -> WorkerSocket:
        # A plain bind first: it fails with EADDRINUSE when anything already listens on the address,
        # another `cds serve` using SO_REUSEPORT included, instead of silently sharing its connections.
        _bind(host, port, reuseport=False).close()
        sock = cls(_family(host), socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        return sock


def _reduce_worker_socket(sock: WorkerSocket) -> tuple[Any, tuple[str, int]]:
    host, port = sock.getsockname()[:2]
    return worker_listener, (host, port)


ForkingPickler.register(WorkerSocket, _reduce_worker_socket)


def run_workers(config: Any) -> None:
    """Run ``config.workers`` uvicorn workers under uvicorn's supervisor, one SO_REUSEPORT socket each."""
    from uvicorn.supervisors import Multiprocess

    holder = WorkerSocket.hold(config.host, config.port)
    try:
        Multiprocess(config, sockets=[holder]).run()
    finally:
        holder.close()


# ------------------------------------------------------------------ the HTTP/1.1 parser


# uvicorn loads it by name in each worker (``http=BOUNDED_HTTPTOOLS``), so importing this module stays cheap.
BOUNDED_HTTPTOOLS = "cds.serving:BoundedHttpToolsProtocol"


def __getattr__(name: str) -> Any:
    if name == "BoundedHttpToolsProtocol":
        return _bounded_httptools_protocol()
    raise AttributeError(name)


@functools.cache
def _bounded_httptools_protocol() -> type:
    """uvicorn's httptools (llhttp, C) protocol with the request line and headers bounded like h11's.

    h11 bounds them (``h11_max_incomplete_event_size``) but parses in Python: on this machine about
    0.1 ms of server CPU per request more than httptools on the empty route (ADR 0015). uvicorn's
    httptools protocol has no such bound (a 64 MB header held a worker's event loop for 21 s), so this
    subclass answers 431 and closes the connection when a request's line and headers exceed the bound:
    either as parsed (checked when the headers are complete, before the app sees the request) or, for
    a head that does not end, as bytes received while it is incomplete (checked after each chunk the
    transport delivers, at most 256 KB, so at most one chunk beyond the bound is parsed).
    """
    import logging

    import orjson
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

    log = logging.getLogger("cds.serving")
    body = orjson.dumps(HEAD_TOO_LARGE_OUTCOME)

    class HeadTooLarge(Exception):
        """Raised from the parser's callback to stop parsing a head over the bound."""

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(config, *args, **kwargs)
            self._head_limit: int = config.h11_max_incomplete_event_size or DEFAULT_HEAD_LIMIT
            self._in_head = True  # from the end of a request (or the connection's start) to the next headers
            self._received_in_head = 0  # bytes received while in a head: stops a head that never ends
            self._head_size = 0  # the request line and headers as parsed: stops a head that ends in one chunk
            self._refusing = False

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._received_in_head += len(data)
            super().data_received(data)
            if self._in_head and self._received_in_head > self._head_limit and not self.transport.is_closing():
                self._refuse_head()

        def on_message_begin(self) -> None:
            self._head_size = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._head_size += len(url) + 16  # method, version, spaces, CRLF
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_size += len(name) + len(value) + 4  # ": " and CRLF
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head, self._received_in_head = False, 0
            if self._head_size > self._head_limit:
                self._refusing = True
                raise HeadTooLarge  # stops the parser; uvicorn answers through send_400_response
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True
            super().on_message_complete()

        def send_400_response(self, msg: str) -> None:
            if self._refusing:
                self._refuse_head()
            else:
                super().send_400_response(msg)

        def _refuse_head(self) -> None:
            log.warning("request line and headers over %d bytes: answered 431 and closed", self._head_limit)
            self.transport.write(
                STATUS_LINE[431]
                + b"content-type: "
                + b"application/fhir+json"
                + b"\r\ncontent-length: "
                + str(len(body)).encode("ascii")
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )
            self.transport.close()

    BoundedHttpToolsProtocol.__module__ = __name__
    BoundedHttpToolsProtocol.__qualname__ = "BoundedHttpToolsProtocol"
    return BoundedHttpToolsProtocol


DEFAULT_HEAD_LIMIT = 64 * 1024  # h11's default bound, used when the config gives none
# Errors on the wire are OperationOutcome JSON, this one too, though it is answered before the app runs.
# Written out here because serving sits below the wire layer; tests/test_serving_http.py checks that it
# is what cds.hooks.errors.operation_outcome gives for the same status and message.
HEAD_TOO_LARGE_OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "too-long", "diagnostics": "the request line and headers are too large"}],
}
