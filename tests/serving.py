"""Running the real service in its own process for a test (as `make run` or the image does)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def loopback_client(**options: Any) -> httpx.Client:
    """An ``httpx.Client`` for a server on loopback (plain HTTP), cheap to make.

    ``httpx.Client()`` builds a TLS context and loads the CA bundle each time it is made (130-350 ms
    each at a load average of 12-15 on 2 cores, against 0.1 ms with a context made once), for TLS a
    plain-HTTP loopback call never uses; tests that open a new connection per request, as an EHR
    does, made hundreds. ``trust_env=False`` keeps a proxy setting of the machine off loopback."""
    return httpx.Client(verify=_tls_context(), trust_env=False, **options)


# How long a server may take to answer /healthz: a bound for a server that hangs, not a speed test. A
# `cds serve` start costs about 3.5 s of CPU per worker; at the load of parallel suites on a shared
# 2-core machine one took 30-37 s of wall time (load average 18) and a two-worker one 130 s (load 22),
# measured: the 60 s bound failed both wire-durability tests on main.
READY_TIMEOUT_SECONDS = 300.0


def wait_until_healthy(
    base: str, process: subprocess.Popen, log_path: Path, timeout: float = READY_TIMEOUT_SECONDS
) -> None:
    """Return once GET /healthz answers 200; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    with loopback_client(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"service exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if client.get(f"{base}/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    process.kill()
    process.wait(timeout=30)
    pytest.fail(f"service did not answer /healthz within {timeout:g} s:\n{log_path.read_text()[-3000:]}")


class Service:
    """A `cds serve` process started by ``start_service``; ``stop()`` ends it with SIGTERM."""

    def __init__(self, process: subprocess.Popen, base: str, log_path: Path) -> None:
        self.process, self.base, self.log_path = process, base, log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def start_service(
    tmp_path: Path, env: dict[str, str], name: str = "server", timeout: float = READY_TIMEOUT_SECONDS
) -> Service:
    """Run `cds serve` from this checkout on a free loopback port with ``env`` over a demo default."""
    import os
    import sys

    repo = Path(__file__).resolve().parent.parent
    port = free_port()
    full_env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "CDS_HOST": "127.0.0.1",
        "CDS_PORT": str(port),
        "CDS_RULES_DIR": str(repo / "rules"),
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}",
        "CDS_PROFILE": "demo",
        "CDS_AUTH_REQUIRED": "false",
        "CDS_RULES_WATCH_SECONDS": "0",
        **env,
    }
    log_path = tmp_path / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cds.cli", "serve"], env=full_env, cwd=tmp_path, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(base, process, log_path, timeout)
    return Service(process, base, log_path)
