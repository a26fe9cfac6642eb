"""Shared fixtures for the FHIR-layer tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds.facts import Fact, FactSet
from cds.fhir import Terminology, extract_facts
from tests.conftest import RULES_DIR

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def terminology() -> Terminology:
    return Terminology.load(RULES_DIR)


@pytest.fixture
def run(terminology: Terminology):  # type: ignore[no-untyped-def]
    """extract_facts over a prefetch of resources/Bundles, at NOW unless told otherwise."""

    def _run(*items: Any, context: dict[str, Any] | None = None, now: datetime = NOW) -> FactSet:
        prefetch = {f"key{i}": item for i, item in enumerate(items)}
        return extract_facts(context or {"patientId": "p1"}, prefetch, now, terminology)

    return _run


def of_kind(facts: FactSet, kind: str, **attrs: Any) -> list[Fact]:
    return [f for f in facts.facts if f.kind == kind and all(f.attrs.get(k) == v for k, v in attrs.items())]


def one(facts: FactSet, kind: str, **attrs: Any) -> Fact:
    found = of_kind(facts, kind, **attrs)
    assert len(found) == 1, f"expected one {kind} fact with {attrs}, got {[f.as_dict() for f in found]}"
    return found[0]
