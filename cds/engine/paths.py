"""Where a path written in a rule file points: relative to the file that names it.

A rule set is then relocatable: ``cp -r rules /elsewhere && cds rules test --rules
/elsewhere`` finds the same files. Before, ``case:`` paths were relative to the parent of
the rules directory, so a copy broke with one "case file not found" per test; that form is
still read (``legacy=True``, note N203) until the migration tool has rewritten every test.
"""

from __future__ import annotations

from pathlib import Path


def case_path(rules_dir: Path, declaring_file: Path, case: str) -> Path | None:
    """The file ``case`` names from ``declaring_file``, or None when it does not exist."""
    found, _ = resolve(rules_dir, declaring_file, case)
    return found


def resolve(rules_dir: Path, declaring_file: Path, case: str) -> tuple[Path | None, bool]:
    """``(path, legacy)``: legacy is True when only the old repository-root form resolves."""
    beside = declaring_file.parent / case
    if beside.is_file():
        return beside, False
    legacy = Path(rules_dir).parent / case
    if not Path(case).is_absolute() and legacy.is_file():
        return legacy, True
    return None, False
