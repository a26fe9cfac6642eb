"""Fixtures for the real-EHR-data tests (issue 13)."""

from __future__ import annotations

import pytest

from cds.fhir import Terminology
from tests.conftest import RULES_DIR


@pytest.fixture(scope="session")
def terminology() -> Terminology:
    return Terminology.load(RULES_DIR)
