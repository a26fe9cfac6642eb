"""Reading ``rules/`` value sets, the text layer's lexicon and analytes into a ``Terminology``.

Split from ``cds.fhir.terminology`` (issue 18: no module over about 500 lines): this module turns the YAML
files into the tables the look-ups use, and reports a mistake as ``file:line:col: E050 message``; the
look-ups themselves, which run on every request, stay in ``cds.fhir.terminology``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cds.concepts import LOINC, canonical_system
from cds.diagnostics import KnowledgeFileError
from cds.yamlio import load_yaml

if TYPE_CHECKING:
    from cds.fhir.terminology import Terminology
    from cds.findings.knowledge import FindingsKnowledge

FACT_KINDS_OF_VALUESETS = ("condition", "medication", "procedure", "draft-order", "finding", "observation")
CONFIDENCE_RANK = {"V": 3, "S": 2, "R": 1}


class TerminologyError(KnowledgeFileError):
    """A value-set, lexicon or analyte file is malformed: ``file:line:col: E050 message (entry)``."""

    code = "E050"


class _Invalid(ValueError):
    """A mistake found while reading one file; ``_reading`` turns it into a located TerminologyError."""


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    try:
        yield
    except _Invalid as exc:
        message = str(exc)
        if message.startswith(f"{path.name}: "):
            message = message[len(path.name) + 2 :]
        raise TerminologyError(path, message) from None


@dataclass(frozen=True, slots=True)
class ValueSet:
    id: str
    title: str
    fact_kind: str
    references: tuple[str, ...]
    source: str  # file name, for messages


@dataclass(frozen=True, slots=True)
class BodySite:
    id: str
    site_class: str  # central | distal | other


@dataclass(frozen=True, slots=True)
class UnitConversion:
    factor: float  # value in this unit x factor = value in the canonical unit
    confidence: str


@dataclass(frozen=True, slots=True)
class Analyte:
    id: str
    title: str
    unit: str  # canonical UCUM unit
    codes: Mapping[str, str]  # LOINC code -> confidence
    conversions: Mapping[str, UnitConversion]  # normalised unit spelling -> conversion
    low: float | None = None
    high: float | None = None
    lookback_days: int | None = None
    trend_tolerance: float = 0.05  # relative change below which the trend is "stable"
    unitless_ok: bool = False  # dimensionless results (INR) may come without a unit
    emit_fact: bool = True  # vitals used for the patient fact (weight, height) emit no lab fact
    derived: bool = False  # computed (Ca x P, corrected calcium), not read from a LOINC code
    references: tuple[str, ...] = ()


@functools.lru_cache(maxsize=512)
def normalise_unit(unit: str) -> str:
    """A spelling key for a unit: UCUM is case-sensitive, EHR displays are not."""
    return unit.strip().replace("µ", "u").replace("μ", "u").replace("^", "*").replace(" ", "").lower()


@dataclass(frozen=True)
class ExtractionSettings:
    """Time windows the extraction applies; declared in rules/analytes.yaml ``extraction``."""

    lab_lookback_days: int = 365
    nonhealing_weeks: int = 6
    completed_medication_days: int = 365
    ulcer_valuesets: tuple[str, ...] = ()
    dialysis_procedure_valuesets: tuple[str, ...] = ()
    dialysis_condition_valuesets: tuple[str, ...] = ()


def load_valueset_file(terminology: Terminology, path: Path) -> None:
    doc = _read_yaml(path)
    for index, raw in enumerate(doc.get("valuesets") or []):
        where = f"{path.name}: valuesets[{index}]"
        if not isinstance(raw, dict):
            raise _Invalid(f"{where}: expected a mapping")
        vs_id = _required_str(raw, "id", where)
        where = f"{path.name}: value set {vs_id!r}"
        if vs_id in terminology.valuesets:
            raise _Invalid(f"{where}: id already defined in {terminology.valuesets[vs_id].source}")
        fact_kind = _required_str(raw, "fact_kind", where)
        if fact_kind not in FACT_KINDS_OF_VALUESETS:
            raise _Invalid(f"{where}: fact_kind {fact_kind!r} is not one of {FACT_KINDS_OF_VALUESETS}")
        codes = raw.get("codes")
        if not isinstance(codes, list) or not codes:
            raise _Invalid(f"{where}: needs a non-empty list of codes")
        terminology.valuesets[vs_id] = ValueSet(
            id=vs_id,
            title=str(raw.get("title") or vs_id),
            fact_kind=fact_kind,
            references=tuple(raw.get("references") or ()),
            source=path.name,
        )
        for code_index, entry in enumerate(codes):
            system, code, confidence = _code_entry(entry, f"{where}: codes[{code_index}]")
            terminology._add_code(vs_id, system, code, confidence)
    load_synonyms(terminology, path, doc)
    load_biopsy_results(terminology, path, doc)
    for key in ("body_sites", "laterality"):
        if doc.get(key):
            raise _Invalid(f"{path.name}: {key} belong in rules/findings/sites.yaml (the one body-site vocabulary)")


def load_synonyms(terminology: Terminology, path: Path, doc: Mapping[str, Any]) -> None:
    """The text layer's lexicon: ``synonyms`` entries (terms -> value set, with a confidence)."""
    for index, raw in enumerate(doc.get("synonyms") or []):
        where = f"{path.name}: synonyms[{index}]"
        vs_id = _required_str(raw, "valueset", where)
        confidence = str(raw.get("confidence", "R"))
        if confidence not in CONFIDENCE_RANK:
            raise _Invalid(f"{where}: confidence must be V, S or R, not {confidence!r}")
        terms = raw.get("terms")
        if not isinstance(terms, list) or not terms or not all(isinstance(t, str) and t.strip() for t in terms):
            raise _Invalid(f"{where}: terms must be a non-empty list of phrases")
        for term in terms:
            terminology.synonyms[(term.strip().lower(), vs_id)] = confidence
            terminology._synonym_files[(term.strip().lower(), vs_id)] = (path, index)


