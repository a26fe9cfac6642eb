"""Size limits answer with an OperationOutcome, never 200 with zero cards (security-reliability.md F8)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cds.hooks.limits import count_resources, deeper_than
from cds.settings import Settings
from tests.conftest import RULES_DIR, shipped_app
from tests.realdata.helpers import deep, example, post

SOURCE = "source-case.patient-view.json"


def _nested_extension(depth: int) -> list:
    inner: dict = {"url": "http://example.org/fhir/StructureDefinition/leaf", "valueString": "x"}
    for level in range(depth):
        inner = {"url": f"http://example.org/fhir/StructureDefinition/level-{level}", "extension": [inner]}
    return [inner]


def _outcome(response, status: int) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"
    return body["issue"][0]["diagnostics"]


def test_deep_extension_is_422_not_silence() -> None:
    body = example(SOURCE)
    body["prefetch"]["patient"]["extension"] = _nested_extension(150)
    assert "CDS_MAX_JSON_DEPTH" in _outcome(post("calciphylaxis-risk", body), 422)


def test_moderate_nesting_still_answers_with_the_card() -> None:
    body = example(SOURCE)
    body["prefetch"]["patient"]["extension"] = _nested_extension(30)
    response = post("calciphylaxis-risk", body)
    assert response.status_code == 200
    assert [c for c in response.json()["cards"] if c["indicator"] == "warning"]


def _padded(extra_conditions: int) -> dict:
    body = example(SOURCE)
    entries = body["prefetch"]["conditions"].setdefault("entry", [])
    template = deep(next(e for e in entries if e["resource"]["resourceType"] == "Condition"))
    for i in range(extra_conditions):
        entry = deep(template)
        entry["resource"]["id"] = f"pad-{i}"
        entry.pop("fullUrl", None)
        entries.append(entry)
    return body


def test_too_many_facts_is_422_naming_the_setting() -> None:
    client = TestClient(
        shipped_app(Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, max_facts=200)),
        raise_server_exceptions=False,
    )
    response = client.post("/cds-services/calciphylaxis-risk", json=_padded(300))
    assert "CDS_MAX_FACTS" in _outcome(response, 422)
    # Under the limit the same padded request still gets its card.
    assert [c for c in post("calciphylaxis-risk", _padded(300)).json()["cards"] if c["indicator"] == "warning"]


def test_too_many_resources_is_413() -> None:
    client = TestClient(
        shipped_app(Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, max_resources=100)),
        raise_server_exceptions=False,
    )
    response = client.post("/cds-services/calciphylaxis-risk", json=_padded(150))
    assert "CDS_MAX_RESOURCES" in _outcome(response, 413)


def _lists(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("depth", "limit", "expected"), [(5, 10, False), (10, 10, False), (11, 10, True)])
def test_depth_is_counted_without_recursion(depth: int, limit: int, expected: bool) -> None:
    assert deeper_than(_lists(depth), limit) is expected
    assert deeper_than({"a": _lists(depth - 1)}, limit) is expected


def test_depth_check_survives_nesting_python_cannot_recurse_into() -> None:
    assert deeper_than(_lists(100_000), 100)
    assert not deeper_than(_nested_extension(1), 10)


def test_count_resources_counts_bundle_entries() -> None:
    body = example(SOURCE)
    expected = sum(len(v.get("entry", [])) if v["resourceType"] == "Bundle" else 1 for v in body["prefetch"].values())
    assert sum(count_resources(v) for v in body["prefetch"].values()) == expected


@pytest.mark.slow
def test_padding_past_the_engines_cap_is_422_with_default_settings() -> None:
    """The review's reproduction: thousands of extra coded Conditions used to drop labs and imaging
    facts silently (200, zero cards); with the default settings the answer is now a 422.

    Default settings for every limit; only the request deadline is raised, so that a loaded machine
    (5,200 Conditions to read) answers with the limit's 422 and not the deadline's 503."""
    settings = Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, request_deadline_seconds=60)
    limits = ("max_facts", "max_resources", "max_json_depth", "max_body_bytes")
    assert {name: getattr(settings, name) for name in limits} == {
        name: Settings.model_fields[name].default for name in limits
    }
    client = TestClient(shipped_app(settings), raise_server_exceptions=False)
    response = client.post("/cds-services/calciphylaxis-risk", json=_padded(5200))
    assert "CDS_MAX_FACTS" in _outcome(response, 422)
