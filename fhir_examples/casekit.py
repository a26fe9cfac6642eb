"""Small builders for the clinical cases in ``fhir_examples/`` (an authoring aid, not runtime code).

The cases are CDS Hooks requests with a large amount of repetitive FHIR R4
boilerplate (status codings, searchset entries, base64 report text). Writing
them by hand invites drift between files, so ``build_cases.py`` declares each
case clinically and these helpers expand it into FHIR JSON. The JSON files
are what is checked in and read by tests and rule tests; ``tests/test_cases.py``
checks that running the builder reproduces them byte for byte.

Every code used goes through ``CODE_CONFIDENCE``: a code that is not listed
there with its knowledge-sheet tag (V, S, R) or ``local`` stops the build.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

TODAY = date(2026, 11, 21)  # "today" in every scenario
FHIR_BASE = "https://ehr.example.org/fhir"

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"
# Project-local code system for bedside signs and tests with no code in the
# knowledge sheet and none the authors could vouch for. Declared here and in
# fhir_examples/README.md; value sets in rules/valuesets/ may include it.
LOCAL = "https://calciphylaxis-cds.org/fhir/CodeSystem/clinical-finding"

CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"

SYSTEM_NAMES = {ICD: "ICD-10-CM", SCT: "SNOMED CT", LOINC: "LOINC", RXNORM: "RxNorm", CPT: "CPT", LOCAL: "local"}

# (system, code) -> confidence. V/S/R are the knowledge sheet's tags where the
# sheet (calciphylaxis.md §5) gives the code; every code the sheet does not
# give is R (recalled, to be checked before a rule relies on it); "local" is
# the project code system above.
CODE_CONFIDENCE: dict[tuple[str, str], str] = {}


def _conf(system: str, tag: str, *codes: str) -> None:
    for code in codes:
        CODE_CONFIDENCE[(system, code)] = tag


# ICD-10-CM given and verified by the sheet
_conf(ICD, "V", "N18.6", "Z99.2", "N25.81", "I87.2", "Z79.01", "E83.59", "Z94.0", "N18.4", "N18.5", "I12.0", "E21.1")
# ICD-10-CM the sheet lists as [S]
_conf(ICD, "S", "Z79.4")
# ICD-10-CM families the sheet lists as [R], and codes it does not give (recalled)
_conf(
    ICD,
    "R",
    "E11.22",
    "E11.621",
    "E11.42",
    "E10.22",
    "N18.32",
    "N18.31",
    "L97.212",
    "L97.222",
    "L97.221",
    "L97.512",
    "L97.412",
    "L97.821",
    "L97.511",
    "L98.411",
    "L98.492",
    "I83.93",
    "I83.013",
    "I82.512",
    "I87.012",
    "Z86.718",
    "M34.1",
    "L94.2",
    "I73.00",
    "M33.10",
    "M32.14",
    "M61.051",
    "E72.53",
    "N20.0",
    "I70.235",
    "I75.023",
    "L88",
    "M72.6",
    "L03.115",
    "A41.9",
    "L95.9",
    "D89.1",
    "B18.2",
    "T45.515A",
    "D68.59",
    "E66.01",
    "Z68.41",
    "E83.52",
    "E83.39",
    "I48.91",
    "I48.0",
    "I10",
    "I25.10",
    "K51.90",
    "M24.561",
    "M24.562",
    "M62.81",
    "R60.0",
    "R50.9",
    "I96",
    "N17.9",
    "Z96.641",
    "S72.001D",
    "I82.401",
    "Z87.442",
    "M25.571",
    "M25.572",
)
# Added for the order-time safety cases (issue 14), recalled
_conf(ICD, "R", "Z95.2", "T65.0X1A", "T59.811A", "L97.219", "Z96.651", "I26.99", "L98.9")
# SNOMED CT
_conf(SCT, "V", "237900002", "46177005", "709044004", "399957001", "66931009")
_conf(SCT, "S", "433146000")
_conf(SCT, "R", "59282003")
_conf(
    SCT,
    "R",
    "302497006",
    "71192002",
    "44054006",
    "46635009",
    "89155008",
    "396230008",
    "74578003",
    "266261006",
    "72866009",
    "22253000",
    "372070002",
    "49436004",
    "55464009",
    "10828004",
    "260385009",
    # body sites and laterality (all recalled)
    "53840002",
    "68367000",
    "344001",
    "76853006",
    "56459004",
    "30021000",
    "61685007",
    "46862004",
    "113345001",
    "76752008",
    "29707007",
    "7569003",
    "29836001",
    "16982005",
    "127949000",
    "72696002",
    "14975008",
    "24028007",
    "7771000",
    # routes of administration
    "26643006",
    "47625008",
)
# LOINC
_conf(LOINC, "V", "17861-6", "2777-1", "2731-8", "1751-7", "6768-6", "62292-8", "6301-6", "5902-2")
_conf(
    LOINC,
    "R",
    "1988-5",
    "39156-5",
    "29463-7",
    "8310-5",
    "2160-0",
    "98979-8",
    "4548-4",
    "6690-2",
    "711-2",
    "2157-6",
    "4537-7",
    "4485-9",
    "4498-2",
    "2524-7",
    "718-7",
    "777-3",
    "11572-5",
)
# RxNorm
_conf(RXNORM, "V", "11289")
_conf(
    RXNORM,
    "R",
    "214342",
    "1894",
    "1897",
    "56466",
    "274783",
    "284635",
    "1364430",
    "5224",
    "67108",
    "8640",
    "5521",
    "6809",
    "83367",
    "1191",
    "29046",
    "17767",
    "11124",
    "52582",
)
# CPT
_conf(CPT, "V", "78306", "78315", "11104")
_conf(
    CPT,
    "R",
    "90935",
    "90945",
    "73700",
    "88305",
    "93458",
    "71250",
    "73720",
    "73620",
    "73130",
    "73552",
    "73502",
    "93970",
    "93971",
    "93922",
    "73030",
    "74176",
    "73590",
)

LOCAL_FINDINGS: dict[str, str] = {
    "retiform-purpura": "Retiform purpura",
    "violaceous-plaque": "Painful violaceous indurated plaque",
    "subcutaneous-nodule": "Painful subcutaneous nodule",
    "eschar": "Black eschar",
    "skin-necrosis": "Skin necrosis",
    "livedo-reticularis": "Livedo reticularis",
    "pain-out-of-proportion": "Pain out of proportion to the visible lesion",
    "pedal-pulses-present": "Pedal pulses palpable",
    "pedal-pulses-absent": "Pedal pulses absent",
    "blue-toe": "Blue toe (digital ischaemia)",
    "hemorrhagic-bullae": "Haemorrhagic bullae",
    "palpable-purpura": "Palpable purpura",
    "undermined-violaceous-border": "Ulcer with undermined violaceous border",
    "pathergy": "Pathergy (lesion worsened after minor trauma or debridement)",
    "crepitus": "Soft-tissue crepitus",
    "rapidly-spreading-erythema": "Rapidly spreading erythema",
    "woody-induration": "Woody induration of the skin",
    "peau-d-orange": "Peau d'orange skin change",
    "scleral-plaques": "Yellow scleral plaques",
    "sclerodactyly": "Sclerodactyly",
    "acral-calcinosis": "Acral (fingertip) calcinosis",
    "digital-ulcer": "Digital ulcer",
    "gottron-papules": "Gottron papules",
    "heliotrope-rash": "Heliotrope rash",
    "hemosiderin-staining": "Haemosiderin staining of the skin",
    "lipodermatosclerosis": "Lipodermatosclerosis",
    "insensate-foot": "Loss of protective sensation (monofilament)",
    "callus": "Callus at the ulcer rim",
    "acrocyanosis": "Acrocyanosis",
    "claudication": "Intermittent claudication",
    "rest-pain": "Ischaemic rest pain",
    "periarticular-mass": "Painless periarticular mass",
    "limb-swelling-unilateral": "Unilateral limb swelling",
    "ankle-brachial-index": "Ankle-brachial index",
    "toe-brachial-index": "Toe-brachial index",
    "protein-c-activity": "Protein C activity in platelet-poor plasma",
    "plasma-oxalate": "Oxalate in plasma",
    "anti-centromere": "Anti-centromere antibody",
    "anti-dsdna": "Anti-double-stranded DNA antibody",
    "ana": "Antinuclear antibody",
    "anca": "Anti-neutrophil cytoplasmic antibody",
    "cryoglobulin": "Cryoglobulins",
    "anti-nxp2": "Anti-NXP2 antibody",
    "lupus-anticoagulant": "Lupus anticoagulant",
}
for _code in LOCAL_FINDINGS:
    CODE_CONFIDENCE[(LOCAL, _code)] = "local"


def coding(system: str, code: str, display: str) -> dict[str, str]:
    if (system, code) not in CODE_CONFIDENCE:
        raise KeyError(f"code {system}|{code} ({display}) has no confidence tag in CODE_CONFIDENCE")
    return {"system": system, "code": code, "display": display}


def local(code: str) -> dict[str, str]:
    return coding(LOCAL, code, LOCAL_FINDINGS[code])


def concept(*codings: dict[str, str], text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = list(codings)
    out["text"] = text
    return out


def day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def instant(days_ago: int, hhmm: str = "07:30") -> str:
    return f"{day(days_ago)}T{hhmm}:00Z"


SITES = {
    "calf": ("53840002", "Calf of leg"),
    "thigh": ("68367000", "Thigh structure"),
    "ankle": ("344001", "Ankle region structure"),
    "heel": ("76853006", "Heel structure"),
    "foot": ("56459004", "Foot structure"),
    "lower-leg": ("30021000", "Lower leg structure"),
    "lower-limb": ("61685007", "Lower limb structure"),
    "buttock": ("46862004", "Buttock structure"),
    "abdomen": ("113345001", "Abdominal structure"),
    "breast": ("76752008", "Breast structure"),
    "toe": ("29707007", "Toe structure"),
    "finger": ("7569003", "Finger structure"),
    "hip": ("29836001", "Hip region structure"),
    "shoulder": ("16982005", "Shoulder region structure"),
    "elbow": ("127949000", "Elbow region structure"),
    "knee": ("72696002", "Knee region structure"),
    "forearm": ("14975008", "Forearm structure"),
}
SIDES = {"right": ("24028007", "Right"), "left": ("7771000", "Left")}


def body_site(site: str, side: str | None = None, text: str | None = None) -> dict[str, Any]:
    """Site plus laterality as two codings, as in the lead's source case."""
    code, display = SITES[site]
    codings = [coding(SCT, code, display)]
    if side:
        codings.append(coding(SCT, *SIDES[side]))
    return {"coding": codings, "text": text or f"{side + ' ' if side else ''}{site.replace('-', ' ')}"}


