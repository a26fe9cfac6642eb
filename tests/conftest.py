"""Shared fixtures. Data from ../shared/data is read in place, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
RULES_DIR = REPO / "rules"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data. Missing data fails in CI and skips elsewhere."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared test data missing in CI: {path}")
        pytest.skip(f"shared test data not available: {path}")
    return path
