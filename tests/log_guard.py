"""A pytest plugin that fails the run if a JWT or a test access token reaches any log record.

Every log record of the whole session (every logger, every level) is checked as
it is emitted: its message, its arguments, its exception text and its extra
fields. Tests build their access tokens and JWTs as usual; test access tokens
carry ``TEST_TOKEN_MARKER`` so that the guard can recognise them.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

import pytest

TEST_TOKEN_MARKER = "sEcReT-aCcEsS-"
# Three base64url parts, the first a JSON object ("eyJ" is base64 of '{"').
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({})))


def secrets_in(text: str) -> list[str]:
    """The JWT-looking strings and test access tokens inside ``text``."""
    found = [m.group(0) for m in JWT_PATTERN.finditer(text)]
    if TEST_TOKEN_MARKER in text:
        found.append(TEST_TOKEN_MARKER)
    return found


def record_text(record: logging.LogRecord) -> str:
    parts: list[Any] = [record.msg, record.args]
    try:
        parts.append(record.getMessage())
    except Exception:  # a malformed record is not this guard's concern
        pass
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    parts.extend(v for k, v in vars(record).items() if k not in _STANDARD_ATTRS)
    return " ".join(repr(p) if not isinstance(p, str) else p for p in parts)


class TokenLogGuard(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.violations: list[str] = []
        self.current_test = "(outside a test)"

    def emit(self, record: logging.LogRecord) -> None:
        found = secrets_in(record_text(record))
        if found:
            self.violations.append(f"{self.current_test}: logger {record.name!r} at {record.levelname} logged a secret")


_guard = TokenLogGuard()


def pytest_sessionstart(session: pytest.Session) -> None:
    root = logging.getLogger()
    root.addHandler(_guard)
    # Records below the root's level are never created; check them all.
    root.setLevel(logging.DEBUG)
    logging.getLogger("asyncio").setLevel(logging.INFO)  # one "Using selector" line per event loop


def pytest_runtest_setup(item: pytest.Item) -> None:
    _guard.current_test = item.nodeid


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_guard)
    if _guard.violations:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["A JWT or an access token reached a log record:", *sorted(set(_guard.violations))]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
