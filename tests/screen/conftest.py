"""Fixtures of the population-screening tests: one local Dask cluster (2 processes on loopback)
shared by the module's tests, and the per-patient answer of the service to compare against."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from cds.screen.evaluate import comparable_card
from tests.conftest import shipped_pipeline

pytest.importorskip("dask.distributed", reason="cds screen needs dask[distributed] (test extra)")


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, silence_logs=40
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="session")
def pipeline() -> Any:
    return shipped_pipeline()


def service_answer(pipeline: Any, request: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The cards the patient-view service answers to ``request`` (as ``cds evaluate`` does), minus uuids."""
    from cds.hooks.handler import answer_hook

    service = pipeline.service("calciphylaxis-risk")
    evaluation = asyncio.run(answer_hook(pipeline, service, request, now))
    return [comparable_card(card) for card in evaluation.response.to_wire()["cards"]]