def load_biopsy_results(terminology: Terminology, path: Path, doc: Mapping[str, Any]) -> None:
    """Pathology report wording -> skin-biopsy result (``biopsy_results``)."""
    results = doc.get("biopsy_results") or {}
    if not isinstance(results, dict) or set(results) - {"positive", "nondiagnostic", "other-diagnosis"}:
        raise _Invalid(f"{path.name}: biopsy_results maps positive, nondiagnostic, other-diagnosis to terms")
    for label, terms in results.items():
        if not isinstance(terms, list) or not all(isinstance(t, str) and t.strip() for t in terms):
            raise _Invalid(f"{path.name}: biopsy_results.{label} must be a list of phrases")
        terminology.biopsy_terms.update((t.strip().lower(), label) for t in terms)


def load_analytes(terminology: Terminology, path: Path) -> None:
    doc = _read_yaml(path)
    for index, raw in enumerate(doc.get("analytes") or []):
        where = f"{path.name}: analytes[{index}]"
        analyte_id = _required_str(raw, "id", where)
        where = f"{path.name}: analyte {analyte_id!r}"
        if analyte_id in terminology.analytes:
            raise _Invalid(f"{where}: defined twice")
        unit = _required_str(raw, "unit", where)
        codes: dict[str, str] = {}
        for code_index, entry in enumerate(raw.get("codes") or []):
            system, code, confidence = _code_entry(entry, f"{where}: codes[{code_index}]")
            if system != LOINC:
                raise _Invalid(f"{where}: codes[{code_index}] must be LOINC")
            codes[code] = confidence
            if code in terminology.loinc_to_analyte:
                raise _Invalid(f"{where}: LOINC {code} already belongs to {terminology.loinc_to_analyte[code]!r}")
            terminology.loinc_to_analyte[code] = analyte_id
        conversions = {normalise_unit(unit): UnitConversion(1.0, "V")}
        for conv_index, conv in enumerate(raw.get("conversions") or []):
            cwhere = f"{where}: conversions[{conv_index}]"
            if not isinstance(conv, dict) or "unit" not in conv or "factor" not in conv:
                raise _Invalid(f"{cwhere}: needs unit and factor")
            factor = conv["factor"]
            if not isinstance(factor, int | float) or isinstance(factor, bool) or factor <= 0:
                raise _Invalid(f"{cwhere}: factor must be a positive number")
            confidence = str(conv.get("confidence", ""))
            if confidence not in CONFIDENCE_RANK and confidence != "D":
                raise _Invalid(f"{cwhere}: confidence must be V, S, R or D")
            for spelling in [conv["unit"], *(conv.get("aliases") or [])]:
                conversions[normalise_unit(str(spelling))] = UnitConversion(float(factor), confidence)
        for alias in raw.get("unit_aliases") or []:
            conversions[normalise_unit(str(alias))] = UnitConversion(1.0, "V")
        derived = bool(raw.get("derived", False))
        if not codes and not derived:
            raise _Invalid(f"{where}: needs LOINC codes (or derived: true)")
        terminology.analytes[analyte_id] = Analyte(
            id=analyte_id,
            title=str(raw.get("title") or analyte_id),
            unit=unit,
            codes=codes,
            conversions=conversions,
            low=_optional_number(raw, "low", where),
            high=_optional_number(raw, "high", where),
            lookback_days=raw.get("lookback_days"),
            trend_tolerance=float(raw.get("trend_tolerance", 0.05)),
            unitless_ok=bool(raw.get("unitless_ok", False)),
            emit_fact=bool(raw.get("emit_fact", True)),
            derived=derived,
            references=tuple(raw.get("references") or ()),
        )
    ext = doc.get("extraction") or {}
    if not isinstance(ext, dict):
        raise _Invalid(f"{path.name}: extraction must be a mapping")
    known = set(ExtractionSettings.__dataclass_fields__)
    unknown = set(ext) - known
    if unknown:
        raise _Invalid(f"{path.name}: extraction has unknown settings {sorted(unknown)}")
    terminology.settings = ExtractionSettings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in ext.items()}  # type: ignore[arg-type]
    )


