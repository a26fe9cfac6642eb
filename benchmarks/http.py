"""Loopback HTTP benchmarks: uvicorn subprocesses and a bounded async httpx load generator.

Servers bind 127.0.0.1 only and every request goes to 127.0.0.1; bodies carry no
``fhirServer`` except a loopback one (benchmarks.cases). The load generator is
bounded in both request count and time. It runs on the same two cores as the
server, so absolute throughput includes the client's cost; the empty-route
baseline, measured the same way in the same run, shows that ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks import stages
from benchmarks.cases import REPO, SERVICE_ID, Case, without_prefetch_key
from benchmarks.memory import rss_mb
from benchmarks.results import Result
from benchmarks.synthetic import as_collection_bundle
from benchmarks.timing import summarise
from cds.serving import reuseport_supported

LOOPBACK = "127.0.0.1"
HOOK_PATH = f"/cds-services/{SERVICE_ID}"
FHIR_TEST_SERVER = REPO / "tests" / "fhir_server.py"
HeaderFactory = Callable[[], dict[str, str]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ servers


@dataclass
class Server:
    name: str
    workers: int
    process: subprocess.Popen
    port: int
    log_path: Path
    ready_s: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def pids(self) -> list[int]:
        """The server process and its descendants (uvicorn's worker processes)."""
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as children:
                        todo.extend(int(c) for c in children.read().split())
        return found

    def rss_mb(self) -> float:
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError, RuntimeError):
                total += rss_mb(pid)
        return total

    def worker_pids(self) -> list[int]:
        """uvicorn's worker processes (the children of the supervisor), or the server itself with 1 worker."""
        if self.workers == 1:
            return [self.process.pid]
        workers = []
        for pid in self.pids()[1:]:  # not multiprocessing's resource tracker
            with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"spawn_main" in cmdline.read():
                    workers.append(pid)
        return workers

    def cpu_seconds(self) -> dict[int, float]:
        """User + system CPU time of each worker process so far, from /proc/<pid>/stat."""
        ticks = os.sysconf("SC_CLK_TCK")
        out = {}
        for pid in self.worker_pids():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                out[pid] = (int(fields[11]) + int(fields[12])) / ticks
        return out

    def context_switches(self) -> tuple[int, int]:
        """Voluntary and involuntary context switches of every thread of the worker processes so far.

        A voluntary switch is a thread going to sleep (waiting for the GIL, a lock, a socket, SQLite's busy
        handler); an involuntary one is the kernel taking the core away. Per request they show hand-offs
        that CPU time alone does not (ADR 0015)."""
        voluntary = involuntary = 0
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{pid}/task"):
                    with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/status", encoding="ascii") as f:
                        for line in f:
                            if line.startswith("voluntary_ctxt_switches:"):
                                voluntary += int(line.split()[1])
                            elif line.startswith("nonvoluntary_ctxt_switches:"):
                                involuntary += int(line.split()[1])
        return voluntary, involuntary

    def wait_listening(self, timeout: float = 60.0) -> int:
        """With SO_REUSEPORT each worker listens on its own socket: wait until all of them do (ADR 0013).

        /healthz answers as soon as the first worker listens; a load started then would put every
        connection on that worker. Returns the number of listening sockets seen (1 with a shared socket).
        """
        deadline = time.perf_counter() + timeout
        while True:
            count = listening_sockets(self.port)
            if count >= self.workers or time.perf_counter() > deadline or self.process.poll() is not None:
                return count
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-1500:]
        return ""


def connection_owners(port: int, client_ports: list[int], pids: list[int]) -> dict[int, int]:
    """Which of ``pids`` holds the server end of each loopback connection from ``client_ports`` to ``port``.

    The server end of a connection is the established socket whose local port is ``port`` and whose
    remote port is the client's; /proc/net/tcp gives its inode and /proc/<pid>/fd the process that
    has it open. This is how the benchmark shows the spread of requests over workers (ADR 0013).
    """
    inode_of: dict[int, int] = {}
    wanted = set(client_ports)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as rows:
            next(rows, None)
            for row in rows:
                fields = row.split()
                if len(fields) < 10 or fields[3] != "01":  # 01 = ESTABLISHED
                    continue
                local, remote = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
                if local == port and remote in wanted:
                    inode_of[int(fields[9])] = remote
    owners: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        client_port = inode_of.get(int(target[8:-1]))
                        if client_port is not None:
                            owners[client_port] = pid
    return owners


