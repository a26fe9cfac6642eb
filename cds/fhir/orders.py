"""context.draftOrders (order-select, order-sign) -> draft-order facts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds.facts import Fact, FactWarning
from cds.fhir.intake import Intake, iter_codings, reference_key
from cds.fhir.medications import drug_classes, medication_codings
from cds.fhir.terminology import CodeMatch, Terminology, canonical_system, recognition_attrs


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
            if rtype == "MedicationRequest":
                if resource.get("medicationCodeableConcept") is None and resource.get("medicationReference") is None:
                    # R4 requires medication[x]; without it the order cannot be checked: say so.
                    note = FactWarning(rtype, str(resource.get("id") or f"#{index}"),
                                       "draft order without medication[x]; not checked")
                    drafts.warnings.append(note)
                    drafts.unreadable.append(note)
                    continue
                matches: dict[str, CodeMatch] = drug_classes(resource, term, drafts)
                codings = list(medication_codings(resource, drafts))
                attr = "drug_class"
            elif rtype == "ServiceRequest":
                codings = list(iter_codings(resource.get("code")))
                matches, withheld = term.recognise(
                    [resource.get("code")], ("procedure", "draft-order"), drafts.gaps, "ServiceRequest"
                )
                for note in withheld:
                    drafts.warn(resource, note)
                attr = "concept"
            else:
                continue
            if not drafts.validate_full(resource):
                continue
            selected = True if selected_refs is None else ref in selected_refs
            for vs_id, match in sorted(matches.items()):
                coding = next(
                    (c for c in codings if any(m.valueset == vs_id for m in term.match(c.get("system"), c.get("code")))),
                    {},
                )
                attrs: dict[str, Any] = {
                    attr: vs_id,
                    "resource_type": rtype,
                    "selected": selected,
                    "code_confidence": match.confidence,
                    "source": ref,
                    **recognition_attrs(match),
                }
                if coding.get("code"):
                    attrs["code"] = str(coding["code"])
                    attrs["system"] = canonical_system(coding.get("system")) or ""
                facts.append(Fact("draft-order", f"draft-order:{ref}:{vs_id}", attrs))
    intake.warnings.extend(drafts.warnings)
    intake.lenient.extend(drafts.lenient)
    intake.unreadable.extend(drafts.unreadable)
    intake.gaps.update(drafts.gaps)
    return facts

