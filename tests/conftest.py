"""Shared fixtures. Data from ../shared/data is read in place, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CDS_SHARED_DATA") or REPO.parent / "shared" / "data")  # worktrees: set CDS_SHARED_DATA
RULES_DIR = REPO / "rules"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data. Missing data fails in CI and skips elsewhere."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared test data missing in CI: {path}")
        pytest.skip(f"shared test data not available: {path}")
    return path


# ---------------------------------------------------------------- whole-run log scan

from tests.log_scan import FIXED_NEEDLES, LeakScanner, synthea_needles  # noqa: E402

LOG_SCANNER = LeakScanner(needles=[*FIXED_NEEDLES, *(synthea_needles(SHARED_DATA) if SHARED_DATA.exists() else [])])


def pytest_sessionstart(session):
    import logging

    from cds.observability.logs import QUIET_LOGGERS

    root = logging.getLogger()
    root.addHandler(LOG_SCANNER)
    root.setLevel(logging.DEBUG)
    for name in QUIET_LOGGERS:  # as in production (cds.observability.logs.configure_logging)
        logging.getLogger(name).setLevel(logging.WARNING)


def pytest_sessionfinish(session, exitstatus):
    if LOG_SCANNER.findings:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = sorted(set(LOG_SCANNER.findings))
        message = "PHI or secrets reached the logs:\n  " + "\n  ".join(lines[:50])
        if reporter:
            reporter.write_sep("=", "log scan failed", red=True)
            reporter.write_line(message)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
