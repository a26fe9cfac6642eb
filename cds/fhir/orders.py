"""context.draftOrders (order-select, order-sign) -> draft-order facts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cds.facts import Fact, FactWarning
from cds.fhir.conditions import body_site
from cds.fhir.intake import Intake, iter_codings, reference_key
from cds.fhir.medications import coded_as, drug_classes, medication_codings
from cds.fhir.terminology import CodeMatch, Terminology, recognition_attrs


def draft_order_facts(
    context: Mapping[str, Any], term: Terminology, intake: Intake, accepted: frozenset[str] = frozenset()
) -> list[Fact]:
    bundle = context.get("draftOrders")
    if bundle is None:
        return []
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        intake.warnings.append(FactWarning("Bundle", "draftOrders", "context.draftOrders is not a Bundle; ignored"))
        return []
    selections = context.get("selections")
    # order-select names the orders the user acts on; order-sign signs them all.
    selected_refs = {s for s in selections if isinstance(s, str)} if isinstance(selections, list) else None
    facts: list[Fact] = []
    drafts = Intake()
    drafts.index = intake.index  # drafts may reference prefetched resources (e.g. a Medication)
    drafts.add_resource(bundle)
    drafts.bind_patient(context.get("patientId"), accepted)
    for rtype, count in drafts.foreign.items():
        intake.foreign[rtype] = intake.foreign.get(rtype, 0) + count
    for rtype, resources in drafts.by_type.items():
        for index, resource in enumerate(resources):
            ref = reference_key(resource, f"{rtype}/#{index}")
            recognised = _recognise_draft(rtype, resource, index, term, drafts)
            if recognised is None or not drafts.validate_full(resource):
                continue
            matches, codings, attr = recognised
            selected = True if selected_refs is None else ref in selected_refs
            reasons = order_reasons(resource, term, drafts) if matches else []
            for vs_id, match in sorted(matches.items()):
                attrs: dict[str, Any] = {
                    attr: vs_id,
                    "resource_type": rtype,
                    "selected": selected,
                    "code_confidence": match.confidence,
                    "source": ref,
                    **recognition_attrs(match),
                    **coded_as(codings, vs_id, term),
                }
                if rtype == "ServiceRequest":
                    attrs.update(body_site(resource.get("bodySite"), term))
                elif (dose := daily_dose_ug(resource)) is not None:
                    attrs["daily_dose_ug"] = dose
                facts.append(Fact("draft-order", f"draft-order:{ref}:{vs_id}", attrs))
                # One more fact per reason, so that a rule can ask for (or `absent:` exclude) an order for X.
                for reason in reasons:
                    facts.append(
                        Fact("draft-order", f"draft-order:{ref}:{vs_id}:reason:{reason}", {**attrs, "reason": reason})
                    )
    intake.warnings.extend(drafts.warnings)
    intake.lenient.extend(drafts.lenient)
    intake.unreadable.extend(drafts.unreadable)
    intake.gaps.update(drafts.gaps)
    return facts


def _recognise_draft(
    rtype: str, resource: Mapping[str, Any], index: int, term: Terminology, drafts: Intake
) -> tuple[dict[str, CodeMatch], list[Mapping[str, Any]], str] | None:
    """(matches, codings, the fact attribute they fill) of a draft order; None for one not checked."""
    if rtype == "MedicationRequest":
        if resource.get("medicationCodeableConcept") is None and resource.get("medicationReference") is None:
            # R4 requires medication[x]; without it the order cannot be checked: say so.
            note = FactWarning(
                rtype, str(resource.get("id") or f"#{index}"), "draft order without medication[x]; not checked"
            )
            drafts.warnings.append(note)
            drafts.unreadable.append(note)
            return None
        return drug_classes(resource, term, drafts), list(medication_codings(resource, drafts)), "drug_class"
    if rtype == "ServiceRequest":
        matches, withheld = term.recognise(
            [resource.get("code")], ("procedure", "draft-order"), drafts.gaps, "ServiceRequest"
        )
        for withheld_note in withheld:
            drafts.warn(resource, withheld_note)
        return matches, list(iter_codings(resource.get("code"))), "concept"
    return None


# ---------------------------------------------------------------- what the order is for, and how much

# A reason given only as text (no coding) is still read for the few indications an order-time card
# depends on; everything else in free text is left to the coded reasons. Keys are condition value sets.
REASON_TEXT = {
    "prosthetic-heart-valve": re.compile(r"\b(mechanical|prosthetic|metallic)\b[^;,.]*\bvalve", re.IGNORECASE),
    "calciphylaxis": re.compile(r"\bcalci(?:ph|f)yla?xis\b|\bcalcific ur(?:a)?emic arteriolopathy\b", re.IGNORECASE),
}


def order_reasons(resource: Mapping[str, Any], term: Terminology, drafts: Intake) -> list[str]:
    """Condition value sets named by the order's reasonCode and by the Conditions its reasonReference points to."""
    concepts: list[Any] = list(resource.get("reasonCode") or []) if isinstance(resource.get("reasonCode"), list) else []
    reasons = resource.get("reasonReference")
    for reference in reasons if isinstance(reasons, list) else ():
        target = drafts.resolve(reference, resource)
        if isinstance(target, Mapping) and target.get("resourceType") == "Condition":
            concepts.append(target.get("code"))
    found: set[str] = set()
    for concept in concepts:
        found.update(term.match_codings(iter_codings(concept), ("condition",)))
        text = concept.get("text") if isinstance(concept, Mapping) else None
        if isinstance(text, str):
            found.update(vs for vs, pattern in REASON_TEXT.items() if vs in term.valuesets and pattern.search(text))
    return sorted(found)


_MICROGRAMS = {"ug": 1.0, "mcg": 1.0, "µg": 1.0, "μg": 1.0, "microgram": 1.0, "mg": 1000.0}
_PERIOD_DAYS = {"h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0}


def daily_dose_ug(resource: Mapping[str, Any]) -> float | None:
    """Average daily dose in micrograms from the first dosage's doseQuantity and timing, when both are given."""
    dosages = resource.get("dosageInstruction")
    if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], Mapping):
        return None
    dosage = dosages[0]
    rates = dosage.get("doseAndRate")
    quantity = (
        rates[0].get("doseQuantity") if isinstance(rates, list) and rates and isinstance(rates[0], Mapping) else None
    )
    repeat = (dosage.get("timing") or {}).get("repeat") if isinstance(dosage.get("timing"), Mapping) else None
    if not isinstance(quantity, Mapping) or not isinstance(repeat, Mapping):
        return None
    value, unit = _number(quantity.get("value")), quantity.get("code") or quantity.get("unit")
    frequency, period = _number(repeat.get("frequency", 1)), _number(repeat.get("period", 1))
    factor = _MICROGRAMS.get(str(unit).lower()) if unit else None
    days = _PERIOD_DAYS.get(str(repeat.get("periodUnit")))
    if factor is None or days is None or value is None or frequency is None or period is None:
        return None
    if value < 0 or frequency <= 0 or period <= 0:
        return None
    return round(value * factor * frequency / (period * days), 3)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
