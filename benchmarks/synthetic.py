"""Realistic synthetic CDS Hooks requests for a long-term dialysis patient.

``make_request(n)`` builds a patient-view request whose prefetch holds exactly
``n`` FHIR R4 resources, shaped like an EHR's answer to the service's prefetch
templates (rules/services.yaml): a Patient, searchset Bundles of Conditions,
lab Observations, MedicationRequests, Procedures and DiagnosticReports.

Most of a long dialysis history is labs, so most resources are lab
Observations drawn as panels over years: calcium (LOINC 17861-6 and Synthea's
49765-1), phosphate 2777-1, intact PTH 2731-8, albumin 1751-7 and creatinine
(2160-0 and Synthea's 38483-4), mostly in mg/dL with some mmol/L and umol/L
results as laboratories outside the US report them. About an eighth are
hemodialysis sessions (three a week). Conditions carry ESRD N18.6, dialysis
dependence Z99.2, type 2 diabetes with CKD E11.22 and a right-calf ulcer
L97.212; medications warfarin (RxNorm 11289), calcium acetate (214342) and
calcitriol (1894); and there is a bone-scan DiagnosticReport with its text.

The data are generated (seeded, reproducible), contain no real person, and
carry no fhirServer: a benchmark that needs one adds a loopback URL.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

DEFAULT_NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SIZES = (100, 1_000, 10_000, 50_000)

# (code, display, unit, low, high): plausible ranges for a patient on hemodialysis.
_ANALYTES: dict[str, tuple[str, str, str, float, float]] = {
    "calcium": ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.2, 10.9),
    "calcium-synthea": ("49765-1", "Calcium [Mass/volume] in Blood", "mg/dL", 8.2, 10.9),
    "phosphate": ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", 3.4, 8.2),
    "pth": ("2731-8", "Parathyrin.intact [Mass/volume] in Serum or Plasma", "pg/mL", 120.0, 950.0),
    "albumin": ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 2.9, 4.3),
    "creatinine": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 5.5, 12.5),
    "creatinine-synthea": ("38483-4", "Creatinine [Mass/volume] in Blood", "mg/dL", 5.5, 12.5),
}
# Conversions to the SI units some laboratories report (molar masses: Ca 40.08, P 30.97, creatinine 113.12).
_SI_UNITS: dict[str, tuple[str, float]] = {
    "calcium": ("mmol/L", 1 / 4.008),
    "calcium-synthea": ("mmol/L", 1 / 4.008),
    "phosphate": ("mmol/L", 1 / 3.097),
    "creatinine": ("umol/L", 88.42),
}
SI_FRACTION = 0.1  # share of results reported in SI units

_CONDITIONS = (
    ("N18.6", "End stage renal disease", "2014-02-10"),
    ("Z99.2", "Dependence on renal dialysis", "2014-03-01"),
    ("E11.22", "Type 2 diabetes mellitus with diabetic chronic kidney disease", "2006-09-18"),
    ("N25.81", "Secondary hyperparathyroidism of renal origin", "2016-05-04"),
    ("I10", "Essential (primary) hypertension", "2004-01-12"),
    ("L97.212", "Non-pressure chronic ulcer of right calf with fat layer exposed", None),  # onset: weeks ago
)
_MEDICATIONS = (
    ("11289", "warfarin", "Warfarin 3 mg tablet, once daily"),
    ("214342", "calcium acetate", "Calcium acetate 667 mg, 2 capsules with each meal"),
    ("1894", "calcitriol", "Calcitriol 0.25 mcg three times weekly after dialysis"),
)
BONE_SCAN_TEXT = (
    "WHOLE-BODY BONE SCINTIGRAPHY (Tc-99m MDP).\n"
    "FINDINGS: Diffuse soft-tissue activity consistent with delayed clearance in renal failure. "
    "Superimposed asymmetric, pronounced subcutaneous uptake in both calves, more on the right, "
    "in a sheet-like pattern. No focal skeletal lesion.\n"
    "IMPRESSION: Heterogeneous subcutaneous soft-tissue uptake in both calves, compatible with calciphylaxis "
    "in the appropriate clinical setting. Correlate with skin examination."
)
CT_TEXT = (
    "CT LOWER EXTREMITIES WITHOUT CONTRAST.\n"
    "FINDINGS: Extensive vascular calcification of the femoral, popliteal and tibial arteries. "
    "Net-like calcification of small subcutaneous vessels in the right calf. No soft-tissue gas.\n"
    "IMPRESSION: Vascular and subcutaneous calcification as above."
)


def make_request(total_resources: int, seed: int = 8, now: datetime = DEFAULT_NOW) -> dict[str, Any]:
    """A patient-view request whose prefetch holds exactly ``total_resources`` resources (at least 12)."""
    if total_resources < 12:
        raise ValueError(f"a synthetic patient needs at least 12 resources, not {total_resources}")
    rng = random.Random(seed * 1_000_003 + total_resources)
    patient_id = f"bench-{total_resources}"
    shares = _shares(total_resources)
    subject = {"reference": f"Patient/{patient_id}"}
    prefetch: dict[str, Any] = {
        "patient": _patient(patient_id),
        "conditions": _searchset(_conditions(subject, now)),
        "labs": _searchset(_labs(shares["labs"], subject, now, rng)),
        "meds": _searchset(_medications(shares["meds"], subject, now)),
        "procedures": _searchset(_dialysis(shares["procedures"], subject, now)),
        "reports": _searchset(_reports(shares["reports"], subject, now)),
    }
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "context": {"userId": "Practitioner/bench-nephrologist", "patientId": patient_id},
        "prefetch": prefetch,
    }


def resources_in(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every resource of a request's prefetch (Bundle entries unpacked)."""
    for value in (request.get("prefetch") or {}).values():
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            for entry in value.get("entry", []):
                if isinstance(entry.get("resource"), dict):
                    yield entry["resource"]
        else:
            yield value