def check_settings(terminology: Terminology, rules_dir: Path) -> None:
    for (term, vs_id), (source, index) in terminology._synonym_files.items():
        if vs_id not in terminology.valuesets:
            raise TerminologyError(
                source,
                f"synonyms[{index}]: term {term!r} names unknown value set {vs_id!r}",
                ("synonyms", index, "valueset"),
            )
    s = terminology.settings
    for name in ("ulcer_valuesets", "dialysis_procedure_valuesets", "dialysis_condition_valuesets"):
        for vs_id in getattr(s, name):
            if vs_id not in terminology.valuesets:
                raise TerminologyError(
                    rules_dir / "analytes.yaml",
                    f"extraction.{name} names unknown value set {vs_id!r}",
                    ("extraction", name, getattr(s, name).index(vs_id)),
                )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise _Invalid(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise _Invalid(f"{path.name}: expected a mapping at the top level")
    return doc


def _required_str(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key) if isinstance(raw, Mapping) else None
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{where}: {key} must be a non-empty string")
    return value


def _optional_number(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _Invalid(f"{where}: {key} must be a number")
    return float(value)


def _code_entry(entry: Any, where: str) -> tuple[str, str, str]:
    if not isinstance(entry, Mapping):
        raise _Invalid(f"{where}: expected a mapping with system, code, confidence")
    system = _required_str(entry, "system", where)
    code = entry.get("code")
    if isinstance(code, int):  # YAML reads an unquoted SNOMED or RxNorm code as a number
        code = str(code)
    if not isinstance(code, str) or not code:
        raise _Invalid(f"{where}: code must be a non-empty string")
    confidence = str(entry.get("confidence", "V"))
    if confidence not in CONFIDENCE_RANK:
        raise _Invalid(f"{where}: confidence must be V, S or R, not {confidence!r}")
    return canonical_system(system) or system, code, confidence


def load_findings_knowledge(rules_dir: Path) -> FindingsKnowledge | None:
    """The findings layer's knowledge (rules/findings): body sites, report-text vocabulary.

    A broken findings file is an error of the rule set (``FindingsRulesError``, E051, with its
    file, line and column), never swallowed: hiding it made 24 rule tests fail with no file named
    (issue 18). Only a missing medspaCy installation is tolerated, by the text layer itself.
    """
    from cds.findings.knowledge import FindingsKnowledge

    if not (rules_dir / "findings").is_dir():
        return None  # a rule set without a findings layer (e.g. a test's value sets only)
    return FindingsKnowledge.load(rules_dir)
