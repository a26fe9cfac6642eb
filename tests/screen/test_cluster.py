"""The same screen on an existing Dask cluster: a real `dask scheduler` and two `dask worker`
processes on loopback (127.0.0.1 only), reached through --scheduler. Results equal the local
run's, and a worker killed mid-run does not stop the run (Dask recomputes what it held)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cds.screen import synth
from cds.screen.run import screen
from tests.conftest import RULES_DIR

pytestmark = pytest.mark.slow
NOW = synth.DEFAULT_NOW
STARTUP_SECONDS = 60
RUN_SECONDS = 600


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_workers(address: str, count: int) -> None:
    from dask.distributed import Client

    with Client(address, timeout=STARTUP_SECONDS) as client:
        client.wait_for_workers(count, timeout=STARTUP_SECONDS)


class DaskProcesses:
    """`python -m dask scheduler` and `python -m dask worker` subprocesses bound to 127.0.0.1."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        # the child keeps its own descriptor of the log; ours is closed at once
        with open(self.tmp / f"dask-{len(self.workers)}-{time.monotonic_ns()}.log", "wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "dask", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
                start_new_session=True,
            )

    def start(self, workers: int) -> None:
        port = self.address.rsplit(":", 1)[1]
        self.scheduler = self._spawn("scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard")
        for number in range(workers):
            self.workers.append(
                self._spawn(
                    "worker",
                    self.address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    f"screen-test-{number}",
                )
            )
        _wait_for_workers(self.address, workers)

    def stop(self) -> None:
        # The workers first, while their scheduler still answers: a worker told to stop with its scheduler
        # gone retries the connection until its 20 s bound (the killed-worker test's teardown took 20 s).
        self._stop(self.workers)
        self._stop([self.scheduler])

    @staticmethod
    def _stop(processes: list[subprocess.Popen[bytes] | None]) -> None:
        for process in processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in processes:
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()  # reaped, so no zombie is left behind (and no ResourceWarning)


@pytest.fixture()
def cluster(tmp_path) -> Iterator[DaskProcesses]:
    processes = DaskProcesses(tmp_path)
    try:
        processes.start(workers=2)
        yield processes
    finally:
        processes.stop()


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("population")
    # 4 files (partitions) as with 160 patients before: a worker killed after the first answered partition
    # still leaves work for the survivor; the number of patients per file does not change what is shown.
    synth.write_population(out, 80, seed=5, patients_per_file=20)
    return out


@pytest.fixture(scope="module")
def local_rows(export, dask_client):
    result = screen(export, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True)
    return sorted(result.rows[0], key=lambda r: r["patient_id"])


def test_a_plain_dask_cluster_gives_the_local_results(cluster, export, local_rows):
    result = screen(export, [RULES_DIR], scheduler=cluster.address, now=NOW, keep_cards=True)
    assert result.workers == 2 and result.scheduler == cluster.address
    assert sorted(result.rows[0], key=lambda r: r["patient_id"]) == local_rows
    assert any(row["card_count"] for row in local_rows)


def test_a_worker_killed_mid_run_does_not_stop_the_run(cluster, export, local_rows):
    outcome: dict[str, object] = {}
    killed = threading.Event()
    killed_after: list[int] = []

    def kill_one_worker(finished_partitions: int) -> None:
        # After the first answered partition the shuffle is done and both workers hold data and tasks.
        if not killed.is_set():
            victim = cluster.workers[1]
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(timeout=20)
            killed_after.append(finished_partitions)
            killed.set()

    def run() -> None:
        try:
            outcome["result"] = screen(
                export, [RULES_DIR], scheduler=cluster.address, now=NOW, keep_cards=True, on_partition=kill_one_worker
            )
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(RUN_SECONDS)
    assert not thread.is_alive(), f"the screen did not finish within {RUN_SECONDS} s after a worker was killed"
    assert "error" not in outcome, outcome.get("error")
    assert killed.is_set() and cluster.workers[1].poll() is not None
    result = outcome["result"]
    assert sorted(result.rows[0], key=lambda r: r["patient_id"]) == local_rows  # type: ignore[union-attr]
    assert result.counts["patients_evaluated_twice"] == 0  # type: ignore[union-attr]
    assert killed_after == [1] and result.counts["partitions"] > 2  # type: ignore[union-attr]  # killed mid-run
