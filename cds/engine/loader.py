"""Load, check and compile the rule set under ``rules/``.

``load_ruleset(rules_dir)`` returns a ``LoadResult``: the ``RuleSet`` when it
has no errors, and every diagnostic (``file:line:col: CODE message (rule)``).
Everything a rule file refers to is checked here (value sets, fact kinds and
attributes, hypotheses, references, card templates and their placeholders,
services, rule tests), so nothing is discovered at request time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cds.concepts import ICD10CM, canonical_system, normalise_code
from cds.engine import ir, rootcause, safety
from cds.engine.beside import check_tests_beside
from cds.engine.diagnostics import Diagnostic, RulesetError
from cds.engine.differential import judgement_range, lr_interval_from_counts
from cds.engine.model import (
    PATTERN_KINDS,
    CardTemplate,
    Evidence,
    EvidenceGroup,
    Hypothesis,
    Operators,
    Population,
    Reference,
    Rule,
    RuleFile,
    RulesetInfo,
    RuleTest,
)
from cds.engine.paths import resolve as resolve_case
from cds.engine.prepare import DECIMALS, MAX_ABS_NUMBER
from cds.engine.yamlpos import PositionedYaml, YamlSyntaxError, load_positioned
from cds.facts import FACT_FIELDS
from cds.yamlio import load_yaml

# Files and folders under rules/ that belong to other layers.
NOT_RULE_LANGUAGE = {"services.yaml", "analytes.yaml"}
NOT_RULE_FOLDERS = {"valuesets", "findings"}

# Attributes that hold value-set ids (contracts.md): `in:` names value sets there.
VALUESET_ATTRS = {
    ("condition", "concept"),
    ("procedure", "concept"),
    ("finding", "concept"),
    ("draft-order", "concept"),
    ("medication", "drug_class"),
    ("draft-order", "drug_class"),
}
CODE_KINDS = {"condition", "medication", "procedure", "draft-order"}
# Derived facts computed in Python before the rules run (not by a rule's `derive`), so a rule may
# test them: dialysis vintage (cds/fhir/__init__.py) and the serial bone-scan comparison
# (cds/findings/serial.py).
EXTERNAL_DERIVED_NAMES = frozenset(
    {"dialysis-vintage-years", "bone-scan-response", "bone-scan-change", "bone-scan-progression"}
)
PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([A-Za-z0-9_.\-]+))?\}")
HYPOTHESIS_PLACEHOLDERS = {
    "posterior",
    "prior",
    "evidence_for",
    "evidence_against",
    "next_test",
    "hypothesis",
    "band",
    "alternative",
    "post_test",  # the probability after a positive and after a negative next test
}
# differential_evidence: the leading hypotheses with their evidence; differential_top / differential_runner_up:
# the first / second; lesion_sites: sites of the recorded skin lesions (conditions whose concepts the rules
# deriving `skin-lesion` name). band:<h>: the band word of the posterior; alternative:<h>: the best cause other
# than <h>; time_critical: the time-critical hypotheses past their threshold; explainers: explainers of findings.
PLAIN_PLACEHOLDERS = {
    "differential",
    "differential_evidence",
    "differential_top",
    "differential_runner_up",
    "time_critical",
    "time_critical_names",
    "explainers",
    "population",
    "patient_id",
    "ruleset_version",
    "lesion_sites",
}
# modifiable_drugs: the patient's own active drugs that the treatment advice says to review (a line whose
# placeholder has nothing to say is left out of the card, cds.cards.render).
PLAIN_PLACEHOLDERS |= {"modifiable_drugs"}
MATCHED_PLACEHOLDERS = {"matched", "matched_id"}  # matched_id: the id part of a `Type/id` reference


@dataclass(frozen=True)
class ValueSetInfo:
    id: str
    fact_kind: str | None
    codes: frozenset[tuple[str, str]]
    prefixes: tuple[tuple[str, str], ...]
    # Why a value set exists although no rule uses it (read by another layer, kept on purpose):
    # `used_by:` in the value-set file turns lint warning W101 into note N202.
    used_by: str | None = None
    # where the value set is defined (file, line, column), for lint messages
    where: tuple[str, int, int] | None = None


@dataclass(frozen=True)
class RuleSet:
    """A loaded, checked and compiled rule set (immutable; hot reload swaps whole sets)."""

    rules_dir: Path
    info: RulesetInfo
    content_hash: str
    references: Mapping[str, Reference]
    populations: tuple[Population, ...]
    hypotheses: Mapping[str, Hypothesis]
    rules: Mapping[str, Rule]
    cards: Mapping[str, CardTemplate]
    tests: tuple[RuleTest, ...]
    compiled: ir.CompiledRules
    valuesets: Mapping[str, ValueSetInfo]
    services: frozenset[str]
    # rule id -> alias -> (pattern index, fact kind), for `{matched:alias.attr}` placeholders
    aliases: Mapping[str, Mapping[str, tuple[int, str]]]
    diagnostics: tuple[Diagnostic, ...] = ()
    # Evidence groups of the differential model (docs/adr/0004-differential-model.md), by id.
    evidence_groups: Mapping[str, EvidenceGroup] = field(default_factory=dict)
    # rule test id -> the file that declares it: `case:` paths resolve relative to it
    test_files: Mapping[str, Path] = field(default_factory=dict)
    # rule id -> the file that defines it (tests beside a rule file check that file's rules)
    rule_files: Mapping[str, Path] = field(default_factory=dict)
    # rule test id -> line of its `id:` in its file (test failures name file:line)
    test_lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return f"{self.info.version}+sha256.{self.content_hash}"

    @property
    def lesion_concepts(self) -> frozenset[str]:
        """Condition concepts that active rules deriving `skin-lesion` name (the lesion map of cards)."""
        return _lesion_concepts(self.rules.values())

    @property
    def active_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules.values() if r.status == "active")


@dataclass
class LoadResult:
    ruleset: RuleSet | None
    diagnostics: list[Diagnostic]
    # errors that follow from a root cause shown in `diagnostics` (see cds.engine.rootcause)
    consequences: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def raise_for_errors(self) -> RuleSet:
        if self.ruleset is None or self.errors:
            raise RulesetError(self.diagnostics)
        return self.ruleset


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


def load_ruleset(rules_dir: Path, services: Iterable[str] | None = None) -> LoadResult:
    """Parse, validate, lint and compile. ``services`` are the service ids of services.yaml."""
    rules_dir = Path(rules_dir)
    out = _Collector()
    display_root = rules_dir.parent

    def display(path: Path) -> str:
        try:
            return str(path.relative_to(display_root))
        except ValueError:
            return str(path)

    parsed: list[tuple[RuleFile, str, PositionedYaml]] = []
    file_dropped, dropped_ids = False, []
    for path in rule_language_files(rules_dir):
        name = display(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            out.add((name, 0, 0), "E006", f"cannot read: {exc}")
            file_dropped = True
            continue
        doc = _parse_checked(text, name, out)
        if doc is None:
            file_dropped = True
            continue
        if doc.data is None:
            continue
        try:
            parsed.append((RuleFile.model_validate(doc.data), name, doc))
        except ValidationError as exc:
            _report_validation(exc, doc, name, out)
            # drop only the entries with the mistake, so the rest of the file still loads
            bad = rootcause.bad_entries([err["loc"] for err in exc.errors()])
            if bad is None or not isinstance(doc.data, dict):
                file_dropped = True
                continue
            kept, ids = rootcause.drop_entries(doc, bad)
            dropped_ids.extend(ids)
            try:
                parsed.append((RuleFile.model_validate(kept.data), name, kept))
            except ValidationError:
                file_dropped = True
    for path in _other_yaml_files(rules_dir):
        # value sets, analytes, services, findings: their own layers validate the shape;
        # characters and numbers are checked here for every file alike
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # reported by the layer that reads the file
        _check_other_file(text, display(path), out)

    if services is None:
        services = _read_service_ids(rules_dir / "services.yaml")
    valuesets, analytes = _read_terminology(rules_dir, out, display)
    checker = _Checker(rules_dir, out, parsed, frozenset(services), valuesets, analytes)
    checker.analyte_limits = _read_analyte_limits(rules_dir / "analytes.yaml")
    ruleset = checker.run()
    diagnostics = _without_duplicates(out.diagnostics)
    order = {"error": 0, "warning": 1, "note": 2}
    diagnostics.sort(
        key=lambda d: (order[d.severity], d.code not in rootcause.ROOT_CODES, d.file, d.line, d.column, d.code)
    )
    diagnostics, consequences = rootcause.fold(diagnostics, file_dropped, dropped_ids)
    if any(d.severity == "error" for d in diagnostics) or ruleset is None:
        return LoadResult(None, diagnostics, consequences)
    ruleset = _with_diagnostics(ruleset, diagnostics)
    return LoadResult(ruleset, diagnostics)


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


def _with_diagnostics(ruleset: RuleSet, diagnostics: list[Diagnostic]) -> RuleSet:
    from dataclasses import replace

    return replace(ruleset, diagnostics=tuple(diagnostics))


def _report_validation(exc: ValidationError, doc: PositionedYaml, name: str, out: _Collector) -> None:
    # A value that fits no member of a union yields one error per member; keep the most specific
    # (deepest) location and one message per location.
    errors = [
        (tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS)), err) for err in exc.errors()
    ]
    locations = {loc for loc, _ in errors}
    kept: dict[tuple[Any, ...], dict[str, Any]] = {}
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
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            return entry["id"]
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
                    _id_position(text, display(path), entry["id"]),
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


class _Checker:
    def __init__(
        self,
        rules_dir: Path,
        out: _Collector,
        parsed: list[tuple[RuleFile, str, PositionedYaml]],
        services: frozenset[str],
        valuesets: dict[str, ValueSetInfo] | None,
        analytes: set[str] | None,
    ) -> None:
        self.rules_dir = rules_dir
        self.out = out
        self.services = services
        self.valuesets = valuesets
        self.analytes = analytes
        self.infos: list[_Item] = []
        self.sections: dict[str, list[_Item]] = {
            k: [] for k in ("references", "populations", "hypotheses", "evidence_groups", "rules", "cards", "tests")
        }
        for model, name, doc in parsed:
            if model.ruleset is not None:
                self.infos.append(_Item(model.ruleset, name, doc, ("ruleset",)))
            for section, items in self.sections.items():
                for index, value in enumerate(getattr(model, section)):
                    items.append(_Item(value, name, doc, (section, index)))
        self.analyte_limits: dict[str, tuple[float | None, float | None]] = {}
        self.used_valuesets: set[str] = set()
        self.memberships: dict[str, ir.Membership] = {}
        self.absences: dict[tuple[Any, ...], ir.Absence] = {}

    # ------------------------------------------------------------------ entry
    def run(self) -> RuleSet | None:
        if len(self.infos) != 1:
            where = self.infos[1].at() if len(self.infos) > 1 else (str(self.rules_dir.name), 0, 0)
            self.out.add(
                where, "E004" if not self.infos else "E010", "declare `ruleset: {version, title}` exactly once"
            )
        references = self._unique("references", "reference")
        populations = self._unique("populations", "population")
        hypotheses = self._unique("hypotheses", "hypothesis")
        rules = self._unique("rules", "rule")
        cards = self._unique("cards", "card template")
        tests = self._unique("tests", "rule test")
        self.references, self.hypotheses, self.rules, self.cards = references, hypotheses, rules, cards

        self._check_populations(populations, hypotheses, rules)
        for item in hypotheses.values():
            self._check_hypothesis(item)
        evidence_groups = self._unique("evidence_groups", "evidence group")
        self._check_evidence_groups(evidence_groups, rules)
        self._check_cause_priors(populations, hypotheses)
        aliases: dict[str, dict[str, tuple[int, str]]] = {}
        compiled_patterns: dict[str, tuple[ir.Pattern, ...]] = {}
        for item in rules.values():
            patterns, rule_aliases = self._check_rule(item)
            aliases[item.value.id] = rule_aliases
            compiled_patterns[item.value.id] = patterns
        order = self._order_rules(rules)
        for item in cards.values():
            self._check_card(item, rules, aliases)
        for item in tests.values():
            self._check_test(item)
        self._check_unused_valuesets()
        self._check_untested(rules, tests)

        if any(d.severity == "error" for d in self.out.diagnostics) or not self.infos:
            return None
        compiled_rules = []
        for index, rule_id in enumerate(order):
            rule: Rule = rules[rule_id].value
            derive = None
            if rule.then.derive is not None:
                d = rule.then.derive
                attrs = tuple(
                    (k, v) for k, v in (("value", d.value), ("text", d.text), ("flag", d.flag)) if v is not None
                )
                derive = ir.DeriveSpec(d.name, (("name", d.name), *attrs))
            compiled_rules.append(
                ir.CompiledRule(
                    index=index,
                    id=rule.id,
                    version=rule.version,
                    title=rule.title,
                    patterns=compiled_patterns[rule_id],
                    derive=derive,
                    evidence=tuple(
                        ir.EvidenceSpec(
                            e.hypothesis,
                            float(e.likelihood_ratio),
                            e.reference or "",
                            e.confidence,
                            e.test,
                            e.note,
                            *_compiled_interval(e),
                        )
                        for e in rule.then.evidence
                    ),
                    cards=tuple(rule.then.cards),
                    references=tuple(rule.references),
                    uses_derived=any(p.kind == "derived" for p in compiled_patterns[rule_id]),
                )
            )
        valueset_codes = {
            m.valueset: (self.valuesets[m.valueset].codes, self.valuesets[m.valueset].prefixes)
            for m in self.memberships.values()
            if self.valuesets is not None
        }
        compiled = ir.CompiledRules(
            rules=tuple(compiled_rules),
            memberships=tuple(self.memberships.values()),
            absences=tuple(self.absences.values()),
            valueset_codes=valueset_codes,
            lesion_concepts=_lesion_concepts(rules[r].value for r in order),
        )
        return RuleSet(
            rules_dir=self.rules_dir,
            info=self.infos[0].value,
            content_hash=content_hash(self.rules_dir),
            references={k: v.value for k, v in references.items()},
            populations=tuple(p.value for p in populations.values()),
            hypotheses={k: v.value for k, v in hypotheses.items()},
            rules={k: v.value for k, v in rules.items()},
            cards={k: v.value for k, v in cards.items()},
            tests=tuple(t.value for t in tests.values()),
            compiled=compiled,
            valuesets=self.valuesets or {},
            services=self.services,
            aliases=aliases,
            evidence_groups={k: v.value for k, v in evidence_groups.items()},
            test_files={k: self.rules_dir.parent / v.file for k, v in tests.items()},
            rule_files={k: self.rules_dir.parent / v.file for k, v in rules.items()},
            test_lines={k: v.at("id")[1] for k, v in tests.items()},
        )

    # ------------------------------------------------------------------ helpers
    def _unique(self, section: str, noun: str) -> dict[str, _Item]:
        seen: dict[str, _Item] = {}
        for item in self.sections[section]:
            ident = item.value.id
            if ident in seen:
                first = seen[ident]
                self.out.add(
                    item.at("id"),
                    "E010",
                    f"duplicate {noun} id {ident!r} (first defined at {first.file}:{first.at('id')[1]})",
                    ident if section == "rules" else None,
                )
                continue
            seen[ident] = item
        return seen

    def _reference(
        self, item: _Item, ref: str | None, path: tuple[str | int, ...], what: str, rule_id: str | None
    ) -> None:
        if ref is None:
            self.out.add(item.at(*path), "E017", f"{what} names no reference", rule_id)
        elif ref not in self.references:
            self.out.add(item.at(*path, "reference"), "E013", f"undefined reference {ref!r}", rule_id)

    def _lr(self, item: _Item, value: float, path: tuple[str | int, ...], rule_id: str | None) -> None:
        problem = safety.likelihood_ratio_problem(value)
        if problem:
            self.out.add(item.at(*path), "E016", problem, rule_id)
        elif value == 1:
            self.out.add(item.at(*path), "W102", "likelihood ratio 1 changes nothing", rule_id)

    # ------------------------------------------------------------------ populations and hypotheses
    def _check_populations(
        self, populations: dict[str, _Item], hypotheses: dict[str, _Item], rules: dict[str, _Item]
    ) -> None:
        defaults = [p for p in populations.values() if p.value.default]
        if len(defaults) != 1 and (populations or hypotheses):
            where = (
                defaults[1].at("default")
                if len(defaults) > 1
                else (next(iter(populations.values())).at() if populations else (str(self.rules_dir.name), 0, 0))
            )
            self.out.add(where, "E023", "exactly one population must be `default: true`")
        derived_names = self._derived_names(rules)
        for item in populations.values():
            name = item.value.derived
            if name is not None and name not in derived_names:
                self.out.add(
                    item.at("derived"), "E021", f"no active rule derives {name!r}: this population is never selected"
                )
        for hyp in hypotheses.values():
            declared = {}
            for index, prior in enumerate(hyp.value.priors):
                if prior.population not in populations:
                    self.out.add(
                        hyp.at("priors", index, "population"),
                        "E023",
                        f"undefined population {prior.population!r}",
                        hyp.value.id,
                    )
                if prior.population in declared:
                    self.out.add(
                        hyp.at("priors", index, "population"),
                        "E010",
                        f"second prior for population {prior.population!r}",
                        hyp.value.id,
                    )
                declared[prior.population] = prior
                self._reference(hyp, prior.reference, ("priors", index), "prior", hyp.value.id)
            for missing in sorted(set(populations) - set(declared)):
                self.out.add(hyp.at("priors"), "E023", f"no prior for population {missing!r}", hyp.value.id)

    def _check_hypothesis(self, item: _Item) -> None:
        hyp: Hypothesis = item.value
        seen = set()
        for index, test in enumerate(hyp.tests):
            if test.id in seen:
                self.out.add(item.at("tests", index, "id"), "E010", f"duplicate test id {test.id!r}", hyp.id)
            seen.add(test.id)
            self._reference(item, test.reference, ("tests", index), "test", hyp.id)
            self._lr(item, test.lr_positive, ("tests", index, "lr_positive"), hyp.id)
            self._lr(item, test.lr_negative, ("tests", index, "lr_negative"), hyp.id)
        if hyp.kind != "explainer" and hyp.explains:
            self.out.add(item.at("explains"), "E040", "only an explainer (`kind: explainer`) takes up findings", hyp.id)
        for index, rule_id in enumerate(hyp.explains):
            if rule_id not in self.rules:
                self.out.add(item.at("explains", index), "E040", f"explains undefined rule {rule_id!r}", hyp.id)
        if hyp.time_critical is not None and hyp.time_critical_reason is None:
            self.out.add(
                item.at("time_critical"), "E017", "a safety threshold states why (`time_critical_reason`)", hyp.id
            )

    def _check_evidence_groups(self, groups: dict[str, _Item], rules: dict[str, _Item]) -> None:
        """Every rule that weighs evidence belongs to exactly one declared group (issue 12: dependent evidence)."""
        owner: dict[str, str] = {}
        for item in groups.values():
            group = item.value
            self._reference(item, group.reference, (), "evidence group", None)
            if group.max_likelihood_ratio is not None and (problem := safety.cap_problem(group.max_likelihood_ratio)):
                self.out.add(item.at("max_likelihood_ratio"), "E016", problem)
            for index, rule_id in enumerate(group.members):
                rule = rules.get(rule_id)
                if rule is None:
                    self.out.add(
                        item.at("members", index), "E030", f"evidence group {group.id!r}: undefined rule {rule_id!r}"
                    )
                elif not rule.value.then.evidence:
                    self.out.add(
                        item.at("members", index),
                        "E030",
                        f"evidence group {group.id!r}: rule {rule_id!r} weighs no evidence",
                    )
                elif rule_id in owner:
                    self.out.add(
                        item.at("members", index),
                        "E041",
                        f"rule {rule_id!r} is in evidence groups {owner[rule_id]!r} and {group.id!r}; a rule belongs to one",
                        rule_id,
                    )
                else:
                    owner[rule_id] = group.id
        if not groups:
            return
        for item in rules.values():
            rule = item.value
            if rule.then.evidence and rule.status != "retired" and rule.id not in owner:
                self.out.add(
                    item.at("then", "evidence"),
                    "E041",
                    "evidence outside every evidence group: add the rule to a group in rules/hypotheses.yaml "
                    "(`combine: independent` declares it independent)",
                    rule.id,
                )

    def _check_cause_priors(self, populations: dict[str, _Item], hypotheses: dict[str, _Item]) -> None:
        """The causes are exclusive: in each population their priors leave a share for 'other'."""
        for pid in populations:
            total = sum(
                p.probability
                for h in hypotheses.values()
                if h.value.kind == "cause"
                for p in h.value.priors
                if p.population == pid
            )
            if total >= 1:
                self.out.add(
                    populations[pid].at(),
                    "E042",
                    f"the causes' priors in population {pid!r} sum to {total:.3f}; they must leave a share for 'other'",
                )

    def _derived_names(self, rules: dict[str, _Item]) -> set[str]:
        by_rules = {
            r.value.then.derive.name for r in rules.values() if r.value.status == "active" and r.value.then.derive
        }
        return by_rules | EXTERNAL_DERIVED_NAMES

    # ------------------------------------------------------------------ rules
    def _check_rule(self, item: _Item) -> tuple[tuple[ir.Pattern, ...], dict[str, tuple[int, str]]]:
        rule: Rule = item.value
        rid = rule.id
        for index, ref in enumerate(rule.references):
            if ref not in self.references:
                self.out.add(item.at("references", index), "E013", f"undefined reference {ref!r}", rid)
        # A threshold in `when` is a clinical number too: its source is the rule's `references` or, for a rule
        # that weighs evidence, the references its evidence cites.
        if not rule.references and not any(e.reference for e in rule.then.evidence) and _has_numeric_threshold(rule):
            self.out.add(
                item.at("when"), "E017", "a numeric threshold (<, <=, >, >=) needs `references` on the rule", rid
            )
        then = rule.then
        if then.derive is None and not then.evidence and not then.cards:
            self.out.add(item.at("then"), "E029", "`then` derives nothing, adds no evidence and raises no card", rid)
        for index, ev in enumerate(then.evidence):
            path = ("then", "evidence", index)
            hyp = self.hypotheses.get(ev.hypothesis)
            if hyp is None:
                self.out.add(item.at(*path, "hypothesis"), "E012", f"undefined hypothesis {ev.hypothesis!r}", rid)
            elif ev.test is not None and ev.test not in {t.id for t in hyp.value.tests}:
                self.out.add(
                    item.at(*path, "test"), "E012", f"hypothesis {ev.hypothesis!r} declares no test {ev.test!r}", rid
                )
            self._lr(item, ev.likelihood_ratio, (*path, "likelihood_ratio"), rid)
            self._reference(item, ev.reference, path, "evidence", rid)
            if ev.interval is not None and ev.counts is not None:
                self.out.add(item.at(*path, "interval"), "E016", "give `interval` or `counts`, not both", rid)
            elif ev.interval is not None and not ev.interval[0] <= ev.likelihood_ratio <= ev.interval[1]:
                self.out.add(
                    item.at(*path, "interval"),
                    "E016",
                    f"interval {ev.interval} must run from low to high and contain the ratio {ev.likelihood_ratio:g}",
                    rid,
                )
        for index, card in enumerate(then.cards):
            if card not in self.cards:
                self.out.add(item.at("then", "cards", index), "E018", f"undefined card template {card!r}", rid)

        derived_names = self._derived_names(self.rules)
        patterns: list[ir.Pattern] = []
        aliases: dict[str, tuple[int, str]] = {}
        for index, pattern in enumerate(rule.when):
            path = ("when", index)
            if pattern.absent is not None:
                (field_name,) = pattern.absent.model_fields_set
                kind = "draft-order" if field_name == "draft_order" else field_name
                tests_raw = getattr(pattern.absent, field_name)
                tests = self._tests(item, (*path, "absent", kind), kind, tests_raw, aliases, allow_join=False)
                key_tuple = (kind, tests)
                if key_tuple not in self.absences:
                    self.absences[key_tuple] = ir.Absence(f"a{len(self.absences)}", kind, tests)
                absence = self.absences[key_tuple]
                patterns.append(ir.Pattern(ir.ABSENCE_KIND, (ir.Test("key", "eq", absence.key),)))
                continue
            (field_name,) = pattern.model_fields_set - {"as_"}
            kind = "draft-order" if field_name == "draft_order" else field_name
            tests_raw = getattr(pattern, field_name)
            tests = self._tests(item, (*path, kind), kind, tests_raw, aliases, allow_join=True)
            if kind == "derived":
                names = [t.value for t in tests if t.attr == "name" and t.op == "eq"]
                if not names:
                    self.out.add(
                        item.at(*path, kind),
                        "E021",
                        "a derived pattern must name the fact: `derived: {name: ...}`",
                        rid,
                    )
                for name in names:
                    if name not in derived_names:
                        self.out.add(
                            item.at(*path, kind, "name"),
                            "E021",
                            f"no active rule derives {name!r}: this rule can never fire",
                            rid,
                        )
            if pattern.as_ is not None:
                if pattern.as_ in aliases:
                    self.out.add(item.at(*path, "as"), "E010", f"alias {pattern.as_!r} used twice", rid)
                aliases[pattern.as_] = (index, kind)
            patterns.append(ir.Pattern(kind, tests, pattern.as_))
        return tuple(patterns), aliases

    def _tests(
        self,
        item: _Item,
        path: tuple[str | int, ...],
        kind: str,
        raw: Mapping[str, Any],
        aliases: Mapping[str, tuple[int, str]],
        allow_join: bool,
    ) -> tuple[ir.Test, ...]:
        rid = item.value.id
        fields = FACT_FIELDS.get(kind)
        if fields is None:
            self.out.add(item.at(*path), "E014", f"fact kind {kind!r} is not in cds.facts.FACT_FIELDS", rid)
            return ()
        tests: list[ir.Test] = []
        for attr, spec in raw.items():
            where = item.at(*path, attr, key=True)
            if attr not in fields:
                self.out.add(
                    where, "E015", f"{kind} facts have no attribute {attr!r} (known: {', '.join(sorted(fields))})", rid
                )
                continue
            attr_type = fields[attr]
            ops = spec.model_dump(exclude_unset=True) if isinstance(spec, Operators) else {"eq": spec}
            for op, value in ops.items():
                vwhere = item.at(*path, attr)
                if op == "same_as":
                    tests.extend(self._join(item, vwhere, kind, attr, attr_type, value, aliases, allow_join))
                elif op == "in_":
                    tests.extend(self._membership(item, vwhere, kind, attr, attr_type, value))
                else:
                    if not _type_ok(attr_type, value, op):
                        self.out.add(
                            vwhere, "E020", f"{kind}.{attr} is {attr_type}: cannot compare it with {op} {value!r}", rid
                        )
                        continue
                    if isinstance(value, str):
                        # `concept: esrd` names a value set (or an analyte) just as `in: [esrd]` does:
                        # check that it exists and count it as used.
                        if (kind, attr) in VALUESET_ATTRS:
                            self._valueset(item, vwhere, value)
                        elif (
                            (kind, attr) == ("lab", "analyte")
                            and self.analytes is not None
                            and value not in self.analytes
                        ):
                            self.out.add(vwhere, "E026", f"undefined analyte {value!r} (rules/analytes.yaml)", rid)
                    tests.append(ir.Test(attr, op, value))
        self._contradictions(item, path, kind, tests)
        return tuple(tests)

    def _contradictions(self, item: _Item, path: tuple[str | int, ...], kind: str, tests: list[ir.Test]) -> None:
        analytes = [t.value for t in tests if t.attr == "analyte" and t.op == "eq" and isinstance(t.value, str)]
        for t in tests:
            if t.op not in ("eq", "ne", "lt", "le", "gt", "ge"):
                continue
            if kind == "lab" and t.attr in safety.LAB_VALUE_ATTRS:
                low, high = self.analyte_limits.get(analytes[0], (None, None)) if len(analytes) == 1 else (None, None)
                valid = safety.lab_value_range(high, low)
                what = f"lab.{t.attr} of {analytes[0]}" if analytes else f"lab.{t.attr}"
            else:
                valid, what = safety.ATTRIBUTE_RANGES.get((kind, t.attr)), f"{kind}.{t.attr}"
            if problem := safety.threshold_problem(t.value, valid, what):
                self.out.add(item.at(*path, t.attr), "E031", problem, item.value.id)
                return
        for t in tests:
            # facts are bounded and rounded the same way (prepare.py), so both backends compare alike
            if isinstance(t.value, float) and (abs(t.value) >= MAX_ABS_NUMBER or round(t.value, DECIMALS) != t.value):
                self.out.add(
                    item.at(*path, t.attr),
                    "E003",
                    f"{t.value!r}: numbers in rules have at most {DECIMALS} "
                    f"decimals and magnitude below {MAX_ABS_NUMBER:g}",
                    item.value.id,
                )
            elif isinstance(t.value, int) and not isinstance(t.value, bool) and abs(t.value) >= MAX_ABS_NUMBER:
                self.out.add(
                    item.at(*path, t.attr),
                    "E003",
                    f"{t.value!r}: magnitude must be below {MAX_ABS_NUMBER:g}",
                    item.value.id,
                )
        by_attr: dict[str, list[ir.Test]] = {}
        for t in tests:
            by_attr.setdefault(t.attr, []).append(t)
        for attr, group in by_attr.items():
            eqs = {t.value for t in group if t.op == "eq"}
            lower = max((t.value for t in group if t.op in ("gt", "ge")), default=None)
            upper = min((t.value for t in group if t.op in ("lt", "le")), default=None)
            impossible = len(eqs) > 1
            for t in group:
                if t.op == "any_of" and eqs and not (eqs & set(t.values)):
                    impossible = True
            if (
                lower is not None
                and upper is not None
                and (lower > upper or (lower == upper and any(t.op in ("gt", "lt") for t in group)))
            ):
                impossible = True
            if impossible:
                self.out.add(
                    item.at(*path, attr),
                    "E021",
                    f"the tests on {kind}.{attr} contradict each other: this rule can never fire",
                    item.value.id,
                )

    def _join(self, item, where, kind, attr, attr_type, target, aliases, allow_join) -> list[ir.Test]:
        rid = item.value.id
        if not allow_join:
            self.out.add(where, "E019", "an absent pattern cannot join other patterns", rid)
            return []
        alias, _, other_attr = str(target).partition(".")
        if alias not in aliases or not other_attr:
            self.out.add(
                where,
                "E019",
                f"same_as {target!r}: no earlier pattern has alias {alias!r} (write `alias.attribute`)",
                rid,
            )
            return []
        index, other_kind = aliases[alias]
        other_type = FACT_FIELDS.get(other_kind, {}).get(other_attr)
        if other_type is None:
            self.out.add(where, "E015", f"{other_kind} facts have no attribute {other_attr!r}", rid)
            return []
        if other_type != attr_type:
            self.out.add(
                where,
                "E020",
                f"cannot join {kind}.{attr} ({attr_type}) with {other_kind}.{other_attr} ({other_type})",
                rid,
            )
            return []
        return [ir.Test(attr, "join", join_pattern=index, join_attr=other_attr)]

    def _membership(self, item, where, kind, attr, attr_type, value) -> list[ir.Test]:
        rid = item.value.id
        ids = [value] if isinstance(value, str) else list(value)
        if not ids:
            self.out.add(where, "E021", "`in: []` never matches", rid)
            return []
        if attr_type != "str":
            self.out.add(where, "E020", f"{kind}.{attr} is {attr_type}: `in` needs a text attribute", rid)
            return []
        if (kind, attr) in VALUESET_ATTRS:
            for vs in ids:
                self._valueset(item, where, vs)
            return [ir.Test(attr, "any_of", values=tuple(ids))]
        if attr == "code" and kind in CODE_KINDS:
            tests = []
            for vs in ids:
                if self.valuesets is None or vs not in self.valuesets:
                    self.out.add(
                        where, "E011", f"undefined value set {vs!r} (code membership needs rules/valuesets/)", rid
                    )
                    continue
                self.used_valuesets.add(vs)
                key = (kind, vs)
                if key not in self.memberships:
                    self.memberships[key] = ir.Membership(f"_vs{len(self.memberships)}", kind, vs)
            members = [self.memberships[(kind, vs)] for vs in ids if (kind, vs) in self.memberships]
            if len(members) == 1:
                tests.append(ir.Test(members[0].attr, "member", True))
            elif members:
                # several value sets: one attribute per set would need an OR across attributes;
                # keep the engine subset simple and require one value set per code test.
                self.out.add(
                    where, "E003", "`code: {in: ...}` takes one value set; write one pattern per value set", rid
                )
            return tests
        if (kind, attr) == ("lab", "analyte") and self.analytes is not None:
            for analyte in ids:
                if analyte not in self.analytes:
                    self.out.add(where, "E026", f"undefined analyte {analyte!r} (rules/analytes.yaml)", rid)
        return [ir.Test(attr, "any_of", values=tuple(ids))]

    def _valueset(self, item: _Item, where: tuple[str, int, int], vs: str) -> None:
        self.used_valuesets.add(vs)
        if self.valuesets is not None and vs not in self.valuesets:
            self.out.add(where, "E011", f"undefined value set {vs!r}", item.value.id)

    def _order_rules(self, rules: dict[str, _Item]) -> list[str]:
        """Producers of derived facts before their consumers; a cycle is an error (E025)."""
        active = [r for r in rules.values() if r.value.status == "active"]
        produces = {r.value.id: r.value.then.derive.name for r in active if r.value.then.derive}
        consumes: dict[str, set[str]] = {}
        for r in active:
            names = set()
            for p in r.value.when:
                if p.derived is not None and isinstance(p.derived.get("name"), str):
                    names.add(p.derived["name"])
            consumes[r.value.id] = names
        order: list[str] = []
        placed: set[str] = set()
        remaining = [r.value.id for r in active]
        while remaining:
            ready_names = {produces[r] for r in remaining if r in produces}
            progress = [r for r in remaining if not (consumes[r] & {produces[x] for x in remaining if x in produces})]
            if not progress:
                for r in remaining:
                    self.out.add(
                        rules[r].at("when"), "E025", f"derived facts form a cycle among {sorted(ready_names)}", r
                    )
                break
            for r in progress:
                order.append(r)
                placed.add(r)
            remaining = [r for r in remaining if r not in placed]
        return order

    # ------------------------------------------------------------------ cards
    def _check_card(
        self, item: _Item, rules: dict[str, _Item], aliases: Mapping[str, Mapping[str, tuple[int, str]]]
    ) -> None:
        card: CardTemplate = item.value
        cid = card.id
        for index, service in enumerate(card.services):
            if self.services and service not in self.services:
                self.out.add(
                    item.at("services", index), "E024", f"undefined service {service!r} (rules/services.yaml)", cid
                )
        for index, ref in enumerate(card.references):
            if ref not in self.references:
                self.out.add(item.at("references", index), "E013", f"undefined reference {ref!r}", cid)
        condition = card.when.differential
        if condition is not None and condition.hypothesis not in self.hypotheses:
            self.out.add(
                item.at("when", "differential", "hypothesis"),
                "E012",
                f"undefined hypothesis {condition.hypothesis!r}",
                cid,
            )
        if condition is not None and (condition.at_least is not None or condition.below is not None):
            if condition.reference is None:
                self.out.add(item.at("when", "differential"), "E017", "a posterior threshold names no reference", cid)
            elif condition.reference not in self.references:
                self.out.add(
                    item.at("when", "differential", "reference"),
                    "E013",
                    f"undefined reference {condition.reference!r}",
                    cid,
                )
        raisers = [r.value for r in rules.values() if cid in r.value.then.cards and r.value.status == "active"]
        if card.when.intent and not raisers:
            self.out.add(item.at("when", "intent"), "E021", "no active rule raises this card (`then.cards`)", cid)
        texts: list[tuple[tuple[str | int, ...], str]] = [(("summary",), card.summary)]
        if card.detail:
            texts.append((("detail",), card.detail))
        for s_index, suggestion in enumerate(card.suggestions):
            texts.append((("suggestions", s_index, "label"), suggestion.label))
            for a_index, action in enumerate(suggestion.actions):
                base = ("suggestions", s_index, "actions", a_index)
                texts.append(((*base, "description"), action.description))
                if action.resource_id:
                    texts.append(((*base, "resource_id"), action.resource_id))
                for sub_path, text in _strings(action.resource):
                    texts.append(((*base, "resource", *sub_path), text))
                self._check_action(item, base, action)
        for l_index, link in enumerate(card.links):
            texts.append((("links", l_index, "url"), link.url))
        if card.page_detail:
            # The page behind a card is built from the rules alone (no patient), so it has nothing to fill in.
            for match in PLACEHOLDER.finditer(card.page_detail):
                self.out.add(
                    item.at("page_detail"),
                    "E022",
                    f"{{{match.group(0)[1:-1]}}}: page_detail is shown on the card's page, which has no patient data; "
                    "no placeholders",
                    cid,
                )
        recommended = sum(1 for s in card.suggestions if s.recommended)
        if card.selection_behavior == "at-most-one" and recommended > 1:
            self.out.add(
                item.at("suggestions"), "E003", "at most one suggestion may be recommended under at-most-one", cid
            )
        for path, text in texts:
            for match in PLACEHOLDER.finditer(text):
                self._check_placeholder(item, path, match.group(1), match.group(2), card, raisers, aliases)

    def _check_placeholder(self, item, path, name, arg, card, raisers, aliases) -> None:
        where, cid = item.at(*path), card.id
        if name in HYPOTHESIS_PLACEHOLDERS:
            if arg not in self.hypotheses:
                self.out.add(where, "E022", f"{{{name}:{arg}}}: undefined hypothesis {arg!r}", cid)
        elif name in PLAIN_PLACEHOLDERS:
            if arg is not None:
                self.out.add(where, "E022", f"{{{name}}} takes no argument", cid)
        elif name in MATCHED_PLACEHOLDERS:
            alias, _, attr = (arg or "").partition(".")
            if not card.when.intent or not raisers:
                self.out.add(
                    where, "E022", f"{{matched:{arg}}} needs `when: {{intent: true}}` and a rule raising the card", cid
                )
            for rule in raisers:
                found = aliases.get(rule.id, {}).get(alias)
                if found is None:
                    self.out.add(
                        where, "E022", f"{{matched:{arg}}}: rule {rule.id!r} has no pattern `as: {alias}`", cid
                    )
                elif attr not in FACT_FIELDS.get(found[1], {}):
                    self.out.add(where, "E022", f"{{matched:{arg}}}: {found[1]} facts have no attribute {attr!r}", cid)
        else:
            known = sorted(HYPOTHESIS_PLACEHOLDERS | PLAIN_PLACEHOLDERS | MATCHED_PLACEHOLDERS)
            self.out.add(where, "E022", f"unknown placeholder {{{name}}} (known: {', '.join(known)})", cid)

    def _check_action(self, item: _Item, base: tuple[str | int, ...], action: Any) -> None:
        cid = item.value.id
        if action.type == "delete":
            if not action.resource_id or action.resource is not None:
                self.out.add(item.at(*base), "E027", "a delete action names `resource_id` and carries no resource", cid)
            return
        if action.resource is None:
            self.out.add(item.at(*base), "E027", f"a {action.type} action carries a `resource`", cid)
            return
        problem = validate_fhir_resource(_fill_dummy(action.resource))
        if problem:
            self.out.add(item.at(*base, "resource"), "E027", problem, cid)

    # ------------------------------------------------------------------ tests and coverage
    def _check_test(self, item: _Item) -> None:
        test: RuleTest = item.value
        tid = test.id
        if self.services and test.service not in self.services:
            self.out.add(item.at("service"), "E028", f"undefined service {test.service!r}", tid)
        if test.case is not None:
            found, legacy = resolve_case(self.rules_dir, self.rules_dir.parent / item.file, test.case)
            if found is None:
                self.out.add(
                    item.at("case"),
                    "E028",
                    f"case file {test.case!r} not found (paths are relative to the file naming them)",
                    tid,
                )
            elif legacy:
                self.out.add(
                    item.at("case"),
                    "N203",
                    f"case path {test.case!r} is relative to the repository root; "
                    "write it relative to this file (`python -m cds.engine.migrate_tests` does it)",
                    tid,
                )
        if test.facts is not None:
            for index, fact in enumerate(test.facts):
                kind = fact.get("kind")
                if kind not in FACT_FIELDS or not isinstance(fact.get("id"), str):
                    self.out.add(
                        item.at("facts", index), "E028", "an inline fact needs `kind` (a fact kind) and `id`", tid
                    )
                    continue
                for attr in fact:
                    if attr not in ("kind", "id") and attr not in FACT_FIELDS[kind]:
                        self.out.add(
                            item.at("facts", index, attr, key=True),
                            "E015",
                            f"{kind} facts have no attribute {attr!r}",
                            tid,
                        )
        expect = test.expect
        for field_name in ("fired", "not_fired"):
            for index, rid in enumerate(getattr(expect, field_name)):
                if rid not in self.rules:
                    self.out.add(item.at("expect", field_name, index), "E028", f"undefined rule {rid!r}", tid)
        for field_name in ("cards", "not_cards"):
            for index, cid in enumerate(getattr(expect, field_name)):
                if cid not in self.cards:
                    self.out.add(item.at("expect", field_name, index), "E028", f"undefined card template {cid!r}", tid)
        hyps = ([expect.top] if expect.top else []) + list(expect.posterior)
        for hid in hyps:
            if hid not in self.hypotheses:
                self.out.add(item.at("expect"), "E028", f"undefined hypothesis {hid!r}", tid)

    def _check_unused_valuesets(self) -> None:
        if self.valuesets is None:
            return
        for vs in sorted(set(self.valuesets) - self.used_valuesets):
            where = self.valuesets[vs].where or (str(Path(self.rules_dir.name) / "valuesets"), 0, 0)
            used_by = self.valuesets[vs].used_by
            if used_by:
                self.out.add(where, "N202", f"value set {vs!r} is used by no rule; kept because: {used_by.strip()}")
            else:
                self.out.add(where, "W101", f"value set {vs!r} is used by no rule (say why it exists with `used_by:`)")

    def _check_untested(self, rules: dict[str, _Item], tests: dict[str, _Item]) -> None:
        fired = {rid for t in tests.values() for rid in t.value.expect.fired}
        for item in rules.values():
            if item.value.status == "active" and item.value.id not in fired:
                self.out.add(item.at("id"), "W103", "no rule test expects this rule to fire", item.value.id)
        check_tests_beside(self.rules_dir, rules, tests, self.out)


def _id_position(text: str, name: str, ident: str) -> tuple[str, int, int] | None:
    """Where ``id: <ident>`` is written in ``text`` (the value-set files are read without positions)."""
    match = re.search(rf"^([ \t]*-?[ \t]*)id:[ \t]*['\"]?{re.escape(ident)}['\"]?[ \t]*$", text, re.MULTILINE)
    if match is None:
        return None
    line = text.count("\n", 0, match.start()) + 1
    return name, line, len(match.group(1)) + 1


def _has_numeric_threshold(rule: Rule) -> bool:
    """Whether any pattern (absences included) compares a number with <, <=, > or >=."""
    for pattern in rule.when:
        groups = [pattern.absent] if pattern.absent is not None else [pattern]
        for group in groups:
            for name in group.model_fields_set - {"as_"}:
                tests = getattr(group, name)
                if not isinstance(tests, dict):
                    continue
                for spec in tests.values():
                    if isinstance(spec, Operators) and any(
                        getattr(spec, op) is not None for op in ("lt", "le", "gt", "ge")
                    ):
                        return True
    return False


def _type_ok(attr_type: str, value: Any, op: str) -> bool:
    if attr_type == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if op not in ("eq", "ne"):
        return False  # ordering only on numbers: text ordering differs between backends
    if attr_type == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)


def _strings(value: Any, path: tuple[str | int, ...] = ()) -> Iterable[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _fill_dummy(value: Any) -> Any:
    """The resource with every placeholder replaced by a plausible value, for load-time validation."""
    if isinstance(value, str):
        return PLACEHOLDER.sub("example", value)
    if isinstance(value, dict):
        return {k: _fill_dummy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_dummy(v) for v in value]
    return value


def validate_fhir_resource(resource: Mapping[str, Any]) -> str | None:
    """None when ``resource`` is a valid FHIR R4 resource (fhir.resources R4B), else the problem."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return "the resource has no resourceType"
    try:
        from fhir.resources.R4B import get_fhir_model_class

        model = get_fhir_model_class(resource_type)
    except (ImportError, KeyError, ValueError):
        return f"unknown FHIR resource type {resource_type!r}"
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"invalid {resource_type}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    except Exception as exc:  # fhir.resources raises its own errors on some shapes
        return f"invalid {resource_type}: {exc}"
    return None


