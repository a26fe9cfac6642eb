"""Helpers for engine tests.

Engine tests run on a frozen copy of the sample rule pack (fixtures/sample/rules), so the
knowledge base in rules/ can evolve without breaking tests of the engine itself; tests of the
live rules/ (its rule tests, schema, lint) are generic.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SAMPLE_RULES = Path(__file__).parent / "fixtures" / "sample" / "rules"


def copy_rules(tmp_path: Path) -> Path:
    """The sample rule pack copied to tmp_path/rules (diagnostics then read rules/...)."""
    target = tmp_path / "rules"
    shutil.copytree(SAMPLE_RULES, target)
    return target


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
