"""Configuration is read only through ``cds.settings`` (issue 18, part 2): every ``CDS_*`` variable
has one reading, one validation and one error message, whichever command reads it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cds.cli import main
from cds.settings import DEFAULT_RULES_DIR, rules_dir_setting
from tests.conftest import REPO

CDS = REPO / "cds"

# Reads of a CDS_ variable outside cds/settings.py, each with its reason. Do not add to this list:
# add a field to Settings instead.
READ_OUTSIDE_SETTINGS = {
    ("cds/asgi.py", "CDS_CONFIG_FILE"): "names the file the settings come from, so it cannot be one of them",
    ("cds/cli.py", "CDS_CONFIG_FILE"): "names the file the settings come from, so it cannot be one of them",
    ("cds/cli.py", "CDS_SHARED_SOCKET"): "a switch of the `cds serve` start path; to move into Settings with it",
}


def _environment_reads(path: Path) -> list[str]:
    """The names of the variables ``path`` reads with os.environ.get / os.getenv / os.environ[...]
    (a string constant as the name; assignments to os.environ, the hand-off to workers, excluded)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        target = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
            func = ast.unparse(node.func)
            if func.endswith(("environ.get", "getenv", "environ.setdefault")):
                target = node.args[0]
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value).endswith("environ")
        ):
            target = node.slice
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            names.append(target.value)
    return names


def test_no_module_reads_a_cds_variable_behind_the_settings_back():
    found = {
        (path.relative_to(REPO).as_posix(), name)
        for path in CDS.rglob("*.py")
        if path.name != "settings.py" or path.parent != CDS
        for name in _environment_reads(path)
        if name.startswith("CDS_")
    }
    assert found <= set(READ_OUTSIDE_SETTINGS), sorted(found - set(READ_OUTSIDE_SETTINGS))


def test_the_scan_sees_each_form_of_read(tmp_path):
    source = tmp_path / "reads.py"
    source.write_text(
        "import os\n"
        "a = os.environ.get('CDS_A')\n"
        "b = os.getenv('CDS_B', 'x')\n"
        "c = os.environ['CDS_C']\n"
        "d = __import__('os').environ.get('CDS_D')\n"
        "os.environ['CDS_WRITTEN'] = '1'\n"
    )
    assert sorted(_environment_reads(source)) == ["CDS_A", "CDS_B", "CDS_C", "CDS_D"]


def test_rules_dir_comes_from_the_option_then_the_variable_then_the_source_tree(monkeypatch, tmp_path):
    monkeypatch.delenv("CDS_RULES_DIR", raising=False)
    assert rules_dir_setting() == DEFAULT_RULES_DIR
    monkeypatch.setenv("CDS_RULES_DIR", str(tmp_path))
    assert rules_dir_setting() == tmp_path
    assert rules_dir_setting(Path("elsewhere")) == Path("elsewhere")


def test_rules_commands_read_cds_rules_dir(monkeypatch, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CDS_RULES_DIR", str(tmp_path / "empty"))
    assert main(["rules", "validate"]) == 1  # an empty directory is not a rule set: the variable was read
    assert capsys.readouterr().err


def test_an_invalid_setting_stops_a_rules_command_with_the_settings_message(monkeypatch, capsys):
    monkeypatch.setenv("CDS_RULES_WATCH_SECONDS", "-1")
    assert main(["rules", "validate"]) == 1
    assert "CDS_RULES_WATCH_SECONDS" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CDS_PROFILE", "production"), ("CDS_PROFILE", "Production")],
)
def test_the_studio_is_refused_when_a_production_profile_is_chosen(monkeypatch, capsys, variable, value):
    monkeypatch.setenv(variable, value)
    assert main(["studio"]) == 1
    err = capsys.readouterr().err
    assert "CDS_PROFILE" in err


def test_the_studio_is_refused_when_the_config_file_chooses_production(monkeypatch, tmp_path, capsys):
    config = tmp_path / "cds.yaml"
    config.write_text("profile: production\n")
    monkeypatch.delenv("CDS_PROFILE", raising=False)
    monkeypatch.setenv("CDS_CONFIG_FILE", str(config))
    assert main(["studio"]) == 1
    assert "refused in the production profile" in capsys.readouterr().err
