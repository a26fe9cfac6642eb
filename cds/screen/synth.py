"""A seeded synthetic dialysis population, written as a FHIR Bulk Data export (NDJSON + manifest).

Each patient is on maintenance haemodialysis (ICD-10-CM N18.6 + Z99.2, SNOMED CT 46177005) with
a history of 1 to 10 years: quarterly calcium (LOINC 17861-6), phosphate (2777-1) and albumin
(1751-7), half-yearly intact PTH (2731-8), in UCUM units; the first and the latest
haemodialysis sessions (SNOMED CT 302497006, CPT 90935); phosphate binders and vitamin D
(RxNorm), and for some warfarin or insulin; comorbidities (type 2 diabetes with CKD E11.22,
hypertensive CKD I12.0, secondary hyperparathyroidism N25.81, atrial fibrillation I48.91).

Stated prevalences (the generator draws each patient independently with these probabilities):

* ``LESION_PREVALENCE`` = 8%: a non-pressure chronic lower-limb ulcer (ICD-10-CM L97.x) in the
  last three months; of these, ``CALCIPHYLAXIS_SHARE`` = 1 in 4 (2% of the population) show the
  calciphylaxis picture: a painful ulcer over a fatty area (thigh or calf), a whole-body bone
  scan with heterogeneous soft-tissue uptake and a CT with net-like subcutaneous vascular
  calcification, often with a calcium-based binder and a high calcium x phosphate product;
  the other ulcers look like arterial or diabetic foot ulcers (toe or heel, no imaging).
* ``EARLY_PLAQUE_PREVALENCE`` = 2%: no ulcer yet, a painful indurated plaque (L98.8 with
  SNOMED CT "Skin plaque") recorded by dermatology.

These are far above real incidence (calciphylaxis affects roughly 1-4% of dialysis patients
over years): the population is built so that every card family appears in a few thousand
patients. Seeded (``random.Random(seed)``), so the same seed writes the same bytes; no real
person; dates are relative to ``DEFAULT_NOW``.
"""

from __future__ import annotations

import base64
import gzip
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from cds.screen.export import write_manifest

DEFAULT_NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
LESION_PREVALENCE = 0.08
CALCIPHYLAXIS_SHARE = 0.25
EARLY_PLAQUE_PREVALENCE = 0.02

LOINC, SNOMED, ICD10 = "http://loinc.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM, CPT, UCUM = (
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://www.ama-assn.org/go/cpt",
    "http://unitsofmeasure.org",
)
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"

# (LOINC, display, UCUM unit, mean, sd) for a haemodialysis population.
LABS = {
    "calcium": ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 9.1, 0.6),
    "phosphate": ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", 5.4, 1.4),
    "albumin": ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.7, 0.4),
    "pth": ("2731-8", "Parathyrin.intact [Mass/volume] in Serum or Plasma", "pg/mL", 420.0, 220.0),
}
ULCER_SITES = [  # (ICD-10-CM, display, SNOMED body site, site text, fatty area)
    ("L97.112", "Non-pressure chronic ulcer of right thigh with fat layer exposed", "68367000", "right thigh", True),
    ("L97.122", "Non-pressure chronic ulcer of left thigh with fat layer exposed", "68367000", "left thigh", True),
    ("L97.212", "Non-pressure chronic ulcer of right calf with fat layer exposed", "53840002", "right calf", True),
    ("L97.222", "Non-pressure chronic ulcer of left calf with fat layer exposed", "53840002", "left calf", True),
    (
        "L97.512",
        "Non-pressure chronic ulcer of other part of right foot with fat layer exposed",
        "29707007",
        "right toe",
        False,
    ),
    (
        "L97.412",
        "Non-pressure chronic ulcer of right heel and midfoot with fat layer exposed",
        "76853006",
        "right heel",
        False,
    ),
]
BONE_SCAN = (
    "FINDINGS: Whole-body bone scintigraphy with Tc-99m MDP. Heterogeneous subcutaneous soft-tissue "
    "uptake in the {site} and in both thighs. No focal skeletal lesion.\n"
    "IMPRESSION: Heterogeneous soft-tissue uptake, compatible with calciphylaxis in the appropriate setting."
)
CT_LEGS = (
    "FINDINGS: Non-contrast CT of the lower extremities. Net-like calcification of small subcutaneous vessels "
    "in the {site}. Subcutaneous fat stranding.\nIMPRESSION: Net-like subcutaneous vascular calcification."
)


