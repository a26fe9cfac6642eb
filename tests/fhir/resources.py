"""Hand-written FHIR R4 resources for the FHIR-layer tests.

Small builders so each test states only what it is about; everything they
return is ordinary R4 JSON that validates with the fhir.resources R4B models
(tests/fhir/test_fixtures_valid.py checks that).
"""

from __future__ import annotations

from typing import Any

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"
PATIENT_REF = {"reference": "Patient/p1"}


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def patient(pid: str = "p1", birth: str = "1956-04-02", gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth}


def condition(
    cid: str,
    *codings: dict[str, Any],
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    onset: str | None = "2024-01-10",
    abatement: str | None = None,
    body_site: list[dict[str, Any]] | None = None,
    subject: dict[str, Any] | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Condition", "id": cid, "code": {"coding": list(codings)}}
    if clinical:
        res["clinicalStatus"] = {
            "coding": [coding("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical)]
        }
    if verification:
        res["verificationStatus"] = {
            "coding": [coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification)]
        }
    res["subject"] = subject or PATIENT_REF
    if onset:
        res["onsetDateTime"] = onset
    if abatement:
        res["abatementDateTime"] = abatement
    if body_site:
        res["bodySite"] = [{"coding": body_site}]
    return res


def observation(
    oid: str,
    loinc: str,
    value: float | None,
    unit: str | None,
    when: str,
    *,
    status: str = "final",
    comparator: str | None = None,
    ucum: bool = True,
    category: str = "laboratory",
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "category": [{"coding": [coding("http://terminology.hl7.org/CodeSystem/observation-category", category)]}],
        "code": {"coding": [coding(LOINC, loinc)]},
        "subject": PATIENT_REF,
        "effectiveDateTime": when,
    }
    if value is not None:
        quantity: dict[str, Any] = {"value": value}
        if comparator:
            quantity["comparator"] = comparator
        if unit:
            quantity["unit"] = unit
            if ucum:
                quantity["system"] = UCUM
                quantity["code"] = unit
        res["valueQuantity"] = quantity
    return res


def medication_request(
    mid: str,
    rx: dict[str, Any] | None = None,
    *,
    status: str = "active",
    authored: str = "2025-06-01",
    reference: str | None = None,
    contained: list[dict[str, Any]] | None = None,
    route: str | None = None,
    intent: str = "order",
) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "MedicationRequest", "id": mid, "status": status, "intent": intent}
    if contained:
        res["contained"] = contained
    if rx is not None:
        res["medicationCodeableConcept"] = {"coding": [rx]}
    if reference is not None:
        res["medicationReference"] = {"reference": reference}
    res["subject"] = PATIENT_REF
    res["authoredOn"] = authored
    if route:
        res["dosageInstruction"] = [{"text": "as directed", "route": {"text": route}}]
    return res


def medication(mid: str, *codings: dict[str, Any], ingredient: dict[str, Any] | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Medication", "id": mid, "code": {"coding": list(codings)}}
    if ingredient:
        res["ingredient"] = [{"itemCodeableConcept": {"coding": [ingredient]}, "isActive": True}]
    return res


def procedure(
    pid: str, code: dict[str, Any], when: str, *, status: str = "completed", outcome: str | None = None
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": pid,
        "status": status,
        "code": {"coding": [code]},
        "subject": PATIENT_REF,
        "performedDateTime": when,
    }
    if outcome:
        res["outcome"] = {"text": outcome}
    return res


def service_request(sid: str, code: dict[str, Any], status: str = "draft") -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": sid,
        "status": status,
        "intent": "order",
        "code": {"coding": [code]},
        "subject": PATIENT_REF,
    }


def bundle(*resources: dict[str, Any], urn: bool = False, btype: str = "searchset") -> dict[str, Any]:
    entries = []
    for res in resources:
        entry: dict[str, Any] = {"resource": res}
        if urn:
            entry["fullUrl"] = f"urn:uuid:{res['id']}"
        else:
            entry["fullUrl"] = f"http://ehr.example.org/fhir/{res['resourceType']}/{res['id']}"
        entries.append(entry)
    return {"resourceType": "Bundle", "type": btype, "entry": entries}
