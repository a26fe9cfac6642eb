"""Running the real service in its own process for a test (as `make run` or the image does)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(base: str, process: subprocess.Popen, log_path: Path, timeout: float = 45) -> None:
    """Return once GET /healthz answers 200; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"service exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"service did not answer /healthz within {timeout:g} s:\n{log_path.read_text()[-3000:]}")
