"""Reading the files under ``rules/`` for the rule-language loader: positioned YAML, pydantic errors as
``file:line:col`` diagnostics, and the ids the checks need from the files other layers read."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cds.concepts import ICD10CM, canonical_system, normalise_code
from cds.engine import safety
from cds.engine.diagnostics import Diagnostic
from cds.engine.model import (
    PATTERN_KINDS,
)
from cds.engine.ruleset import ValueSetInfo
from cds.engine.yamlpos import PositionedYaml, YamlSyntaxError, load_positioned
from cds.yamlio import load_yaml

# Files and folders under rules/ that belong to other layers.
NOT_RULE_LANGUAGE = {"services.yaml", "analytes.yaml"}


NOT_RULE_FOLDERS = {"valuesets", "findings"}


@dataclass
class _Item:
    """An entity with where it came from."""

    value: Any
    file: str
    doc: PositionedYaml
    path: tuple[str | int, ...]

    def at(self, *more: str | int, key: bool = False) -> tuple[str, int, int]:
        line, column = self.doc.where(self.path + more, key=key)
        return self.file, line, column


@dataclass
class _Collector:
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def add(self, where: tuple[str, int, int], code: str, message: str, rule_id: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(where[0], where[1], where[2], code, message, rule_id))


def rule_language_files(rules_dir: Path) -> list[Path]:
    files = []
    for path in sorted(rules_dir.rglob("*.yaml")):
        relative = path.relative_to(rules_dir)
        if relative.parts[0] in NOT_RULE_FOLDERS or str(relative) in NOT_RULE_LANGUAGE:
            continue
        files.append(path)
    return files


def content_hash(rules_dir: Path) -> str:
    """Hash of every file under rules/ (services and value sets included): the served version."""
    digest = hashlib.sha256()
    for path in sorted(p for p in rules_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(rules_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _parse_checked(text: str, name: str, out: _Collector) -> PositionedYaml | None:
    """Parse one file, reporting forbidden characters (E032), syntax errors (E001), duplicate keys
    (E005) and non-finite numbers (E031); None when the file cannot be parsed."""
    characters = safety.scan_characters(text)
    for line, column, problem in characters:
        out.add((name, line, column), "E032", problem)
    try:
        doc = load_positioned(text)
    except YamlSyntaxError as exc:
        if not (characters and exc.message.startswith("unacceptable character")):
            out.add((name, exc.line, exc.column), "E001", exc.message)
        return None
    for key_path, line, column in doc.duplicate_keys:
        out.add((name, line, column), "E005", f"key {key_path[-1]!r} appears twice in this mapping")
    for number_path, value in safety.non_finite(doc.data):
        line, column = doc.where(number_path)
        out.add((name, line, column), "E031", f"{'.'.join(map(str, number_path))}: {value} is not a finite number")
    return doc


def _check_other_file(text: str, name: str, out: _Collector) -> None:
    """``_parse_checked`` for a file another layer reads: the fast C parser first, positions
    (the slower positioned parse) only when there is something to report."""
    if not safety.scan_characters(text):
        try:
            data = load_yaml(text)
        except (yaml.YAMLError, ValueError, TypeError, RecursionError):
            pass  # the positioned parse below reports it with its place
        else:
            if not any(True for _ in safety.non_finite(data)):
                return
    _parse_checked(text, name, out)


def _other_yaml_files(rules_dir: Path) -> list[Path]:
    language = set(rule_language_files(rules_dir))
    return [p for p in sorted(rules_dir.rglob("*.yaml")) if p not in language]


def _without_duplicates(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """One message per place: the generic non-finite check (E031) yields to a specific one there."""
    specific = {(d.file, d.line, d.column) for d in diagnostics if d.code != "E031" and d.severity == "error"}
    return [d for d in diagnostics if not (d.code == "E031" and (d.file, d.line, d.column) in specific)]


def _read_analyte_limits(path: Path) -> dict[str, tuple[float | None, float | None]]:
    """analyte id -> (low, high) reference limits, for the plausible range of lab thresholds."""
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    limits = {}
    for entry in raw.get("analytes", []) if isinstance(raw, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            low, high = entry.get("low"), entry.get("high")
            limits[entry["id"]] = (
                low if isinstance(low, (int, float)) and not isinstance(low, bool) else None,
                high if isinstance(high, (int, float)) and not isinstance(high, bool) else None,
            )
    return limits


def _report_validation(exc: ValidationError, doc: PositionedYaml, name: str, out: _Collector) -> None:
    # A value that fits no member of a union yields one error per member; keep the most specific
    # (deepest) location and one message per location.
    errors = [
        (tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS)), err) for err in exc.errors()
    ]
    locations = {loc for loc, _ in errors}
    kept: dict[tuple[Any, ...], Any] = {}
    for loc, err in errors:
        if any(other[: len(loc)] == loc and len(other) > len(loc) for other in locations):
            continue
        kept.setdefault(loc, err)
    for loc, err in kept.items():
        rule_id = _rule_id_at(doc, loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            line, column = doc.where(loc, key=True)
            if len(loc) == 5 and loc[0] == "rules" and loc[2] == "when":
                code, message = "E014", f"unknown fact kind {loc[-1]!r} (known: {', '.join(PATTERN_KINDS)}, absent)"
            else:
                code, message = "E002", f"unknown key {loc[-1]!r}"
        elif kind == "missing":
            line, column = doc.where(loc[:-1])
            code, message = "E004", f"required key {loc[-1]!r} is missing"
        else:
            line, column = doc.where(loc)
            where = ".".join(str(p) for p in loc)
            code, message = "E003", f"{where}: {err['msg']}"
        out.add((name, line, column), code, message, rule_id)


# pydantic adds the union member's name to the location; drop it so the path matches the YAML.
_UNION_TAGS = {"bool", "int", "float", "str", "Operators", "list[str]", "function-after[_not_empty(), Operators]"}


def _rule_id_at(doc: PositionedYaml, loc: tuple[Any, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] in {"rules", "cards", "hypotheses", "tests"} and isinstance(loc[1], int):
        try:
            entry = doc.data[loc[0]][loc[1]]
        except (KeyError, IndexError, TypeError):
            return None
        ident = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(ident, str):
            return ident
    return None


def _read_service_ids(path: Path) -> list[str]:
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    return [s["id"] for s in raw.get("services", []) if isinstance(s, dict) and isinstance(s.get("id"), str)]


def _read_terminology(
    rules_dir: Path, out: _Collector, display: Any
) -> tuple[dict[str, ValueSetInfo] | None, set[str] | None]:
    """Value-set ids and codes, analyte ids. Their own layer validates them fully; we need ids and codes.

    ``None`` when the folder or file does not exist (then references are not checked; note N201).
    """
    valuesets: dict[str, ValueSetInfo] | None = None
    folder = rules_dir / "valuesets"
    if folder.is_dir():
        valuesets = {}
        for path in sorted(folder.glob("*.yaml")):
            try:
                text = path.read_text(encoding="utf-8")
                raw = load_yaml(text) or {}
            except (OSError, yaml.YAMLError) as exc:
                out.add((display(path), 0, 0), "E006", f"cannot read value sets: {exc}")
                continue
            written_at = _id_positions(text)
            for entry in raw.get("valuesets", []) if isinstance(raw, dict) else []:
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                    continue
                exact, prefixes = set(), []
                for coding in entry.get("codes", []) or []:
                    if not isinstance(coding, dict):
                        continue
                    # in the one code matcher's normal form (cds.concepts), as prepare compares facts
                    system = canonical_system(str(coding.get("system", ""))) or ""
                    code = str(coding.get("code", ""))
                    if code.endswith("*"):
                        stem = code.rstrip("*").rstrip(".") if code.endswith(".*") else code[:-1]
                        prefixes.append((system, stem.upper() if system == ICD10CM else stem))
                    else:
                        exact.add((system, normalise_code(system, code)))
                used_by = entry.get("used_by") if isinstance(entry.get("used_by"), str) else None
                valuesets[entry["id"]] = ValueSetInfo(
                    entry["id"],
                    entry.get("fact_kind"),
                    frozenset(exact),
                    tuple(prefixes),
                    used_by,
                    _at(display(path), written_at.get(entry["id"])),
                )
    else:
        out.add((display(folder), 0, 0), "N201", "rules/valuesets/ not found: value-set references are not checked")
    analytes: set[str] | None = None
    analytes_file = rules_dir / "analytes.yaml"
    if analytes_file.is_file():
        try:
            raw = load_yaml(analytes_file.read_text(encoding="utf-8")) or {}
            entries = raw.get("analytes", []) if isinstance(raw, dict) else []
            analytes = {e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)}
        except (OSError, yaml.YAMLError) as exc:
            out.add((display(analytes_file), 0, 0), "E006", f"cannot read analytes: {exc}")
    else:
        out.add((display(analytes_file), 0, 0), "N201", "rules/analytes.yaml not found: analyte ids are not checked")
    return valuesets, analytes


# An ``id: <ident>`` line, the id quoted or not; the lazy group stops before a closing quote and blanks.
_ID_LINE = re.compile(r"^([ \t]*-?[ \t]*)id:[ \t]*['\"]?(.*?)['\"]?[ \t]*$", re.MULTILINE)


def _id_positions(text: str) -> dict[str, tuple[int, int]]:
    """Where each ``id: <ident>`` is first written in ``text`` (the value-set files are read without
    positions): one pass per file, where a search per id compiled a pattern per value set at every start."""
    found: dict[str, tuple[int, int]] = {}
    line, last = 1, 0
    for match in _ID_LINE.finditer(text):
        line += text.count("\n", last, match.start())
        last = match.start()
        found.setdefault(match.group(2), (line, len(match.group(1)) + 1))
    return found


def _at(name: str, position: tuple[int, int] | None) -> tuple[str, int, int] | None:
    return None if position is None else (name, *position)
