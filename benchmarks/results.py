"""Plain data for benchmark results, and the one JSON shape they are written in.

Every measurement, whatever its family, is a ``Result``; a stage that cannot be
measured yet (its package is not on this branch) is a ``Result`` with status
``not available`` and a note saying why, so the report never silently drops a row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1

Status = Literal["ok", "not available", "failed"]
Param = str | int | float | bool

# The benchmark families; docs/performance.md has one section per family, in this order.
FAMILIES: dict[str, str] = {
    "baseline": "Baselines measured in the same run",
    "in-process": "In-process stages and whole pipeline",
    "rule-packs": "Rule-pack scaling and rule compile time",
    "findings": "Report-text extraction",
    "http": "HTTP on loopback",
    "memory": "Memory",
    "startup": "Cold start",
    "screen": "Population screening on Dask",
}


@dataclass(frozen=True)
class Stats:
    """A latency distribution in milliseconds."""

    n: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float


@dataclass(frozen=True)
class Result:
    family: str  # a key of FAMILIES
    name: str  # stable id, e.g. "pipeline/source-case", "http/1w/c8/source-case"
    status: Status = "ok"
    params: dict[str, Param] = field(default_factory=dict)
    latency: Stats | None = None
    throughput_rps: float | None = None
    requests: int = 0  # requests (or calls) made
    errors: int = 0  # non-2xx answers or exceptions
    values: dict[str, float] = field(default_factory=dict)  # other figures: rss_mb, bytes, ratios...
    note: str = ""

    @classmethod
    def unavailable(cls, family: str, name: str, why: str, **params: Param) -> Result:
        return cls(family=family, name=name, status="not available", params=params, note=why)

    @classmethod
    def failed(cls, family: str, name: str, why: str, **params: Param) -> Result:
        return cls(family=family, name=name, status="failed", params=params, note=why)


@dataclass(frozen=True)
class TargetCheck:
    id: str
    description: str
    target: str  # human-readable target, e.g. "< 3 ms"
    measured: float | None  # None when it could not be measured
    unit: str
    met: bool | None  # None = not measured
    basis: str  # which result(s) the figure comes from
    peer: str = ""  # the AHRQ CQL Services figure it compares with, when there is one


@dataclass(frozen=True)
class Environment:
    python: str
    implementation: str
    platform: str
    cpu_count: int
    cpu_model: str
    load_average_start: tuple[float, float, float]
    load_average_end: tuple[float, float, float]
    engine_backend: str
    ruleset_version: str
    git_commit: str
    started_at: str  # ISO 8601 UTC
    duration_s: float
    quick: bool
    available_stages: dict[str, bool]
    rerun_groups: tuple[str, ...] = ()  # groups re-run with --only and merged into an earlier run's results


@dataclass(frozen=True)
class BenchReport:
    environment: Environment
    results: tuple[Result, ...]
    targets: tuple[TargetCheck, ...]
    schema_version: int = SCHEMA_VERSION

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)

    def result(self, name: str) -> Result | None:
        return next((r for r in self.results if r.name == name), None)
