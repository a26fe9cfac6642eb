"""A whole-test-run scan of every log record for PHI, JWTs and access tokens.

Installed by tests/conftest.py at session start: a handler on the root logger
(at DEBUG, with the same third-party loggers quieted as in production) sees
every record any test produces; at the end of the session any finding fails
the run. Records are scanned *before* formatting and scrubbing, so code that
hands a secret to a logger is caught even though the formatter would mask it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}")

# Identifiers and names of the patients in the test data; none may reach a log line.
FIXED_NEEDLES = (
    "source-case-patient",  # fhir_examples source case
    "948e608d-e408-4788-8cf2-8157c49c2940",  # the sandbox captures' patient
)
# Strings the tests use as access tokens (fhirAuthorization.access_token).
TOKEN_MARKERS = ("secret-token", "test-access-token", "access-token-")


def synthea_needles(shared_data: Path) -> list[str]:
    """Patient ids and family names from the Synthea file names (Given_Family_uuid.json)."""
    needles = []
    for path in (shared_data / "synthea").glob("*_*_*.json"):
        given, family, patient_id = path.stem.split("_", 2)
        needles.append(patient_id)
        if len(family) >= 5:
            needles.append(family)
    return needles


def record_text(record: logging.LogRecord) -> str:
    parts = [str(record.msg)]
    try:
        parts.append(record.getMessage())
    except Exception:  # a malformed record is still scanned by its raw parts
        parts.append(repr(record.args))
    parts.extend(str(v) for k, v in record.__dict__.items() if k not in _STANDARD)
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(str(record.exc_info[1]))
    if record.exc_text:
        parts.append(record.exc_text)
    return "\n".join(parts)


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


@dataclass
class LeakScanner(logging.Handler):
    needles: list[str]
    findings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, level=logging.DEBUG)

    def __hash__(self) -> int:  # logging keeps handlers in sets/weakrefs
        return id(self)

    def scan(self, text: str, origin: str) -> None:
        for label, pattern in (("JWT", JWT), ("bearer token", BEARER)):
            if pattern.search(text):
                self.findings.append(f"{origin}: {label}")
        lowered = text.lower()
        for needle in (*self.needles, *TOKEN_MARKERS):
            if needle.lower() in lowered:
                self.findings.append(f"{origin}: contains {needle[:4]}…")

    def emit(self, record: logging.LogRecord) -> None:
        self.scan(record_text(record), f"logger {record.name} ({record.pathname.rsplit('/', 1)[-1]}:{record.lineno})")
