"""The issue's targets and the 25x goal against AHRQ CQL Services, computed from the results.

A target whose figure is missing (its benchmark failed or is not available)
is "not measured" (``met=None``), never silently met.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.results import Result, TargetCheck

SPEEDUP_GOAL = 25.0


def _index(results: Sequence[Result]) -> dict[str, Result]:
    return {r.name: r for r in results if r.status == "ok"}


def _median(found: dict[str, Result], name: str) -> float | None:
    result = found.get(name)
    return result.latency.median_ms if result and result.latency else None


def _p99(found: dict[str, Result], name: str) -> float | None:
    result = found.get(name)
    return result.latency.p99_ms if result and result.latency else None


def _check(
    id_: str, description: str, target: str, measured: float | None, unit: str, ok: Callable[[float], bool], basis: str
) -> TargetCheck:
    return TargetCheck(id_, description, target, measured, unit, None if measured is None else ok(measured), basis)


def issue_targets(results: Sequence[Result]) -> list[TargetCheck]:
    found = _index(results)
    checks = [
        _check(
            "typical-in-process",
            "Typical request (source case) in-process, median",
            "< 3 ms",
            _median(found, "request/source-case"),
            "ms",
            lambda v: v < 3.0,
            "request/source-case: orjson.loads + request validation + Pipeline.evaluate",
        ),
        _check(
            "typical-http-median",
            "Typical request (source case) over HTTP, 1 worker, median",
            "< 6 ms",
            _median(found, "http/cds/1w/c1/source-case"),
            "ms",
            lambda v: v < 6.0,
            "http/cds/1w/c1/source-case",
        ),
        _check(
            "typical-http-p99",
            "Typical request (source case) over HTTP, 1 worker, p99",
            "< 25 ms",
            _p99(found, "http/cds/1w/c1/source-case"),
            "ms",
            lambda v: v < 25.0,
            "http/cds/1w/c1/source-case",
        ),
        _throughput(found),
        _check(
            "synthea-esrd-http",
            "1.6 MB Synthea ESRD request over HTTP, median",
            "< 30 ms",
            _median(found, "http/cds/1w/c1/synthea-esrd"),
            "ms",
            lambda v: v < 30.0,
            "http/cds/1w/c1/synthea-esrd",
        ),
        _large_vs_baseline(found),
        _check(
            "cold-start",
            "Cold start to first answer (`cds serve`, 1 worker), median",
            "< 3 s",
            _seconds(_median(found, "cold-start/1w")),
            "s",
            lambda v: v < 3.0,
            "cold-start/1w",
        ),
        _rss_growth(found),
    ]
    return checks


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0


def _throughput(found: dict[str, Result]) -> TargetCheck:
    name = "http/cds/2w/c8/source-case"
    result = found.get(name)
    measured = result.throughput_rps if result else None
    met = None if result is None or measured is None else (measured >= 400 and result.errors == 0)
    basis = name + (f" ({result.errors} errors in {result.requests} requests)" if result else "")
    return TargetCheck(
        "throughput-2w-c8",
        "Throughput, 2 workers, 8 concurrent clients, no errors",
        ">= 400 req/s",
        measured,
        "req/s",
        met,
        basis,
    )


def _large_vs_baseline(found: dict[str, Result]) -> TargetCheck:
    service = _median(found, "http/cds/1w/c1/synthetic-10000")
    empty = _median(found, "http/empty/1w/c1/synthetic-10000")
    parse = _median(found, "orjson.loads/synthetic-10000")
    if service is None or empty is None or parse is None:
        return TargetCheck(
            "large-vs-baseline",
            "10,000-resource request over HTTP vs its baselines",
            "<= empty route + 3 x orjson.loads",
            None,
            "ms",
            None,
            "needs http/cds/1w/c1/synthetic-10000, http/empty/1w/c1/synthetic-10000, orjson.loads/synthetic-10000",
        )
    bound = empty + 3.0 * parse
    return TargetCheck(
        "large-vs-baseline",
        "10,000-resource request over HTTP vs its baselines",
        f"<= empty route + 3 x orjson.loads = {empty:.1f} + 3 x {parse:.1f} = {bound:.1f} ms",
        service,
        "ms",
        service <= bound,
        "http/cds/1w/c1/synthetic-10000 against http/empty/1w/c1/synthetic-10000 and orjson.loads/synthetic-10000 "
        "(read as: the empty route's time for the same body, plus three times the time to parse it)",
    )


def _rss_growth(found: dict[str, Result]) -> TargetCheck:
    result = found.get("rss/after-requests")
    if result is None or "growth_mb" not in result.values:
        return TargetCheck(
            "rss-growth", "RSS growth over 100,000 requests", "< 20 MB", None, "MB", None, "rss/after-requests"
        )
    growth = result.values["growth_mb"]
    complete = result.requests >= 100_000
    # Short of 100,000 requests a small growth proves nothing yet; a large one already fails.
    met = (growth < 20.0) if complete else (False if growth >= 20.0 else None)
    basis = f"rss/after-requests: {result.requests} requests, {result.errors} errors"
    return TargetCheck("rss-growth", "RSS growth over 100,000 requests", "< 20 MB", growth, "MB", met, basis)


@dataclass(frozen=True)
class PeerFigure:
    id: str
    description: str
    peer: str  # the published peer range
    peer_best: float  # the peer's best (lowest latency / highest throughput) figure, in `unit`
    unit: str  # "ms" or "req/s"
    ours: str  # result name
    comparable: str  # how our case compares with the peer's


# AHRQ CDS Connect CQL Services running calciphylaxis logic written in CQL, measured on this machine (issue 8).
PEERS: tuple[PeerFigure, ...] = (
    PeerFigure(
        "peer-seed-like",
        "Seed-like patient, median",
        "96-167 ms",
        96.0,
        "ms",
        "http/cds/1w/c1/synthetic-100",
        "peer: 84 labs, 77 KB; ours: synthetic-100 (77 labs, 68 KB)",
    ),
    PeerFigure(
        "peer-throughput-c4",
        "Throughput, 4 concurrent clients",
        "9-11 req/s",
        11.0,
        "req/s",
        "http/cds/1w/c4/source-case",
        "ours: source case, 1 worker",
    ),
    PeerFigure(
        "peer-throughput-c8",
        "Throughput, 8 concurrent clients",
        "9-11 req/s",
        11.0,
        "req/s",
        "http/cds/1w/c8/source-case",
        "ours: source case, 1 worker",
    ),
    PeerFigure(
        "peer-1000-labs",
        "1,000 labs of history, median",
        "470-590 ms",
        470.0,
        "ms",
        "http/cds/1w/c1/synthetic-1000",
        "ours: synthetic-1000 (858 labs among 1,000 resources)",
    ),
    PeerFigure(
        "peer-10000-labs",
        "10,000 labs of history, median",
        "4.1-5.3 s",
        4100.0,
        "ms",
        "http/cds/1w/c1/synthetic-10000",
        "ours: synthetic-10000 (8,679 labs among 10,000 resources)",
    ),
    PeerFigure(
        "peer-synthea",
        "1.6 MB Synthea ESRD patient, median",
        "288-343 ms",
        288.0,
        "ms",
        "http/cds/1w/c1/synthea-esrd",
        "same request, prefetch keys renamed to ours",
    ),
)


def peer_comparison(results: Sequence[Result]) -> list[TargetCheck]:
    """Speed-up over the peer's best figure (conservative); the goal is at least 25x."""
    found = _index(results)
    out = []
    for peer in PEERS:
        result = found.get(peer.ours)
        speedup: float | None = None
        if result is not None:
            if peer.unit == "ms" and result.latency:
                speedup = peer.peer_best / result.latency.median_ms
            elif peer.unit == "req/s" and result.throughput_rps:
                speedup = result.throughput_rps / peer.peer_best
        out.append(
            TargetCheck(
                peer.id,
                peer.description,
                f">= {SPEEDUP_GOAL:g}x faster",
                speedup,
                "x",
                None if speedup is None else speedup >= SPEEDUP_GOAL,
                f"{peer.ours} ({peer.comparable})",
                peer=peer.peer,
            )
        )
    return out
