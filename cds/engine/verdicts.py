"""The start-up rule-test gate, run once per exact input: a recorded pass, keyed by everything it depends on.

A rule set is served only when its rule tests pass on the serving backend (``cds.pipeline``). The tests
took ~0.8 s of the ~4.3 s of CPU a cold start cost (benchmarks/startup_profile.py), and their verdict
is a pure function of:

* every file under ``rules/`` (rules, cards, value sets, findings vocabularies, the test files and the
  cases beside them) and every case file a test reads from outside ``rules/``;
* the code that extracts facts and evaluates them: every ``.py`` file of the ``cds`` package;
* the libraries under it: the name and version of every installed distribution, and Python's version;
* the serving backend (durable or reference), and whether the FHIR layer was there to read the cases.

So a pass is recorded under the SHA-256 of all of these, and a later start (or a hot reload, or another
worker) with the same inputs does not run them again. A failure is never recorded: a rule set whose tests
fail is tested, and refused, every time. Any change to any input gives another key, so the tests run.
The record is only a hint to skip work that would give the same answer; a missing, unreadable or
unwritable record means "run the tests" (docs/adr/0014-cold-start.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from cds.engine.paths import case_path
from cds.engine.ruleset import RuleSet
from cds.settings import Settings

log = logging.getLogger("cds.engine.verdicts")

_FORMAT = "cds-rule-test-verdict/1"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # cds/


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/cds/rule-test-verdicts``, else ``~/.cache/cds/rule-test-verdicts``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cds" / "rule-test-verdicts"


def configured_record(settings: Settings) -> VerdictRecord | None:
    """The record the settings ask for (``CDS_RULE_TEST_VERDICTS``, ``CDS_RULE_TEST_VERDICTS_DIR``)."""
    if not settings.rule_test_verdicts:
        return None
    return VerdictRecord(settings.rule_test_verdicts_dir or default_directory())


def verdict_key(ruleset: RuleSet, backend: str, with_extractor: bool) -> str:
    """SHA-256 of every input the rule tests' verdict depends on (see the module docstring)."""
    digest = hashlib.sha256(_FORMAT.encode() + b"\0" + backend.encode() + b"\0" + bytes([with_extractor]))
    rules_dir = Path(ruleset.rules_dir).resolve()
    _add_tree(digest, b"rules", rules_dir, "*")
    cases = set()
    for test in ruleset.tests:
        if test.case is None:
            continue
        declaring = ruleset.test_files.get(test.id, rules_dir / "tests" / "cases.yaml")
        found = case_path(rules_dir, declaring, str(test.case))
        if found is not None and not found.resolve().is_relative_to(rules_dir):
            cases.add(found.resolve())
    for path in sorted(cases):
        digest.update(b"case\0" + str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(_code_and_libraries())
    return digest.hexdigest()


_CODE: list[bytes] = []


def _code_and_libraries() -> bytes:
    """Digest of the ``cds`` sources, Python's version and the installed distributions, taken once per
    process: the code that runs is the code imported at start, even if the files change on disk later."""
    if not _CODE:
        digest = hashlib.sha256()
        _add_tree(digest, b"code", _PACKAGE_DIR, "*.py")
        digest.update(b"python\0" + sys.version.encode() + b"\0")
        for name in _installed_distributions():
            digest.update(b"dist\0" + name.encode() + b"\0")
        _CODE.append(digest.digest())
    return _CODE[0]


def _add_tree(digest: hashlib._Hash, label: bytes, root: Path, pattern: str) -> None:
    for path in sorted(p for p in root.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts):
        digest.update(label + b"\0" + str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")


def _installed_distributions() -> list[str]:
    """``name-version.dist-info`` of every distribution on sys.path (a directory listing: < 1 ms,
    where importlib.metadata took ~0.5 s to read every METADATA file)."""
    names = []
    for entry in sys.path:
        try:
            listed = os.listdir(entry or ".")
        except OSError:  # not a directory (a zip), or gone
            continue
        names += [n for n in listed if n.endswith((".dist-info", ".egg-info"))]
    return sorted(names)


class VerdictRecord:
    """Recorded passes in one directory: one small JSON file per key."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def passed(self, key: str) -> bool:
        try:
            record = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(record, dict) and record.get("format") == _FORMAT and record.get("key") == key

    def record_pass(self, key: str, tests: int, backend: str, version: str) -> None:
        """Write the pass atomically (a reader sees the whole file or none); failures are only logged."""
        record = {"format": _FORMAT, "key": key, "tests": tests, "backend": backend, "ruleset": version}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".verdict-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(record, out)
                os.replace(tmp, self._path(key))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a read-only cache: the next start runs the tests again
            log.info("rule-test verdict not recorded in %s: %s", self.directory, exc)
