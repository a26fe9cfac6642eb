"""Helpers for engine tests: a throw-away copy of the sample rule pack to break on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import RULES_DIR


def copy_rules(tmp_path: Path) -> Path:
    """rules/ copied to tmp_path/rules (diagnostics then read rules/...)."""
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target, ignore=shutil.ignore_patterns("schema.json"))
    # Rule tests name their cases relative to the repository root (rules/..): link the cases in.
    examples = RULES_DIR.parent / "fhir_examples"
    if examples.is_dir() and not (tmp_path / "fhir_examples").exists():
        (tmp_path / "fhir_examples").symlink_to(examples, target_is_directory=True)
    return target


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
