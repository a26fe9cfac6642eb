"""Pathology DiagnosticReports -> the skin-biopsy result (positive, negative, nondiagnostic).

Read like radiology text (ADR 0005): the report's conclusion and text/plain presentedForm go
through the medspaCy lexicon matcher with the report-text negation/uncertainty context, using the
result terms of rules/valuesets/lexicon.yaml ``biopsy_results``:

* calciphylaxis asserted ("consistent with calciphylaxis")          -> positive
* a non-diagnostic statement, or calciphylaxis only possible       -> nondiagnostic
* calciphylaxis negated, or another diagnosis named                 -> negative

The result is the ``outcome`` of the skin-biopsy procedure fact (the rules' biopsy evidence); a
report without a biopsy Procedure on record gives that fact itself. A pathology report whose text
names no result is said in the trace, never guessed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from cds.facts import Fact
from cds.fhir.dates import parse_date, years_between
from cds.fhir.intake import Intake, iter_codings, reference_key
from cds.fhir.terminology import LOINC, Terminology, canonical_system

V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
# DiagnosticReport.category of pathology: HL7 v2 table 0074 SP (surgical pathology), PAT
# (pathology), CP (cytopathology); LOINC LP7839-6 "Pathology" (US Core category) [R].
PATHOLOGY_CATEGORIES = {(V2_0074, "SP"), (V2_0074, "PAT"), (V2_0074, "CP"), (LOINC, "LP7839-6")}
# LOINC report codes of surgical pathology [R]: 11526-1 Pathology study, 22634-0 Pathology report
# final diagnosis, 60567-5 Comprehensive pathology report panel, 66117-3 Pathology biopsy report.
PATHOLOGY_CODES = {(LOINC, "11526-1"), (LOINC, "22634-0"), (LOINC, "60567-5"), (LOINC, "66117-3")}
SKIN_BIOPSY = "skin-biopsy"
_COUNTED = frozenset({"final", "amended", "corrected", "appended", "preliminary"})


def is_pathology(report: Mapping[str, Any]) -> bool:
    for concept in [*(report.get("category") or ()), report.get("code")]:
        for coding in iter_codings(concept):
            if (canonical_system(coding.get("system")), coding.get("code")) in PATHOLOGY_CATEGORIES | PATHOLOGY_CODES:
                return True
    return False


def report_text(report: Mapping[str, Any]) -> str:
    parts = [report["conclusion"]] if isinstance(report.get("conclusion"), str) else []
    for concept in report.get("conclusionCode") or ():
        if isinstance(concept, Mapping) and isinstance(concept.get("text"), str):
            parts.append(concept["text"])
    for form in report.get("presentedForm") or ():
        if isinstance(form, Mapping) and str(form.get("contentType", "")).startswith("text/plain") and form.get("data"):
            try:
                parts.append(base64.b64decode(str(form["data"]), validate=True).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                continue
    return "\n".join(parts)


def classify(text: str, term: Terminology) -> tuple[str | None, str]:
    """(outcome, the term that decided it) from a pathology text; (None, "") when it names no result."""
    matcher = term.biopsy_matcher()
    if matcher is None or not text.strip():
        return None, ""
    key = "\x00biopsy\x00" + text  # the same bounded per-text cache as the concept text layer
    mentions = term._text_cache.get(key)
    if mentions is None:
        mentions = matcher.mentions(text)
        if len(term._text_cache) >= 8192:
            term._text_cache.clear()
        term._text_cache[key] = mentions
    positive = [m for m in mentions if m.label == "positive"]
    if any(m.asserted for m in positive):
        return "positive", next(m.phrase for m in positive if m.asserted)
    nondiagnostic = [m for m in mentions if m.label == "nondiagnostic" and m.asserted]
    uncertain = [m for m in positive if m.modifier in ("POSSIBLE_EXISTENCE", "HYPOTHETICAL")]
    if nondiagnostic or uncertain:
        return "nondiagnostic", (nondiagnostic or uncertain)[0].phrase
    negated = [m for m in positive if m.modifier in ("NEGATED_EXISTENCE", "UNLIKELY")]
    other = [m for m in mentions if m.label == "other-diagnosis" and m.asserted]
    if negated or other:
        return "negative", (other or negated)[0].phrase
    return None, ""


def apply_pathology(
    reports: Sequence[Mapping[str, Any]], procedures: list[Fact], term: Terminology, intake: Intake, today: date
) -> list[Fact]:
    """The procedure facts, with the skin-biopsy outcome from the latest pathology report that states one."""
    results: list[tuple[date, str, str, Mapping[str, Any]]] = []
    for report in reports:
        if not is_pathology(report) or report.get("status") not in _COUNTED:
            continue
        day = parse_date(
            report.get("effectiveDateTime") or (report.get("effectivePeriod") or {}).get("end") or report.get("issued")
        )
        if day is None or day > today or not intake.validate_full(report):
            continue
        outcome, phrase = classify(report_text(report), term)
        if outcome is None:
            intake.warn(report, "pathology report: no biopsy result recognised in its text")
            continue
        results.append((day, outcome, phrase, report))
    if not results:
        return procedures
    day, outcome, phrase, report = max(results, key=lambda r: r[0])
    source = reference_key(report, "DiagnosticReport")
    biopsy = next((f for f in procedures if f.attrs.get("concept") == SKIN_BIOPSY), None)
    if biopsy is not None and "outcome" in biopsy.attrs and str(biopsy.attrs.get("date", "")) > day.isoformat():
        return procedures  # the procedure's own, later outcome stands
    attrs: dict[str, Any] = (
        dict(biopsy.attrs)
        if biopsy is not None
        else {
            "concept": SKIN_BIOPSY,
            "status": "completed",
            "date": day.isoformat(),
            "days_ago": (today - day).days,
            "first_date": day.isoformat(),
            "years_since_first": years_between(day, today),
            "count": 1,
            "code_confidence": "R",
            "source": source,
            "recognised_by": "text",
            "recognised_text": phrase,
        }
    )
    attrs.update({"outcome": outcome, "outcome_source": source, "outcome_text": phrase})
    if biopsy is None:
        return [*procedures, Fact("procedure", f"procedure:{SKIN_BIOPSY}", attrs)]
    return [Fact(f.kind, f.id, attrs) if f is biopsy else f for f in procedures]
