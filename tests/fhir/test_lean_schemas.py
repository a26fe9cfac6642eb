"""The lean schemas ignore undeclared elements instead of copying them (issue 20): they must reject exactly
what they rejected when they allowed them, with the same errors, on realistic and on malformed resources."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from benchmarks.synthetic import make_request, resources_in
from cds.fhir.lean_schemas import LEAN_OBSERVATION, LEAN_PROCEDURE, lean_schemas
from tests.conftest import REPO, SHARED_DATA

ALLOW_OBSERVATION, ALLOW_PROCEDURE = lean_schemas("allow")


def _errors(schema: TypeAdapter[Any], resource: Any) -> list[dict[str, Any]] | None:
    try:
        schema.validate_python(resource)
    except ValidationError as exc:
        return exc.errors(include_url=False)
    return None


def _realistic() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("resourceType") in ("Observation", "Procedure"):
                found.append(value)
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    for path in sorted((REPO / "fhir_examples" / "requests").glob("*.json")):
        walk(json.loads(path.read_text()))
    walk(list(resources_in(make_request(300))))
    synthea = SHARED_DATA / "synthea" / "esrd-dialysis-patient.patient-view-request.json"
    if synthea.exists():
        walk(json.loads(synthea.read_text()))
    return found


REALISTIC = _realistic()


def _pair(resource: dict[str, Any]) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
    if resource.get("resourceType") == "Procedure":
        return LEAN_PROCEDURE, ALLOW_PROCEDURE
    return LEAN_OBSERVATION, ALLOW_OBSERVATION


def test_realistic_resources_get_the_same_verdict_and_errors():
    assert len(REALISTIC) > 300
    rejected = 0
    for resource in REALISTIC:
        lean, allow = _pair(resource)
        errors = _errors(lean, resource)
        assert errors == _errors(allow, resource)
        rejected += errors is not None
    assert rejected < len(REALISTIC)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " ", "final", "2025-01-02", "2025-13-01", "2025-01-02T10:00:00Z", "a b", " a", "x" * 70]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["value", "code", "x"]), inner),
    max_leaves=6,
)
_PATHS = [
    ("resourceType",),
    ("id",),
    ("status",),
    ("code",),
    ("code", "coding"),
    ("code", "text"),
    ("effectiveDateTime",),
    ("effectivePeriod",),
    ("effectiveInstant",),
    ("issued",),
    ("valueQuantity",),
    ("valueQuantity", "value"),
    ("valueQuantity", "comparator"),
    ("valueQuantity", "unit"),
    ("dataAbsentReason",),
    ("performedDateTime",),
    ("performedPeriod",),
    ("performedPeriod", "start"),
    ("category",),
    ("note",),
    ("extra-element",),
]


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_malformed_resources_get_the_same_verdict_and_errors(data):
    resource = copy.deepcopy(data.draw(st.sampled_from(REALISTIC)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_PATHS))
        target = resource
        for key in path[:-1]:
            nested = target.get(key)
            if not isinstance(nested, dict):
                nested = target[key] = {}
            target = nested
        if data.draw(st.booleans()):
            target[path[-1]] = data.draw(_JSON)
        else:
            target.pop(path[-1], None)
    lean, allow = _pair(resource)
    assert _errors(lean, resource) == _errors(allow, resource)


@pytest.mark.parametrize("schema", [LEAN_OBSERVATION, LEAN_PROCEDURE])
def test_a_non_object_is_rejected_alike(schema):
    allow = ALLOW_OBSERVATION if schema is LEAN_OBSERVATION else ALLOW_PROCEDURE
    for value in (None, [], "Observation", 3):
        assert _errors(schema, value) == _errors(allow, value) is not None
