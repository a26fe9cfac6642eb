"""MedicationRequest / MedicationStatement / MedicationAdministration -> medication facts by drug class."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from cds.facts import Fact
from cds.fhir.dates import parse_date
from cds.fhir.intake import Intake, iter_codings, reference_key
from cds.fhir.terminology import CodeMatch, Terminology, canonical_system, recognition_attrs

# isinstance(x, (dict, Mapping)): dict first, as parsed JSON is dicts and the ABC check costs ~0.3 µs; this
# module reads every medication resource of a record (1,036 for the Synthea ESRD patient).

# Request and statement statuses, plus an administration under way ("in-progress"). Not counted:
# stopped, cancelled, entered-in-error, not-taken, not-done, intended, draft, unknown.
COUNTED_STATUSES = frozenset({"active", "on-hold", "completed", "in-progress"})


def medication_codings(resource: Mapping[str, Any], intake: Intake) -> Iterator[Mapping[str, Any]]:
    """Codings of the medication: the CodeableConcept, or the referenced Medication's code and ingredients."""
    concept = resource.get("medicationCodeableConcept")
    if concept is not None:
        yield from iter_codings(concept)
        return
    medication = intake.resolve(resource.get("medicationReference"), resource)
    if medication is None or medication.get("resourceType") != "Medication":
        return
    yield from iter_codings(medication.get("code"))
    for ingredient in medication.get("ingredient") or ():
        if isinstance(ingredient, (dict, Mapping)):
            yield from iter_codings(ingredient.get("itemCodeableConcept"))


def medication_concepts(resource: Mapping[str, Any], intake: Intake) -> list[Any]:
    """The CodeableConcepts naming the drug: medicationCodeableConcept, or the referenced (or
    contained) Medication's code and its ingredients' itemCodeableConcepts."""
    concept = resource.get("medicationCodeableConcept")
    if concept is not None:
        return [concept]
    medication = intake.resolve(resource.get("medicationReference"), resource)
    if medication is None or medication.get("resourceType") != "Medication":
        reference = resource.get("medicationReference")
        # A reference's display ("Coumadin 5 mg tablet") still names the drug for the text layer.
        display = reference.get("display") if isinstance(reference, (dict, Mapping)) else None
        return [{"text": display}] if isinstance(display, str) else []
    concepts = [medication.get("code")]
    for ingredient in medication.get("ingredient") or ():
        if isinstance(ingredient, (dict, Mapping)):
            concepts.append(ingredient.get("itemCodeableConcept"))
            item = intake.resolve(ingredient.get("itemReference"), medication)
            if item is not None and item.get("resourceType") in ("Medication", "Substance"):
                concepts.append(item.get("code"))
    return [c for c in concepts if isinstance(c, (dict, Mapping))]


def drug_classes(resource: Mapping[str, Any], term: Terminology, intake: Intake) -> dict[str, CodeMatch]:
    """Drug class -> how it was recognised: codes of the drug or its ingredients, else their names."""
    matches, withheld = term.recognise(
        medication_concepts(resource, intake), ("medication",), intake.gaps, str(resource.get("resourceType"))
    )
    for note in withheld:
        intake.warn(resource, note)
    return matches


def referenced_medication_valid(resource: Mapping[str, Any], intake: Intake) -> bool:
    """A Medication outside the resource (not contained) is a fact source too: validate it."""
    reference = resource.get("medicationReference")
    if not isinstance(reference, (dict, Mapping)) or str(reference.get("reference", "")).startswith("#"):
        return True  # contained resources were validated with their container
    medication = intake.resolve(reference, resource)
    return medication is None or intake.validate_full(medication)


