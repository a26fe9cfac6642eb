from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cds.findings import FindingsKnowledge
from tests.conftest import RULES_DIR


@pytest.fixture(scope="session")
def knowledge() -> FindingsKnowledge:
    return FindingsKnowledge.load(RULES_DIR)


@pytest.fixture()
def now() -> datetime:
    return datetime(2026, 10, 10, 12, 0, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    # spaCy 3.7's CLI helpers import a Click API that Click deprecates; nothing of ours.
    config.addinivalue_line("filterwarnings", "ignore:Importing 'parser.split_arg_string':DeprecationWarning")
