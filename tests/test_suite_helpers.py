"""The test suite's own shortcuts (tests/conftest.py) give what they stand for: the case manifest read
with libyaml is the pure-Python parse, the shared rule set is the loader's, and the xdist scope of a
screening test is its package (one Dask cluster per run)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from cds.engine.loader import load_or_raise
from tests.conftest import REPO, RULES_DIR, one_worker_package, shipped_cases, shipped_ruleset


def test_the_shared_case_manifest_is_the_pure_python_parse_and_each_caller_gets_a_copy():
    text = (REPO / "fhir_examples" / "cases.yaml").read_text(encoding="utf-8")
    assert shipped_cases() == yaml.load(text, Loader=yaml.SafeLoader)["cases"]
    first = shipped_cases()
    first[0]["id"] = "changed by a caller"
    assert shipped_cases()[0]["id"] != "changed by a caller"


def test_the_shared_rule_set_is_the_loaders_and_cannot_be_changed():
    shared, fresh = shipped_ruleset(), load_or_raise(RULES_DIR)
    assert shared is shipped_ruleset()
    assert shared.version == fresh.version and shared.compiled.rules == fresh.compiled.rules
    assert shared.cards.keys() == fresh.cards.keys() and shared.hypotheses.keys() == fresh.hypotheses.keys()
    assert dataclasses.is_dataclass(shared)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shared.version = "changed"  # type: ignore[misc]


def test_the_screening_package_is_one_xdist_scope_and_other_modules_keep_theirs():
    assert one_worker_package("tests/screen/test_outputs.py::test_x") == "tests/screen/"
    assert one_worker_package("tests/screen/test_cluster.py::test_y[a]") == "tests/screen/"
    assert one_worker_package("tests/store/test_store.py::test_z") is None
    assert one_worker_package("tests/screening_elsewhere.py::test_z") is None