def sites(spec: str) -> list[dict[str, Any]]:
    """'calf:right,calf:left' -> one bodySite per side (bilateral lesions are two sites)."""
    out = []
    for part in spec.split(","):
        site, _, side = part.strip().partition(":")
        out.append(body_site(site, side or None))
    return out


LABS: dict[str, tuple[str, str, str, str, str]] = {
    # key: (system, code, display, UCUM unit, category)
    "ca": (LOINC, "17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory"),
    "phos": (LOINC, "2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory"),
    "pth": (LOINC, "2731-8", "Parathyrin.intact [Mass/volume] in Serum or Plasma", "pg/mL", "laboratory"),
    "alb": (LOINC, "1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", "laboratory"),
    "alp": (
        LOINC,
        "6768-6",
        "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        "laboratory",
    ),
    "vitd": (
        LOINC,
        "62292-8",
        "25-Hydroxyvitamin D2+25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma",
        "ng/mL",
        "laboratory",
    ),
    "inr": (LOINC, "6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}", "laboratory"),
    "crp": (LOINC, "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", "laboratory"),
    "creat": (LOINC, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory"),
    "egfr": (
        LOINC,
        "98979-8",
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, "
        "Plasma or Blood by Creatinine-based formula (CKD-EPI 2021)",
        "mL/min/{1.73_m2}",
        "laboratory",
    ),
    "hba1c": (LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "laboratory"),
    "wbc": (LOINC, "6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", "laboratory"),
    "eos": (LOINC, "711-2", "Eosinophils [#/volume] in Blood by Automated count", "10*3/uL", "laboratory"),
    "ck": (LOINC, "2157-6", "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma", "U/L", "laboratory"),
    "esr": (LOINC, "4537-7", "Erythrocyte sedimentation rate by Westergren method", "mm/h", "laboratory"),
    "c3": (LOINC, "4485-9", "Complement C3 [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory"),
    "c4": (LOINC, "4498-2", "Complement C4 [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory"),
    "lactate": (LOINC, "2524-7", "Lactate [Moles/volume] in Serum or Plasma", "mmol/L", "laboratory"),
    "hgb": (LOINC, "718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "laboratory"),
    "plt": (LOINC, "777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", "laboratory"),
    "rf": (LOINC, "11572-5", "Rheumatoid factor [Units/volume] in Serum or Plasma", "[IU]/mL", "laboratory"),
    "protein-c": (LOCAL, "protein-c-activity", "", "%", "laboratory"),
    "oxalate": (LOCAL, "plasma-oxalate", "", "umol/L", "laboratory"),
    "anti-dsdna": (LOCAL, "anti-dsdna", "", "[IU]/mL", "laboratory"),
    "bmi": (LOINC, "39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "vital-signs"),
    "weight": (LOINC, "29463-7", "Body weight", "kg", "vital-signs"),
    "temp": (LOINC, "8310-5", "Body temperature", "Cel", "vital-signs"),
    # ABI/TBI are examination results; see README (the labs prefetch asks for laboratory,vital-signs).
    "abi": (LOCAL, "ankle-brachial-index", "", "1", "exam"),
    "tbi": (LOCAL, "toe-brachial-index", "", "1", "exam"),
}
QUALITATIVE = {
    "anti-centromere",
    "ana",
    "anca",
    "cryoglobulin",
    "anti-nxp2",
    "lupus-anticoagulant",
}


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"{FHIR_BASE}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@dataclass
class Patient:
    """One synthetic patient and the resources the prefetch returns for them."""

    id: str
    gender: str
    birth_date: str
    given: list[str]
    family: str = "Example"
    conditions: list[dict[str, Any]] = field(default_factory=list)
    labs: list[dict[str, Any]] = field(default_factory=list)
    meds: list[dict[str, Any]] = field(default_factory=list)
    procedures: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    _counter: dict[str, int] = field(default_factory=dict)

    def _id(self, stem: str) -> str:
        n = self._counter.get(stem, 0)
        self._counter[stem] = n + 1
        return f"{stem}" if n == 0 else f"{stem}-{n}"

    @property
    def ref(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.id}"}

    def resource(self) -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "id": self.id,
            "active": True,
            "name": [{"use": "official", "family": self.family, "given": self.given}],
            "gender": self.gender,
            "birthDate": self.birth_date,
        }

    # ------------------------------------------------------------ conditions
    def cond(
        self,
        stem: str,
        codings: list[dict[str, str]],
        text: str,
        onset_days_ago: int | str,
        *,
        category: str = "problem-list-item",
        site: str | None = None,
        verification: str = "confirmed",
        clinical: str = "active",
        note: str | None = None,
        abatement_days_ago: int | None = None,
    ) -> dict[str, Any]:
        onset = onset_days_ago if isinstance(onset_days_ago, str) else day(onset_days_ago)
        res: dict[str, Any] = {
            "resourceType": "Condition",
            "id": self._id(stem),
            "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": clinical}]},
            "verificationStatus": {"coding": [{"system": CONDITION_VERIFICATION, "code": verification}]},
            "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": category}]}],
            "code": concept(*codings, text=text),
            "subject": self.ref,
            "onsetDateTime": onset,
        }
        if abatement_days_ago is not None:
            res["abatementDateTime"] = day(abatement_days_ago)
        if site:
            res["bodySite"] = sites(site)
        res["recordedDate"] = max(onset, day(abatement_days_ago)) if abatement_days_ago is not None else onset
        if note:
            res["note"] = [{"text": note}]
        self.conditions.append(res)
        return res

    def sign(
        self,
        code: str,
        text: str,
        onset_days_ago: int,
        site: str | None = None,
        *,
        extra: list[dict[str, str]] = (),
        category: str = "encounter-diagnosis",
        present: bool = True,
        note: str | None = None,
    ) -> dict[str, Any]:
        """A bedside sign recorded as a Condition (local code plus any standard codes given)."""
        return self.cond(
            code,
            [local(code), *extra],
            text,
            onset_days_ago,
            category=category,
            site=site,
            verification="confirmed" if present else "refuted",
            note=note,
        )

    def esrd_on_dialysis(self, esrd_days_ago: int, *, pd: bool = False) -> None:
        self.cond(
            "esrd",
            [coding(ICD, "N18.6", "End stage renal disease"), coding(SCT, "46177005", "End-stage renal disease")],
            "End-stage renal disease",
            esrd_days_ago,
        )
        self.cond(
            "dialysis-dependence",
            [coding(ICD, "Z99.2", "Dependence on renal dialysis")],
            "Dependence on renal dialysis",
            esrd_days_ago - 14,
        )
        if pd:
            pd_codes = [
                coding(SCT, "71192002", "Peritoneal dialysis"),
                coding(CPT, "90945", "Dialysis procedure other than hemodialysis, single evaluation"),
            ]
            self.proc("pd-start", pd_codes, "Peritoneal dialysis (CCPD), first exchange", esrd_days_ago - 16)
            self.proc("pd-latest", pd_codes, "Peritoneal dialysis, monthly review", 5)
        else:
            hd = [
                coding(SCT, "302497006", "Hemodialysis"),
                coding(CPT, "90935", "Hemodialysis procedure with single evaluation"),
            ]
            self.proc("hd-first", hd, "Hemodialysis, first session", esrd_days_ago - 16)
            self.proc("hd-latest", hd, "Hemodialysis", 2)

    # ------------------------------------------------------------ observations
    def lab(
        self,
        key: str,
        value: float | str,
        days_ago: int,
        *,
        hhmm: str = "07:30",
        interpretation: str | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        system, code, display, unit, category = LABS.get(key, (LOCAL, key, "", "", "laboratory"))
        if system == LOCAL:
            display = LOCAL_FINDINGS[code]
        res: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self._id(key),
            "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
            "code": concept(coding(system, code, display), text=display),
            "subject": self.ref,
            "effectiveDateTime": instant(days_ago, hhmm),
        }
        if key in QUALITATIVE:
            positive = str(value).lower().startswith("pos")
            res["valueCodeableConcept"] = concept(
                coding(SCT, "10828004", "Positive") if positive else coding(SCT, "260385009", "Negative"),
                text=str(value),
            )
        else:
            res["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
        if interpretation:
            res["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": interpretation}]}]
        if note:
            res["note"] = [{"text": note}]
        self.labs.append(res)
        return res

    def panel(self, days_ago: int, **values: float) -> None:
        for key, value in values.items():
            self.lab(key.replace("_", "-"), value, days_ago)

    # ------------------------------------------------------------ medications
    def med(
        self,
        stem: str,
        codings: list[dict[str, str]],
        text: str,
        authored_days_ago: int,
        *,
        status: str = "active",
        reason: str | None = None,
    ) -> dict[str, Any]:
        res: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": self._id(stem),
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": concept(*codings, text=text),
            "subject": self.ref,
            "authoredOn": day(authored_days_ago),
            "dosageInstruction": [{"text": text}],
        }
        if reason:
            res["reasonCode"] = [{"text": reason}]
        self.meds.append(res)
        return res

    # ------------------------------------------------------------ procedures
    def proc(
        self,
        stem: str,
        codings: list[dict[str, str]],
        text: str,
        days_ago: int,
        *,
        site: str | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        res: dict[str, Any] = {
            "resourceType": "Procedure",
            "id": self._id(stem),
            "status": "completed",
            "code": concept(*codings, text=text),
            "subject": self.ref,
            "performedDateTime": day(days_ago),
        }
        if site:
            res["bodySite"] = sites(site)
        if note:
            res["note"] = [{"text": note}]
        self.procedures.append(res)
        return res

    # ------------------------------------------------------------ reports
    def report(
        self,
        stem: str,
        study: dict[str, str],
        days_ago: int,
        *,
        conclusion: str,
        sections: list[tuple[str, str]],
        status: str = "final",
        hhmm: str = "10:00",
        service: str = "RAD",
        keep: bool = True,
    ) -> dict[str, Any]:
        """A DiagnosticReport with conclusion and a base64 text/plain presentedForm made of SECTION: text lines."""
        text = "\n".join(f"{name}: {body}" for name, body in sections)
        service_display = {"RAD": "Radiology", "VUS": "Vascular Ultrasound", "SP": "Surgical Pathology"}[service]
        res: dict[str, Any] = {
            "resourceType": "DiagnosticReport",
            "id": self._id(stem),
            "status": status,
            "category": [{"coding": [{"system": DIAGNOSTIC_SERVICE, "code": service, "display": service_display}]}],
            "code": concept(study, text=study["display"]),
            "subject": self.ref,
            "effectiveDateTime": instant(days_ago, hhmm),
            "issued": instant(days_ago, _later(hhmm)),
            "conclusion": conclusion,
            "presentedForm": [{"contentType": "text/plain", "data": _b64(text)}],
        }
        if keep:
            self.reports.append(res)
        return res

    # ------------------------------------------------------------ prefetch
    def prefetch(self, *, report: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "patient": self.resource(),
            "conditions": _searchset(self.conditions),
            "labs": _searchset(self.labs),
            "meds": _searchset([m for m in self.meds if m["resourceType"] == "MedicationRequest"]),
            "procedures": _searchset(self.procedures),
            "reports": _searchset(self.reports),
            # Optional keys of the services (home medication lists, inpatient administrations).
            "medstatements": _searchset([m for m in self.meds if m["resourceType"] == "MedicationStatement"]),
            "medadmins": _searchset([m for m in self.meds if m["resourceType"] == "MedicationAdministration"]),
        }
        if report is not None:
            out["report"] = report
        return out


def _later(hhmm: str) -> str:
    h, m = (int(x) for x in hhmm.split(":"))
    return f"{min(h + 2, 23):02d}:{m:02d}"


# ---------------------------------------------------------------- draft orders


def service_request(
    pid: str,
    rid: str,
    study: dict[str, str],
    *,
    text: str,
    requester: str,
    site: str | None = None,
    reason: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "code": concept(study, text=text),
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": instant(0, "09:15"),
        "requester": {"reference": requester},
    }
    if reason:
        res["reasonCode"] = [{"text": reason}]
    if site:
        res["bodySite"] = sites(site)
    if note:
        res["note"] = [{"text": note}]
    return res


def medication_request(
    pid: str,
    rid: str,
    codings: list[dict[str, str]],
    *,
    text: str,
    requester: str,
    dose: tuple[float, str] | None = None,
    route: str | None = None,
    frequency: tuple[int, float, str] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    dosage: dict[str, Any] = {"text": text}
    if frequency:
        count, period, unit = frequency
        dosage["timing"] = {"repeat": {"frequency": count, "period": period, "periodUnit": unit}}
    if route:
        dosage["route"] = concept(coding(SCT, *ROUTES[route]), text=route)
    if dose:
        value, unit = dose
        dosage["doseAndRate"] = [{"doseQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}]
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": concept(*codings, text=text.split(",")[0]),
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": instant(0, "09:15"),
        "requester": {"reference": requester},
        "dosageInstruction": [dosage],
    }
    if reason:
        res["reasonCode"] = [{"text": reason}]
    return res


ROUTES = {"oral": ("26643006", "Oral route"), "intravenous": ("47625008", "Intravenous route")}


def draft_bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def codes_used(obj: Any) -> list[tuple[str, str, str]]:
    """Every (system, code, display) coding under ``obj`` that belongs to a tagged code system."""
    found: dict[tuple[str, str], str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            system, code = node.get("system"), node.get("code")
            if isinstance(system, str) and isinstance(code, str) and system in SYSTEM_NAMES:
                found.setdefault((node["system"], node["code"]), node.get("display", ""))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(obj)
    return sorted((s, c, d) for (s, c), d in found.items())
