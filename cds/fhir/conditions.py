"""Conditions -> condition facts: status, onset and duration, ulcer site and laterality."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from cds.facts import Fact
from cds.fhir.dates import parse_date
from cds.fhir.intake import Intake, iter_codings, reference_key
from cds.fhir.terminology import ICD10CM, Terminology, canonical_system, normalise_code, recognition_attrs

ACTIVE = frozenset({"active", "recurrence", "relapse"})
HISTORY = frozenset({"inactive", "remission", "resolved"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})

# ICD-10-CM characters that carry site, laterality and severity. The structure is
# recalled ([R] in the knowledge sheet §5a) and lives here rather than in YAML
# because it is code grammar, not a list of codes. Site ids are those of
# rules/findings/sites.yaml (shared with imaging findings, so that a finding can be
# matched to a lesion): the calf is part of "lower-leg", heel and midfoot of "foot".
_L97_SITE = {"1": "thigh", "2": "lower-leg", "3": "ankle", "4": "foot", "5": "foot", "8": "lower-leg", "9": "lower-leg"}
_SIDE = {"1": "right", "2": "left"}
_SEVERITY = {
    "1": "skin-breakdown",
    "2": "fat-exposed",
    "3": "muscle-necrosis",
    "4": "bone-necrosis",
    "5": "muscle-involvement",
    "6": "bone-involvement",
    "8": "other",
}
# "Non-pressure chronic ulcer" is in the title of these categories: chronic by definition.
_CHRONIC_ULCER_PREFIXES = ("L97", "L98.4")
_L98_SITE = {"1": "buttock", "2": "trunk"}  # L98.49 "other sites" names no site
_I70_ULCER_SITE = {"1": "thigh", "2": "lower-leg", "3": "ankle", "4": "foot", "5": "foot", "8": "lower-leg"}


def icd_site(code: str) -> dict[str, str]:
    """Site, laterality and severity encoded in an ICD-10-CM ulcer code.

    "L97.222" -> lower-leg (calf), left, fat exposed."""
    code = normalise_code(ICD10CM, code)
    tail = code[4:] if len(code) > 4 else ""
    out: dict[str, str] = {}
    if code.startswith("L97.") and tail:
        if tail[0] in _L97_SITE:
            out["site"] = _L97_SITE[tail[0]]
        if len(tail) > 1 and tail[1] in _SIDE:
            out["laterality"] = _SIDE[tail[1]]
        if len(tail) > 2 and tail[2] in _SEVERITY:
            out["severity"] = _SEVERITY[tail[2]]
    elif code.startswith("L98.4") and len(tail) >= 2:
        if tail[1] in _L98_SITE:
            out["site"] = _L98_SITE[tail[1]]
        if len(tail) > 2 and tail[2] in _SEVERITY:
            out["severity"] = _SEVERITY[tail[2]]
    elif code.startswith(("I70.23", "I70.24")) and len(tail) >= 3:
        out["laterality"] = "right" if code.startswith("I70.23") else "left"
        if tail[2] in _I70_ULCER_SITE:
            out["site"] = _I70_ULCER_SITE[tail[2]]
    elif code in ("E11.621", "E10.621"):
        out["site"] = "foot"
    return out


def body_site(concepts: Any, term: Terminology) -> dict[str, str]:
    """Site and laterality from a bodySite list of CodeableConcepts (SNOMED CT)."""
    out: dict[str, str] = {}
    if not isinstance(concepts, list):
        return out
    for concept in concepts:
        for coding in iter_codings(concept):
            site = term.body_site(coding.get("system"), coding.get("code"))
            if site and "site" not in out:
                out["site"] = site
            side = term.laterality(coding.get("system"), coding.get("code"))
            if side and "laterality" not in out:
                out["laterality"] = side
    return out


def _status(resource: Mapping[str, Any]) -> str | None:
    """active | history, or None when the condition must not become a fact."""
    verification = _first_code(resource.get("verificationStatus"))
    if verification in EXCLUDED_VERIFICATION:
        return None
    clinical = _first_code(resource.get("clinicalStatus"))
    if clinical in ACTIVE:
        return "active"
    if clinical in HISTORY:
        return "history"
    if clinical is None:
        # R4 allows a missing clinicalStatus (e.g. encounter diagnoses): abated means history.
        abated = any(k.startswith("abatement") for k in resource)
        return "history" if abated else "active"
    return None  # an unknown clinical status is not guessed


def _first_code(concept: Any) -> str | None:
    for coding in iter_codings(concept):
        code = coding.get("code")
        if isinstance(code, str):
            return code
    return None


def condition_facts(
    conditions: Iterable[Mapping[str, Any]], term: Terminology, intake: Intake, today: date
) -> list[Fact]:
    facts: list[Fact] = []
    settings = term.settings
    for index, resource in enumerate(conditions):
        matches, withheld = term.recognise([resource.get("code")], ("condition",), intake.gaps, "Condition")
        for note in withheld:
            intake.warn(resource, note)
        if not matches:
            continue
        status = _status(resource)  # read defensively, so refuted / entered-in-error cost no validation
        if status is None or not intake.validate_full(resource):
            continue
        ref = reference_key(resource, f"Condition/#{index}")
        onset, onset_latest, abated = _onset_and_abatement(resource)
        verification = _first_code(resource.get("verificationStatus"))
        site_from_body = body_site(resource.get("bodySite"), term)
        for vs_id, match in sorted(matches.items()):
            coding = _coding_for(resource, match.system, vs_id, term) if match.layer != "text" else ("", "")
            attrs: dict[str, Any] = {
                "concept": vs_id,
                "status": status,
                "code_confidence": match.confidence,
                "source": ref,
                **recognition_attrs(match),
            }
            if coding[1]:
                attrs["code"], attrs["system"] = coding[1], coding[0]
            if verification:
                attrs["verification"] = verification
            attrs.update(_dates(onset, onset_latest, abated, today))
            if vs_id in settings.ulcer_valuesets:
                located = icd_site(coding[1]) if coding[0] == ICD10CM else {}
                for key, value in site_from_body.items():
                    located.setdefault(key, value)
                attrs.update(located)
                site_class = term.site_class(located.get("site"))
                if site_class:
                    attrs["site_class"] = site_class
                coded_chronic = coding[0] == ICD10CM and coding[1].startswith(_CHRONIC_ULCER_PREFIXES)
                attrs["chronic"] = coded_chronic or _open_longer_than_configured(onset_latest, abated, today, term)
            facts.append(Fact("condition", f"condition:{ref}:{vs_id}", attrs))
    return facts


def _onset_and_abatement(resource: Mapping[str, Any]) -> tuple[date | None, date | None, date | None]:
    """(onset, the latest day a partial onset can mean, abatement) of a Condition."""
    onset_raw = resource.get("onsetDateTime")
    if onset_raw is None and isinstance(resource.get("onsetPeriod"), Mapping):
        onset_raw = resource["onsetPeriod"].get("start")
    if onset_raw is None:
        # No onset: the recorded date is a lower bound of the duration.
        onset_raw = resource.get("recordedDate")
    abatement_raw = resource.get("abatementDateTime")
    if abatement_raw is None and isinstance(resource.get("abatementPeriod"), Mapping):
        abatement_raw = resource["abatementPeriod"].get("end")
    # Durations from the latest day a partial onset can mean, so they are never overstated.
    return parse_date(onset_raw), parse_date(onset_raw, end=True), parse_date(abatement_raw)


def _dates(onset: date | None, onset_latest: date | None, abated: date | None, today: date) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if onset is not None:
        attrs["onset"] = onset.isoformat()
    if onset_latest is not None:
        attrs["days_since_onset"] = max(0, (today - onset_latest).days)
    if abated is not None:
        attrs["abated"] = abated.isoformat()
    return attrs


def _open_longer_than_configured(onset: date | None, abated: date | None, today: date, term: Terminology) -> bool:
    """Open (until healed, or until now) longer than the configured number of weeks."""
    if onset is None:
        return False
    open_until = abated or today
    return (open_until - onset).days > term.settings.nonhealing_weeks * 7


def _coding_for(resource: Mapping[str, Any], system: str, vs_id: str, term: Terminology) -> tuple[str, str]:
    """The resource's own coding that put it in ``vs_id`` (its code, not the value set's pattern)."""
    for coding in iter_codings(resource.get("code")):
        if any(m.valueset == vs_id for m in term.match(coding.get("system"), coding.get("code"))):
            csys = canonical_system(coding.get("system")) or system
            return csys, normalise_code(csys, str(coding.get("code")))
    return system, ""
