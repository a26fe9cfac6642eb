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
