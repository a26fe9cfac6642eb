"""The FHIR layer: FHIR R4 resources of one CDS Hooks request -> facts for the rules engine.

Public interface (notes/contracts.md):

* ``Terminology.load(rules_dir)`` once per rule set;
* ``extract_facts(context, prefetch, now, terminology) -> FactSet``, which never
  raises on bad data: invalid resources become ``FactWarning``s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from cds.facts import Fact, FactSet, FactWarning
from cds.fhir.conditions import condition_facts
from cds.fhir.dates import parse_date, years_between
from cds.fhir.gaps import GAPS
from cds.fhir.intake import Intake
from cds.fhir.labs import derive_series, lab_facts, read_observations
from cds.fhir.medications import medication_facts
from cds.fhir.orders import draft_order_facts
from cds.fhir.pathology import apply_pathology
from cds.fhir.patient import choose_patient, patient_fact
from cds.fhir.procedures import procedure_facts
from cds.fhir.terminology import ExtractionSettings, Terminology, TerminologyError
from cds.observability import metrics

log = logging.getLogger("cds.fhir")

__all__ = ["ExtractionSettings", "Terminology", "TerminologyError", "extract_facts", "warm_up"]


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def extract_facts(
    context: Mapping[str, Any],
    prefetch: Mapping[str, Any],
    now: datetime,
    terminology: Terminology,
) -> FactSet:
    """Every fact the rules can use, from the request's context and completed prefetch.

    ``now`` is the time of the hook: ages, durations and look-back windows count to it.
    """
    intake = Intake()
    try:
        facts = _extract(context if isinstance(context, Mapping) else {}, prefetch or {}, now, terminology, intake)
    except Exception as exc:
        # Reaching this is a bug in this package, not bad input; keep serving without facts.
        intake.warnings.append(FactWarning("request", "-", f"fact extraction failed: {type(exc).__name__}"))
        facts = []
        intake.unreadable.append(FactWarning("request", "-", f"fact extraction failed: {type(exc).__name__}"))
    GAPS.add(intake.gaps)
    if intake.lenient:
        metrics.LENIENT_READS.inc(len(intake.lenient))
    if intake.unreadable:
        metrics.UNREADABLE_RESOURCES.inc(len(intake.unreadable))
    return FactSet(facts=tuple(facts), warnings=tuple(intake.warnings), notices=tuple(intake.unreadable))


def _extract(
    context: Mapping[str, Any], prefetch: Mapping[str, Any], now: datetime, term: Terminology, intake: Intake
) -> list[Fact]:
    today = now.date()
    intake.add_prefetch(prefetch)
    # One patient per request: data about anyone else never reaches the facts.
    accepted = intake.bind_patient(context.get("patientId"))
    series = read_observations(intake.resources("Observation"), term, intake)
    derive_series(series)

    facts: list[Fact] = []
    patient = patient_fact(
        choose_patient(intake.resources("Patient"), context.get("patientId")), series, term, intake, today
    )
    if patient is not None:
        facts.append(patient)
    conditions = condition_facts(intake.resources("Condition"), term, intake, today)
    facts.extend(conditions)
    facts.extend(lab_facts(series, term, intake, today))
    medication_resources = (
        intake.resources("MedicationRequest")
        + intake.resources("MedicationStatement")
        + intake.resources("MedicationAdministration")
    )
    medications = medication_facts(medication_resources, term, intake, today)
    facts.extend(medications)
    procedures = procedure_facts(intake.resources("Procedure"), term, intake, today)
    procedures = apply_pathology(intake.resources("DiagnosticReport"), procedures, term, intake, today)
    facts.extend(procedures)
    vintage = _dialysis_vintage(conditions, procedures, term, today)
    if vintage is not None:
        facts.append(vintage)
    facts.extend(draft_order_facts(context, term, intake, accepted))
    if intake.foreign:
        _report_foreign(intake)
    facts.extend(_findings(intake, conditions, medications, now, term))
    return facts


def _report_foreign(intake: Intake) -> None:
    """Count and log (types and counts only, no identifiers) the resources about another patient."""
    for rtype, count in sorted(intake.foreign.items()):
        metrics.FOREIGN_PATIENT_RESOURCES.labels(rtype).inc(count)
        intake.warnings.append(
            FactWarning(rtype, "-", f"{count} about another patient than context.patientId; ignored")
        )
    log.warning(
        "ignored resources about another patient than context.patientId: %s",
        ", ".join(f"{t}={c}" for t, c in sorted(intake.foreign.items())),
    )


def _dialysis_vintage(conditions: list[Fact], procedures: list[Fact], term: Terminology, today: date) -> Fact | None:
    """Years since the earliest dialysis procedure or dialysis-dependence onset."""
    starts: list[date] = []
    for fact in procedures:
        if fact.attrs.get("concept") in term.settings.dialysis_procedure_valuesets:
            first = parse_date(fact.attrs.get("first_date"))
            if first is not None:
                starts.append(first)
    for fact in conditions:
        if fact.attrs.get("concept") in term.settings.dialysis_condition_valuesets:
            onset = parse_date(fact.attrs.get("onset"))
            if onset is not None:
                starts.append(onset)
    if not starts:
        return None
    first = min(starts)
    return Fact(
        "derived",
        "derived:dialysis-vintage",
        {"name": "dialysis-vintage-years", "value": years_between(first, today), "text": first.isoformat()},
    )


def warm_up(term: Terminology) -> None:
    """Build what the first request would otherwise build (the report-text NLP pipeline).

    Called when a rule set loads, so the first hook call after start or reload does not pay
    the medspaCy start-up (~1.5 s here) inside its deadline.
    """
    if term.findings_knowledge is None:
        return
    try:
        from cds.findings.text import get_pipeline
    except ImportError:
        return
    try:
        get_pipeline(term.findings_knowledge)
        lexicon = term._lexicon_matcher()  # the text layer of concept recognition (rules/valuesets/lexicon.yaml)
        for matcher in (lexicon, term.biopsy_matcher()):
            if matcher is not None:
                matcher.pipeline()
    except Exception as exc:
        logging.getLogger("cds.fhir").warning("report-text pipeline unavailable: %s", type(exc).__name__)


def _findings(
    intake: Intake, conditions: list[Fact], medications: list[Fact], now: datetime, term: Terminology
) -> list[Fact]:
    """Imaging findings from DiagnosticReports, by the cds.findings package when it is installed."""
    reports = intake.resources("DiagnosticReport")
    if not reports:
        return []
    try:
        from cds.findings import extract_findings
    except ImportError:
        return []  # optional stage: without it, reports give no findings
    if term.findings_knowledge is None:
        return []
    # The clinical lesion map: (site, laterality or None) of the patient's current ulcers.
    lesion_sites = {
        (str(f.attrs["site"]), _text_or_none(f.attrs.get("laterality")))
        for f in conditions
        if f.attrs.get("concept") in term.settings.ulcer_valuesets
        and "site" in f.attrs
        and f.attrs["status"] == "active"
    }
    try:
        # medications: lets the serial bone-scan comparison tell a treatment response from a change.
        found = extract_findings(
            reports, intake.index, now, lesion_sites, term.findings_knowledge, medications=tuple(medications)
        )
    except Exception as exc:
        intake.warnings.append(
            FactWarning("DiagnosticReport", "-", f"findings extraction failed: {type(exc).__name__}")
        )
        return []
    intake.warnings.extend(found.warnings)
    return list(found.facts)