def _cc(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": text or display}


def _day(value: datetime | date) -> str:
    return value.date().isoformat() if isinstance(value, datetime) else value.isoformat()


def _instant(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Patient:
    def __init__(self, number: int, rng: random.Random, now: datetime) -> None:
        self.id = f"synth-{number:07d}"
        self.ref = {"reference": f"Patient/{self.id}"}
        self.rng, self.now = rng, now
        self.years = rng.randint(1, 10)
        self.start = now - timedelta(days=365 * self.years + rng.randint(0, 300))
        roll = rng.random()
        self.lesion = roll < LESION_PREVALENCE
        self.calciphylaxis = self.lesion and rng.random() < CALCIPHYLAXIS_SHARE
        self.plaque = not self.lesion and roll < LESION_PREVALENCE + EARLY_PLAQUE_PREVALENCE
        self.diabetic = rng.random() < 0.45
        self.warfarin = rng.random() < (0.35 if self.calciphylaxis else 0.12)
        self.calcium_binder = rng.random() < (0.8 if self.calciphylaxis else 0.45)
        self.counter = 0

    def rid(self, kind: str) -> str:
        self.counter += 1
        return f"{self.id}-{kind}-{self.counter}"

    def resources(self) -> list[dict[str, Any]]:
        rng = self.rng
        out: list[dict[str, Any]] = [
            {
                "resourceType": "Patient",
                "id": self.id,
                "active": True,
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5.99999.1", "value": self.id}],
                "gender": rng.choice(["female", "male"]),
                "birthDate": _day(date(self.now.year - rng.randint(30, 88), rng.randint(1, 12), rng.randint(1, 28))),
            }
        ]
        out += self.conditions()
        out += self.labs()
        out += self.dialysis()
        out += self.medications()
        out += self.reports()
        return out

    def condition(
        self,
        code: str,
        display: str,
        onset: datetime,
        snomed: tuple[str, str] | None = None,
        site: tuple[str, str] | None = None,
        text: str | None = None,
    ) -> dict[str, Any]:
        concept = _cc(ICD10, code, display, text)
        if snomed:
            concept["coding"].append({"system": SNOMED, "code": snomed[0], "display": snomed[1]})
        resource = {
            "resourceType": "Condition",
            "id": self.rid("condition"),
            "clinicalStatus": _cc(CLINICAL, "active", "Active"),
            "verificationStatus": _cc(VERIFICATION, "confirmed", "Confirmed"),
            "category": [_cc(CONDITION_CATEGORY, "problem-list-item", "Problem List Item")],
            "code": concept,
            "subject": self.ref,
            "onsetDateTime": _day(onset),
        }
        if site:
            resource["bodySite"] = [_cc(SNOMED, site[0], site[1], site[1])]
        return resource

    def conditions(self) -> list[dict[str, Any]]:
        rng = self.rng
        out = [
            self.condition("N18.6", "End stage renal disease", self.start, ("46177005", "End-stage renal disease")),
            self.condition("Z99.2", "Dependence on renal dialysis", self.start),
        ]
        if self.diabetic:
            out.append(
                self.condition(
                    "E11.22",
                    "Type 2 diabetes mellitus with diabetic chronic kidney disease",
                    self.start - timedelta(days=3000),
                )
            )
        else:
            out.append(
                self.condition(
                    "I12.0",
                    "Hypertensive chronic kidney disease with stage 5 chronic kidney disease "
                    "or end stage renal disease",
                    self.start - timedelta(days=1500),
                )
            )
        if rng.random() < 0.5:
            out.append(
                self.condition(
                    "N25.81", "Secondary hyperparathyroidism of renal origin", self.start + timedelta(days=400)
                )
            )
        if self.warfarin:
            out.append(self.condition("I48.91", "Unspecified atrial fibrillation", self.start))
        if self.lesion:
            choices = ULCER_SITES[:4] if self.calciphylaxis else ULCER_SITES
            code, display, site_code, site_text, _fatty = rng.choice(choices)
            self.site = site_text
            onset = self.now - timedelta(days=rng.randint(20, 90))
            out.append(
                self.condition(
                    code,
                    display,
                    onset,
                    site=(site_code, site_text),
                    text=f"Painful nonhealing ulcer, {site_text}"
                    if self.calciphylaxis
                    else f"Chronic ulcer, {site_text}",
                )
            )
        if self.plaque:
            self.site = rng.choice(["right thigh", "left thigh", "abdomen"])
            out.append(
                self.condition(
                    "L98.8",
                    "Other specified disorders of the skin and subcutaneous tissue",
                    self.now - timedelta(days=rng.randint(10, 40)),
                    ("1522000", "Skin plaque"),
                    text=f"Painful indurated violaceous plaque, {self.site}",
                )
            )
        return out

    def labs(self) -> list[dict[str, Any]]:
        rng = self.rng
        out = []
        quarters = 4 * self.years
        for q in range(quarters):
            drawn = self.now - timedelta(days=5 + 91 * (quarters - 1 - q) + rng.randint(0, 10))
            for analyte in ("calcium", "phosphate", "albumin") + (("pth",) if q % 2 == 0 else ()):
                code, display, unit, mean, sd = LABS[analyte]
                if self.calciphylaxis and analyte in ("calcium", "phosphate") and q >= quarters - 3:
                    mean += 2 * sd  # the high Ca x P product seen before calciphylaxis
                value = max(0.1, rng.gauss(mean, sd))
                out.append(
                    {
                        "resourceType": "Observation",
                        "id": self.rid("lab"),
                        "status": "final",
                        "category": [_cc(OBS_CATEGORY, "laboratory", "Laboratory")],
                        "code": _cc(LOINC, code, display),
                        "subject": self.ref,
                        "effectiveDateTime": _instant(drawn),
                        "issued": _instant(drawn + timedelta(hours=5)),
                        "valueQuantity": {
                            "value": round(value, 1 if analyte != "pth" else 0),
                            "unit": unit,
                            "system": UCUM,
                            "code": unit,
                        },
                    }
                )
        return out

    def dialysis(self) -> list[dict[str, Any]]:
        sessions = [self.start + timedelta(days=2)] + [self.now - timedelta(days=d) for d in (5, 3, 1)]
        return [
            {
                "resourceType": "Procedure",
                "id": self.rid("hd"),
                "status": "completed",
                "code": {
                    "coding": [
                        {"system": SNOMED, "code": "302497006", "display": "Hemodialysis"},
                        {"system": CPT, "code": "90935", "display": "Hemodialysis procedure with single evaluation"},
                    ],
                    "text": "Hemodialysis",
                },
                "subject": self.ref,
                "performedDateTime": _day(when),
            }
            for when in sessions
        ]

    def medication(self, code: str, display: str, text: str, authored: datetime) -> dict[str, Any]:
        return {
            "resourceType": "MedicationRequest",
            "id": self.rid("med"),
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _cc(RXNORM, code, display, text),
            "subject": self.ref,
            "authoredOn": _day(authored),
            "dosageInstruction": [{"text": text}],
        }

    def medications(self) -> list[dict[str, Any]]:
        rng = self.rng
        since = self.start + timedelta(days=rng.randint(30, 300))
        out = []
        if self.calcium_binder:
            out.append(
                self.medication("214342", "calcium acetate", "Calcium acetate 667 mg, 2 capsules with meals", since)
            )
        else:
            out.append(self.medication("403922", "sevelamer carbonate", "Sevelamer carbonate 800 mg with meals", since))
        if rng.random() < 0.55:
            out.append(self.medication("1894", "calcitriol", "Calcitriol 0.25 mcg three times weekly", since))
        if self.warfarin:
            out.append(self.medication("11289", "warfarin", "Warfarin 3 mg daily", self.start + timedelta(days=100)))
        if self.diabetic and rng.random() < 0.6:
            out.append(self.medication("274783", "insulin glargine", "Insulin glargine 16 units at night", self.start))
        return out

    def report(self, code: tuple[str, str], text: str, when: datetime) -> dict[str, Any]:
        return {
            "resourceType": "DiagnosticReport",
            "id": self.rid("report"),
            "status": "final",
            "category": [_cc(V2_0074, "RAD", "Radiology")],
            "code": _cc(CPT, *code),
            "subject": self.ref,
            "effectiveDateTime": _instant(when),
            "issued": _instant(when + timedelta(hours=3)),
            "conclusion": text.rsplit("IMPRESSION: ", 1)[-1],
            "presentedForm": [{"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode("ascii")}],
        }

    def reports(self) -> list[dict[str, Any]]:
        if not self.calciphylaxis:
            return []
        when = self.now - timedelta(days=self.rng.randint(3, 15))
        return [
            self.report(("78306", "Bone and/or joint imaging; whole body"), BONE_SCAN.format(site=self.site), when),
            self.report(
                ("73700", "CT lower extremity without contrast"),
                CT_LEGS.format(site=self.site),
                when + timedelta(days=2),
            ),
        ]


def reference_medication(resource: dict[str, Any], medications: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The order with its drug as a ``medicationReference`` to a formulary Medication resource (one per
    drug, as many EHRs export them: Medication.ndjson, no patient), recorded in ``medications``."""
    concept = resource.get("medicationCodeableConcept")
    if resource.get("resourceType") != "MedicationRequest" or not isinstance(concept, dict):
        return resource
    code = concept["coding"][0]["code"]
    medication_id = f"formulary-rxnorm-{code}"
    medications.setdefault(medication_id, {"resourceType": "Medication", "id": medication_id, "code": concept})
    out = {k: v for k, v in resource.items() if k != "medicationCodeableConcept"}
    out["medicationReference"] = {"reference": f"Medication/{medication_id}", "display": concept.get("text")}
    return out


def generate(patients: int, seed: int = 19, now: datetime = DEFAULT_NOW):  # type: ignore[no-untyped-def]
    """Yield each patient's resources (a list), patient by patient; constant memory."""
    rng = random.Random(seed)
    for number in range(1, patients + 1):
        yield _Patient(number, rng, now).resources()


def write_population(
    out_dir: Path,
    patients: int,
    *,
    seed: int = 19,
    now: datetime = DEFAULT_NOW,
    compress: bool = False,
    patients_per_file: int = 50_000,
    medication_resources: bool = False,
) -> dict[str, Any]:
    """Write ``<Type>.<part>.ndjson[.gz]`` (a new part every ``patients_per_file`` patients) and a manifest.

    ``medication_resources``: the same population, but each order names its drug by a reference to a
    formulary Medication resource (``Medication.001.ndjson``) instead of inline."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    handles: dict[tuple[str, int], gzip.GzipFile | BinaryIO] = {}
    names: dict[tuple[str, int], str] = {}
    counts: dict[str, int] = {}
    flags = {"lesion": 0, "calciphylaxis_picture": 0, "early_plaque": 0}
    rng = random.Random(seed)
    medications: dict[str, dict[str, Any]] = {}

    def write(resource: dict[str, Any], part: int) -> None:
        rtype = resource["resourceType"]
        key = (rtype, part)
        if key not in handles:
            names[key] = f"{rtype}.{part:03d}.ndjson" + (".gz" if compress else "")
            path = out_dir / names[key]
            # mtime=0: the same seed writes the same bytes, compressed or not.
            handles[key] = gzip.GzipFile(path, "wb", compresslevel=1, mtime=0) if compress else open(path, "wb")  # noqa: SIM115
        handles[key].write(orjson.dumps(resource) + b"\n")
        counts[rtype] = counts.get(rtype, 0) + 1

    try:
        for number in range(1, patients + 1):
            patient = _Patient(number, rng, now)
            part = (number - 1) // max(1, patients_per_file) + 1
            flags["lesion"] += patient.lesion
            flags["calciphylaxis_picture"] += patient.calciphylaxis
            flags["early_plaque"] += patient.plaque
            for resource in patient.resources():
                write(reference_medication(resource, medications) if medication_resources else resource, part)
        for medication in medications.values():
            write(medication, 1)
    finally:
        for handle in handles.values():
            handle.close()
    write_manifest(out_dir, sorted((names[k], k[0]) for k in names))
    return {
        "patients": patients,
        "seed": seed,
        "now": now.isoformat(),
        "resources": counts,
        "drawn": flags,
        "stated_prevalence": {
            "lesion": LESION_PREVALENCE,
            "calciphylaxis_picture": LESION_PREVALENCE * CALCIPHYLAXIS_SHARE,
            "early_plaque": EARLY_PLAQUE_PREVALENCE,
        },
    }
