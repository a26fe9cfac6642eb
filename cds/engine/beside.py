"""Tests beside the rules (docs/adr/0009-informaticist-workbench.md).

A rule file ``rules/rules/X.yaml`` has its tests in ``rules/rules/X.tests.yaml``, as OPA keeps
``x_test.rego`` beside ``x.rego`` and Semgrep keeps a rule's test target beside the rule. For a
rule file with tests beside it:

* lint wants every active rule of X to have a test that makes it fire (W103) and one that keeps
  it silent (W104);
* a test in ``X.tests.yaml`` fails when a rule of X fires that its ``fired`` does not list,
  unless the test says ``allow_other_firings: true`` (``unexpected_firings``).

A rule file with no tests beside it gets note N204 (the layout before the migration).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

TESTS_SUFFIX = ".tests.yaml"


def tests_file_for(rule_file: str) -> str:
    """``rules/rules/X.yaml`` -> ``rules/rules/X.tests.yaml`` (display names or paths alike)."""
    return rule_file[: -len(".yaml")] + TESTS_SUFFIX if rule_file.endswith(".yaml") else rule_file + TESTS_SUFFIX


def rule_file_for(tests_file: str) -> str | None:
    """The rule file a tests file sits beside, or None when it is not a beside-file."""
    return tests_file[: -len(TESTS_SUFFIX)] + ".yaml" if tests_file.endswith(TESTS_SUFFIX) else None


def check_tests_beside(rules_dir: Path, rules: Mapping[str, Any], tests: Mapping[str, Any], out: Any) -> None:
    """W104 and N204 (see the module docstring); ``rules``/``tests`` are the loader's items (value, file)."""
    test_files = {t.file for t in tests.values()}
    silent = {rid for t in tests.values() for rid in t.value.expect.not_fired}
    files_without_tests: dict[str, Any] = {}
    for item in rules.values():
        if item.file.endswith(TESTS_SUFFIX):
            continue
        if tests_file_for(item.file) not in test_files:
            files_without_tests.setdefault(item.file, item)
            continue
        if item.value.status == "active" and item.value.id not in silent:
            out.add(item.at("id"), "W104", "no rule test expects this rule to stay silent (`not_fired`)", item.value.id)
    for name in sorted(files_without_tests):
        out.add((name, 0, 0), "N204", f"no tests beside this rule file (expected {tests_file_for(name)})")


def unexpected_firings(
    test_file: Path | None, rule_files: Mapping[str, Path], expected: Iterable[str], fired: Iterable[str]
) -> list[str]:
    """Rules of the rule file ``test_file`` sits beside that fired although ``expected`` does not list them."""
    if test_file is None:
        return []
    beside = rule_file_for(str(test_file))
    if beside is None:
        return []
    topic = {rule for rule, path in rule_files.items() if str(path) == beside}
    return sorted((set(fired) & topic) - set(expected))