def load_or_raise(rules_dir: Path, services: Iterable[str] | None = None) -> RuleSet:
    return load_ruleset(rules_dir, services).raise_for_errors()


def evidence_interval(e: Evidence) -> tuple[float | None, float | None]:
    """The stated interval, or the one derived from the source's counts; (None, None): the judgement range."""
    if e.interval is not None:
        return float(e.interval[0]), float(e.interval[1])
    if e.counts is not None:
        c = e.counts
        _, low, high = lr_interval_from_counts(
            c.true_positive, c.false_negative, c.false_positive, c.true_negative, positive=e.likelihood_ratio >= 1
        )
        return low, high
    return None, None


def _lesion_concepts(rules: Iterable[Rule]) -> frozenset[str]:
    concepts: set[str] = set()
    for rule in rules:
        if rule.status != "active" or rule.then.derive is None or rule.then.derive.name != "skin-lesion":
            continue
        for pattern in rule.when:
            spec = (pattern.condition or {}).get("concept")
            if isinstance(spec, str):
                concepts.add(spec)
            elif isinstance(spec, Operators) and spec.in_ is not None:
                concepts.update([spec.in_] if isinstance(spec.in_, str) else spec.in_)
    return frozenset(concepts)


def _compiled_interval(e: Evidence) -> tuple[float, float]:
    """Every compiled ratio carries its interval, the judgement range included (computed once, at load)."""
    low, high = evidence_interval(e)
    if low is None or high is None:
        return judgement_range(float(e.likelihood_ratio))
    return low, high