def listening_sockets(port: int) -> int:
    """TCP sockets in LISTEN state on ``port`` (any address), from /proc/net/tcp and tcp6."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as rows:
            next(rows, None)
            for row in rows:
                fields = row.split()
                if len(fields) > 3 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def cds_env(tmp: Path, rules_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CDS_PROFILE": "demo",
        "CDS_AUTH_REQUIRED": "false",
        "CDS_HOST": LOOPBACK,
        "CDS_RULES_DIR": str(rules_dir),
        "CDS_DATABASE_URL": f"sqlite:///{tmp / 'cds.sqlite3'}",
        "CDS_LOG_LEVEL": "WARNING",  # one INFO line per request would measure the terminal, not the service
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {**env, **(extra or {})}


def start_cds(
    name: str,
    workers: int,
    tmp: Path,
    rules_dir: Path,
    env_extra: dict[str, str] | None = None,
    ready_body: bytes | None = None,
    port: int | None = None,
) -> Server:
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "cds.cli",
        "serve",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return _start(name, workers, command, port, cds_env(tmp, rules_dir, env_extra), tmp, ready_body)


def start_empty(workers: int, tmp: Path, ready_body: bytes | None = None) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.empty_app", "--port", str(port), "--workers", str(workers)]
    return _start("empty", workers, command, port, cds_env(tmp, REPO / "rules"), tmp, ready_body)


def _start(
    name: str,
    workers: int,
    command: list[str],
    port: int,
    env: dict[str, str],
    tmp: Path,
    ready_body: bytes | None,
    timeout: float = 60.0,
) -> Server:
    """Start a server and wait for its first answer: a 200 to ``ready_body`` if given, else to /healthz."""
    log_path = tmp / f"{name}-{workers}w-{port}.log"
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    server = Server(name, workers, process, port, log_path)
    deadline = started + timeout * workers  # workers start side by side on two shared cores
    with httpx.Client(base_url=server.base_url, timeout=2.0, trust_env=False) as client:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} server exited with {process.returncode}: {server.log_tail()}")
            try:
                if ready_body is None:
                    response = client.get("/healthz")
                else:
                    response = client.post(HOOK_PATH, content=ready_body, headers={"Content-Type": "application/json"})
                if response.status_code == 200:
                    server.ready_s = time.perf_counter() - started
                    if workers > 1 and reuseport_supported():
                        server.wait_listening(max(1.0, deadline - time.perf_counter()))
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    server.stop()
    raise RuntimeError(f"{name} server not ready within {timeout:g} s: {server.log_tail()}")


@contextlib.contextmanager
def running(start: Callable[[], Server]) -> Iterator[Server]:
    server = start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------ load generator


@dataclass(frozen=True)
class Load:
    concurrency: int
    max_requests: int
    max_seconds: float
    warmup: int = 0


@dataclass
class LoadOutcome:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0  # transport errors
    elapsed: float = 0.0
    client_cpu_s: float = 0.0  # CPU of the load generator's process during the timed part
    # Per virtual user: requests completed in the timed part, and the worker process that held its
    # connection when the clock started (None when not looked up: one worker, or no /proc).
    per_user: list[int] = field(default_factory=list)
    user_worker: list[int | None] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.failures + sum(n for s, n in self.statuses.items() if not 200 <= s < 300)


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the default load generator's transport.

    Written by hand on purpose: the load generator shares two cores with the
    server, and on this machine httpx's async client costs about 1 ms of CPU per
    request and tops out near 240 requests/s at 32 connections against the
    empty route, where this client drives the same server at about 2,900. With
    httpx the concurrent figures would measure the client. httpx stays
    available (``client="httpx"``) and its baseline is reported beside it. Only
    what the benchmark needs: POST with Content-Length, responses framed by
    Content-Length (Starlette's Response always sends one).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @property
    def local_port(self) -> int | None:
        if self.writer is None or self.writer.is_closing():
            return None
        sockname = self.writer.get_extra_info("sockname")
        return int(sockname[1]) if sockname else None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(LOOPBACK, self.port)
        assert self.reader is not None
        lines = [f"POST {path} HTTP/1.1", f"Host: {LOOPBACK}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(":", 1) for line in header_lines if ":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        if "content-length" not in fields:
            await self.close()
            raise ConnectionError("response without Content-Length")
        await self.reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return int(status_line.split()[1])

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
            self.writer = None


async def _drive(server: Server, body: bytes, load: Load, headers: HeaderFactory | None, client: str) -> LoadOutcome:
    """``load.concurrency`` virtual users, each with its own connection, until the count or the time is up."""
    outcome = LoadOutcome(per_user=[0] * load.concurrency)
    base_headers = {"Content-Type": "application/json"}
    issued = 0
    deadline = 0.0

    async def user(index: int, post: Callable[[str, bytes, dict[str, str]], Any], warmup: int) -> None:
        nonlocal issued, ready
        for _ in range(warmup):
            with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError, httpx.HTTPError):
                await post(HOOK_PATH, body, {**base_headers, **(headers() if headers else {})})
        ready += 1
        if ready == load.concurrency:
            all_ready.set()
        await started.wait()
        while issued < load.max_requests and time.perf_counter() < deadline:
            issued += 1
            request_headers = {**base_headers, **(headers() if headers else {})}  # signing is not timed
            began = time.perf_counter()
            try:
                status = await post(HOOK_PATH, body, request_headers)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, httpx.HTTPError):
                outcome.failures += 1
                continue
            outcome.latencies.append(time.perf_counter() - began)
            outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
            outcome.per_user[index] += 1

    ready = 0
    all_ready, started = asyncio.Event(), asyncio.Event()
    warmup_each = max(1, load.warmup // load.concurrency) if load.warmup else 0
    async with contextlib.AsyncExitStack() as stack:
        posts = []
        connections: list[RawConnection] = []
        for _ in range(load.concurrency):
            if client == "httpx":
                limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
                session = await stack.enter_async_context(
                    httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30.0, trust_env=False)
                )
                posts.append(_httpx_post(session))
            else:
                connection = RawConnection(server.port)
                stack.push_async_callback(connection.close)
                connections.append(connection)
                posts.append(connection.post)
        tasks = [asyncio.create_task(user(i, post, warmup_each)) for i, post in enumerate(posts)]
        await all_ready.wait()  # everyone has warmed up (and connected): the clock starts for all at once
        outcome.user_worker = _user_workers(server, connections) if load.warmup else []
        cpu_before = _own_cpu_seconds()
        begin = time.perf_counter()
        deadline = begin + load.max_seconds
        started.set()
        await asyncio.gather(*tasks)
        outcome.elapsed = time.perf_counter() - begin
        outcome.client_cpu_s = _own_cpu_seconds() - cpu_before
    return outcome


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _user_workers(server: Server, connections: list[RawConnection]) -> list[int | None]:
    """The worker holding each warmed-up connection (several workers only; the raw client only)."""
    if server.workers < 2 or not connections:
        return []
    ports = [c.local_port for c in connections]
    owners = connection_owners(server.port, [p for p in ports if p is not None], server.worker_pids())
    return [owners.get(p) if p is not None else None for p in ports]


def _httpx_post(session: httpx.AsyncClient) -> Callable[[str, bytes, dict[str, str]], Any]:
    async def post(path: str, body: bytes, headers: dict[str, str]) -> int:
        response = await session.post(path, content=body, headers=headers)
        await response.aread()
        return response.status_code

    return post


def drive(
    server: Server, body: bytes, load: Load, headers: HeaderFactory | None = None, client: str = "raw"
) -> LoadOutcome:
    return asyncio.run(_drive(server, body, load, headers, client))


def result_of(
    family: str,
    name: str,
    outcome: LoadOutcome,
    params: dict[str, Any],
    note: str = "",
    values: dict[str, float] | None = None,
) -> Result:
    if not outcome.latencies:
        return Result.failed(
            family,
            name,
            f"no successful request ({outcome.failures} transport errors, statuses {outcome.statuses})",
            **params,
        )
    completed = len(outcome.latencies) + outcome.failures
    status_note = ", ".join(f"{n}x{s}" for s, n in sorted(outcome.statuses.items()))
    values = dict(values or {})
    values["seconds"] = round(outcome.elapsed, 3)
    if completed:
        values["client_cpu_ms_per_request"] = 1000.0 * outcome.client_cpu_s / completed
    return Result(
        family,
        name,
        params=params,
        latency=summarise(outcome.latencies),
        throughput_rps=completed / outcome.elapsed if outcome.elapsed else None,
        requests=completed,
        errors=outcome.errors,
        values=values,
        note="; ".join(x for x in (note, f"statuses {status_note}") if x),
    )


# ------------------------------------------------------------------ JWT


@dataclass(frozen=True)
class JwtClient:
    """A CDS client (EHR) with an ES384 key, trusted through a JWKS file; signs a fresh JWT per call."""

    env: dict[str, str]
    sign: Callable[[str], str]

    def headers_for(self, audience: str) -> HeaderFactory:
        return lambda: {"Authorization": f"Bearer {self.sign(audience)}"}


def make_jwt_client(tmp: Path) -> JwtClient:
    import jwt
    import yaml
    from cryptography.hazmat.primitives.asymmetric import ec

    issuer = "https://bench-ehr.example.org"
    kid = "bench-es384"
    key = ec.generate_private_key(ec.SECP384R1())
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks = tmp / "bench-jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [{**public, "kid": kid, "alg": "ES384", "use": "sig"}]}))
    clients = tmp / "trusted-clients.yaml"
    clients.write_text(yaml.safe_dump({"clients": [{"iss": issuer, "jwks_file": str(jwks)}]}), encoding="utf-8")

    def sign(audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer,
            "sub": "bench-client",
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key, algorithm="ES384", headers={"kid": kid, "typ": "JWT"})

    env = {"CDS_AUTH_REQUIRED": "true", "CDS_TRUSTED_CLIENTS_FILE": str(clients)}
    return JwtClient(env, sign)


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class HttpPlan:
    source: Case
    large: tuple[Case, ...]  # sent sequentially: synthetic-1000, synthetic-10000, synthea-esrd
    quick: bool = False
    rules_dir: Path = REPO / "rules"
    concurrencies: tuple[int, ...] = (4, 8, 32)
    workers: tuple[int, ...] = (1, 2)

    def load(self, concurrency: int, large: bool = False) -> Load:
        """Latency runs (one client) are bounded by count and time; throughput runs by time alone.

        A throughput figure is requests over a fixed duration after every connection has warmed up:
        at about 50 requests/s, the quick run's former 0.4 s held some 30 requests, too few for a rate
        to mean anything (issue 20). The request cap only bounds a runaway run.
        """
        if concurrency == 1:
            seconds = 3.0 if not large else 4.0
            if self.quick:
                seconds /= 8
            return Load(1, 60 if large else 500, seconds, warmup=2 if large else 10)
        return Load(concurrency, THROUGHPUT_MAX_REQUESTS, self.throughput_seconds, warmup=4 * concurrency)

    @property
    def throughput_seconds(self) -> float:
        return QUICK_THROUGHPUT_SECONDS if self.quick else THROUGHPUT_SECONDS


# Fixed durations of a throughput run (after warm-up), also in --quick: long enough for a stable rate.
THROUGHPUT_SECONDS = 10.0
QUICK_THROUGHPUT_SECONDS = 5.0
THROUGHPUT_MAX_REQUESTS = 500_000


def run(plan: HttpPlan) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="cds-bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        for workers in plan.workers:
            results.extend(_empty_baseline(plan, workers, tmp))
            results.extend(_cds(plan, workers, tmp))
        if set(plan.workers) >= {1, 2}:
            results.extend(_scaling(plan, tmp))
        results.extend(_jwt(plan, tmp))
        results.extend(_fetch(plan, tmp))
    return results


SCALING_NAME = "http/cds/scaling-2w-over-1w/c8/{case}"


def _scaling(plan: HttpPlan, tmp: Path, concurrency: int = 8) -> list[Result]:
    """2 workers against 1 worker in alternating rounds of the same load, both servers up side by side.

    The 1-worker and 2-worker figures of the main runs are taken minutes apart, and on a shared
    machine the load of other jobs changes in between by more than the effect measured; alternating
    rounds and the median of the per-round ratios cancel most of that (ADR 0015).
    """
    name = SCALING_NAME.format(case=plan.source.name)
    rounds = 3 if plan.quick else 5
    rates: dict[int, list[float]] = {1: [], 2: []}
    cpu_ms: dict[int, list[float]] = {1: [], 2: []}  # server CPU per request, per round
    requests = errors = 0
    try:
        with contextlib.ExitStack() as stack:
            servers = []
            for workers in (1, 2):
                folder = tmp / f"scaling-{workers}w"  # a database file of its own
                folder.mkdir(exist_ok=True)
                start = functools.partial(start_cds, "cds-scaling", workers, folder, plan.rules_dir)
                servers.append(stack.enter_context(running(start)))
            for _ in range(rounds):
                for server in servers:
                    cpu_before = sum(server.cpu_seconds().values())
                    outcome = drive(server, plan.source.body, plan.load(concurrency))
                    completed = len(outcome.latencies) + outcome.failures
                    if completed:
                        spent = sum(server.cpu_seconds().values()) - cpu_before
                        cpu_ms[server.workers].append(1000.0 * spent / completed)
                    requests, errors = requests + completed, errors + outcome.errors
                    rates[server.workers].append(completed / outcome.elapsed if outcome.elapsed else 0.0)
    except RuntimeError as exc:
        return [Result.failed("http", name, str(exc)[:600])]
    ratios = [two / one for one, two in zip(rates[1], rates[2], strict=True) if one > 0]
    if not ratios:
        return [Result.failed("http", name, "no request completed on the 1-worker server")]
    return [
        Result(
            "http",
            name,
            params={"concurrency": concurrency, "case": plan.source.name, "rounds": rounds},
            requests=requests,
            errors=errors,
            values={
                "ratio_median": statistics.median(ratios),
                "rps_1w_median": statistics.median(rates[1]),
                "rps_2w_median": statistics.median(rates[2]),
                **{f"server_cpu_ms_per_request_{w}w_median": statistics.median(cpu_ms[w]) for w in (1, 2) if cpu_ms[w]},
            },
            note=f"{rounds} alternating rounds of {plan.throughput_seconds:g} s per server; per-round ratios "
            + ", ".join(f"{r:.2f}" for r in ratios),
        )
    ]


def _scenarios(
    plan: HttpPlan,
    server: Server,
    family: str,
    label: str,
    large: bool,
    headers: HeaderFactory | None = None,
    concurrencies: tuple[int, ...] | None = None,
) -> list[Result]:
    out = []
    for concurrency in (1, *(plan.concurrencies if concurrencies is None else concurrencies)):
        params = {
            "server": server.name,
            "workers": server.workers,
            "concurrency": concurrency,
            "case": plan.source.name,
            "client": "raw",
        }
        cpu_before, switches_before = server.cpu_seconds(), server.context_switches()
        outcome = drive(server, plan.source.body, plan.load(concurrency), headers)
        note, values = _server_share(outcome, cpu_before, server.cpu_seconds(), server.workers)
        completed = len(outcome.latencies) + outcome.failures
        if completed:
            switches_after = server.context_switches()
            values["server_voluntary_switches_per_request"] = (switches_after[0] - switches_before[0]) / completed
            values["server_involuntary_switches_per_request"] = (switches_after[1] - switches_before[1]) / completed
        out.append(
            result_of(
                family,
                f"http/{label}/{server.workers}w/c{concurrency}/{plan.source.name}",
                outcome,
                params,
                note,
                values,
            )
        )
    if large:
        for case in plan.large:
            params = {
                "server": server.name,
                "workers": server.workers,
                "concurrency": 1,
                "case": case.name,
                "resources": case.resources,
                "body_bytes": len(case.body),
                "client": "raw",
            }
            outcome = drive(server, case.body, plan.load(1, large=True), headers)
            out.append(result_of(family, f"http/{label}/{server.workers}w/c1/{case.name}", outcome, params, case.note))
    return out


def _server_share(
    outcome: LoadOutcome, before: dict[int, float], after: dict[int, float], workers: int
) -> tuple[str, dict[str, float]]:
    """The server's CPU per request and, with several workers, how requests and CPU spread over them.

    Each worker's CPU seconds come from /proc/<pid>/stat; the requests of each worker are the
    requests of the connections it held (``connection_owners``), so the spread is shown two ways.
    """
    completed = len(outcome.latencies) + outcome.failures
    spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    values: dict[str, float] = {}
    if completed and spent:
        values["server_cpu_ms_per_request"] = 1000.0 * sum(spent.values()) / completed
    if workers < 2:
        return "", values
    order = sorted(spent, key=spent.__getitem__, reverse=True)
    parts = ["worker CPU s " + " / ".join(f"{spent[pid]:.2f}" for pid in order)]
    if outcome.user_worker:
        requests = dict.fromkeys(order, 0)
        connections = dict.fromkeys(order, 0)
        unknown = 0
        for pid, count in zip(outcome.user_worker, outcome.per_user, strict=True):
            if pid in requests:
                requests[pid] += count
                connections[pid] += 1
            else:
                unknown += count
        parts.append(
            "requests per worker "
            + " / ".join(str(requests[pid]) for pid in order)
            + " (connections "
            + " / ".join(str(connections[pid]) for pid in order)
            + ")"
            + (f", {unknown} on connections not traced" if unknown else "")
        )
        if completed:
            values["busiest_worker_request_share"] = max(requests.values()) / completed
    total = sum(spent.values())
    if total > 0:
        values["busiest_worker_cpu_share"] = spent[order[0]] / total
    return "; ".join(parts), values


def _empty_baseline(plan: HttpPlan, workers: int, tmp: Path) -> list[Result]:
    try:
        with running(lambda: start_empty(workers, tmp)) as server:
            out = _scenarios(plan, server, "baseline", "empty", large=workers == 1)
            if workers == 1:  # what the load generator itself costs: the same route driven by httpx
                for concurrency in (1, 8, 32):
                    params = {
                        "server": "empty",
                        "workers": 1,
                        "concurrency": concurrency,
                        "case": plan.source.name,
                        "client": "httpx",
                    }
                    outcome = drive(server, plan.source.body, plan.load(concurrency), client="httpx")
                    out.append(
                        result_of(
                            "baseline",
                            f"http/empty-httpx-client/1w/c{concurrency}/{plan.source.name}",
                            outcome,
                            params,
                            "httpx.AsyncClient as the load generator, one per virtual user",
                        )
                    )
            return out
    except RuntimeError as exc:
        return [Result.failed("baseline", f"http/empty/{workers}w", str(exc)[:600])]


def _cds(plan: HttpPlan, workers: int, tmp: Path) -> list[Result]:
    try:
        with running(lambda: start_cds("cds", workers, tmp, plan.rules_dir)) as server:
            rss_start = server.rss_mb()
            out = _scenarios(plan, server, "http", "cds", large=workers == 1)
            rss_after = server.rss_mb()
            out.append(
                Result(
                    "memory",
                    f"server-rss/{workers}w",
                    params={"workers": workers},
                    values={"rss_after_start_mb": rss_start, "rss_after_http_load_mb": rss_after},
                    requests=sum(r.requests for r in out),
                    note="uvicorn processes (supervisor and workers) of `cds serve`, summed",
                )
            )
            return out
    except RuntimeError as exc:
        return [Result.failed("http", f"http/cds/{workers}w", str(exc)[:600])]


def _jwt(plan: HttpPlan, tmp: Path) -> list[Result]:
    """A signed ES384 JWT per request; with 2 workers the replay store is the shared database (ADR 0015)."""
    if not stages.has_module("cds.auth"):
        return [
            Result.unavailable("http", f"http/cds-jwt/{w}w/c{c}/{plan.source.name}", "cds.auth is not on this checkout")
            for w in plan.workers
            for c in (1, 8)
        ]
    client = make_jwt_client(tmp)
    out: list[Result] = []
    for workers in plan.workers:
        port = free_port()
        # The JWT's aud is checked against the URL the EHR calls, which the service must be told.
        env = {**client.env, "CDS_EXTERNAL_BASE_URL": f"http://{LOOPBACK}:{port}"}
        try:
            with running(
                functools.partial(start_cds, "cds-jwt", workers, tmp, plan.rules_dir, env, port=port)
            ) as server:
                headers = client.headers_for(f"{server.base_url}{HOOK_PATH}")
                out += _scenarios(plan, server, "http", "cds-jwt", large=False, headers=headers, concurrencies=(8,))
        except RuntimeError as exc:
            out += [
                Result.failed("http", f"http/cds-jwt/{workers}w/c{c}/{plan.source.name}", str(exc)[:600])
                for c in (1, 8)
            ]
    return out


def _fetch(plan: HttpPlan, tmp: Path) -> list[Result]:
    name = f"http/cds/1w/c1/{plan.source.name}-fetch-labs"
    if not FHIR_TEST_SERVER.exists():
        return [
            Result.unavailable(
                "http", name, "the loopback FHIR test server (tests/fhir_server.py) is not on this checkout"
            )
        ]
    if not stages.has_module("cds.hooks.fhir_client"):
        return [Result.unavailable("http", name, "prefetch fetching (cds.hooks.fhir_client) is not on this checkout")]
    bundle = tmp / "fhir-store.json"
    bundle.write_bytes(orjson.dumps(as_collection_bundle(plan.source.payload)))
    fhir = subprocess.Popen(
        [sys.executable, str(FHIR_TEST_SERVER), str(bundle)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    try:
        line = fhir.stdout.readline() if fhir.stdout else ""
        if not line.startswith("PORT "):
            return [Result.failed("http", name, f"FHIR test server did not start: {line!r}")]
        fhir_base = f"http://{LOOPBACK}:{int(line.split()[1])}/ok/fhir"
        case = without_prefetch_key(plan.source, "labs", fhir_base)
        with running(lambda: start_cds("cds", 1, tmp, plan.rules_dir)) as server:
            outcome = drive(server, case.body, plan.load(1))
            params = {"server": "cds", "workers": 1, "concurrency": 1, "case": case.name, "fetched": "labs"}
            return [
                result_of("http", name, outcome, params, "labs fetched from the loopback FHIR test server per request")
            ]
    except RuntimeError as exc:
        return [Result.failed("http", name, str(exc)[:600])]
    finally:
        fhir.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            fhir.wait(timeout=10)


def cold_start(source: Case, repeats: int, rules_dir: Path) -> list[Result]:
    """Seconds from launching `cds serve` to the first 200 answer to the source case."""
    seconds: list[float] = []
    rss: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cds-bench-start-") as tmp_name:
        for _ in range(repeats):
            try:
                server = start_cds("cds", 1, Path(tmp_name), rules_dir, ready_body=source.body)
            except RuntimeError as exc:
                return [Result.failed("startup", "cold-start/1w", str(exc)[:600])]
            seconds.append(server.ready_s)
            rss.append(server.rss_mb())
            server.stop()
    return [
        Result(
            "startup",
            "cold-start/1w",
            params={"workers": 1, "case": source.name},
            latency=summarise(seconds),
            requests=len(seconds),
            values={"rss_after_first_answer_mb": sorted(rss)[len(rss) // 2]},
            note="process launch to the first 200 answer to the source case (polling every 10 ms)",
        )
    ]
