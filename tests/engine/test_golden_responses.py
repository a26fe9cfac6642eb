"""The pipeline answers every shipped case and shared-data request exactly as recorded on main before
the hot-path work of issue 20 (tests/golden/responses.py): memos, precomputed per-bundle matchers and
the leaner durable-rules adapter may change how fast, never what. Both backends, byte for byte
(canonical JSON, random uuids numbered). After a deliberate change of rules or wording, re-record
with ``python -m tests.golden.responses --write`` and say so in the commit."""

from __future__ import annotations

import json

import pytest

from cds.pipeline import Pipeline
from tests.conftest import RULES_DIR, shared_data
from tests.golden import responses as golden

RECORDED: dict[str, str] = json.loads(golden.GOLDEN.read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=golden.ENGINES)
def pipeline(request: pytest.FixtureRequest) -> Pipeline:
    return Pipeline.load(RULES_DIR, engine=request.param)


def test_every_shipped_case_and_shared_request_is_recorded() -> None:
    shipped = {name for name, _, _ in golden.requests() if name.startswith("fhir_examples/")}
    expected = shipped | {f"shared/{file}" for file in golden.SHARED_REQUESTS}
    assert set(RECORDED) == expected


def test_the_live_responses_match_the_recording(pipeline: Pipeline) -> None:
    for file in golden.SHARED_REQUESTS:
        shared_data(*file.split("/"))  # skips (fails in CI) without ../shared/data
    differing = [
        name
        for name, service_id, body in golden.requests()
        if golden.digest(golden.answer(pipeline, service_id, body)) != RECORDED[name]
    ]
    assert differing == [], f"{pipeline.backend}: responses changed for {differing}"