def _period(resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Start and end of the medication's use as recorded.

    Runs before validation (it decides whether the resource can become a fact at all),
    so it reads defensively: a malformed element just gives no date.
    """
    if resource.get("resourceType") in ("MedicationStatement", "MedicationAdministration"):
        period = resource.get("effectivePeriod")
        if isinstance(period, (dict, Mapping)):
            return _str(period.get("start")), _str(period.get("end"))
        return _str(resource.get("effectiveDateTime")) or _str(resource.get("dateAsserted")), None
    starts: list[str] = []
    ends: list[str] = []
    dosages = resource.get("dosageInstruction")
    for dosage in dosages if isinstance(dosages, list) else ():
        timing = dosage.get("timing") if isinstance(dosage, (dict, Mapping)) else None
        repeat = timing.get("repeat") if isinstance(timing, (dict, Mapping)) else None
        bounds = repeat.get("boundsPeriod") if isinstance(repeat, (dict, Mapping)) else None
        if isinstance(bounds, (dict, Mapping)):
            if _str(bounds.get("start")):
                starts.append(bounds["start"])
            if _str(bounds.get("end")):
                ends.append(bounds["end"])
    dispense = resource.get("dispenseRequest")
    validity = dispense.get("validityPeriod") if isinstance(dispense, (dict, Mapping)) else None
    if isinstance(validity, (dict, Mapping)):
        if not starts and _str(validity.get("start")):
            starts.append(validity["start"])
        if not ends and _str(validity.get("end")):
            ends.append(validity["end"])
    start = min(starts) if starts else _str(resource.get("authoredOn"))
    return start, (max(ends) if ends else None)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _route(resource: Mapping[str, Any]) -> str | None:
    dosages = (
        resource.get("dosageInstruction")
        if resource.get("resourceType") == "MedicationRequest"
        else resource.get("dosage")
    )
    if isinstance(dosages, (dict, Mapping)):  # MedicationAdministration.dosage is one element, not a list
        dosages = [dosages]
    for dosage in dosages if isinstance(dosages, list) else ():
        route = dosage.get("route") if isinstance(dosage, (dict, Mapping)) else None
        if isinstance(route, (dict, Mapping)):
            text = route.get("text")
            if isinstance(text, str):
                return text.lower()
            for coding in iter_codings(route):
                if isinstance(coding.get("display"), str):
                    return str(coding["display"]).lower()
    return None


def coded_as(codings: list[Mapping[str, Any]], vs_id: str, term: Terminology) -> dict[str, str]:
    """The code and system of the coding that put the drug in ``vs_id`` (none for text recognition)."""
    for c in codings:
        if c.get("code") and any(m.valueset == vs_id for m in term.match(c.get("system"), c.get("code"))):
            return {"code": str(c.get("code")), "system": canonical_system(c.get("system")) or ""}
    return {}


def _exposure(status: str, start: date | None, end: date | None, today: date) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if start is not None:
        attrs["start"] = start.isoformat()
        stop = end if (status == "completed" and end is not None and end < today) else today
        attrs["days_since_start"] = max(0, (stop - start).days)
    if end is not None:
        attrs["end"] = end.isoformat()
    return attrs


def medication_facts(
    resources: Sequence[Mapping[str, Any]], term: Terminology, intake: Intake, today: date
) -> list[Fact]:
    window_start = today - timedelta(days=term.settings.completed_medication_days)
    pending: list[tuple[str, dict[str, Any], date | None]] = []
    for index, resource in enumerate(resources):
        classes = drug_classes(resource, term, intake)
        if not classes:
            continue
        # Status and window first, on the raw dict: a long history of stopped or old orders
        # (refills are separate orders) is dropped without paying for validation.
        status = resource.get("status")
        if not isinstance(status, str) or status not in COUNTED_STATUSES:
            continue
        start_raw, end_raw = _period(resource)
        start, end = parse_date(start_raw), parse_date(end_raw, end=True)
        if status == "completed":
            last_seen = end or start
            if last_seen is None or last_seen < window_start:
                continue
        if not intake.validate_full(resource) or not referenced_medication_valid(resource, intake):
            continue
        rtype = str(resource.get("resourceType"))
        ref = reference_key(resource, f"{rtype}/#{index}")
        route = _route(resource)
        codings = list(medication_codings(resource, intake))
        for vs_id, match in sorted(classes.items()):
            attrs: dict[str, Any] = {
                "drug_class": vs_id,
                "status": status,
                "resource_type": rtype,
                "code_confidence": match.confidence,
                "source": ref,
                **recognition_attrs(match),
            }
            attrs.update(coded_as(codings, vs_id, term))
            attrs.update(_exposure(status, start, end, today))
            if route:
                attrs["route"] = route
            pending.append((vs_id, attrs, start))
    # Exposure to a class starts with its earliest counted order or statement (refills are separate orders).
    first: dict[str, date] = {}
    for vs_id, _, start in pending:
        if start is not None and (vs_id not in first or start < first[vs_id]):
            first[vs_id] = start
    facts = []
    for vs_id, attrs, _ in pending:
        if vs_id in first:
            attrs["first_start"] = first[vs_id].isoformat()
            attrs["days_since_first_start"] = max(0, (today - first[vs_id]).days)
        facts.append(Fact("medication", f"medication:{attrs['source']}:{vs_id}", attrs))
    return facts
