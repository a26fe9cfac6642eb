"""Repeat a call and summarise its latency.

The machine is shared and noisy: every figure is a distribution over many
repetitions (median, p90, p99), after a warm-up, bounded in both count and time.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.results import Stats


@dataclass(frozen=True)
class Budget:
    """How long to keep repeating: at least ``min_reps``, then until ``max_reps`` or ``max_seconds``."""

    min_reps: int = 5
    max_reps: int = 200
    max_seconds: float = 3.0
    warmup: int = 2

    def scaled(self, factor: float) -> Budget:
        return Budget(
            min_reps=max(1, int(self.min_reps * factor)),
            max_reps=max(1, int(self.max_reps * factor)),
            max_seconds=self.max_seconds * factor,
            warmup=min(self.warmup, max(0, int(self.warmup * factor))),
        )


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample")
    position = (len(sorted_values) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    weight = position - lower
    return sorted_values[lower] * (1 - weight) + sorted_values[upper] * weight


def summarise(seconds: Sequence[float]) -> Stats:
    ordered = sorted(seconds)
    ms = [s * 1000.0 for s in ordered]
    return Stats(
        n=len(ms),
        median_ms=percentile(ms, 0.5),
        p90_ms=percentile(ms, 0.9),
        p99_ms=percentile(ms, 0.99),
        min_ms=ms[0],
        max_ms=ms[-1],
        mean_ms=sum(ms) / len(ms),
    )


def sample(call: Callable[[], Any], budget: Budget) -> list[float]:
    """Durations (seconds) of repeated calls of ``call``, warm-up excluded."""
    for _ in range(budget.warmup):
        call()
    gc.collect()
    durations: list[float] = []
    clock = time.perf_counter
    deadline = clock() + budget.max_seconds
    while len(durations) < budget.max_reps:
        started = clock()
        call()
        finished = clock()
        durations.append(finished - started)
        if len(durations) >= budget.min_reps and finished >= deadline:
            break
    return durations


def measure(call: Callable[[], Any], budget: Budget) -> Stats:
    return summarise(sample(call, budget))


async def sample_async(call: Callable[[], Awaitable[Any]], budget: Budget) -> list[float]:
    """``sample`` for a coroutine function, all inside one running event loop (as under uvicorn,
    so per-loop resources such as the thread pool persist between calls)."""
    for _ in range(budget.warmup):
        await call()
    gc.collect()
    durations: list[float] = []
    clock = time.perf_counter
    deadline = clock() + budget.max_seconds
    while len(durations) < budget.max_reps:
        started = clock()
        await call()
        finished = clock()
        durations.append(finished - started)
        if len(durations) >= budget.min_reps and finished >= deadline:
            break
    return durations
