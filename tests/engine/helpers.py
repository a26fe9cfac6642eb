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


def copy_live_rules(tmp_path: Path) -> Path:
    """The served knowledge base (rules/) copied to tmp_path/rules, with fhir_examples linked beside it.

    For tests of the knowledge base itself; engine tests use ``copy_rules`` (the frozen sample pack).
    """
    from tests.conftest import RULES_DIR

    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target, ignore=shutil.ignore_patterns("schema.json"))
    # Rule tests name their cases relative to the repository root (rules/..): link the cases in.
    examples = RULES_DIR.parent / "fhir_examples"
    if examples.is_dir() and not (tmp_path / "fhir_examples").exists():
        (tmp_path / "fhir_examples").symlink_to(examples, target_is_directory=True)
    return target
