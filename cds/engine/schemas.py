"""JSON Schemas for every kind of file under ``rules/``, and the editor modeline in each file.

``rules/schemas/<kind>.schema.json`` is generated from the models that read the files (the
rule language of ``cds.engine.model``, the services of ``cds.hooks.services``) or, for the
terminology and findings files whose readers are plain dictionaries, from the small models
below. Every YAML file starts with ``# yaml-language-server: $schema=<relative path>`` so
that VS Code (redhat.vscode-yaml) and other YAML language servers pick its schema up with no
settings. ``cds rules schema --write`` regenerates both; a test fails when either is stale,
and ``check-jsonschema`` validates every file against its schema in the test suite.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cds.engine.beside import TESTS_SUFFIX
from cds.engine.model import Confidence, json_schema

SCHEMA_DIR = "schemas"
MODELINE = "# yaml-language-server: $schema="
SCHEMA_ID = "https://calciphylaxis-cds.org/schema/{kind}.schema.json"

# kind -> the sections of the rule language a file of that kind holds
RULE_KINDS: dict[str, tuple[str, ...]] = {
    "ruleset": ("ruleset",),
    "references": ("references",),
    "hypotheses": ("populations", "hypotheses", "evidence_groups"),
    "cards": ("cards",),
    "rules": ("rules",),
    "tests": ("tests",),
}


# ------------------------------------------------------------------------------ terminology files
class _Open(BaseModel):
    # The terminology layer (cds/fhir) may add keys; the schema names the ones every entry has and
    # checks their types, without refusing new ones.
    model_config = ConfigDict(extra="allow")


class Coding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    system: str = Field(description="code system URI, e.g. http://snomed.info/sct, http://loinc.org")
    code: str = Field(description="a code, or a prefix ending in * (e.g. N18.*)")
    display: str | None = None
    confidence: Confidence
    source: str | None = Field(
        default=None,
        description="the reference (rules/references.yaml) this code was checked against, when not the value set's",
    )


class ValueSet(_Open):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]*$")
    title: str
    fact_kind: str | None = None
    references: list[str] = Field(default_factory=list)
    used_by: str | None = Field(default=None, description="why the value set exists although no rule uses it")
    codes: list[Coding] = Field(default_factory=list)


class ValueSetFile(_Open):
    valuesets: list[ValueSet]


class Conversion(_Open):
    unit: str
    factor: float = Field(gt=0)
    confidence: Confidence


class Analyte(_Open):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]*$")
    title: str
    unit: str = Field(description="the canonical UCUM unit rules compare in")
    references: list[str] = Field(default_factory=list)
    codes: list[Coding] = Field(default_factory=list)
    conversions: list[Conversion] = Field(default_factory=list)
    low: float | None = None
    high: float | None = None


class AnalyteFile(_Open):
    analytes: list[Analyte]


class FindingsFile(_Open):
    """Findings knowledge (rules/findings/*.yaml): each file has its own reader in cds/findings."""

    version: Literal[1]


def _model_schema(model: type[BaseModel], kind: str, title: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    schema["title"] = title
    return schema


def _services_schema() -> dict[str, Any]:
    from cds.hooks.services import ServicesFile

    return ServicesFile.model_json_schema(by_alias=True)


def _rule_kind_schema(sections: tuple[str, ...]) -> dict[str, Any]:
    schema = copy.deepcopy(json_schema())
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k in sections}
    schema["additionalProperties"] = False
    return schema


def schema_for(kind: str) -> dict[str, Any]:
    if kind in RULE_KINDS:
        schema = _rule_kind_schema(RULE_KINDS[kind])
        schema["title"] = f"Calciphylaxis CDS {kind} file"
    elif kind == "valuesets":
        schema = _model_schema(ValueSetFile, kind, "Calciphylaxis CDS value sets")
    elif kind == "analytes":
        schema = _model_schema(AnalyteFile, kind, "Calciphylaxis CDS laboratory analytes")
    elif kind == "services":
        schema = _services_schema()
        schema["title"] = "Calciphylaxis CDS services"
    elif kind == "findings":
        schema = _model_schema(FindingsFile, kind, "Calciphylaxis CDS imaging-findings knowledge")
    else:
        raise KeyError(kind)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID.format(kind=kind)
    return schema


KINDS = (*RULE_KINDS, "valuesets", "analytes", "services", "findings")


def kind_of(relative: Path) -> str | None:
    """The kind of the file at ``relative`` (a path inside the rules directory), or None."""
    parts = relative.parts
    name = relative.name
    if not name.endswith(".yaml"):
        return None
    if parts[0] == "valuesets":
        return "valuesets"
    if parts[0] == "findings":
        return "findings"
    if name.endswith(TESTS_SUFFIX) or parts[0] == "tests":
        return "tests"
    if parts[0] == "rules":
        return "rules"
    top = {
        "ruleset.yaml": "ruleset",
        "references.yaml": "references",
        "hypotheses.yaml": "hypotheses",
        "cards.yaml": "cards",
        "analytes.yaml": "analytes",
        "services.yaml": "services",
    }
    return top.get(name, "rules")  # any other rule-language file may hold rules


def schema_text(kind: str) -> str:
    return json.dumps(schema_for(kind), indent=2, sort_keys=True) + "\n"


def files_by_kind(rules_dir: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in sorted(rules_dir.rglob("*.yaml")):
        kind = kind_of(path.relative_to(rules_dir))
        if kind is not None:
            found.setdefault(kind, []).append(path)
    return found


def modeline_for(rules_dir: Path, path: Path, kind: str) -> str:
    target = rules_dir / SCHEMA_DIR / f"{kind}.schema.json"
    relative = Path(*([".."] * (len(path.relative_to(rules_dir).parts) - 1)), target.relative_to(rules_dir))
    return f"{MODELINE}{relative.as_posix()}"


def with_modeline(text: str, line: str) -> str:
    """``text`` whose first line is ``line`` (replacing an older modeline; idempotent)."""
    if text.startswith(MODELINE):
        rest = text.split("\n", 1)[1] if "\n" in text else ""
        return f"{line}\n{rest}"
    return f"{line}\n{text}"


def stale(rules_dir: Path) -> list[str]:
    """What ``write`` would change: schema files out of date, YAML files without their modeline."""
    problems = []
    for kind in KINDS:
        path = rules_dir / SCHEMA_DIR / f"{kind}.schema.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != schema_text(kind):
            problems.append(f"{path}: out of date")
    for kind, paths in files_by_kind(rules_dir).items():
        for path in paths:
            first = path.read_text(encoding="utf-8").split("\n", 1)[0]
            if first != modeline_for(rules_dir, path, kind):
                problems.append(f"{path}: first line is not `{modeline_for(rules_dir, path, kind)}`")
    return problems


def write(rules_dir: Path) -> list[Path]:
    """Regenerate every schema and put the modeline at the top of every YAML file; returns what changed."""
    changed = []
    folder = rules_dir / SCHEMA_DIR
    folder.mkdir(exist_ok=True)
    for kind in KINDS:
        path = folder / f"{kind}.schema.json"
        text = schema_text(kind)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    for kind, paths in files_by_kind(rules_dir).items():
        for path in paths:
            text = path.read_text(encoding="utf-8")
            new = with_modeline(text, modeline_for(rules_dir, path, kind))
            if new != text:
                path.write_text(new, encoding="utf-8")
                changed.append(path)
    return changed