def as_collection_bundle(request: dict[str, Any]) -> dict[str, Any]:
    """All of a request's resources in one collection Bundle (what a FHIR server would hold)."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, r['resourceType'] + '/' + r['id'])}", "resource": r}
            for r in resources_in(request)
        ],
    }


def _shares(total: int) -> dict[str, int]:
    fixed = 1 + len(_CONDITIONS)  # patient and conditions
    meds = len(_MEDICATIONS) + total // 200  # refills of the same three drugs over the years
    reports = 1 + total // 1_000  # the bone scan, plus occasional CT reports
    procedures = max(1, total // 8)
    labs = total - fixed - meds - reports - procedures
    return {"meds": meds, "reports": reports, "procedures": procedures, "labs": labs}


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"https://ehr.example.org/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def _codeable(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": text or display}


def _patient(patient_id: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": patient_id, "active": True, "gender": "female", "birthDate": "1958-07-02"}


def _conditions(subject: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    out = []
    for index, (code, display, onset) in enumerate(_CONDITIONS):
        out.append(
            {
                "resourceType": "Condition",
                "id": f"condition-{index}",
                "clinicalStatus": _codeable(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
                ),
                "verificationStatus": _codeable(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"
                ),
                "category": [
                    _codeable(
                        "http://terminology.hl7.org/CodeSystem/condition-category",
                        "problem-list-item",
                        "Problem List Item",
                    )
                ],
                "code": _codeable(ICD10, code, display),
                "subject": subject,
                "onsetDateTime": onset or (now - timedelta(days=42)).date().isoformat(),
            }
        )
    return out


def _panel(draw: int) -> list[str]:
    """The analytes of one blood draw: calcium, phosphate, albumin, creatinine every time, PTH quarterly."""
    synthea = draw % 5 == 4  # some results coded the way Synthea codes them
    panel = ["calcium-synthea" if synthea else "calcium", "phosphate", "albumin"]
    panel.append("creatinine-synthea" if synthea else "creatinine")
    if draw % 3 == 0:
        panel.append("pth")
    return panel


def _labs(count: int, subject: dict[str, str], now: datetime, rng: random.Random) -> list[dict[str, Any]]:
    draws: list[list[str]] = []
    planned = 0
    while planned < count:
        panel = _panel(len(draws))[: count - planned]
        draws.append(panel)
        planned += len(panel)
    # Years of history: longer for bigger charts (1 year per ~2,500 resources, 1 to 20 years).
    span_days = 365 * min(20, max(1, count // 2_500))
    step = timedelta(days=span_days) / max(1, len(draws))
    out: list[dict[str, Any]] = []
    for index, panel in enumerate(draws):
        drawn = now - timedelta(days=2) - step * (len(draws) - 1 - index)
        for analyte in panel:
            code, display, unit, low, high = _ANALYTES[analyte]
            value = rng.uniform(low, high)
            if analyte in _SI_UNITS and rng.random() < SI_FRACTION:
                unit, factor = _SI_UNITS[analyte]
                value *= factor
            out.append(
                {
                    "resourceType": "Observation",
                    "id": f"lab-{len(out)}",
                    "status": "final",
                    "category": [_codeable(OBS_CATEGORY, "laboratory", "Laboratory")],
                    "code": _codeable(LOINC, code, display),
                    "subject": subject,
                    "effectiveDateTime": drawn.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "issued": (drawn + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "valueQuantity": {"value": round(value, 2), "unit": unit, "system": UCUM, "code": unit},
                }
            )
    return out


def _medications(count: int, subject: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    out = []
    for index in range(count):
        code, display, text = _MEDICATIONS[index % len(_MEDICATIONS)]
        current = index >= count - len(_MEDICATIONS)  # the last three are the active orders
        authored = now - timedelta(days=30 * (count - index))
        out.append(
            {
                "resourceType": "MedicationRequest",
                "id": f"med-{index}",
                "status": "active" if current else "completed",
                "intent": "order",
                "medicationCodeableConcept": _codeable(RXNORM, code, display, text),
                "subject": subject,
                "authoredOn": authored.date().isoformat(),
                "dosageInstruction": [{"text": text}],
            }
        )
    return out


def _dialysis(count: int, subject: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    out = []
    for index in range(count):
        # Three sessions a week, back from yesterday (Mon/Wed/Fri pattern: 2, 2, 3 days apart).
        days_back = 1 + (index // 3) * 7 + (0, 2, 4)[index % 3]
        out.append(
            {
                "resourceType": "Procedure",
                "id": f"dialysis-{index}",
                "status": "completed",
                "code": {
                    "coding": [
                        {"system": SNOMED, "code": "302497006", "display": "Hemodialysis"},
                        {"system": CPT, "code": "90935", "display": "Hemodialysis procedure with single evaluation"},
                    ],
                    "text": "Hemodialysis",
                },
                "subject": subject,
                "performedDateTime": (now - timedelta(days=days_back)).date().isoformat(),
            }
        )
    return out


def _reports(count: int, subject: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    out = []
    for index in range(count):
        bone_scan = index == count - 1
        issued = now - timedelta(days=11 + 90 * (count - 1 - index))
        text = BONE_SCAN_TEXT if bone_scan else CT_TEXT
        code = (
            ("78306", "Bone and/or joint imaging; whole body")
            if bone_scan
            else ("73700", "CT lower extremity without contrast")
        )
        out.append(
            {
                "resourceType": "DiagnosticReport",
                "id": f"report-{index}",
                "status": "final",
                "category": [_codeable("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "Radiology")],
                "code": _codeable(CPT, *code),
                "subject": subject,
                "effectiveDateTime": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "issued": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "conclusion": text.rsplit("IMPRESSION: ", 1)[-1],
                "presentedForm": [
                    {"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode("ascii")}
                ],
            }
        )
    return out
