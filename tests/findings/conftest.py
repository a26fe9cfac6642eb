from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cds.findings import FindingsKnowledge
from tests.conftest import RULES_DIR


@pytest.fixture(scope="session")
def knowledge() -> FindingsKnowledge:
    return FindingsKnowledge.load(RULES_DIR)


@pytest.fixture()
def now() -> datetime:
    return datetime(2026, 10, 10, 12, 0, tzinfo=timezone.utc)
