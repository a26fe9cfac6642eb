"""Editor support (issue 17 item 8): a JSON Schema for every kind of file under rules/, a modeline in each file,
and check-jsonschema accepting every shipped file (the trial found 19 of 32 files rejected)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from cds.engine import schemas
from tests.conftest import RULES_DIR


def test_schemas_and_modelines_are_up_to_date():
    assert schemas.stale(RULES_DIR) == [], "run `cds rules schema --write`"


def test_every_yaml_file_under_rules_has_a_kind_and_a_schema():
    kinds = schemas.files_by_kind(RULES_DIR)
    listed = {p for paths in kinds.values() for p in paths}
    assert listed == set(RULES_DIR.rglob("*.yaml"))
    assert {"rules", "valuesets", "analytes", "hypotheses", "cards", "services", "findings", "tests"} <= set(kinds)


@pytest.mark.parametrize("kind", schemas.KINDS)
def test_check_jsonschema_accepts_every_shipped_file_of_each_kind(kind):
    # check-jsonschema's own command (its click entry point, the one its console script runs), called in
    # this process: a subprocess per kind paid an interpreter start and the tool's imports eight times.
    check_jsonschema = pytest.importorskip("check_jsonschema", reason="check-jsonschema is not installed (test extra)")
    from click.testing import CliRunner

    files = schemas.files_by_kind(RULES_DIR).get(kind, [])
    assert files, kind
    arguments = ["--schemafile", str(RULES_DIR / "schemas" / f"{kind}.schema.json"), *map(str, files)]
    result = CliRunner().invoke(check_jsonschema.main, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "validation done" in result.output


def validator(kind):
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(schemas.schema_for(kind))


def first_rule_file():
    return yaml.safe_load(next(p for p in schemas.files_by_kind(RULES_DIR)["rules"]).read_text())


@pytest.mark.parametrize("bad", [0, -1.5, 1000.5, "1.5", "high"])
def test_the_rule_schema_refuses_impossible_likelihood_ratios(bad):
    data = first_rule_file()
    rule = next(r for r in data["rules"] if r["then"].get("evidence"))
    rule["then"]["evidence"][0]["likelihood_ratio"] = bad
    assert list(validator("rules").iter_errors(data))


def test_the_value_set_schema_refuses_a_misspelt_coding_key_and_a_missing_confidence():
    data = yaml.safe_load((RULES_DIR / "valuesets" / "kidney.yaml").read_text())
    assert not list(validator("valuesets").iter_errors(data))
    data["valuesets"][0]["codes"][0]["sytem"] = data["valuesets"][0]["codes"][0].pop("system")
    assert list(validator("valuesets").iter_errors(data))


def test_a_kind_file_refuses_sections_of_another_kind():
    data = yaml.safe_load((RULES_DIR / "cards.yaml").read_text())
    data["rules"] = []
    assert any("rules" in e.message for e in validator("cards").iter_errors(data))


def test_write_is_idempotent_and_replaces_an_old_modeline(tmp_path):
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target)
    assert schemas.write(target) == []
    path = target / "cards.yaml"
    path.write_text("# yaml-language-server: $schema=./old.json\n" + path.read_text().split("\n", 1)[1])
    assert schemas.stale(target)
    assert schemas.write(target) == [path]
    assert path.read_text().startswith("# yaml-language-server: $schema=schemas/cards.schema.json\n")
