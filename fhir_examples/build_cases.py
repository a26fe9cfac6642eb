"""Writes the clinical cases (fhir_examples/requests/*.json) and their manifest (fhir_examples/cases.yaml).

Run from the repository root:  python fhir_examples/build_cases.py
The source case (source-case.patient-view.json) is the lead's and is not written here;
its manifest entry is declared below so the manifest covers every file.

Every patient is synthetic. "Today" is 2026-11-21 in every scenario.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import casekit as k
from casekit import CPT, ICD, RXNORM, SCT, Patient, coding

HERE = Path(__file__).resolve().parent
REQUESTS = HERE / "requests"
MANIFEST = HERE / "cases.yaml"
REPORT_REVIEW_HOOK = "org.calciphylaxis-cds.diagnosticreport-review"
HOOKS = {
    "calciphylaxis-risk": "patient-view",
    "calciphylaxis-risk-encounter": "encounter-start",
    "calciphylaxis-order-select": "order-select",
    "calciphylaxis-order-sign": "order-sign",
    "calciphylaxis-report-review": REPORT_REVIEW_HOOK,
}
NEPHROLOGIST = "Practitioner/nephrologist-1"
DERMATOLOGIST = "Practitioner/dermatologist-2"
RADIOLOGIST = "Practitioner/radiologist-3"
HOSPITALIST = "Practitioner/hospitalist-4"

# ----------------------------------------------------------------- study codes
BONE_SCAN = coding(CPT, "78306", "Bone and/or joint imaging; whole body")
THREE_PHASE = coding(CPT, "78315", "Bone and/or joint imaging; 3 phase study")
CT_LEG = coding(CPT, "73700", "Computed tomography, lower extremity; without contrast material")
CT_CHEST = coding(CPT, "71250", "Computed tomography, thorax, diagnostic; without contrast material")
CT_ABD_PELVIS = coding(CPT, "74176", "Computed tomography, abdomen and pelvis; without contrast material")
MRI_LEG_GAD = coding(
    CPT,
    "73720",
    "Magnetic resonance imaging, lower extremity other than joint; without contrast "
    "material(s), followed by contrast material(s) and further sequences",
)
XR_FOOT = coding(CPT, "73620", "Radiologic examination, foot; 2 views")
XR_HAND = coding(CPT, "73130", "Radiologic examination, hand; minimum of 3 views")
XR_FEMUR = coding(CPT, "73552", "Radiologic examination, femur; minimum 2 views")
XR_TIB_FIB = coding(CPT, "73590", "Radiologic examination; tibia and fibula, 2 views")
XR_HIP = coding(CPT, "73502", "Radiologic examination, hip, unilateral, with pelvis when performed; 2-3 views")
XR_SHOULDER = coding(CPT, "73030", "Radiologic examination, shoulder; complete, minimum of 2 views")
DUPLEX_BILAT = coding(
    CPT,
    "93970",
    "Duplex scan of extremity veins including responses to compression and other maneuvers; complete bilateral study",
)
DUPLEX_UNILAT = coding(
    CPT,
    "93971",
    "Duplex scan of extremity veins including responses to compression and other "
    "maneuvers; unilateral or limited study",
)
ABI_STUDY = coding(
    CPT, "93922", "Limited bilateral noninvasive physiologic studies of upper or lower extremity arteries"
)
PATHOLOGY = coding(CPT, "88305", "Level IV - Surgical pathology, gross and microscopic examination")
PUNCH_BIOPSY = coding(CPT, "11104", "Punch biopsy of skin (including simple closure, when performed); single lesion")
CARDIAC_CATH = coding(
    CPT,
    "93458",
    "Catheter placement in coronary artery(s) for coronary angiography, including "
    "intraprocedural injection(s) for coronary angiography, imaging supervision and interpretation; "
    "with left heart catheterization",
)

# ----------------------------------------------------------------- drug codes
WARFARIN = [coding(RXNORM, "11289", "warfarin")]
CALCIUM_ACETATE = [coding(RXNORM, "214342", "calcium acetate")]
CALCIUM_CARBONATE = [coding(RXNORM, "1897", "calcium carbonate")]
CALCITRIOL = [coding(RXNORM, "1894", "calcitriol")]
THIOSULFATE = [coding(RXNORM, "56466", "sodium thiosulfate")]
INSULIN_GLARGINE = [coding(RXNORM, "274783", "insulin glargine")]
CINACALCET = [coding(RXNORM, "284635", "cinacalcet")]
APIXABAN = [coding(RXNORM, "1364430", "apixaban")]
HEPARIN = [coding(RXNORM, "5224", "heparin")]
ENOXAPARIN = [coding(RXNORM, "67108", "enoxaparin")]
PREDNISONE = [coding(RXNORM, "8640", "prednisone")]
HYDROXYCHLOROQUINE = [coding(RXNORM, "5521", "hydroxychloroquine")]
METFORMIN = [coding(RXNORM, "6809", "metformin")]
ATORVASTATIN = [coding(RXNORM, "83367", "atorvastatin")]
ASPIRIN = [coding(RXNORM, "1191", "aspirin")]
LISINOPRIL = [coding(RXNORM, "29046", "lisinopril")]
AMLODIPINE = [coding(RXNORM, "17767", "amlodipine")]
VANCOMYCIN = [coding(RXNORM, "11124", "vancomycin")]
MESALAMINE = [coding(RXNORM, "52582", "mesalamine")]

# ----------------------------------------------------------------- diagnosis codes
T2DM_CKD = [
    coding(ICD, "E11.22", "Type 2 diabetes mellitus with diabetic chronic kidney disease"),
    coding(SCT, "44054006", "Diabetes mellitus type 2"),
]
CALCIPHYLAXIS = [
    coding(SCT, "237900002", "Calciphylaxis"),
    coding(ICD, "E83.59", "Other disorders of calcium metabolism"),
]


@dataclass
class Case:
    id: str
    service: str
    patient: Patient
    summary: str
    top: str | None
    not_top: list[str]
    cards: list[str]
    features: list[str]
    forbidden_cards: list[str] = field(default_factory=list)
    user: str = NEPHROLOGIST
    encounter: str | None = None
    drafts: list[dict[str, Any]] = field(default_factory=list)
    selections: list[str] = field(default_factory=list)
    review_report: dict[str, Any] | None = None
    draft_in_context: bool = False
    notes: str | None = None
    stage: str | None = None  # suspected | confirmed, for order-time cases
    silent: bool | None = None  # no card at all; default: no expected card and no imaging report on record

    @property
    def hook(self) -> str:
        return HOOKS[self.service]

    @property
    def file(self) -> str:
        suffix = {
            "patient-view": "patient-view",
            "encounter-start": "encounter-start",
            "order-select": "order-select",
            "order-sign": "order-sign",
            REPORT_REVIEW_HOOK: "report-review",
        }[self.hook]
        return f"{self.id}.{suffix}.json"

    def request(self) -> dict[str, Any]:
        context: dict[str, Any] = {"userId": self.user, "patientId": self.patient.id}
        if self.encounter:
            context["encounterId"] = self.encounter
        if self.hook in ("order-select", "order-sign"):
            if self.hook == "order-select":
                context["selections"] = self.selections
            context["draftOrders"] = k.draft_bundle(*self.drafts)
        if self.review_report is not None:
            context["diagnosticReportId"] = self.review_report["id"]
            if self.draft_in_context:
                context["diagnosticReport"] = self.review_report
        return {
            "hook": self.hook,
            "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://calciphylaxis-cds.org/cases/{self.id}")),
            "fhirServer": k.FHIR_BASE,
            "context": context,
            "prefetch": self.patient.prefetch(report=self.review_report),
        }


# =================================================================== shared fragments


def ckd_mbd_labs(
    p: Patient,
    *,
    ca: tuple[float, float],
    phos: tuple[float, float],
    pth: tuple[float, float],
    alb: tuple[float, float],
    alp: tuple[float, float] | None = None,
) -> None:
    """Two monthly dialysis panels, about six months apart (older first)."""
    for i, days in enumerate((180, 12)):
        p.lab("ca", ca[i], days)
        p.lab("phos", phos[i], days)
        p.lab("pth", pth[i], days)
        p.lab("alb", alb[i], days)
        if alp:
            p.lab("alp", alp[i], days)


def bmi(p: Patient, value: float, days: int = 12) -> None:
    p.lab("bmi", value, days, hhmm="08:00")


def lesion(
    p: Patient,
    stem: str,
    codes: list[dict[str, str]],
    text: str,
    onset: int,
    site: str,
    *,
    category: str = "encounter-diagnosis",
) -> None:
    p.cond(stem, codes, text, onset, site=site, category=category)


def bone_scan(
    p: Patient,
    days_ago: int,
    conclusion: str,
    sections: list[tuple[str, str]],
    *,
    study: dict[str, str] = BONE_SCAN,
    status: str = "final",
    keep: bool = True,
    stem: str = "bone-scan",
    hhmm: str = "10:00",
) -> dict[str, Any]:
    return p.report(
        stem, study, days_ago, conclusion=conclusion, sections=sections, status=status, keep=keep, hhmm=hhmm
    )


# =================================================================== suspected / confirmed patients (order cases)


def suspected_patient() -> Patient:
    """Woman on haemodialysis for 7 years with 3 weeks of painful retiform plaques on thigh and abdomen."""
    p = Patient("cx-suspected-thigh", "female", "1965-07-19", ["Suspected", "Plaque"])
    p.esrd_on_dialysis(2590)
    p.cond("diabetes", T2DM_CKD, "Type 2 diabetes with diabetic CKD", "2004-03-01")
    p.cond(
        "long-term-insulin",
        [coding(ICD, "Z79.4", "Long term (current) use of insulin")],
        "Long-term insulin use",
        "2012-05-01",
    )
    p.cond(
        "obesity",
        [
            coding(ICD, "E66.01", "Morbid (severe) obesity due to excess calories"),
            coding(ICD, "Z68.41", "Body mass index [BMI] 40.0-44.9, adult"),
        ],
        "Severe obesity",
        "2015-01-10",
    )
    p.cond(
        "shpt",
        [coding(ICD, "N25.81", "Secondary hyperparathyroidism of renal origin")],
        "Secondary hyperparathyroidism",
        "2019-06-02",
    )
    p.sign(
        "violaceous-plaque",
        "Exquisitely painful violaceous indurated plaques, left medial thigh and lower abdomen",
        21,
        "thigh:left",
    )
    p.sign("retiform-purpura", "Retiform purpura with a stellate dusky centre, left medial thigh", 21, "thigh:left")
    p.sign(
        "pain-out-of-proportion",
        "Pain 9/10, out of proportion to the skin findings, needs opioids",
        21,
        "thigh:left",
        extra=[coding(SCT, "22253000", "Pain")],
    )
    p.sign("pedal-pulses-present", "Dorsalis pedis and posterior tibial pulses palpable bilaterally", 3)
    p.cond(
        "suspected-calciphylaxis",
        CALCIPHYLAXIS,
        "Suspected calciphylaxis (clinical; not yet biopsied)",
        6,
        verification="provisional",
        category="encounter-diagnosis",
        site="thigh:left,abdomen",
    )
    ckd_mbd_labs(p, ca=(9.2, 9.6), phos=(6.4, 7.1), pth=(880, 1150), alb=(3.3, 2.8), alp=(140, 185))
    bmi(p, 41.6)
    p.lab("weight", 104.0, 200, hhmm="08:00")
    p.lab("weight", 96.5, 12, hhmm="08:00", note="7% weight loss over 6 months")
    p.med("insulin", INSULIN_GLARGINE, "Insulin glargine 30 units subcutaneously at night", 1900)
    p.med("cinacalcet", CINACALCET, "Cinacalcet 60 mg orally once daily", 300)
    return p


def confirmed_patient() -> Patient:
    """Man on haemodialysis for 9 years with biopsy-proven calciphylaxis of both calves, diagnosed 5 weeks ago."""
    p = Patient("cx-confirmed-calves", "male", "1969-02-03", ["Confirmed", "Calves"])
    p.esrd_on_dialysis(3300)
    p.cond(
        "af",
        [coding(ICD, "I48.0", "Paroxysmal atrial fibrillation"), coding(SCT, "49436004", "Atrial fibrillation")],
        "Paroxysmal atrial fibrillation",
        "2021-04-12",
    )
    p.cond(
        "shpt",
        [coding(ICD, "N25.81", "Secondary hyperparathyroidism of renal origin")],
        "Secondary hyperparathyroidism",
        "2018-01-20",
    )
    p.cond("calciphylaxis", CALCIPHYLAXIS, "Calciphylaxis, biopsy-proven, both calves", 36, site="calf:right,calf:left")
    p.cond(
        "ulcer-right-calf",
        [coding(ICD, "L97.212", "Non-pressure chronic ulcer of right calf with fat layer exposed")],
        "Necrotic ulcer with eschar, right posterior calf",
        60,
        site="calf:right",
    )
    p.cond(
        "ulcer-left-calf",
        [coding(ICD, "L97.221", "Non-pressure chronic ulcer of left calf limited to breakdown of skin")],
        "Ulcerating purpuric plaque, left medial calf",
        50,
        site="calf:left",
    )
    p.sign("eschar", "Adherent black eschar 4 x 3 cm, right posterior calf", 40, "calf:right")
    p.sign("pedal-pulses-present", "Pedal pulses palpable bilaterally", 36)
    ckd_mbd_labs(p, ca=(9.8, 9.1), phos=(6.9, 5.8), pth=(620, 540), alb=(3.4, 3.0), alp=(120, 150))
    bmi(p, 33.8)
    p.lab("inr", 1.1, 12)
    p.med(
        "warfarin",
        WARFARIN,
        "Warfarin 5 mg orally once daily (dose adjusted to INR)",
        1750,
        status="stopped",
        reason="Paroxysmal atrial fibrillation; stopped at calciphylaxis diagnosis",
    )
    p.med(
        "calcium-acetate",
        CALCIUM_ACETATE,
        "Calcium acetate 667 mg, 2 capsules with each meal",
        2400,
        status="stopped",
        reason="Hyperphosphatemia; stopped at calciphylaxis diagnosis",
    )
    p.med(
        "calcitriol",
        CALCITRIOL,
        "Calcitriol 0.5 mcg orally three times weekly after dialysis",
        1500,
        status="stopped",
        reason="Secondary hyperparathyroidism; stopped at calciphylaxis diagnosis",
    )
    p.med("apixaban", APIXABAN, "Apixaban 2.5 mg orally twice daily", 35, reason="Paroxysmal atrial fibrillation")
    p.med("cinacalcet", CINACALCET, "Cinacalcet 30 mg orally once daily", 34)
    p.proc("biopsy", [PUNCH_BIOPSY], "Deep punch biopsy, margin of left medial calf lesion", 38, site="calf:left")
    bone_scan(
        p,
        45,
        "Heterogeneous subcutaneous tracer uptake in both calves at the sites of the painful lesions; "
        "appearance compatible with calciphylaxis.",
        [
            (
                "CLINICAL HISTORY",
                "Dialysis patient with painful necrotic lesions of both calves. Question calciphylaxis.",
            ),
            ("TECHNIQUE", "Whole-body anterior and posterior images 3 hours after 740 MBq Tc-99m MDP IV."),
            (
                "FINDINGS",
                "Patchy, heterogeneous increased soft-tissue uptake in the subcutaneous tissues of both "
                "calves, more intense on the right, corresponding to the marked lesions. Mildly increased "
                "background activity. No abnormal uptake in the thighs, abdominal wall or upper extremities. "
                "Kidneys faintly seen.",
            ),
            (
                "IMPRESSION",
                "Heterogeneous subcutaneous uptake in both calves matching the clinical lesions, "
                "compatible with calciphylaxis.",
            ),
        ],
    )
    p.report(
        "skin-pathology",
        PATHOLOGY,
        35,
        service="SP",
        conclusion="Skin and subcutis, left calf, punch biopsy: calcification of small subcutaneous arterioles "
        "with intimal fibrosis, microthrombi and fat necrosis, consistent with calciphylaxis.",
        sections=[
            ("SPECIMEN", "Skin and subcutaneous fat, left medial calf, 6 mm deep punch."),
            (
                "MICROSCOPIC",
                "Circumferential calcification of small arterioles in the subcutaneous fat with "
                "intimal fibroplasia and luminal microthrombi. Septal panniculitis with fat necrosis and "
                "extravascular calcium deposits. Epidermal necrosis at the edge. Von Kossa stain highlights "
                "the vascular calcium. No vasculitis. No organisms on special stains.",
            ),
            ("DIAGNOSIS", "Findings consistent with calciphylaxis (calcific uremic arteriolopathy)."),
        ],
    )
    return p


# =================================================================== cases

CASES: list[Case] = []


def add(case: Case) -> None:
    CASES.append(case)


# ------------------------------------------------------------------- cohort-like (Paul et al. 2015)


def cohort_early_plaque() -> None:
    p = Patient("cx-cohort-early-plaque", "female", "1967-10-08", ["Cohort", "Plaque"])
    p.esrd_on_dialysis(2300)
    p.cond(
        "af",
        [coding(ICD, "I48.91", "Unspecified atrial fibrillation"), coding(SCT, "49436004", "Atrial fibrillation")],
        "Atrial fibrillation",
        "2023-02-14",
    )
    p.cond(
        "anticoagulant",
        [coding(ICD, "Z79.01", "Long term (current) use of anticoagulants")],
        "Long-term warfarin",
        "2023-02-20",
    )
    p.cond(
        "obesity",
        [
            coding(ICD, "E66.01", "Morbid (severe) obesity due to excess calories"),
            coding(ICD, "Z68.41", "Body mass index [BMI] 40.0-44.9, adult"),
        ],
        "Severe obesity",
        "2016-05-01",
    )
    p.sign(
        "violaceous-plaque",
        "Tender indurated violaceous plaques, medial aspect of both thighs",
        18,
        "thigh:right,thigh:left",
    )
    p.sign("retiform-purpura", "Net-like retiform purpura over both medial thighs", 18, "thigh:right,thigh:left")
    p.sign(
        "pain-out-of-proportion",
        "Severe burning pain of both thighs, out of proportion to the skin changes",
        20,
        "thigh:right,thigh:left",
        extra=[coding(SCT, "22253000", "Pain")],
    )
    p.sign("pedal-pulses-present", "Pedal pulses palpable bilaterally", 4)
    ckd_mbd_labs(p, ca=(9.0, 9.4), phos=(5.9, 6.6), pth=(410, 480), alb=(3.5, 2.9), alp=(105, 132))
    bmi(p, 42.3)
    p.lab("inr", 2.6, 12)
    p.med("warfarin", WARFARIN, "Warfarin 4 mg orally once daily, dose by INR", 1370, reason="Atrial fibrillation")
    p.med("calcium-carbonate", CALCIUM_CARBONATE, "Calcium carbonate 1250 mg orally three times daily with meals", 1800)
    bone_scan(
        p,
        5,
        "Bilateral heterogeneous subcutaneous uptake in the medial thighs corresponding to the clinical "
        "plaques; in this clinical setting, compatible with calciphylaxis.",
        [
            ("EXAM", "NM bone scan, whole body (Tc-99m MDP)."),
            ("INDICATION", "Painful violaceous plaques of both thighs in a hemodialysis patient on warfarin."),
            (
                "FINDINGS",
                "There is heterogeneous, nodular increased radiotracer uptake in the subcutaneous "
                "soft tissues of the medial right and left thighs, at the locations marked as painful plaques. "
                "The abdominal wall, buttocks and calves show no focal soft-tissue uptake. Skeletal uptake is "
                "unremarkable apart from mild degenerative activity in the lower lumbar spine. Renal activity "
                "is not visualised.",
            ),
            (
                "IMPRESSION",
                "1. Heterogeneous soft-tissue uptake in both medial thighs at the sites of the "
                "clinical plaques, compatible with calciphylaxis. 2. No visceral uptake to suggest metastatic "
                "calcification.",
            ),
        ],
    )
    add(
        Case(
            id="cohort-early-plaque-positive-scan",
            service="calciphylaxis-risk",
            patient=p,
            encounter="hd-2026-11-21-a",
            summary="Obese woman on haemodialysis and long-term warfarin with 3 weeks of painful retiform plaques on both "
            "medial thighs; bone scan shows heterogeneous subcutaneous uptake exactly at the plaques.",
            top="calciphylaxis",
            not_top=["renal-failure-soft-tissue-clearance", "metastatic-calcification", "venous-insufficiency"],
            cards=["risk-card"],
            forbidden_cards=["harmful-drug-warning"],
            features=[
                "ESRD on haemodialysis > 5 years",
                "female",
                "obesity (BMI 42)",
                "long-term warfarin (> 3 years)",
                "calcium-based binder",
                "falling albumin 3.5 -> 2.9 g/dL",
                "early lesions: painful violaceous plaques and retiform purpura on fatty areas (thighs)",
                "pain out of proportion",
                "pedal pulses present",
                "bone scan: heterogeneous subcutaneous uptake matching the lesion sites (Paul 2015 positive pattern)",
            ],
            notes="Paul et al. 2015: the scan performs best in early plaques and nodules. No ulcer yet.",
        )
    )


def cohort_abdominal_nodules() -> None:
    p = Patient("cx-cohort-abdominal-nodules", "female", "1977-01-25", ["Cohort", "Nodule"])
    p.esrd_on_dialysis(1500, pd=True)
    p.cond(
        "diabetes",
        [
            coding(ICD, "E10.22", "Type 1 diabetes mellitus with diabetic chronic kidney disease"),
            coding(SCT, "46635009", "Diabetes mellitus type 1"),
        ],
        "Type 1 diabetes with diabetic CKD",
        "1994-09-01",
    )
    p.cond(
        "long-term-insulin",
        [coding(ICD, "Z79.4", "Long term (current) use of insulin")],
        "Long-term insulin use",
        "1994-09-01",
    )
    p.sign(
        "subcutaneous-nodule",
        "Firm exquisitely tender subcutaneous nodules of the lower abdominal wall at insulin injection sites",
        14,
        "abdomen",
    )
    p.sign("livedo-reticularis", "Livedoid violaceous mottling around the nodules, lower abdomen", 14, "abdomen")
    p.sign(
        "pain-out-of-proportion",
        "Pain out of proportion at the abdominal nodules; cannot tolerate clothing",
        14,
        "abdomen",
        extra=[coding(SCT, "22253000", "Pain")],
    )
    ckd_mbd_labs(p, ca=(9.9, 10.3), phos=(5.2, 5.8), pth=(190, 240), alb=(3.1, 2.7), alp=(88, 95))
    bmi(p, 30.4)
    p.med("insulin", INSULIN_GLARGINE, "Insulin glargine 22 units subcutaneously at bedtime, abdominal sites", 4000)
    p.med("calcitriol", CALCITRIOL, "Calcitriol 0.75 mcg orally once daily", 700)
    p.med("calcium-acetate", CALCIUM_ACETATE, "Calcium acetate 667 mg, 3 capsules with each meal", 1300)
    bone_scan(
        p,
        3,
        "Focal heterogeneous soft-tissue uptake in the lower anterior abdominal wall corresponding to "
        "the palpable nodules. Calciphylaxis is the leading consideration.",
        [
            ("HISTORY", "Peritoneal dialysis. Painful abdominal wall nodules. ?calciphylaxis"),
            ("COMPARISON", "None."),
            (
                "FINDINGS",
                "Irregular, heterogeneous foci of increased activity project over the subcutaneous "
                "fat of the lower anterior abdominal wall, left more than right, at the sites of the palpable "
                "nodules. Peritoneal dialysate activity is not seen. No uptake in the lungs or stomach. The "
                "lower extremities show no soft-tissue uptake. Normal skeletal distribution.",
            ),
            (
                "IMPRESSION",
                "Heterogeneous abdominal wall soft-tissue uptake matching the clinical nodules; "
                "findings are suspicious for calciphylaxis. No visceral calcification.",
            ),
        ],
    )
    add(
        Case(
            id="cohort-abdominal-nodules-positive-scan",
            service="calciphylaxis-risk-encounter",
            patient=p,
            encounter="pd-clinic-2026-11-21",
            summary="Woman with type 1 diabetes on peritoneal dialysis with painful lower-abdominal nodules at insulin "
            "injection sites; bone scan shows focal heterogeneous uptake at the nodules (encounter-start).",
            top="calciphylaxis",
            not_top=["renal-failure-soft-tissue-clearance", "metastatic-calcification"],
            cards=["risk-card"],
            forbidden_cards=["harmful-drug-warning"],
            features=[
                "peritoneal dialysis",
                "female",
                "type 1 diabetes with insulin injections at the lesion site",
                "active vitamin D 0.75 mcg/day (> 0.5)",
                "calcium-based binder",
                "albumin 2.7 g/dL",
                "central (abdominal) subcutaneous nodules",
                "livedo",
                "pain out of proportion",
                "bone scan: heterogeneous uptake at the nodules",
            ],
            notes="Central (abdominal) disease carries a worse prognosis than distal disease per the sheet.",
        )
    )


def cohort_ulcerated_negative_scan() -> None:
    p = Patient("cx-cohort-ulcerated", "male", "1960-12-11", ["Cohort", "Ulcer"])
    p.esrd_on_dialysis(3900)
    p.cond("diabetes", T2DM_CKD, "Type 2 diabetes with diabetic CKD", "2002-01-15")
    p.cond(
        "ulcer-right-calf",
        [coding(ICD, "L97.212", "Non-pressure chronic ulcer of right calf with fat layer exposed")],
        "Necrotic ulcer, right lateral calf",
        75,
        site="calf:right",
    )
    p.cond(
        "ulcer-left-calf",
        [coding(ICD, "L97.222", "Non-pressure chronic ulcer of left calf with fat layer exposed")],
        "Necrotic ulcer, left posterior calf",
        70,
        site="calf:left",
    )
    p.sign(
        "eschar", "Thick black eschar over both calf ulcers with a violaceous retiform rim", 60, "calf:right,calf:left"
    )
    p.sign(
        "pain-out-of-proportion",
        "Pain at both calf ulcers disproportionate to their size; night pain",
        75,
        "calf:right,calf:left",
        extra=[coding(SCT, "22253000", "Pain")],
    )
    p.sign("pedal-pulses-present", "Dorsalis pedis pulses palpable bilaterally", 10)
    ckd_mbd_labs(p, ca=(9.4, 9.7), phos=(6.8, 7.3), pth=(1320, 1480), alb=(3.2, 2.6), alp=(160, 210))
    bmi(p, 29.1)
    p.med("calcium-acetate", CALCIUM_ACETATE, "Calcium acetate 667 mg, 2 capsules with each meal", 3000)
    p.med("calcitriol", CALCITRIOL, "Calcitriol 0.5 mcg orally three times weekly after dialysis", 2000)
    p.report(
        "xr-legs",
        XR_TIB_FIB,
        20,
        conclusion="Fine net-like calcification of small vessels in the "
        "subcutaneous fat of both calves beneath the ulcers; medial arterial calcification of the tibial vessels.",
        sections=[
            (
                "FINDINGS",
                "Soft-tissue views of both lower legs: reticular, net-like calcification of small "
                "subcutaneous vessels in the posterior and lateral calves bilaterally, underlying the clinical "
                "ulcers. Tram-track medial calcification of the tibial and peroneal arteries. No periosteal "
                "reaction or cortical erosion to suggest osteomyelitis.",
            ),
            (
                "IMPRESSION",
                "Net-like subcutaneous small-vessel calcification in both calves beneath the ulcers, "
                "a pattern described in calciphylaxis. Non-specific medial arterial calcification.",
            ),
        ],
    )
    bone_scan(
        p,
        6,
        "No abnormal soft-tissue uptake at the calf ulcers. A negative scan does not exclude "
        "calciphylaxis at the ulcerated stage.",
        [
            (
                "CLINICAL INFORMATION",
                "HD patient with necrotic ulcers of both calves, eschar. Assess for calciphylaxis.",
            ),
            (
                "FINDINGS",
                "No focal or heterogeneous soft-tissue uptake is identified at the sites of the right "
                "and left calf ulcers; the ulcer beds appear mildly photopenic. No soft tissue uptake in the "
                "thighs, trunk or upper extremities. Normal skeletal distribution. Kidneys not seen.",
            ),
            (
                "IMPRESSION",
                "No scintigraphic evidence of soft-tissue calcification at the ulcer sites. Note "
                "that uptake is reported to be less frequent once lesions are ulcerated and necrotic; correlate "
                "clinically and with histology.",
            ),
        ],
    )
    add(
        Case(
            id="cohort-ulcerated-negative-scan",
            service="calciphylaxis-risk",
            patient=p,
            summary="Man on haemodialysis for 10 years with necrotic eschar-covered ulcers of both calves; bone scan shows "
            "no uptake at the ulcers (false-negative pattern), plain film shows net-like calcification.",
            top="calciphylaxis",
            not_top=["peripheral-arterial-disease", "venous-insufficiency", "diabetic-ulcer"],
            cards=["risk-card"],
            features=[
                "ESRD on haemodialysis > 10 years",
                "PTH > 1000 pg/mL",
                "phosphate 7.3 mg/dL",
                "calcium-based binder and active vitamin D",
                "albumin 2.6 g/dL",
                "late lesions: necrotic ulcers with black eschar",
                "pain out of proportion",
                "pulses present",
                "plain film: net-like subcutaneous small-vessel calcification beneath the ulcers",
                "bone scan negative at ulcerated lesions (the scan is reported to be less sensitive at this stage)",
            ],
            notes="False-negative pattern: the negative scan should weaken, not dismiss, calciphylaxis. "
            "A rule that applies "
            "the full LR- 0.11 regardless of lesion stage would wrongly drop it; the expected card still advises "
            "histology and wound care.",
        )
    )


def cohort_esrd_control_diffuse() -> None:
    p = Patient("cx-cohort-control-diffuse", "male", "1963-06-30", ["Control", "Diffuse"])
    p.esrd_on_dialysis(1600)
    p.cond(
        "prostate-cancer-followup",
        [],
        "Prostate adenocarcinoma, treated 2022, PSA rising (staging scan)",
        "2022-03-01",
        category="problem-list-item",
    )
    p.cond(
        "hypertension",
        [
            coding(
                ICD,
                "I12.0",
                "Hypertensive chronic kidney disease with stage 5 chronic kidney disease or end stage renal disease",
            )
        ],
        "Hypertensive CKD with ESRD",
        "2018-01-01",
    )
    ckd_mbd_labs(p, ca=(9.1, 9.0), phos=(5.1, 5.4), pth=(310, 350), alb=(3.9, 3.8), alp=(92, 98))
    bmi(p, 26.0)
    p.med("amlodipine", AMLODIPINE, "Amlodipine 10 mg orally once daily", 900)
    bone_scan(
        p,
        2,
        "Diffusely increased symmetric soft-tissue activity in keeping with renal failure; no osseous "
        "metastases and no focal soft-tissue abnormality.",
        [
            ("INDICATION", "Rising PSA after prostatectomy. Restaging. On hemodialysis."),
            ("TECHNIQUE", "Whole-body planar imaging at 3 hours after Tc-99m MDP."),
            (
                "FINDINGS",
                "Diffuse, symmetric, homogeneous soft-tissue activity throughout the trunk and all "
                "four limbs with high background and poor bone-to-soft-tissue contrast. No focal or asymmetric "
                "soft-tissue uptake. No visceral uptake in the lungs or stomach. Kidneys are not visualised. No "
                "focal skeletal lesion to suggest metastatic disease.",
            ),
            (
                "IMPRESSION",
                "1. No scintigraphic evidence of osseous metastases. 2. Diffuse symmetric "
                "soft-tissue retention of tracer, consistent with delayed clearance in end-stage renal "
                "disease; no finding to suggest soft-tissue calcification.",
            ),
        ],
    )
    add(
        Case(
            id="cohort-esrd-control-diffuse-uptake",
            service="calciphylaxis-risk",
            patient=p,
            summary="Man on haemodialysis without skin lesions, restaging bone scan for prostate cancer shows only "
            "diffuse symmetric soft-tissue activity (renal-failure clearance pattern).",
            top="renal-failure-soft-tissue-clearance",
            not_top=["calciphylaxis", "metastatic-calcification"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "ESRD on haemodialysis",
                "no skin lesion",
                "bone scan: diffuse symmetric homogeneous soft-tissue "
                "activity, poor bone-to-soft-tissue contrast, no focal uptake",
                "no visceral uptake",
                "labs near dialysis targets",
            ],
            notes="ESRD control of the Paul 2015 type; also the patient-view case for renal-failure-soft-tissue-clearance. "
            "Any differential card must rank renal-failure clearance first; no risk card.",
        )
    )


def cohort_esrd_control_normal() -> None:
    p = Patient("cx-cohort-control-normal", "female", "1971-09-14", ["Control", "Normal"])
    p.esrd_on_dialysis(1200)
    p.cond("hip-pain", [], "Left hip pain, mechanical, 4 months", 120, site="hip:left")
    ckd_mbd_labs(p, ca=(9.0, 9.2), phos=(4.8, 5.0), pth=(260, 290), alb=(4.0, 3.9), alp=(80, 84))
    bmi(p, 24.2)
    bone_scan(
        p,
        9,
        "No abnormal soft-tissue uptake. Mild degenerative uptake at the left hip.",
        [
            ("CLINICAL HISTORY", "Left hip pain. Dialysis patient. Exclude stress fracture or avascular necrosis."),
            (
                "FINDINGS",
                "Normal biodistribution of tracer in the skeleton with mild increased uptake at the superolateral "
                "left acetabulum, typical of degenerative change. No fracture pattern. Soft-tissue activity is within "
                "normal limits for a dialysis patient; there is no focal, heterogeneous or asymmetric soft tissue uptake "
                "in the limbs or trunk. No pulmonary or gastric uptake.",
            ),
            (
                "IMPRESSION",
                "Degenerative change at the left hip. No evidence of stress fracture. No soft-tissue uptake.",
            ),
        ],
    )
    add(
        Case(
            id="cohort-esrd-control-normal-scan",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman on haemodialysis without skin lesions; bone scan for hip pain is normal apart from degenerative "
            "uptake at the left hip.",
            top=None,
            not_top=["calciphylaxis"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "ESRD on haemodialysis",
                "no skin lesion",
                "bone scan without soft-tissue uptake",
                "joint uptake from degenerative change (must not count as soft-tissue evidence)",
                "normal albumin and mineral labs",
            ],
            notes="Silence expected. No hypothesis is required to rank first (top: null); calciphylaxis must not.",
            silent=True,
        )
    )


def cohort_negative_first_biopsy() -> None:
    p = Patient("cx-cohort-negative-biopsy", "female", "1959-11-30", ["Cohort", "Biopsy"])
    p.esrd_on_dialysis(2000)
    p.cond(
        "obesity",
        [
            coding(ICD, "E66.01", "Morbid (severe) obesity due to excess calories"),
            coding(ICD, "Z68.41", "Body mass index [BMI] 40.0-44.9, adult"),
        ],
        "Severe obesity",
        "2014-01-01",
    )
    p.cond(
        "abdominal-ulcer",
        [coding(ICD, "L98.492", "Non-pressure chronic ulcer of skin of other sites with fat layer exposed")],
        "Painful necrotic ulcer of the lower abdominal pannus with a retiform purpuric rim",
        40,
        site="abdomen",
    )
    p.sign("retiform-purpura", "Retiform purpura surrounding the pannus ulcer and over both flanks", 45, "abdomen")
    p.sign(
        "pain-out-of-proportion",
        "Severe pain at the pannus, disproportionate to the ulcer",
        45,
        "abdomen",
        extra=[coding(SCT, "22253000", "Pain")],
    )
    ckd_mbd_labs(p, ca=(9.3, 9.5), phos=(5.6, 6.1), pth=(230, 210), alb=(3.4, 2.8), alp=(98, 110))
    bmi(p, 43.0)
    p.med("calcium-acetate", CALCIUM_ACETATE, "Calcium acetate 667 mg, 2 capsules with each meal", 1600)
    p.proc("biopsy", [PUNCH_BIOPSY], "Punch biopsy, edge of abdominal pannus ulcer", 24, site="abdomen")
    p.report(
        "skin-pathology",
        PATHOLOGY,
        21,
        service="SP",
        conclusion="Ulcer edge with necrosis and mixed "
        "inflammation; no vascular calcification identified in this sample. Calciphylaxis cannot be excluded.",
        sections=[
            ("SPECIMEN", "Skin, abdominal pannus, 4 mm punch (superficial; minimal subcutaneous fat)."),
            (
                "MICROSCOPIC",
                "Ulcerated epidermis with dermal necrosis and mixed inflammation. Only a thin rim "
                "of subcutaneous fat is present. Von Kossa stain shows no vascular or interstitial calcium in "
                "the sampled tissue. No vasculitis.",
            ),
            (
                "DIAGNOSIS",
                "Ulcer with necrosis, non-specific. The sample is too superficial to exclude "
                "calciphylaxis; a deeper biopsy or alternative evaluation is suggested if suspicion remains.",
            ),
        ],
    )
    bone_scan(
        p,
        10,
        "Heterogeneous soft-tissue uptake in the lower abdominal wall and both flanks at the clinical "
        "lesions, suspicious for calciphylaxis despite the non-diagnostic biopsy.",
        [
            ("HISTORY", "HD, painful pannus ulcer and retiform purpura, superficial biopsy non-diagnostic."),
            (
                "FINDINGS",
                "Heterogeneous increased uptake in the subcutaneous fat of the lower abdominal "
                "pannus and both flanks, most intense around the ulcer. The limbs show no soft-tissue uptake. "
                "No lung or gastric activity.",
            ),
            (
                "IMPRESSION",
                "Abdominal wall and flank soft-tissue uptake corresponding to the lesions; "
                "findings are suspicious for calciphylaxis.",
            ),
        ],
    )
    add(
        Case(
            id="cohort-negative-first-biopsy",
            service="calciphylaxis-risk",
            patient=p,
            summary="Obese woman on haemodialysis with a painful necrotic pannus ulcer and retiform purpura; a superficial "
            "first biopsy was non-diagnostic, the bone scan shows heterogeneous uptake at the lesions.",
            top="calciphylaxis",
            not_top=["pyoderma-gangrenosum", "renal-failure-soft-tissue-clearance"],
            cards=["risk-card"],
            forbidden_cards=["harmful-drug-warning"],
            features=[
                "single negative (superficial) biopsy: LR- about 0.5, must not exclude",
                "central (abdominal) lesion on a fatty area",
                "retiform purpura",
                "pain out of proportion",
                "obesity (BMI 43)",
                "albumin falling to 2.8",
                "calcium-based binder",
                "bone scan: heterogeneous uptake at the lesions",
                "low PTH (< 300 pg/mL, a minor factor in the consensus)",
            ],
            notes="Tests the biopsy rule: the first-biopsy sensitivity is about 52%, so the non-diagnostic result weakens "
            "calciphylaxis only slightly and the positive scan dominates.",
        )
    )


def nonuremic_warfarin_calciphylaxis() -> None:
    p = Patient("cx-nonuremic-warfarin", "female", "1951-06-12", ["Nonuremic", "Warfarin"])
    p.cond("mitral-valve", [], "Mechanical mitral valve replacement (2023)", "2023-09-01")
    p.cond(
        "af",
        [coding(ICD, "I48.91", "Unspecified atrial fibrillation"), coding(SCT, "49436004", "Atrial fibrillation")],
        "Atrial fibrillation",
        "2023-09-01",
    )
    p.cond(
        "anticoagulant",
        [coding(ICD, "Z79.01", "Long term (current) use of anticoagulants")],
        "Long-term warfarin",
        "2023-09-20",
    )
    p.cond(
        "ulcer-left-calf",
        [coding(ICD, "L97.222", "Non-pressure chronic ulcer of left calf with fat layer exposed")],
        "Painful stellate ulcer, left medial calf",
        30,
        site="calf:left",
    )
    p.sign("retiform-purpura", "Retiform purpura of both medial calves", 42, "calf:right,calf:left")
    p.sign(
        "pain-out-of-proportion",
        "Severe calf pain out of proportion to the lesions",
        42,
        "calf:right,calf:left",
        extra=[coding(SCT, "22253000", "Pain")],
    )
    p.sign("pedal-pulses-present", "Pedal pulses palpable", 5)
    p.panel(8, creat=0.9, egfr=66, ca=9.2, phos=3.4, alb=3.3, inr=2.9)
    bmi(p, 34.5, 8)
    p.med(
        "warfarin",
        WARFARIN,
        "Warfarin 6 mg orally once daily, dose by INR",
        1160,
        reason="Mechanical mitral valve; atrial fibrillation",
    )
    bone_scan(
        p,
        6,
        "Heterogeneous subcutaneous uptake in both medial calves at the painful lesions; in a patient on "
        "long-term warfarin, non-uremic calciphylaxis is a consideration.",
        [
            ("CLINICAL HISTORY", "Painful purpuric calf lesions. On warfarin 3 years. Normal renal function."),
            (
                "FINDINGS",
                "Patchy heterogeneous subcutaneous uptake in the medial aspect of both calves, left "
                "more than right, corresponding to the marked lesions. No uptake elsewhere in the soft "
                "tissues. No visceral uptake. Skeleton unremarkable.",
            ),
            (
                "IMPRESSION",
                "Heterogeneous subcutaneous calf uptake at the clinical lesions. Calciphylaxis "
                "(non-uremic, warfarin-associated) should be considered; correlate with biopsy.",
            ),
        ],
    )
    add(
        Case(
            id="nonuremic-warfarin-calciphylaxis",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman with normal kidney function on warfarin for 3 years (mechanical valve) with painful retiform "
            "purpura and a stellate ulcer of the calves; bone scan shows heterogeneous uptake at the lesions.",
            top="calciphylaxis",
            not_top=["warfarin-skin-necrosis", "venous-insufficiency", "vasculitis"],
            cards=["risk-card"],
            forbidden_cards=["harmful-drug-warning"],
            features=[
                "warfarin exposure about 38 months (non-uremic calciphylaxis: mean 32 months, Yu 2017), not days 3-10",
                "female",
                "below-knee lesions (67% in Yu 2017)",
                "normal Ca x P (as in Yu 2017)",
                "eGFR 66, no dialysis",
                "retiform purpura, pain out of proportion, pulses present",
                "bone scan: heterogeneous uptake at the lesions",
            ],
            notes="Contrast pair with ddx-warfarin-skin-necrosis: the same drug, but long exposure and a positive scan. "
            "A general-population prior keeps the posterior lower than in dialysis; the expectation is that the "
            "positive scan and lesion features still put calciphylaxis first and above the card threshold. "
            "Warfarin here is for a mechanical valve, so any advice must leave the anticoagulation decision to "
            "the clinician.",
        )
    )


def cohort_thiosulfate_response() -> None:
    p = Patient("cx-cohort-sts-response", "female", "1962-05-07", ["Cohort", "Response"])
    p.esrd_on_dialysis(2700)
    p.cond(
        "calciphylaxis",
        CALCIPHYLAXIS,
        "Calciphylaxis of both thighs and the right buttock, biopsy-proven",
        92,
        site="thigh:right,thigh:left,buttock:right",
    )
    p.cond(
        "ulcer-buttock",
        [coding(ICD, "L98.411", "Non-pressure chronic ulcer of buttock limited to breakdown of skin")],
        "Superficial ulcer, right buttock, re-epithelialising",
        85,
        site="buttock:right",
    )
    p.sign(
        "violaceous-plaque",
        "Indurated violaceous plaques of both thighs, now softer and less tender",
        95,
        "thigh:right,thigh:left",
    )
    ckd_mbd_labs(p, ca=(9.6, 9.0), phos=(6.7, 5.2), pth=(780, 420), alb=(2.9, 3.3), alp=(150, 120))
    bmi(p, 37.9)
    p.med(
        "thiosulfate",
        THIOSULFATE,
        "Sodium thiosulfate 25 g IV over the last hour of each haemodialysis, 3 times weekly",
        84,
        reason="Calciphylaxis, biopsy-proven",
    )
    p.med(
        "warfarin",
        WARFARIN,
        "Warfarin 5 mg orally once daily",
        1400,
        status="stopped",
        reason="Atrial fibrillation; stopped at calciphylaxis diagnosis",
    )
    p.proc("biopsy", [PUNCH_BIOPSY], "Deep punch biopsy, lateral left thigh plaque", 90, site="thigh:left")
    bone_scan(
        p,
        88,
        "Heterogeneous subcutaneous uptake in both thighs and the right buttock, matching the painful "
        "plaques; compatible with calciphylaxis.",
        [
            ("INDICATION", "Painful thigh plaques, HD. Baseline before sodium thiosulfate."),
            (
                "FINDINGS",
                "Marked heterogeneous uptake in the subcutaneous fat of the anterolateral right and "
                "left thighs and the right buttock, at the clinical plaques. No visceral uptake.",
            ),
            ("IMPRESSION", "Soft-tissue uptake compatible with calciphylaxis of the thighs and right buttock."),
        ],
        stem="bone-scan-baseline",
    )
    bone_scan(
        p,
        3,
        "Interval marked decrease of the subcutaneous uptake in both thighs and resolution at the right "
        "buttock since the baseline study, consistent with treatment response.",
        [
            ("INDICATION", "Calciphylaxis on sodium thiosulfate for 12 weeks. Response?"),
            ("COMPARISON", "Bone scan 88 days earlier (baseline)."),
            (
                "FINDINGS",
                "The heterogeneous subcutaneous uptake in the right and left thighs has decreased "
                "markedly compared with the baseline scan; faint residual activity remains laterally on the "
                "left. The previously seen uptake in the right buttock is no longer visible. No new sites of "
                "soft-tissue uptake.",
            ),
            (
                "IMPRESSION",
                "Decreased soft-tissue uptake at all previously involved sites, compatible with "
                "response to treatment. No new soft-tissue uptake.",
            ),
        ],
        stem="bone-scan-follow-up",
    )
    add(
        Case(
            id="cohort-thiosulfate-response",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman on haemodialysis with biopsy-proven calciphylaxis of the thighs and buttock after 12 weeks of "
            "sodium thiosulfate; follow-up bone scan shows markedly decreased uptake (serial comparison).",
            top="calciphylaxis",
            not_top=["renal-failure-soft-tissue-clearance"],
            cards=[],
            forbidden_cards=["biopsy-advice", "harmful-drug-warning", "bone-scan-question"],
            features=[
                "confirmed calciphylaxis (SNOMED 237900002, biopsy)",
                "sodium thiosulfate for 12 weeks",
                "baseline and follow-up bone scans: decreased uptake, no new sites (treatment response)",
                "albumin and phosphate improving",
            ],
            notes="Serial comparison (issue 5): the later scan should become a treatment-response fact, supportive only, "
            "not a stopping rule (sheet section 6). Whether patient-view shows a card for an already treated "
            "patient is left to the card design; biopsy advice must not appear.",
        )
    )


# ------------------------------------------------------------------- one case per differential hypothesis


def ddx_venous_insufficiency() -> None:
    p = Patient("cx-ddx-venous", "female", "1955-04-22", ["Venous", "Ulcer"])
    p.esrd_on_dialysis(1400)
    p.cond(
        "venous-insufficiency",
        [coding(ICD, "I87.2", "Venous insufficiency (chronic) (peripheral)")],
        "Chronic venous insufficiency, both legs",
        "2015-08-01",
    )
    p.cond(
        "varicose-ulcer",
        [
            coding(ICD, "I83.013", "Varicose veins of right lower extremity with ulcer of ankle"),
            coding(SCT, "72866009", "Varicose veins of lower limb"),
        ],
        "Varicose veins of the right leg with ulcer over the medial malleolus (gaiter area)",
        420,
        site="ankle:right",
    )
    p.cond(
        "varicose-left",
        [coding(ICD, "I83.93", "Asymptomatic varicose veins of bilateral lower extremities")],
        "Bilateral varicose veins",
        "2012-01-01",
    )
    p.sign(
        "hemosiderin-staining",
        "Brown haemosiderin staining and lipodermatosclerosis, both gaiter areas",
        400,
        "lower-leg:right,lower-leg:left",
    )
    p.sign("lipodermatosclerosis", "Lipodermatosclerosis of the right lower leg", 400, "lower-leg:right")
    p.cond(
        "edema",
        [coding(ICD, "R60.0", "Localized edema")],
        "Pitting oedema of both ankles, worse in the evening",
        600,
        site="ankle:right,ankle:left",
        category="encounter-diagnosis",
    )
    p.sign("pedal-pulses-present", "Pedal pulses palpable; ABI 1.05 right, 1.08 left", 30)
    ckd_mbd_labs(p, ca=(9.0, 9.1), phos=(4.9, 5.2), pth=(240, 260), alb=(3.9, 3.8))
    bmi(p, 28.5)
    p.lab("abi", 1.05, 30, note="right")
    p.report(
        "venous-duplex",
        DUPLEX_BILAT,
        60,
        service="VUS",
        conclusion="Great saphenous and deep venous reflux on the right; no deep venous thrombosis.",
        sections=[
            (
                "FINDINGS",
                "Right: great saphenous vein incompetent from the saphenofemoral junction to the "
                "ankle with reflux 3.2 s; popliteal vein reflux 1.4 s. Left: great saphenous reflux 1.1 s "
                "below the knee. All deep veins compressible bilaterally with phasic flow; no thrombus.",
            ),
            ("IMPRESSION", "Superficial and deep venous reflux, right greater than left. No DVT."),
        ],
    )
    p.report(
        "xr-ankle",
        XR_FOOT,
        90,
        conclusion="Scattered phleboliths and amorphous dystrophic calcification in "
        "the soft tissues of the right distal leg; no vascular net-like pattern.",
        sections=[
            (
                "FINDINGS",
                "Several round phleboliths in the soft tissues of the right distal calf and medial "
                "ankle, with amorphous dystrophic soft-tissue calcification deep to the ulcer. No net-like small "
                "vessel calcification. Bones intact.",
            ),
            (
                "IMPRESSION",
                "Phleboliths and dystrophic calcification, right distal leg, as seen with chronic "
                "venous insufficiency.",
            ),
        ],
    )
    add(
        Case(
            id="ddx-venous-insufficiency",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman on haemodialysis with a 14-month, moderately painful ulcer over the right medial malleolus, "
            "varicose veins, oedema, haemosiderin and lipodermatosclerosis; venous reflux on duplex.",
            top="venous-insufficiency",
            not_top=["calciphylaxis"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "gaiter-area ulcer (medial malleolus)",
                "varicose veins (I83.013, I83.93)",
                "I87.2",
                "haemosiderin staining and lipodermatosclerosis",
                "oedema",
                "chronic course (> 1 year)",
                "pulses present, ABI normal",
                "duplex: venous reflux",
                "X-ray: phleboliths and dystrophic calcification, no net-like pattern",
                "normal albumin and mineral labs",
            ],
        )
    )


def ddx_venous_thrombosis() -> None:
    p = Patient("cx-ddx-venous-thrombosis", "male", "1958-11-03", ["Thrombosis", "Leg"])
    p.esrd_on_dialysis(2000)
    p.cond(
        "chronic-dvt",
        [coding(ICD, "I82.512", "Chronic embolism and thrombosis of left femoral vein")],
        "Chronic thrombosis of the left femoral vein",
        640,
    )
    p.cond(
        "dvt-history",
        [coding(ICD, "Z86.718", "Personal history of other venous thrombosis and embolism")],
        "History of left femoral DVT (2025) after tunnelled femoral dialysis catheter",
        640,
    )
    p.cond(
        "post-thrombotic",
        [coding(ICD, "I87.012", "Postthrombotic syndrome with ulcer of left lower extremity")],
        "Post-thrombotic syndrome of the left leg with small ulcer above the medial malleolus",
        90,
        site="ankle:left",
    )
    p.sign(
        "limb-swelling-unilateral",
        "Persistent swelling of the whole left leg, calf circumference +4 cm",
        600,
        "lower-limb:left",
    )
    p.sign("pedal-pulses-present", "Pedal pulses palpable bilaterally", 20)
    ckd_mbd_labs(p, ca=(9.3, 9.2), phos=(5.0, 5.3), pth=(330, 300), alb=(3.8, 3.7))
    p.med("apixaban", APIXABAN, "Apixaban 2.5 mg orally twice daily", 640, reason="Left femoral DVT")
    p.report(
        "venous-duplex",
        DUPLEX_UNILAT,
        25,
        service="VUS",
        conclusion="Chronic non-occlusive thrombus in the left common femoral, femoral and popliteal veins "
        "with collaterals; no acute thrombus.",
        sections=[
            (
                "FINDINGS",
                "Left: echogenic, partially recanalised, wall-adherent thrombus in the common "
                "femoral, femoral and popliteal veins with reduced compressibility and venous collaterals. "
                "Reflux 2.1 s in the popliteal vein. No expanded, hypoechoic acute thrombus.",
            ),
            ("IMPRESSION", "Chronic post-thrombotic changes of the left femoropopliteal veins. No acute DVT."),
        ],
    )
    bone_scan(
        p,
        8,
        "Diffuse, uniform increased soft-tissue activity confined to the left leg, in keeping with venous "
        "obstruction; no focal subcutaneous uptake to suggest calcification.",
        [
            ("INDICATION", "Left hip and thigh pain; on dialysis. Rule out fracture."),
            (
                "FINDINGS",
                "Whole-body images show diffuse, homogeneous increased soft tissue activity of the "
                "entire left lower extremity from the thigh to the ankle, compared with the right. No focal or "
                "heterogeneous subcutaneous uptake. No uptake at the small left ankle ulcer. Skeleton normal; no "
                "fracture. No pulmonary or gastric activity.",
            ),
            (
                "IMPRESSION",
                "Unilateral diffuse soft-tissue activity of the left leg, most consistent with "
                "chronic venous obstruction given the known femoral vein thrombosis. No evidence of "
                "soft-tissue calcification.",
            ),
        ],
    )
    add(
        Case(
            id="ddx-venous-thrombosis",
            service="calciphylaxis-risk",
            patient=p,
            summary="Man on haemodialysis with chronic left femoral vein thrombosis, a swollen left leg and a small "
            "post-thrombotic ulcer; bone scan shows uniform soft-tissue activity of the left leg only.",
            top="venous-thrombosis",
            not_top=["calciphylaxis", "renal-failure-soft-tissue-clearance"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "prior DVT (I82.512, Z86.718)",
                "unilateral swollen limb",
                "post-thrombotic syndrome (I87.012)",
                "duplex: chronic femoropopliteal thrombus",
                "bone scan: unilateral diffuse uniform activity, no focal subcutaneous uptake",
                "pulses present",
                "no risk-factor labs",
            ],
        )
    )


def ddx_diabetic_ulcer() -> None:
    p = Patient("cx-ddx-diabetic-ulcer", "male", "1963-02-17", ["Diabetic", "Foot"])
    p.cond(
        "diabetes",
        [
            coding(ICD, "E11.621", "Type 2 diabetes mellitus with foot ulcer"),
            coding(SCT, "44054006", "Diabetes mellitus type 2"),
        ],
        "Type 2 diabetes with foot ulcer",
        "2008-04-01",
    )
    p.cond(
        "neuropathy",
        [coding(ICD, "E11.42", "Type 2 diabetes mellitus with diabetic polyneuropathy")],
        "Diabetic peripheral polyneuropathy",
        "2016-09-01",
    )
    p.cond("ckd3b", [coding(ICD, "N18.32", "Chronic kidney disease, stage 3b")], "CKD stage 3b", "2022-06-01")
    p.cond(
        "plantar-ulcer",
        [coding(ICD, "L97.512", "Non-pressure chronic ulcer of other part of right foot with fat layer exposed")],
        "Plantar ulcer under the right first metatarsal head, painless",
        70,
        site="foot:right",
    )
    p.sign(
        "insensate-foot", "Absent 10 g monofilament sensation at 8 of 10 sites on both feet", 70, "foot:right,foot:left"
    )
    p.sign("callus", "Thick hyperkeratotic callus around the plantar ulcer", 70, "foot:right")
    p.sign("pedal-pulses-present", "Dorsalis pedis and posterior tibial pulses palpable bilaterally", 10)
    p.panel(14, hba1c=9.4, creat=1.9, egfr=38, ca=9.4, phos=3.9, alb=4.0, wbc=8.1, crp=12)
    bmi(p, 31.5)
    p.lab("abi", 1.12, 30)
    p.med("metformin", METFORMIN, "Metformin 500 mg orally twice daily", 2000)
    p.med("insulin", INSULIN_GLARGINE, "Insulin glargine 24 units at night", 900)
    p.report(
        "xr-foot",
        XR_FOOT,
        12,
        conclusion="Plantar soft-tissue defect at the first metatarsal head without "
        "osteomyelitis; medial arterial calcification.",
        sections=[
            (
                "FINDINGS",
                "Soft-tissue ulcer beneath the right first metatarsophalangeal joint. The first "
                "metatarsal head cortex is intact with no periosteal reaction or erosion. Tram-track medial "
                "calcification of the dorsalis pedis artery. No soft tissue gas.",
            ),
            (
                "IMPRESSION",
                "No radiographic evidence of osteomyelitis. Medial arterial calcification, non-specific in diabetes.",
            ),
        ],
    )
    add(
        Case(
            id="ddx-diabetic-ulcer",
            service="calciphylaxis-risk",
            patient=p,
            summary="Man with poorly controlled type 2 diabetes, neuropathy and CKD 3b with a painless plantar ulcer "
            "under the right first metatarsal head, callus and palpable pulses.",
            top="diabetic-ulcer",
            not_top=["calciphylaxis", "peripheral-arterial-disease"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "plantar pressure-site ulcer",
                "painless ulcer with insensate foot (neuropathy E11.42)",
                "callus",
                "HbA1c 9.4%",
                "CKD 3b (eGFR 38), not dialysis",
                "pulses present, ABI 1.12",
                "X-ray: no osteomyelitis, medial calcification only",
            ],
            notes="Outside the service's usage population (CKD 4-5/dialysis); silence expected on patient-view.",
            silent=True,
        )
    )


def ddx_metastatic_calcification() -> None:
    p = Patient("cx-ddx-metastatic", "female", "1970-03-09", ["Metastatic", "Calcification"])
    p.esrd_on_dialysis(3600)
    p.cond(
        "shpt",
        [coding(ICD, "N25.81", "Secondary hyperparathyroidism of renal origin")],
        "Severe secondary (tertiary) hyperparathyroidism",
        "2016-05-01",
    )
    p.cond(
        "hypercalcemia",
        [coding(ICD, "E83.52", "Hypercalcemia"), coding(SCT, "66931009", "Hypercalcemia")],
        "Hypercalcaemia",
        60,
    )
    ckd_mbd_labs(p, ca=(10.6, 11.4), phos=(7.6, 8.6), pth=(1650, 2350), alb=(4.0, 3.9), alp=(310, 420))
    bmi(p, 23.0)
    p.med("calcitriol", CALCITRIOL, "Calcitriol 1 mcg orally three times weekly", 900)
    p.med("calcium-carbonate", CALCIUM_CARBONATE, "Calcium carbonate 1250 mg with each meal", 1500)
    bone_scan(
        p,
        7,
        "Diffuse uptake in both lungs and the gastric wall consistent with metastatic calcification; "
        "no cutaneous or subcutaneous uptake.",
        [
            ("HISTORY", "Dialysis, PTH 2350 pg/mL, Ca 11.4 mg/dL, P 8.6 mg/dL. Bone pain. Parathyroidectomy work-up."),
            (
                "FINDINGS",
                "Diffusely increased tracer activity in both lungs, most marked in the upper zones, "
                "and in the gastric fundus wall. Mild diffuse myocardial activity. Superscan appearance of the "
                "skeleton with increased calvarial and costochondral uptake, compatible with renal "
                "osteodystrophy. No focal subcutaneous or cutaneous soft-tissue uptake in the limbs or trunk.",
            ),
            (
                "IMPRESSION",
                "Pulmonary and gastric uptake representing metastatic calcification in severe "
                "hyperparathyroidism. Renal osteodystrophy. No soft tissue pattern to suggest calciphylaxis.",
            ),
        ],
    )
    p.report(
        "ct-chest",
        CT_CHEST,
        4,
        conclusion="Centrilobular calcified nodules in both upper lobes consistent "
        "with metastatic pulmonary calcification.",
        sections=[
            (
                "FINDINGS",
                "Innumerable fluffy centrilobular nodules with internal calcification in both upper "
                "lobes, attenuation up to 450 HU. Calcification of the chest wall vessels. No subcutaneous "
                "calcification of the chest or abdominal wall.",
            ),
            ("IMPRESSION", "Metastatic pulmonary calcification, upper-lobe predominant. Correlate with bone scan."),
        ],
    )
    add(
        Case(
            id="ddx-metastatic-calcification",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman on haemodialysis with PTH 2350 pg/mL, Ca x P about 98 and no skin lesions; bone scan shows lung "
            "and gastric uptake and CT shows calcified upper-lobe nodules.",
            top="metastatic-calcification",
            not_top=["calciphylaxis", "renal-failure-soft-tissue-clearance"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "visceral uptake (lungs, stomach, myocardium)",
                "Ca x P 11.4 x 8.6 = 98 mg2/dL2 (> 70)",
                "PTH 2350 pg/mL, hypercalcaemia",
                "no skin lesion",
                "CT: centrilobular calcified nodules",
            ],
        )
    )


def ddx_scleroderma() -> None:
    p = Patient("cx-ddx-scleroderma", "female", "1972-08-05", ["Scleroderma", "Calcinosis"])
    p.cond(
        "ssc",
        [coding(ICD, "M34.1", "CR(E)ST syndrome"), coding(SCT, "89155008", "Systemic sclerosis")],
        "Limited cutaneous systemic sclerosis (CREST)",
        "2014-02-01",
    )
    p.cond(
        "raynaud",
        [
            coding(ICD, "I73.00", "Raynaud's syndrome without gangrene"),
            coding(SCT, "266261006", "Raynaud's phenomenon"),
        ],
        "Raynaud phenomenon, both hands",
        "2011-11-01",
    )
    p.cond(
        "calcinosis",
        [coding(ICD, "L94.2", "Calcinosis cutis")],
        "Calcinosis cutis of the fingertips, discharging chalky material",
        200,
        site="finger:right,finger:left",
    )
    p.sign(
        "sclerodactyly", "Sclerodactyly of both hands", 2000, "finger:right,finger:left", category="problem-list-item"
    )
    p.sign("digital-ulcer", "Painful fingertip ulcer over a calcinotic nodule, right index finger", 30, "finger:right")
    p.sign(
        "acral-calcinosis",
        "Firm white acral calcific nodules, fingertips and right elbow",
        200,
        "finger:right,finger:left,elbow:right",
    )
    p.panel(20, ca=9.3, phos=3.6, alb=4.1, creat=0.8, egfr=88, crp=4)
    p.lab("anti-centromere", "Positive", 600)
    p.lab("ana", "Positive (1:1280, centromere pattern)", 600)
    p.med("amlodipine", AMLODIPINE, "Amlodipine 5 mg orally once daily", 1500, reason="Raynaud phenomenon")
    p.report(
        "xr-hands",
        XR_HAND,
        25,
        conclusion="Dense, well-circumscribed calcific deposits in the fingertip soft "
        "tissues of both hands with acro-osteolysis; typical of scleroderma calcinosis.",
        sections=[
            ("EXAM", "XR both hands, 3 views each."),
            (
                "FINDINGS",
                "Clumped, dense, well-defined calcifications in the pulp of the right index and middle "
                "fingers and the left thumb. Resorption of the tufts of several distal phalanges. No vascular "
                "calcification. Joint spaces preserved.",
            ),
            ("IMPRESSION", "Acral calcinosis with acro-osteolysis, compatible with systemic sclerosis."),
        ],
    )
    add(
        Case(
            id="ddx-scleroderma-calcinosis",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman with limited systemic sclerosis, Raynaud phenomenon and sclerodactyly with chalky fingertip "
            "calcinosis and a digital ulcer; normal kidney function and normal calcium/phosphate.",
            top="scleroderma-calcinosis",
            not_top=["calciphylaxis", "dermatomyositis-calcinosis"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "systemic sclerosis (M34.1)",
                "Raynaud (I73.00)",
                "sclerodactyly",
                "acral/fingertip calcinosis (L94.2)",
                "anti-centromere positive",
                "normal Ca, P and eGFR",
                "XR: dense circumscribed acral calcification with acro-osteolysis, no vascular calcification",
            ],
        )
    )


def ddx_dermatomyositis() -> None:
    p = Patient("cx-ddx-dermatomyositis", "female", "1991-05-28", ["Myositis", "Calcinosis"])
    p.cond(
        "dm",
        [
            coding(ICD, "M33.10", "Other dermatomyositis, organ involvement unspecified"),
            coding(SCT, "396230008", "Dermatomyositis"),
        ],
        "Dermatomyositis (juvenile onset, relapsing)",
        "2004-06-01",
    )
    p.cond(
        "weakness",
        [coding(ICD, "M62.81", "Muscle weakness (generalized)")],
        "Proximal muscle weakness, hip and shoulder girdles",
        60,
    )
    p.sign("gottron-papules", "Gottron papules over the knuckles", 80, "finger:right,finger:left")
    p.sign("heliotrope-rash", "Heliotrope rash of the upper eyelids", 80)
    p.cond(
        "calcinosis",
        [coding(ICD, "L94.2", "Calcinosis cutis")],
        "Calcinosis of both thighs with an ulcer extruding chalky material, left lateral thigh",
        150,
        site="thigh:right,thigh:left",
    )
    p.panel(10, ck=2850, ca=9.2, phos=3.8, alb=3.9, creat=0.6, egfr=118, crp=9, alp=96)
    p.lab("anti-nxp2", "Positive", 650)
    p.med("prednisone", PREDNISONE, "Prednisone 20 mg orally once daily", 55)
    p.med("hydroxychloroquine", HYDROXYCHLOROQUINE, "Hydroxychloroquine 200 mg orally twice daily", 700)
    bone_scan(
        p,
        15,
        "Sheet-like intramuscular and fascial uptake in both thighs and the left upper arm, in keeping "
        "with dermatomyositis-related calcinosis.",
        [
            ("INDICATION", "Dermatomyositis with palpable calcinosis. Extent?"),
            (
                "FINDINGS",
                "Linear, sheet-like increased activity along the fascial planes and within the "
                "quadriceps and adductor muscles of both thighs and in the left deltoid. No heterogeneous "
                "subcutaneous fat uptake. No visceral activity.",
            ),
            (
                "IMPRESSION",
                "Muscular and fascial soft-tissue uptake in a distribution typical of calcinosis in dermatomyositis.",
            ),
        ],
    )
    p.report(
        "xr-femur",
        XR_FEMUR,
        14,
        conclusion="Sheet-like fascial and intramuscular calcification of both "
        "thighs (calcinosis universalis pattern).",
        sections=[
            (
                "FINDINGS",
                "Extensive sheet-like calcification along the fascial planes of both thighs with "
                "linear intramuscular deposits. No net-like subcutaneous vascular calcification. Bones "
                "normal.",
            ),
            ("IMPRESSION", "Fascial and muscular calcinosis, consistent with dermatomyositis."),
        ],
    )
    add(
        Case(
            id="ddx-dermatomyositis-calcinosis",
            service="calciphylaxis-risk",
            patient=p,
            summary="Young woman with relapsing dermatomyositis, proximal weakness, CK 2850 U/L and sheet-like fascial "
            "and muscular calcinosis of both thighs; normal kidneys.",
            top="dermatomyositis-calcinosis",
            not_top=["calciphylaxis", "scleroderma-calcinosis", "heterotopic-ossification"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "dermatomyositis (M33.10)",
                "raised CK 2850 U/L",
                "proximal weakness",
                "Gottron papules, heliotrope rash",
                "anti-NXP2 positive",
                "sheet-like fascial/intramuscular calcification",
                "bone scan: muscular uptake",
                "normal Ca/P, normal eGFR",
            ],
        )
    )


def ddx_sle() -> None:
    p = Patient("cx-ddx-lupus", "female", "1984-12-02", ["Lupus", "Panniculitis"])
    p.cond(
        "sle",
        [
            coding(ICD, "M32.14", "Glomerular disease in systemic lupus erythematosus"),
            coding(SCT, "55464009", "Systemic lupus erythematosus"),
        ],
        "Systemic lupus erythematosus with class IV lupus nephritis",
        "2012-03-01",
    )
    p.cond(
        "ckd3a",
        [coding(ICD, "N18.31", "Chronic kidney disease, stage 3a")],
        "CKD stage 3a (lupus nephritis)",
        "2019-01-01",
    )
    p.cond(
        "lupus-panniculitis",
        [],
        "Lupus panniculitis (lupus profundus) with tender depressed nodules of both "
        "upper arms and thighs, some calcified",
        300,
        site="thigh:right,thigh:left",
    )
    p.sign("livedo-reticularis", "Livedo reticularis of both thighs", 300, "thigh:right,thigh:left")
    p.panel(16, c3=52, c4=6, esr=58, creat=1.45, egfr=46, ca=9.0, phos=4.1, alb=3.5, plt=132)
    p.lab("anti-dsdna", 210, 16, interpretation="H")
    p.lab("ana", "Positive (1:640, homogeneous)", 700)
    p.lab("lupus-anticoagulant", "Negative", 400)
    p.med("hydroxychloroquine", HYDROXYCHLOROQUINE, "Hydroxychloroquine 200 mg orally twice daily", 3000)
    p.med("prednisone", PREDNISONE, "Prednisone 7.5 mg orally once daily", 400)
    p.report(
        "xr-femur",
        XR_FEMUR,
        20,
        conclusion="Scattered amorphous dystrophic calcifications in the subcutaneous "
        "fat of both thighs at the panniculitis nodules, without a vascular pattern.",
        sections=[
            (
                "FINDINGS",
                "Multiple small amorphous and curvilinear calcific densities within the subcutaneous "
                "fat of the anterior thighs bilaterally, corresponding to the palpable nodules. They do not "
                "follow small vessels. No muscular or fascial calcification.",
            ),
            (
                "IMPRESSION",
                "Dystrophic subcutaneous calcification, compatible with calcified lupus "
                "panniculitis. Calciphylaxis is considered less likely given the non-vascular pattern and "
                "renal function.",
            ),
        ],
    )
    add(
        Case(
            id="ddx-connective-tissue-disease",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman with active SLE (low complement, high anti-dsDNA) and CKD 3a with tender calcified "
            "panniculitis nodules of the thighs showing dystrophic, non-vascular calcification.",
            top="connective-tissue-disease",
            not_top=["calciphylaxis", "dermatomyositis-calcinosis", "scleroderma-calcinosis"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "SLE (M32.14) with active serology: low C3/C4, anti-dsDNA 210 IU/mL",
                "lupus panniculitis",
                "CKD 3a (eGFR 46), not dialysis",
                "dystrophic non-vascular subcutaneous calcification",
                "livedo (shared with calciphylaxis)",
                "normal Ca/P",
            ],
            notes="Lupus is also a calciphylaxis risk factor per the sheet; without kidney failure and with a "
            "non-vascular pattern it should not rank calciphylaxis first.",
        )
    )


def ddx_heterotopic_ossification() -> None:
    p = Patient("cx-ddx-heterotopic", "male", "1979-07-15", ["Heterotopic", "Hip"])
    p.cond(
        "hip-fracture",
        [
            coding(
                ICD,
                "S72.001D",
                "Fracture of unspecified part of neck of right femur, "
                "subsequent encounter for closed fracture with routine healing",
            )
        ],
        "Right femoral neck fracture after a motorcycle crash, fixed",
        130,
    )
    p.cond(
        "hip-arthroplasty",
        [coding(ICD, "Z96.641", "Presence of right artificial hip joint")],
        "Right total hip arthroplasty (after trauma)",
        128,
    )
    p.cond(
        "ho",
        [coding(ICD, "M61.051", "Myositis ossificans traumatica, right thigh")],
        "Heterotopic ossification, right hip and proximal thigh",
        40,
        site="hip:right,thigh:right",
    )
    p.cond("stiff-hip", [], "Progressive stiffness of the right hip, flexion 70 degrees", 40, site="hip:right")
    p.panel(12, alp=188, ca=9.5, phos=3.7, creat=0.9, egfr=102, crp=7, ck=140)
    p.proc("tha", [], "Right total hip arthroplasty", 128, site="hip:right")
    bone_scan(
        p,
        11,
        "Intense uptake in periarticular soft tissues of the right hip and proximal thigh, consistent "
        "with maturing heterotopic ossification.",
        [
            ("INDICATION", "Right THA 4 months ago after trauma; reduced range of motion."),
            ("TECHNIQUE", "Three-phase bone scan, Tc-99m MDP."),
            (
                "FINDINGS",
                "Increased blood flow and blood-pool activity lateral to the right hip prosthesis. "
                "Delayed images show intense, well-defined uptake in the periarticular soft tissues of the right "
                "hip extending into the proximal vastus lateralis. No skin or subcutaneous fat uptake elsewhere.",
            ),
            ("IMPRESSION", "Active heterotopic ossification around the right hip arthroplasty."),
        ],
        study=THREE_PHASE,
    )
    p.report(
        "xr-hip",
        XR_HIP,
        10,
        conclusion="Mature heterotopic bone with cortex and trabeculae lateral to the "
        "right hip prosthesis (Brooker class III).",
        sections=[
            (
                "FINDINGS",
                "Right total hip arthroplasty in satisfactory position. Large islands of mature bone "
                "with a peripheral cortex and internal trabeculae (zonal pattern) in the abductor muscles, "
                "leaving a gap of less than 1 cm between the pelvis and femur.",
            ),
            ("IMPRESSION", "Heterotopic ossification, Brooker III. No loosening."),
        ],
    )
    add(
        Case(
            id="ddx-heterotopic-ossification",
            service="calciphylaxis-risk",
            patient=p,
            summary="Man 4 months after trauma and a right hip arthroplasty with hip stiffness, raised ALP and "
            "periarticular mature ossification on X-ray and bone scan; normal kidney function.",
            top="heterotopic-ossification",
            not_top=["calciphylaxis", "tumoral-calcinosis", "dermatomyositis-calcinosis"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "prior trauma and surgery (S72.001D, Z96.641)",
                "periarticular (hip)",
                "mature ossification with cortex and trabeculae (zonal pattern)",
                "ALP raised early",
                "no skin necrosis",
                "normal eGFR",
            ],
        )
    )


def ddx_tumoral_calcinosis() -> None:
    p = Patient("cx-ddx-tumoral", "male", "1975-10-20", ["Tumoral", "Calcinosis"])
    p.esrd_on_dialysis(4200)
    p.cond(
        "phosphate-disorder",
        [coding(ICD, "E83.39", "Other disorders of phosphorus metabolism")],
        "Severe hyperphosphataemia, poorly controlled",
        "2019-02-01",
    )
    p.cond(
        "tumoral-masses",
        [],
        "Uremic tumoral calcinosis: painless firm masses at both shoulders and the right hip",
        240,
        site="shoulder:right,shoulder:left,hip:right",
    )
    p.sign(
        "periarticular-mass",
        "Painless, firm, lobulated periarticular masses, right shoulder 8 cm, left shoulder 5 cm, right hip 6 cm",
        240,
        "shoulder:right,shoulder:left,hip:right",
    )
    ckd_mbd_labs(p, ca=(9.6, 9.9), phos=(8.8, 9.4), pth=(520, 610), alb=(3.9, 3.8), alp=(110, 118))
    p.med("calcium-acetate", CALCIUM_ACETATE, "Calcium acetate 667 mg, 3 capsules with each meal", 2500)
    p.report(
        "xr-shoulder",
        XR_SHOULDER,
        30,
        conclusion="Large lobulated cloud-like periarticular calcific masses "
        "about both shoulders; typical of tumoral calcinosis.",
        sections=[
            (
                "FINDINGS",
                "Multilobulated, amorphous, cloud-like calcific masses in the periarticular soft "
                "tissues of the right shoulder (8 x 6 cm) and left shoulder (5 x 4 cm). The glenohumeral joints "
                "and adjacent bone are preserved. No vascular or subcutaneous net-like calcification.",
            ),
            ("IMPRESSION", "Periarticular tumoral calcinosis, bilateral shoulders, in a dialysis patient."),
        ],
    )
    p.report(
        "ct-pelvis",
        CT_ABD_PELVIS,
        28,
        conclusion="Lobulated calcific mass lateral to the right hip with "
        "fluid-calcium levels; uremic tumoral calcinosis.",
        sections=[
            (
                "FINDINGS",
                "A 6 cm multiloculated calcific mass lies in the periarticular soft tissues lateral "
                "to the right greater trochanter, with several fluid-calcium (sedimentation) levels. No bone "
                "erosion. No subcutaneous calcification elsewhere.",
            ),
            ("IMPRESSION", "Tumoral calcinosis, right hip."),
        ],
    )
    bone_scan(
        p,
        25,
        "Intense uptake in large periarticular soft-tissue masses at both shoulders and the right hip "
        "(tumoral calcinosis).",
        [
            (
                "FINDINGS",
                "Intense, lobulated radiotracer uptake in soft-tissue masses adjacent to both "
                "shoulders and lateral to the right hip, corresponding to the calcified masses on radiographs "
                "and CT. No heterogeneous subcutaneous uptake in the limbs or abdominal wall. No lung or gastric "
                "uptake.",
            ),
            (
                "IMPRESSION",
                "Periarticular soft-tissue uptake compatible with tumoral calcinosis. No "
                "scintigraphic features of calciphylaxis or metastatic visceral calcification.",
            ),
        ],
    )
    add(
        Case(
            id="ddx-tumoral-calcinosis",
            service="calciphylaxis-risk",
            patient=p,
            summary="Man on haemodialysis for 11 years with phosphate 9.4 mg/dL and painless lobulated calcific masses at "
            "both shoulders and the right hip, with fluid-calcium levels on CT.",
            top="tumoral-calcinosis",
            not_top=["calciphylaxis", "heterotopic-ossification", "metastatic-calcification"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "dialysis-associated",
                "painless periarticular lobulated masses (shoulders, hip)",
                "phosphate 9.4 mg/dL",
                "XR/CT: cloud-like lobulated calcification with fluid-calcium levels",
                "bone scan: intense uptake at the masses",
                "no skin lesion",
            ],
        )
    )


def ddx_warfarin_necrosis() -> None:
    p = Patient("cx-ddx-warfarin-necrosis", "female", "1974-01-30", ["Warfarin", "Necrosis"])
    p.cond(
        "dvt",
        [coding(ICD, "I82.401", "Acute embolism and thrombosis of unspecified deep veins of right lower extremity")],
        "Acute DVT, right leg (popliteal vein on duplex)",
        9,
    )
    p.cond(
        "protein-c-deficiency",
        [coding(ICD, "D68.59", "Other primary thrombophilia")],
        "Protein C deficiency (activity 38% on the thrombophilia screen before warfarin)",
        7,
    )
    p.cond(
        "warfarin-effect",
        [coding(ICD, "T45.515A", "Adverse effect of anticoagulants, initial encounter")],
        "Suspected warfarin-induced skin necrosis",
        1,
        verification="provisional",
        category="encounter-diagnosis",
        site="breast:left,thigh:right",
    )
    p.sign(
        "hemorrhagic-bullae",
        "Painful erythema progressing to haemorrhagic bullae, left breast and right anterior thigh",
        2,
        "breast:left,thigh:right",
    )
    p.sign(
        "skin-necrosis",
        "Sharply demarcated dusky necrosis of the left breast and right thigh",
        1,
        "breast:left,thigh:right",
    )
    p.panel(1, creat=0.7, egfr=104, ca=9.1, phos=3.5, alb=3.9, plt=245, hgb=12.6)
    p.lab(
        "protein-c",
        38,
        7,
        hhmm="06:00",
        interpretation="L",
        note="Drawn at DVT diagnosis, before the first warfarin dose",
    )
    for days, value in ((7, 1.1), (5, 1.9), (3, 3.0), (1, 3.6)):
        p.lab("inr", value, days)
    p.med(
        "warfarin",
        WARFARIN,
        "Warfarin 10 mg loading dose daily for 3 days, then 5 mg daily",
        6,
        reason="Acute right popliteal DVT",
    )
    p.med(
        "enoxaparin",
        ENOXAPARIN,
        "Enoxaparin 80 mg subcutaneously twice daily",
        9,
        status="stopped",
        reason="Acute DVT; stopped on day 3",
    )
    add(
        Case(
            id="ddx-warfarin-skin-necrosis",
            service="calciphylaxis-risk",
            patient=p,
            user=HOSPITALIST,
            summary="Woman with normal kidney function who started warfarin (10 mg loading, heparin stopped early) 6 days "
            "ago for a DVT and now has haemorrhagic bullae and necrosis of the breast and thigh; protein C 38%.",
            top="warfarin-skin-necrosis",
            not_top=["calciphylaxis", "necrotizing-soft-tissue-infection"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "warfarin started 6 days ago (days 3-10 window), high loading dose, early heparin stop",
                "fatty areas (breast, thigh)",
                "haemorrhagic bullae then necrosis",
                "protein C 38%",
                "INR rising 1.1 -> 3.6",
                "normal eGFR, no dialysis",
            ],
            notes="Calciphylaxis on warfarin usually follows long exposure (mean 32 months, Yu 2017); here exposure is "
            "6 days.",
        )
    )


def ddx_cholesterol_embolism() -> None:
    p = Patient("cx-ddx-cholesterol-emboli", "male", "1950-05-06", ["Atheroembolic", "Toes"])
    p.cond(
        "cad",
        [coding(ICD, "I25.10", "Atherosclerotic heart disease of native coronary artery without angina pectoris")],
        "Coronary artery disease",
        "2018-01-01",
    )
    p.cond("ckd4", [coding(ICD, "N18.4", "Chronic kidney disease, stage 4 (severe)")], "CKD stage 4", "2023-05-01")
    p.cond(
        "aki",
        [coding(ICD, "N17.9", "Acute kidney failure, unspecified")],
        "Acute on chronic kidney injury",
        8,
        category="encounter-diagnosis",
    )
    p.cond(
        "atheroembolism",
        [coding(ICD, "I75.023", "Atheroembolism of bilateral lower extremities")],
        "Suspected atheroembolism of both legs",
        2,
        verification="provisional",
        category="encounter-diagnosis",
        site="toe:right,toe:left",
    )
    p.sign("blue-toe", "Painful blue-purple discolouration of several toes on both feet", 10, "toe:right,toe:left")
    p.sign("livedo-reticularis", "Livedo reticularis of both feet and lower legs", 10, "lower-leg:right,lower-leg:left")
    p.sign(
        "pedal-pulses-present", "Dorsalis pedis and posterior tibial pulses palpable bilaterally despite blue toes", 3
    )
    for days, creat in ((30, 2.4), (14, 2.5), (8, 3.1), (2, 3.8)):
        p.lab("creat", creat, days)
    p.panel(2, egfr=15, eos=0.92, wbc=9.8, esr=72, c3=68, c4=11, ca=8.9, phos=4.6, alb=3.6)
    p.proc(
        "cardiac-cath", [CARDIAC_CATH], "Left heart catheterisation and coronary angiography via the femoral artery", 16
    )
    p.med("aspirin", ASPIRIN, "Aspirin 81 mg orally once daily", 2000)
    p.med("atorvastatin", ATORVASTATIN, "Atorvastatin 80 mg orally once daily", 2000)
    p.med("heparin", HEPARIN, "Heparin infusion during and after catheterisation", 16, status="completed")
    add(
        Case(
            id="ddx-cholesterol-embolism",
            service="calciphylaxis-risk",
            patient=p,
            summary="Man with CKD 4 who had femoral coronary angiography 16 days ago and now has blue toes, livedo, "
            "palpable pulses, eosinophilia (0.92 x10^3/uL), low complement and a rising creatinine.",
            top="cholesterol-embolism",
            not_top=["calciphylaxis", "peripheral-arterial-disease", "vasculitis"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "catheterisation 16 days ago (1-3 week window)",
                "blue toes with palpable pulses",
                "livedo",
                "eosinophilia",
                "low C3/C4, ESR 72",
                "creatinine rising 2.4 -> 3.8 (AKI on CKD 4)",
            ],
        )
    )


def ddx_vasculitis() -> None:
    p = Patient("cx-ddx-vasculitis", "female", "1966-03-18", ["Vasculitis", "Purpura"])
    p.cond("hcv", [coding(ICD, "B18.2", "Chronic viral hepatitis C")], "Chronic hepatitis C", "2010-01-01")
    p.cond("cryo", [coding(ICD, "D89.1", "Cryoglobulinemia")], "Mixed cryoglobulinaemia", 200)
    p.cond(
        "cutaneous-vasculitis",
        [coding(ICD, "L95.9", "Vasculitis limited to the skin, unspecified")],
        "Cutaneous small-vessel vasculitis of both lower legs",
        30,
        category="encounter-diagnosis",
        site="lower-leg:right,lower-leg:left",
    )
    p.cond(
        "ckd4",
        [coding(ICD, "N18.4", "Chronic kidney disease, stage 4 (severe)")],
        "CKD stage 4 from cryoglobulinaemic glomerulonephritis",
        180,
    )
    p.sign(
        "palpable-purpura",
        "Palpable purpura of both lower legs with small punched-out ulcers",
        30,
        "lower-leg:right,lower-leg:left",
    )
    p.cond("neuropathy", [], "Painful sensory mononeuritis multiplex, both feet", 90, site="foot:right,foot:left")
    p.sign("pedal-pulses-present", "Pedal pulses palpable", 5)
    p.panel(6, rf=412, c3=78, c4=3, esr=64, crp=38, creat=2.8, egfr=19, ca=8.8, phos=4.9, alb=3.3)
    p.lab("cryoglobulin", "Positive (type II, IgM kappa)", 6)
    p.lab("anca", "Negative", 6)
    p.proc("skin-biopsy", [PUNCH_BIOPSY], "Punch biopsy, purpuric papule, right shin", 20, site="lower-leg:right")
    p.report(
        "skin-pathology",
        PATHOLOGY,
        17,
        service="SP",
        conclusion="Leukocytoclastic vasculitis of superficial dermal vessels; no vascular calcification.",
        sections=[
            (
                "MICROSCOPIC",
                "Fibrinoid necrosis of superficial dermal venules with neutrophilic infiltrate and "
                "leukocytoclasia, extravasated erythrocytes. No calcification of subcutaneous arterioles (von "
                "Kossa negative). Direct immunofluorescence: IgM and C3 in vessel walls.",
            ),
            ("DIAGNOSIS", "Leukocytoclastic vasculitis, compatible with cryoglobulinaemic vasculitis."),
        ],
    )
    add(
        Case(
            id="ddx-vasculitis",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman with hepatitis C and mixed cryoglobulinaemia, CKD 4 from glomerulonephritis, palpable purpura "
            "and neuropathy; biopsy shows leukocytoclastic vasculitis without calcification.",
            top="vasculitis",
            not_top=["calciphylaxis", "cholesterol-embolism"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "palpable purpura",
                "mononeuritis",
                "glomerulonephritis",
                "cryoglobulins positive, RF 412, C4 3",
                "HCV",
                "biopsy: leukocytoclastic vasculitis, von Kossa negative",
            ],
        )
    )


def ddx_pad() -> None:
    p = Patient("cx-ddx-arterial", "male", "1952-09-09", ["Arterial", "Toe"])
    p.esrd_on_dialysis(1800)
    p.cond("diabetes", T2DM_CKD, "Type 2 diabetes with diabetic CKD", "2000-01-01")
    p.cond(
        "pad",
        [
            coding(
                ICD, "I70.235", "Atherosclerosis of native arteries of right leg with ulceration of other part of foot"
            ),
            coding(SCT, "399957001", "Peripheral arterial occlusive disease"),
        ],
        "Peripheral arterial disease with ulcer of the right second toe",
        50,
        site="toe:right",
    )
    p.cond(
        "gangrene",
        [coding(ICD, "I96", "Gangrene, not elsewhere classified"), coding(SCT, "372070002", "Gangrenous disorder")],
        "Dry gangrene of the tip of the right second toe",
        20,
        site="toe:right",
        category="encounter-diagnosis",
    )
    p.sign(
        "pedal-pulses-absent",
        "Dorsalis pedis and posterior tibial pulses absent on the right, weak on the left",
        50,
        "foot:right",
    )
    p.sign(
        "claudication",
        "Calf claudication after 50 metres for two years",
        700,
        "calf:right",
        category="problem-list-item",
    )
    p.sign("rest-pain", "Night rest pain of the right forefoot relieved by dependency", 40, "foot:right")
    ckd_mbd_labs(p, ca=(9.0, 9.1), phos=(5.0, 5.2), pth=(280, 300), alb=(3.8, 3.7))
    p.lab("abi", 0.48, 30, note="right; left 0.81")
    p.lab("tbi", 0.18, 30, note="right great toe")
    p.med("aspirin", ASPIRIN, "Aspirin 81 mg orally once daily", 2500)
    p.med("atorvastatin", ATORVASTATIN, "Atorvastatin 40 mg orally once daily", 2500)
    p.report(
        "abi-study",
        ABI_STUDY,
        30,
        service="VUS",
        conclusion="Severe right-sided arterial insufficiency (ABI 0.48, TBI 0.18); moderate on the left.",
        sections=[
            (
                "FINDINGS",
                "Right ABI 0.48 with monophasic posterior tibial and dorsalis pedis waveforms; "
                "right toe pressure 24 mmHg (TBI 0.18). Left ABI 0.81 with biphasic waveforms.",
            ),
            ("IMPRESSION", "Severe right lower-extremity arterial occlusive disease. Vessels compressible."),
        ],
    )
    add(
        Case(
            id="ddx-peripheral-arterial-disease",
            service="calciphylaxis-risk",
            patient=p,
            summary="Man on haemodialysis with diabetes, claudication and rest pain, absent right pedal pulses, ABI 0.48 "
            "and a dry gangrenous ulcer at the tip of the right second toe.",
            top="peripheral-arterial-disease",
            not_top=["calciphylaxis", "diabetic-ulcer", "cholesterol-embolism"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "absent pedal pulses",
                "ABI 0.48, TBI 0.18 (compressible vessels)",
                "distal toe ulcer with dry gangrene",
                "claudication and rest pain",
                "PAD codes I70.235, SNOMED 399957001",
            ],
            notes="Dialysis and diabetes raise the calciphylaxis prior; the absent pulses and low ABI should outweigh it.",
        )
    )


def ddx_nsf() -> None:
    p = Patient("cx-ddx-nsf", "female", "1968-04-11", ["Fibrosis", "Gadolinium"])
    p.cond(
        "ckd5",
        [
            coding(ICD, "N18.5", "Chronic kidney disease, stage 5"),
            coding(SCT, "433146000", "Chronic kidney disease stage 5"),
        ],
        "CKD stage 5, not yet on dialysis",
        "2024-02-01",
    )
    p.sign(
        "woody-induration",
        "Symmetric woody induration of both lower legs and forearms, spreading proximally; face spared",
        45,
        "lower-leg:right,lower-leg:left,forearm:right,forearm:left",
    )
    p.sign("peau-d-orange", "Peau d'orange skin of both thighs", 30, "thigh:right,thigh:left")
    p.cond(
        "knee-contracture",
        [coding(ICD, "M24.561", "Contracture, right knee"), coding(ICD, "M24.562", "Contracture, left knee")],
        "Flexion contractures of both knees (20 degrees)",
        20,
        site="knee:right,knee:left",
    )
    p.sign("scleral-plaques", "Yellow scleral plaques", 20)
    p.proc(
        "mri-gad",
        [MRI_LEG_GAD],
        "MRI left thigh without and with gadolinium (gadodiamide 0.1 mmol/kg) for a "
        "soft-tissue mass; eGFR 11 on the day",
        80,
        site="thigh:left",
    )
    p.lab("egfr", 11, 81)
    p.panel(10, egfr=10, creat=4.6, ca=8.9, phos=5.6, pth=340, alb=3.7)
    add(
        Case(
            id="ddx-nephrogenic-systemic-fibrosis",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman with CKD 5 (eGFR 11) who had a gadolinium-enhanced MRI 11 weeks ago and now has symmetric woody "
            "induration of the limbs, peau d'orange, knee contractures and scleral plaques, face spared.",
            top="nephrogenic-systemic-fibrosis",
            not_top=["calciphylaxis", "scleroderma-calcinosis"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "gadolinium MRI with eGFR < 30, 11 weeks before onset",
                "woody induration of distal limbs spreading proximally",
                "peau d'orange",
                "flexion contractures",
                "yellow scleral plaques",
                "face spared",
                "not ulcerative",
            ],
            notes="NSF has no ICD-10-CM code (sheet §5a); the signs are local codes and the gadolinium exposure is the "
            "MRI procedure (CPT 73720) with the agent in code.text.",
        )
    )


def ddx_oxalosis() -> None:
    p = Patient("cx-ddx-oxalosis", "male", "2001-08-23", ["Oxalosis", "Acral"])
    p.esrd_on_dialysis(1100)
    p.cond("ph1", [coding(ICD, "E72.53", "Primary hyperoxaluria")], "Primary hyperoxaluria type 1", "2009-01-01")
    p.cond(
        "stones",
        [coding(ICD, "N20.0", "Calculus of kidney"), coding(ICD, "Z87.442", "Personal history of urinary calculi")],
        "Recurrent nephrolithiasis and nephrocalcinosis since childhood",
        "2008-06-01",
    )
    p.sign("livedo-reticularis", "Livedo reticularis of both legs", 40, "lower-leg:right,lower-leg:left")
    p.sign("acrocyanosis", "Acrocyanosis of the toes", 40, "toe:right,toe:left")
    p.cond(
        "toe-ulcers",
        [coding(ICD, "L97.511", "Non-pressure chronic ulcer of other part of right foot limited to breakdown of skin")],
        "Painful acral ulcers, right 3rd and 4th toe tips",
        25,
        site="toe:right",
    )
    p.sign("pedal-pulses-present", "Pedal pulses palpable", 5)
    ckd_mbd_labs(p, ca=(9.1, 9.0), phos=(5.1, 5.4), pth=(290, 310), alb=(4.1, 4.0))
    p.lab("oxalate", 128, 10, interpretation="H")
    p.report(
        "xr-foot",
        XR_FOOT,
        15,
        conclusion="Dense metaphyseal bands and vascular calcification in the feet; "
        "appearance consistent with systemic oxalosis.",
        sections=[
            (
                "FINDINGS",
                "Dense sclerotic bands at the metaphyses of the metatarsals. Linear calcification of "
                "the digital arteries. No subcutaneous net-like calcification. No osteomyelitis.",
            ),
            (
                "IMPRESSION",
                "Findings consistent with oxalate osteopathy and vascular deposition in a patient "
                "with primary hyperoxaluria.",
            ),
        ],
    )
    add(
        Case(
            id="ddx-oxalosis",
            service="calciphylaxis-risk",
            patient=p,
            summary="Young man with primary hyperoxaluria on haemodialysis, recurrent stones since childhood, livedo, "
            "acrocyanosis and acral toe ulcers; plasma oxalate 128 umol/L.",
            top="oxalosis",
            not_top=["calciphylaxis", "peripheral-arterial-disease", "cholesterol-embolism"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "primary hyperoxaluria (E72.53)",
                "young age",
                "recurrent nephrolithiasis / nephrocalcinosis",
                "livedo, acrocyanosis, acral ulcers",
                "plasma oxalate markedly raised",
                "pulses present",
            ],
        )
    )


def ddx_pyoderma() -> None:
    p = Patient("cx-ddx-pyoderma", "female", "1981-06-06", ["Pyoderma", "Shin"])
    p.esrd_on_dialysis(900)
    p.cond(
        "uc",
        [coding(ICD, "K51.90", "Ulcerative colitis, unspecified, without complications")],
        "Ulcerative colitis",
        "2009-03-01",
    )
    p.cond(
        "pg",
        [coding(ICD, "L88", "Pyoderma gangrenosum"), coding(SCT, "74578003", "Pyoderma gangrenosum")],
        "Suspected pyoderma gangrenosum, left shin",
        5,
        verification="provisional",
        category="encounter-diagnosis",
        site="lower-leg:left",
    )
    p.cond(
        "ulcer-left-leg",
        [
            coding(
                ICD,
                "L97.821",
                "Non-pressure chronic ulcer of other part of left lower leg limited to breakdown of skin",
            )
        ],
        "Rapidly enlarging painful ulcer, left shin",
        21,
        site="lower-leg:left",
    )
    p.sign(
        "undermined-violaceous-border",
        "Ulcer with undermined, violaceous, overhanging border and purulent base",
        14,
        "lower-leg:left",
    )
    p.sign("pathergy", "Ulcer doubled in size after sharp debridement 10 days ago", 10, "lower-leg:left")
    p.sign("pedal-pulses-present", "Pedal pulses palpable", 5)
    ckd_mbd_labs(p, ca=(9.0, 9.2), phos=(4.7, 5.0), pth=(250, 270), alb=(3.7, 3.5))
    p.lab("crp", 46, 5)
    p.med("mesalamine", MESALAMINE, "Mesalamine 1.2 g orally twice daily", 3000)
    p.proc("debridement", [], "Sharp debridement of left shin ulcer", 10, site="lower-leg:left")
    add(
        Case(
            id="ddx-pyoderma-gangrenosum",
            service="calciphylaxis-risk",
            patient=p,
            user=DERMATOLOGIST,
            summary="Woman on haemodialysis with ulcerative colitis and a rapidly enlarging painful shin ulcer with an "
            "undermined violaceous border that doubled after debridement (pathergy).",
            top="pyoderma-gangrenosum",
            not_top=["calciphylaxis", "necrotizing-soft-tissue-infection"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "inflammatory bowel disease (K51.90)",
                "undermined violaceous border",
                "pathergy after debridement",
                "rapid enlargement",
                "no net-like calcification imaging",
                "normal mineral labs",
            ],
            notes="PG can coexist with calciphylaxis (sheet §4); a risk card is not expected with these features.",
        )
    )


def ddx_nsti() -> None:
    p = Patient("cx-ddx-necrotizing", "male", "1967-12-19", ["Necrotizing", "Thigh"])
    p.esrd_on_dialysis(1300)
    p.cond("diabetes", T2DM_CKD, "Type 2 diabetes with diabetic CKD", "2006-01-01")
    p.cond(
        "cellulitis",
        [coding(ICD, "L03.115", "Cellulitis of right lower limb")],
        "Cellulitis of the right thigh, spreading",
        1,
        category="encounter-diagnosis",
        site="thigh:right",
    )
    p.cond(
        "necrotizing-fasciitis",
        [coding(ICD, "M72.6", "Necrotizing fasciitis")],
        "Suspected necrotizing fasciitis, right thigh",
        0,
        verification="provisional",
        category="encounter-diagnosis",
        site="thigh:right",
    )
    p.cond(
        "sepsis", [coding(ICD, "A41.9", "Sepsis, unspecified organism")], "Sepsis", 0, category="encounter-diagnosis"
    )
    p.cond(
        "fever",
        [coding(ICD, "R50.9", "Fever, unspecified")],
        "Fever 39.4 C with rigors",
        1,
        category="encounter-diagnosis",
    )
    p.sign(
        "rapidly-spreading-erythema", "Erythema spreading 10 cm beyond the marked border in 8 hours", 0, "thigh:right"
    )
    p.sign("crepitus", "Crepitus on palpation of the right lateral thigh", 0, "thigh:right")
    p.sign(
        "pain-out-of-proportion",
        "Pain out of proportion to the skin findings",
        1,
        "thigh:right",
        extra=[coding(SCT, "22253000", "Pain")],
    )
    p.lab("temp", 39.4, 0, hhmm="06:10")
    p.panel(0, wbc=24.6, crp=310, lactate=4.1, ck=1850, alb=3.2, ca=8.6, phos=5.5)
    p.med("vancomycin", VANCOMYCIN, "Vancomycin 1.5 g IV loading dose after dialysis", 0)
    p.report(
        "ct-thigh",
        CT_LEG,
        0,
        hhmm="05:30",
        conclusion="Gas tracking along the fascial planes of the right thigh "
        "with fascial fluid; findings concerning for necrotizing fasciitis.",
        sections=[
            ("CLINICAL HISTORY", "Fever, spreading erythema right thigh, crepitus."),
            (
                "FINDINGS",
                "Soft-tissue gas dissecting along the deep fascia of the right lateral and posterior "
                "thigh with fascial thickening and fluid. Subcutaneous oedema. No subcutaneous calcification. No "
                "abscess collection.",
            ),
            (
                "IMPRESSION",
                "Findings concerning for necrotizing soft-tissue infection of the right thigh. "
                "Urgent surgical assessment recommended.",
            ),
        ],
    )
    add(
        Case(
            id="ddx-necrotizing-soft-tissue-infection",
            service="calciphylaxis-risk",
            patient=p,
            user=HOSPITALIST,
            summary="Diabetic man on haemodialysis with fever, sepsis, crepitus and erythema of the right thigh spreading "
            "over hours; CT shows fascial gas; WBC 24.6, CRP 310, lactate 4.1.",
            top="necrotizing-soft-tissue-infection",
            not_top=["calciphylaxis", "pyoderma-gangrenosum"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=[
                "fever, sepsis",
                "rapid spread over hours",
                "crepitus",
                "fascial gas on CT",
                "WBC 24.6, CRP 310, lactate 4.1, CK 1850",
                "pain out of proportion (shared with calciphylaxis)",
            ],
            notes="Pain out of proportion in a diabetic dialysis patient is shared with calciphylaxis; the infection "
            "markers and fascial gas must dominate.",
        )
    )


# ------------------------------------------------------------------- negative controls


def control_diabetic_foot() -> None:
    p = Patient("cx-control-diabetic-foot", "female", "1970-02-14", ["Control", "Foot"])
    p.cond(
        "diabetes",
        [
            coding(ICD, "E11.621", "Type 2 diabetes mellitus with foot ulcer"),
            coding(SCT, "44054006", "Diabetes mellitus type 2"),
        ],
        "Type 2 diabetes with foot ulcer",
        "2012-01-01",
    )
    p.cond(
        "neuropathy",
        [coding(ICD, "E11.42", "Type 2 diabetes mellitus with diabetic polyneuropathy")],
        "Diabetic polyneuropathy",
        "2019-01-01",
    )
    p.cond(
        "heel-ulcer",
        [coding(ICD, "L97.412", "Non-pressure chronic ulcer of right heel and midfoot with fat layer exposed")],
        "Neuropathic ulcer, right heel",
        45,
        site="heel:right",
    )
    p.sign("insensate-foot", "Loss of protective sensation both feet", 45, "foot:right,foot:left")
    p.sign("pedal-pulses-present", "Pedal pulses palpable", 10)
    p.panel(20, hba1c=8.2, creat=0.75, egfr=92, ca=9.5, phos=3.4, alb=4.2)
    p.med("metformin", METFORMIN, "Metformin 1000 mg orally twice daily", 3000)
    add(
        Case(
            id="control-diabetic-foot-ulcer-no-ckd",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman with type 2 diabetes, neuropathy and normal kidney function (eGFR 92) with a neuropathic heel "
            "ulcer.",
            top="diabetic-ulcer",
            not_top=["calciphylaxis"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=["no CKD (eGFR 92)", "neuropathic heel ulcer", "insensate foot", "pulses present"],
            notes="Negative control: silence expected.",
        )
    )


def control_esrd_no_skin() -> None:
    p = Patient("cx-control-esrd-no-skin", "male", "1959-04-04", ["Control", "Dialysis"])
    p.esrd_on_dialysis(2900)
    p.cond("diabetes", T2DM_CKD, "Type 2 diabetes with diabetic CKD", "2003-01-01")
    p.cond(
        "shpt",
        [coding(ICD, "N25.81", "Secondary hyperparathyroidism of renal origin")],
        "Secondary hyperparathyroidism",
        "2017-01-01",
    )
    ckd_mbd_labs(p, ca=(9.2, 9.3), phos=(5.3, 5.6), pth=(420, 460), alb=(3.9, 3.9), alp=(95, 102))
    bmi(p, 27.4)
    p.med("insulin", INSULIN_GLARGINE, "Insulin glargine 16 units at night", 2200)
    p.med("cinacalcet", CINACALCET, "Cinacalcet 30 mg orally once daily", 800)
    add(
        Case(
            id="control-esrd-no-skin-findings",
            service="calciphylaxis-risk",
            patient=p,
            encounter="hd-2026-11-21-b",
            summary="Man on haemodialysis for 8 years with diabetes and treated secondary hyperparathyroidism; no skin "
            "findings, no imaging.",
            top=None,
            not_top=["calciphylaxis"],
            cards=[],
            forbidden_cards=["risk-card"],
            features=["ESRD on haemodialysis > 5 years", "diabetes with insulin", "no skin lesion", "no imaging"],
            notes="Negative control: risk factors alone must not raise a card.",
        )
    )


def control_warfarin_af() -> None:
    p = Patient("cx-control-warfarin-af", "female", "1950-10-27", ["Control", "Anticoagulation"])
    p.esrd_on_dialysis(1000)
    p.cond(
        "af",
        [coding(ICD, "I48.91", "Unspecified atrial fibrillation"), coding(SCT, "49436004", "Atrial fibrillation")],
        "Atrial fibrillation, new",
        10,
        category="encounter-diagnosis",
    )
    p.cond("hypertension", [coding(ICD, "I10", "Essential (primary) hypertension")], "Hypertension", "2005-01-01")
    ckd_mbd_labs(p, ca=(9.1, 9.0), phos=(4.9, 5.1), pth=(300, 320), alb=(4.0, 4.0))
    bmi(p, 25.1)
    p.lab("inr", 1.0, 3)
    p.med("lisinopril", LISINOPRIL, "Lisinopril 10 mg orally once daily", 2000)
    draft = k.medication_request(
        p.id,
        "draft-warfarin",
        WARFARIN,
        text="Warfarin 2.5 mg tablet, 1 tablet orally once daily in the evening, dose by INR",
        requester=NEPHROLOGIST,
        dose=(2.5, "mg"),
        route="oral",
        frequency=(1, 1, "d"),
        reason="Atrial fibrillation, CHA2DS2-VASc 4",
    )
    add(
        Case(
            id="control-warfarin-af-no-lesions",
            service="calciphylaxis-order-sign",
            patient=p,
            drafts=[draft],
            summary="Woman on haemodialysis with new atrial fibrillation; warfarin is being signed; no skin lesions and no "
            "calciphylaxis history.",
            top=None,
            not_top=["calciphylaxis"],
            cards=[],
            forbidden_cards=["harmful-drug-warning", "risk-card"],
            features=[
                "warfarin draft order (RxNorm 11289)",
                "ESRD on haemodialysis",
                "no skin lesion",
                "no calciphylaxis diagnosis",
            ],
            notes="Negative control: the harmful-drug warning is for suspected or confirmed calciphylaxis only.",
        )
    )


# ------------------------------------------------------------------- order-time cases


def _biopsy_draft(pid: str, rid: str = "draft-skin-biopsy") -> dict[str, Any]:
    return k.service_request(
        pid,
        rid,
        PUNCH_BIOPSY,
        text="Punch biopsy of skin, left medial thigh plaque",
        requester=DERMATOLOGIST,
        site="thigh:left",
        reason="Painful violaceous plaque, ?calciphylaxis",
    )


def _bone_scan_draft(pid: str, rid: str = "draft-bone-scan") -> dict[str, Any]:
    return k.service_request(pid, rid, BONE_SCAN, text="NM bone scan whole body", requester=NEPHROLOGIST)


def order_biopsy_suspected() -> None:
    p = suspected_patient()
    draft = _biopsy_draft(p.id)
    add(
        Case(
            id="order-biopsy-suspected",
            service="calciphylaxis-order-select",
            patient=p,
            user=DERMATOLOGIST,
            drafts=[draft],
            selections=[f"ServiceRequest/{draft['id']}"],
            stage="suspected",
            summary="Skin punch biopsy (CPT 11104) selected for a dialysis patient with suspected calciphylaxis of the "
            "left thigh and no bone scan yet.",
            top="calciphylaxis",
            not_top=[],
            cards=["biopsy-advice"],
            forbidden_cards=["harmful-drug-warning", "thiosulfate-monitoring"],
            features=[
                "draft ServiceRequest CPT 11104",
                "suspected calciphylaxis (provisional Condition)",
                "no bone scan on record",
                "proximal (thigh) biopsy site",
            ],
            notes="Expected: suggest a bone scan first (first-biopsy sensitivity ~52%, complications ~14%), leave the "
            "biopsy to the clinician, and advise a deep punch; the thigh is proximal, so the distal-site advice "
            "applies.",
        )
    )


def order_bone_scan_suspected() -> None:
    p = suspected_patient()
    draft = _bone_scan_draft(p.id)
    add(
        Case(
            id="order-bone-scan-suspected",
            service="calciphylaxis-order-sign",
            patient=p,
            drafts=[draft],
            stage="suspected",
            summary="Whole-body bone scan (CPT 78306) being signed without a clinical question for a patient with "
            "suspected calciphylaxis of the left thigh and abdomen.",
            top="calciphylaxis",
            not_top=[],
            cards=["bone-scan-question"],
            forbidden_cards=["harmful-drug-warning", "biopsy-advice"],
            features=[
                "draft ServiceRequest CPT 78306 without reasonCode",
                "suspected calciphylaxis",
                "lesion sites: left thigh, abdomen",
            ],
            notes="Expected: an update suggestion adding a reasonCode and a note naming the lesion sites (left thigh, "
            "lower abdomen).",
        )
    )


def order_warfarin_suspected() -> None:
    p = suspected_patient()
    p.cond(
        "af",
        [coding(ICD, "I48.91", "Unspecified atrial fibrillation"), coding(SCT, "49436004", "Atrial fibrillation")],
        "Atrial fibrillation, new",
        4,
        category="encounter-diagnosis",
    )
    draft = k.medication_request(
        p.id,
        "draft-warfarin",
        WARFARIN,
        text="Warfarin 5 mg tablet, 1 tablet orally once daily, dose by INR",
        requester=NEPHROLOGIST,
        dose=(5, "mg"),
        route="oral",
        frequency=(1, 1, "d"),
        reason="Atrial fibrillation",
    )
    add(
        Case(
            id="order-warfarin-suspected",
            service="calciphylaxis-order-select",
            patient=p,
            drafts=[draft],
            selections=[f"MedicationRequest/{draft['id']}"],
            stage="suspected",
            summary="Warfarin selected for new atrial fibrillation in a dialysis patient with suspected calciphylaxis.",
            top="calciphylaxis",
            not_top=[],
            cards=["harmful-drug-warning"],
            forbidden_cards=["thiosulfate-monitoring"],
            features=["draft MedicationRequest warfarin (RxNorm 11289)", "suspected calciphylaxis"],
            notes="Warning indicator (not critical: not confirmed); suggestion to remove the draft; alternatives; "
            "override reasons.",
        )
    )


def order_warfarin_confirmed() -> None:
    p = confirmed_patient()
    draft = k.medication_request(
        p.id,
        "draft-warfarin",
        WARFARIN,
        text="Warfarin 3 mg tablet, 1 tablet orally once daily, dose by INR",
        requester="Practitioner/cardiologist-5",
        dose=(3, "mg"),
        route="oral",
        frequency=(1, 1, "d"),
        reason="Paroxysmal atrial fibrillation",
    )
    add(
        Case(
            id="order-warfarin-confirmed",
            service="calciphylaxis-order-sign",
            patient=p,
            drafts=[draft],
            user="Practitioner/cardiologist-5",
            stage="confirmed",
            summary="Warfarin re-start being signed by cardiology for a patient with biopsy-proven calciphylaxis "
            "(warfarin stopped at diagnosis 5 weeks ago).",
            top="calciphylaxis",
            not_top=[],
            cards=["harmful-drug-warning"],
            forbidden_cards=["biopsy-advice"],
            features=[
                "draft MedicationRequest warfarin",
                "confirmed calciphylaxis (SNOMED 237900002, biopsy, pathology)",
                "warfarin previously stopped for calciphylaxis",
            ],
            notes="Critical indicator expected (direct harm in a confirmed case).",
        )
    )


def order_calcium_acetate_suspected() -> None:
    p = suspected_patient()
    draft = k.medication_request(
        p.id,
        "draft-calcium-acetate",
        CALCIUM_ACETATE,
        text="Calcium acetate 667 mg capsule, 2 capsules orally with each meal",
        requester=NEPHROLOGIST,
        dose=(1334, "mg"),
        route="oral",
        frequency=(3, 1, "d"),
        reason="Phosphate 7.1 mg/dL",
    )
    add(
        Case(
            id="order-calcium-acetate-suspected",
            service="calciphylaxis-order-select",
            patient=p,
            drafts=[draft],
            selections=[f"MedicationRequest/{draft['id']}"],
            stage="suspected",
            summary="Calcium acetate selected for hyperphosphataemia in a dialysis patient with suspected calciphylaxis.",
            top="calciphylaxis",
            not_top=[],
            cards=["harmful-drug-warning"],
            forbidden_cards=["thiosulfate-monitoring"],
            features=[
                "draft MedicationRequest calcium acetate (RxNorm 214342 [R])",
                "suspected calciphylaxis",
                "phosphate 7.1 mg/dL",
            ],
            notes="Warning; alternative: a non-calcium binder.",
        )
    )


def order_calcium_acetate_confirmed() -> None:
    p = confirmed_patient()
    draft = k.medication_request(
        p.id,
        "draft-calcium-acetate",
        CALCIUM_ACETATE,
        text="Calcium acetate 667 mg capsule, 2 capsules orally with each meal",
        requester=NEPHROLOGIST,
        dose=(1334, "mg"),
        route="oral",
        frequency=(3, 1, "d"),
        reason="Hyperphosphataemia",
    )
    add(
        Case(
            id="order-calcium-acetate-confirmed",
            service="calciphylaxis-order-sign",
            patient=p,
            drafts=[draft],
            stage="confirmed",
            summary="Calcium acetate being signed for a patient with biopsy-proven calciphylaxis.",
            top="calciphylaxis",
            not_top=[],
            cards=["harmful-drug-warning"],
            forbidden_cards=["biopsy-advice"],
            features=["draft MedicationRequest calcium acetate", "confirmed calciphylaxis"],
            notes="Critical indicator expected.",
        )
    )


def order_calcitriol_suspected() -> None:
    p = suspected_patient()
    draft = k.medication_request(
        p.id,
        "draft-calcitriol",
        CALCITRIOL,
        text="Calcitriol 0.5 mcg capsule, 1 capsule orally three times weekly after dialysis",
        requester=NEPHROLOGIST,
        dose=(0.5, "ug"),
        route="oral",
        frequency=(3, 1, "wk"),
        reason="PTH 1150 pg/mL",
    )
    add(
        Case(
            id="order-calcitriol-suspected",
            service="calciphylaxis-order-select",
            patient=p,
            drafts=[draft],
            selections=[f"MedicationRequest/{draft['id']}"],
            stage="suspected",
            summary="Calcitriol selected for PTH 1150 pg/mL in a dialysis patient with suspected calciphylaxis.",
            top="calciphylaxis",
            not_top=[],
            cards=["harmful-drug-warning"],
            forbidden_cards=["thiosulfate-monitoring"],
            features=[
                "draft MedicationRequest calcitriol (RxNorm 1894 [R])",
                "suspected calciphylaxis",
                "PTH > 1000 pg/mL",
            ],
            notes="Warning; alternatives: calcimimetic, parathyroidectomy referral per the sheet.",
        )
    )


def order_calcitriol_confirmed() -> None:
    p = confirmed_patient()
    draft = k.medication_request(
        p.id,
        "draft-calcitriol",
        CALCITRIOL,
        text="Calcitriol 0.25 mcg capsule, 1 capsule orally once daily",
        requester=NEPHROLOGIST,
        dose=(0.25, "ug"),
        route="oral",
        frequency=(1, 1, "d"),
        reason="Secondary hyperparathyroidism",
    )
    add(
        Case(
            id="order-calcitriol-confirmed",
            service="calciphylaxis-order-select",
            patient=p,
            drafts=[draft],
            selections=[f"MedicationRequest/{draft['id']}"],
            stage="confirmed",
            summary="Calcitriol selected for a patient with biopsy-proven calciphylaxis.",
            top="calciphylaxis",
            not_top=[],
            cards=["harmful-drug-warning"],
            forbidden_cards=["biopsy-advice"],
            features=["draft MedicationRequest calcitriol", "confirmed calciphylaxis"],
            notes="Critical indicator expected.",
        )
    )


def order_thiosulfate_confirmed() -> None:
    p = confirmed_patient()
    draft = k.medication_request(
        p.id,
        "draft-sodium-thiosulfate",
        THIOSULFATE,
        text="Sodium thiosulfate 25 g in "
        "100 mL IV over 60 minutes during the last hour of each haemodialysis, 3 times "
        "weekly",
        requester=NEPHROLOGIST,
        dose=(25, "g"),
        route="intravenous",
        frequency=(3, 1, "wk"),
        reason="Calciphylaxis, biopsy-proven",
    )
    add(
        Case(
            id="order-thiosulfate-confirmed",
            service="calciphylaxis-order-sign",
            patient=p,
            drafts=[draft],
            stage="confirmed",
            summary="Sodium thiosulfate 25 g IV three times weekly with dialysis being signed for biopsy-proven "
            "calciphylaxis.",
            top="calciphylaxis",
            not_top=[],
            cards=["thiosulfate-monitoring"],
            forbidden_cards=["harmful-drug-warning", "biopsy-advice"],
            features=[
                "draft MedicationRequest sodium thiosulfate (RxNorm 56466 [R])",
                "confirmed calciphylaxis",
                "baseline bone scan 45 days ago",
            ],
            notes="Info card: anion-gap acidosis, blood pressure during infusion, Ca/P/PTH monitoring; a follow-up bone "
            "scan against the existing baseline to follow the response.",
        )
    )


def order_biopsy_and_bone_scan() -> None:
    p = suspected_patient()
    biopsy = _biopsy_draft(p.id)
    scan = _bone_scan_draft(p.id)
    add(
        Case(
            id="order-biopsy-and-bone-scan-suspected",
            service="calciphylaxis-order-sign",
            patient=p,
            drafts=[biopsy, scan],
            stage="suspected",
            summary="A skin biopsy and a whole-body bone scan signed together for a patient with suspected "
            "calciphylaxis.",
            top="calciphylaxis",
            not_top=[],
            cards=["biopsy-advice", "bone-scan-question"],
            forbidden_cards=["harmful-drug-warning"],
            features=["two draft orders: CPT 11104 and CPT 78306", "suspected calciphylaxis"],
            notes="Each draft gets its own advice and no card is repeated; the biopsy card need not suggest ordering "
            "a bone scan that is already in the same signature.",
        )
    )


def order_warfarin_and_calcium_confirmed() -> None:
    p = confirmed_patient()
    warfarin = k.medication_request(
        p.id,
        "draft-warfarin",
        WARFARIN,
        text="Warfarin 3 mg tablet, 1 tablet orally once daily, dose by INR",
        requester=HOSPITALIST,
        dose=(3, "mg"),
        route="oral",
        frequency=(1, 1, "d"),
        reason="Paroxysmal atrial fibrillation",
    )
    calcium = k.medication_request(
        p.id,
        "draft-calcium-acetate",
        CALCIUM_ACETATE,
        text="Calcium acetate 667 mg capsule, 2 capsules orally with each meal",
        requester=HOSPITALIST,
        dose=(1334, "mg"),
        route="oral",
        frequency=(3, 1, "d"),
        reason="Hyperphosphataemia",
    )
    add(
        Case(
            id="order-warfarin-and-calcium-acetate-confirmed",
            service="calciphylaxis-order-select",
            patient=p,
            drafts=[warfarin, calcium],
            user=HOSPITALIST,
            selections=[f"MedicationRequest/{warfarin['id']}", f"MedicationRequest/{calcium['id']}"],
            stage="confirmed",
            summary="Admission medication reconciliation re-selects warfarin and calcium acetate together for a patient "
            "with biopsy-proven calciphylaxis.",
            top="calciphylaxis",
            not_top=[],
            cards=["harmful-drug-warning"],
            forbidden_cards=["thiosulfate-monitoring"],
            features=["two draft orders: warfarin and calcium acetate", "confirmed calciphylaxis"],
            notes="Both drafts must be named with a remove suggestion each (one card per draft or one card with two "
            "suggestions); no duplicate card for the same draft.",
        )
    )


# ------------------------------------------------------------------- radiologist (report-review hook)


def review_source_like() -> None:
    p = Patient("cx-review-calves", "male", "1961-08-01", ["Review", "Calves"])
    p.esrd_on_dialysis(4700)
    p.cond("diabetes", T2DM_CKD, "Type 2 diabetes with diabetic CKD", "2001-05-01")
    p.cond(
        "shpt",
        [coding(ICD, "N25.81", "Secondary hyperparathyroidism of renal origin")],
        "Secondary hyperparathyroidism",
        "2016-01-01",
    )
    p.cond(
        "ulcer-right-calf",
        [coding(ICD, "L97.212", "Non-pressure chronic ulcer of right calf with fat layer exposed")],
        "Nonhealing ulcer, right lower leg (calf)",
        95,
        site="calf:right",
    )
    p.cond(
        "ankle-pain",
        [
            coding(ICD, "M25.571", "Pain in right ankle and joints of right foot"),
            coding(ICD, "M25.572", "Pain in left ankle and joints of left foot"),
        ],
        "Bilateral ankle pain",
        70,
    )
    p.cond("knee-arthroplasty", [], "Right total knee arthroplasty (2019)", "2019-04-10", site="knee:right")
    ckd_mbd_labs(p, ca=(9.1, 9.5), phos=(6.2, 7.4), pth=(540, 680), alb=(3.4, 2.9))
    bmi(p, 31.2)
    p.med("calcium-acetate", CALCIUM_ACETATE, "Calcium acetate 667 mg, 2 capsules with each meal", 2700)
    p.med("calcitriol", CALCITRIOL, "Calcitriol 0.25 mcg three times weekly after dialysis", 2500)
    p.report(
        "ct-legs",
        CT_LEG,
        6,
        conclusion="Subcutaneous and cutaneous calcifications of both calves with a "
        "net-like small-vessel pattern; metastatic calcification cannot be excluded.",
        sections=[
            (
                "FINDINGS",
                "Subcutaneous and cutaneous calcifications in both calves, right more than left, "
                "with net-like calcification of small subcutaneous vessels. Medial calcification of the tibial "
                "arteries.",
            ),
            (
                "IMPRESSION",
                "Subcutaneous vascular calcification of both calves; cannot exclude metastatic "
                "calcification, although the distribution favours calciphylaxis.",
            ),
        ],
    )
    draft = bone_scan(
        p,
        0,
        "Asymmetric pronounced subcutaneous uptake in both calves on a background of diffuse "
        "soft-tissue retention; compatible with calciphylaxis.",
        [
            (
                "CLINICAL HISTORY",
                "Long-term hemodialysis, diabetes, nonhealing right calf ulcer, bilateral ankle pain.",
            ),
            ("TECHNIQUE", "Whole-body planar images 3 h after 740 MBq Tc-99m HDP."),
            ("COMPARISON", "CT lower extremities 6 days prior."),
            (
                "FINDINGS",
                "Diffuse soft-tissue activity throughout, in keeping with delayed clearance "
                "in renal failure. Superimposed asymmetric, pronounced, heterogeneous subcutaneous uptake "
                "in both calves, right greater than left, at the sites of the calcifications on CT and "
                "of the right calf ulcer. Faint renal activity. Photopenia at the right knee arthroplasty. "
                "Degenerative uptake in the left midfoot. No soft-tissue uptake in the upper "
                "extremities, lungs or stomach.",
            ),
            (
                "IMPRESSION",
                "Heterogeneous subcutaneous uptake in both calves corresponding to the "
                "clinical lesion and the CT calcifications, compatible with calciphylaxis in this "
                "dialysis patient. Diffuse background soft-tissue activity from renal failure.",
            ),
        ],
        status="preliminary",
        keep=False,
        stem="draft-bone-scan",
        hhmm="07:00",
    )
    add(
        Case(
            id="review-bone-scan-calves",
            service="calciphylaxis-report-review",
            patient=p,
            user=RADIOLOGIST,
            review_report=draft,
            draft_in_context=True,
            summary="Radiologist reviewing a draft bone scan of a source-case-like dialysis patient: pronounced asymmetric "
            "subcutaneous calf uptake over diffuse renal-failure activity, matching CT calcifications and the "
            "right calf ulcer.",
            top="calciphylaxis",
            not_top=["renal-failure-soft-tissue-clearance", "metastatic-calcification", "venous-insufficiency"],
            cards=["radiology-differential"],
            features=[
                "heterogeneous subcutaneous uptake in both calves matching the ulcer and CT calcifications",
                "diffuse background activity (renal failure) as a second, coexisting finding",
                "photopenia at the knee arthroplasty and degenerative midfoot uptake (incidental, must not count)",
                "ESRD > 12 years, calcium binder, calcitriol, albumin 2.9",
            ],
            notes="Same pattern as the source case, for the reverse-domain hook; the draft report is sent in the context "
            "and as the `report` prefetch.",
        )
    )


def review_diffuse_symmetric() -> None:
    p = Patient("cx-review-diffuse", "female", "1957-01-12", ["Review", "Diffuse"])
    p.esrd_on_dialysis(2200)
    p.cond("back-pain", [], "Chronic low back pain; bone scan to exclude occult fracture", 60)
    ckd_mbd_labs(p, ca=(9.0, 9.2), phos=(5.0, 5.3), pth=(350, 380), alb=(3.9, 3.8))
    draft = bone_scan(
        p,
        0,
        "Diffuse symmetric soft-tissue activity attributable to renal failure. No focal "
        "soft-tissue or osseous abnormality.",
        [
            ("EXAM", "Whole-body bone scintigraphy, Tc-99m MDP."),
            ("INDICATION", "Low back pain, hemodialysis. Occult fracture?"),
            (
                "FINDINGS",
                "Symmetric, homogeneous, diffusely increased soft tissue activity in both "
                "upper and lower extremities and the trunk with reduced bone-to-background ratio. No "
                "heterogeneous or asymmetric subcutaneous uptake; no focal uptake in the calves, thighs or "
                "abdominal wall. Kidneys not seen. No lung or gastric uptake. Mild degenerative uptake at "
                "L4-L5 facets. No fracture.",
            ),
            (
                "IMPRESSION",
                "1. Diffuse symmetric soft-tissue retention of tracer, a recognised pattern "
                "of delayed clearance in renal failure; no scintigraphic sign of soft-tissue "
                "calcification. 2. Degenerative lumbar facet uptake.",
            ),
        ],
        status="preliminary",
        keep=False,
        stem="draft-bone-scan",
        hhmm="07:00",
    )
    add(
        Case(
            id="review-bone-scan-diffuse-symmetric",
            service="calciphylaxis-report-review",
            patient=p,
            user=RADIOLOGIST,
            review_report=draft,
            summary="Radiologist reviewing a draft bone scan in a dialysis patient without skin lesions: "
            "diffuse, symmetric, "
            "homogeneous soft-tissue activity only.",
            top="renal-failure-soft-tissue-clearance",
            not_top=["calciphylaxis", "metastatic-calcification"],
            cards=["radiology-differential"],
            forbidden_cards=["risk-card"],
            features=[
                "diffuse symmetric homogeneous soft-tissue activity",
                "no focal/heterogeneous uptake",
                "no skin lesion",
                "ESRD on haemodialysis",
                "degenerative facet uptake (incidental)",
            ],
            notes="Issue 5 done-when: renal-failure clearance ranks above calciphylaxis. The draft report is only in the "
            "`report` prefetch (not in the context), to exercise that path.",
        )
    )


SOURCE_CASE_ENTRY: dict[str, Any] = {
    "id": "source-case",
    "file": "source-case.patient-view.json",
    "hook": "patient-view",
    "service": "calciphylaxis-risk",
    "summary": "Embellished variant of the seed case report (written by the lead; the faithful case is "
    "source-case-faithful): 65-year-old man on long-term dialysis with diabetes, a nonhealing right calf "
    "ulcer and bilateral ankle pain; bone scan with asymmetric subcutaneous calf uptake over diffuse "
    "renal-failure activity, CT subcutaneous calcifications at the same sites, biopsy done.",
    "expected_top": "calciphylaxis",
    "must_not_rank_first": [
        "renal-failure-soft-tissue-clearance",
        "metastatic-calcification",
        "venous-insufficiency",
        "diabetic-ulcer",
    ],
    "cards": ["risk-card"],
    "forbidden_cards": ["harmful-drug-warning"],
    "silent": False,
    "key_features": [
        "ESRD on dialysis since 2013",
        "diabetes",
        "nonhealing right calf ulcer",
        "calcium acetate and calcitriol",
        "albumin 2.9",
        "bone scan: heterogeneous subcutaneous calf uptake at the lesion",
        "CT: net-like subcutaneous calcification at the same sites",
        "biopsy procedure on record",
    ],
    "notes": "Issue 6 done-when: calciphylaxis first with a warning or critical card. Variant, not the published "
    "case (review V-12): calcium acetate, calcitriol, albumin 2.9, the net-like CT pattern, BMI 31, "
    "Ca x P > 70, secondary hyperparathyroidism and the biopsy date before the scan are not in the case "
    "report.",
}

BUILDERS = [
    cohort_early_plaque,
    cohort_abdominal_nodules,
    cohort_ulcerated_negative_scan,
    cohort_esrd_control_diffuse,
    cohort_esrd_control_normal,
    ddx_venous_insufficiency,
    ddx_venous_thrombosis,
    ddx_diabetic_ulcer,
    ddx_metastatic_calcification,
    ddx_scleroderma,
    ddx_dermatomyositis,
    ddx_sle,
    ddx_heterotopic_ossification,
    ddx_tumoral_calcinosis,
    ddx_warfarin_necrosis,
    ddx_cholesterol_embolism,
    ddx_vasculitis,
    ddx_pad,
    ddx_nsf,
    ddx_oxalosis,
    ddx_pyoderma,
    ddx_nsti,
    cohort_thiosulfate_response,
    cohort_negative_first_biopsy,
    nonuremic_warfarin_calciphylaxis,
    control_diabetic_foot,
    control_esrd_no_skin,
    control_warfarin_af,
    order_biopsy_suspected,
    order_bone_scan_suspected,
    order_warfarin_suspected,
    order_warfarin_confirmed,
    order_calcium_acetate_suspected,
    order_calcium_acetate_confirmed,
    order_calcitriol_suspected,
    order_calcitriol_confirmed,
    order_thiosulfate_confirmed,
    order_biopsy_and_bone_scan,
    order_warfarin_and_calcium_confirmed,
    review_source_like,
    review_diffuse_symmetric,
]


# ------------------------------------------------------------------- real EHR data (issue 13): one example per
# recognition layer. A lesion known only by its text, home warfarin as a MedicationStatement named by brand, a PTH
# above the assay's range (comparator), a pathology report carrying the biopsy result, a brand-name draft order.


def realdata_text_only_lesion() -> None:
    p = Patient("cx-realdata-text-lesion", "female", "1958-11-30", ["Realdata", "Textlesion"])
    p.esrd_on_dialysis(2700)
    # Problem-list entries the EHR kept as free text (no coding at all).
    p.cond(
        "plaque",
        [],
        "Exquisitely painful indurated plaque, left medial thigh",
        16,
        site="thigh:left",
        category="encounter-diagnosis",
    )
    p.cond(
        "necrosis",
        [],
        "Necrotic ulcer with black eschar at the centre of the left thigh plaque",
        9,
        site="thigh:left",
        category="encounter-diagnosis",
    )
    p.sign("pedal-pulses-present", "Pedal pulses palpable bilaterally", 4)
    ckd_mbd_labs(p, ca=(9.3, 9.5), phos=(6.2, 6.8), pth=(1450, 2000), alb=(3.4, 3.0))
    # The latest PTH is above the assay's reportable range: ">2000 pg/mL".
    p.labs[-2]["valueQuantity"]["comparator"] = ">"
    bmi(p, 36.1)
    # Home warfarin, recorded from the patient's own medication list and named by its brand only.
    p.meds.append(
        {
            "resourceType": "MedicationStatement",
            "id": p._id("home-warfarin"),
            "status": "active",
            "medicationCodeableConcept": {"text": "Coumadin 5 mg tablet, one daily (home medication)"},
            "subject": p.ref,
            "effectivePeriod": {"start": k.day(1100)},
            "dateAsserted": k.day(16),
            "informationSource": p.ref,
        }
    )
    add(
        Case(
            id="realdata-text-only-lesion",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman on haemodialysis whose painful indurated thigh plaque and necrotic eschar are recorded only as "
            "free text, with home warfarin known by its brand (Coumadin) on a MedicationStatement and a PTH "
            "reported as '>2000 pg/mL'.",
            top="calciphylaxis",
            not_top=["pyoderma-gangrenosum", "warfarin-skin-necrosis"],
            cards=["risk-card"],
            forbidden_cards=["harmful-drug-warning"],
            features=[
                "lesions known only by text (text layer)",
                "brand-name home warfarin on a MedicationStatement",
                "PTH '>2000 pg/mL' counts as above 1000",
                "central (thigh) lesion",
                "obesity (BMI 36)",
            ],
            notes="Issue 13: without the text layer, the MedicationStatement and comparator handling this record has no "
            "lesion, no warfarin and no PTH above 1000.",
        )
    )


def realdata_pathology_brand_order() -> None:
    p = Patient("cx-realdata-pathology", "male", "1962-04-17", ["Realdata", "Pathology"])
    p.esrd_on_dialysis(3100)
    p.cond(
        "ulcer-right-calf",
        [coding(ICD, "L97.212", "Non-pressure chronic ulcer of right calf with fat layer exposed")],
        "Painful necrotic ulcer, right posterior calf",
        50,
        site="calf:right",
    )
    p.sign("pedal-pulses-present", "Pedal pulses palpable bilaterally", 10)
    ckd_mbd_labs(p, ca=(9.6, 9.2), phos=(6.5, 6.0), pth=(700, 640), alb=(3.5, 3.2))
    bmi(p, 31.0)
    p.proc("biopsy", [PUNCH_BIOPSY], "Deep punch biopsy, margin of right calf ulcer", 30, site="calf:right")
    # The result exists only in the pathology report (no calciphylaxis diagnosis on the problem list yet).
    p.report(
        "skin-pathology",
        PATHOLOGY,
        27,
        service="SP",
        conclusion="Skin and subcutis, right calf, punch biopsy: calcific uremic arteriolopathy (calciphylaxis).",
        sections=[
            ("SPECIMEN", "Skin and subcutaneous fat, right posterior calf, 6 mm deep punch."),
            (
                "MICROSCOPIC",
                "Medial calcification of small subcutaneous arterioles with intimal hyperplasia, "
                "microthrombi and septal fat necrosis. No vasculitis.",
            ),
            ("DIAGNOSIS", "Calcific uremic arteriolopathy (calciphylaxis)."),
        ],
    )
    draft = k.medication_request(
        p.id, "draft-jantoven", [], text="Jantoven 5 mg oral tablet", requester="Practitioner/cardiologist-5"
    )
    add(
        Case(
            id="realdata-pathology-brand-order",
            service="calciphylaxis-order-sign",
            patient=p,
            user="Practitioner/cardiologist-5",
            summary="Man on haemodialysis whose calciphylaxis is stated only in the pathology report of a calf biopsy; "
            "warfarin is ordered by its brand name (Jantoven) with no code.",
            top="calciphylaxis",
            not_top=[],
            cards=["harmful-drug-warning"],
            forbidden_cards=[],
            drafts=[draft],
            features=["biopsy result read from the pathology report text", "brand-name draft order without a code"],
            notes="Issue 13: the order must give the warfarin warning although neither the diagnosis nor the drug is coded.",
        )
    )


BUILDERS += [realdata_text_only_lesion, realdata_pathology_brand_order]
# ------------------------------------------------------------------- order-time safety cases (issue 14)


def order_warfarin_mechanical_valve_nonuremic() -> None:
    """Review S-3: the shipped non-uraemic patient, with the warfarin order's reason coded as EHRs code it."""
    p = Patient("cx-valve-warfarin", "female", "1951-06-12", ["Valve", "Warfarin"])
    p.cond(
        "mitral-valve",
        [coding(ICD, "Z95.2", "Presence of prosthetic heart valve")],
        "Mechanical mitral valve replacement (On-X, 2023)",
        "2023-09-01",
    )
    p.cond(
        "af",
        [coding(ICD, "I48.91", "Unspecified atrial fibrillation"), coding(SCT, "49436004", "Atrial fibrillation")],
        "Atrial fibrillation",
        "2023-09-01",
    )
    p.cond(
        "ulcer-left-calf",
        [coding(ICD, "L97.222", "Non-pressure chronic ulcer of left calf with fat layer exposed")],
        "Painful stellate ulcer, left medial calf",
        30,
        site="calf:left",
    )
    p.sign("retiform-purpura", "Retiform purpura of both medial calves", 42, "calf:right,calf:left")
    p.sign(
        "pain-out-of-proportion",
        "Severe calf pain out of proportion to the lesions",
        42,
        "calf:right,calf:left",
        extra=[coding(SCT, "22253000", "Pain")],
    )
    p.panel(8, creat=0.9, egfr=66, ca=9.2, phos=3.4, alb=3.3, inr=2.9)
    bmi(p, 34.5, 8)
    p.med(
        "warfarin",
        WARFARIN,
        "Warfarin 6 mg orally once daily, dose by INR",
        1160,
        reason="Mechanical mitral valve; atrial fibrillation",
    )
    bone_scan(
        p,
        6,
        "Heterogeneous subcutaneous uptake in both medial calves at the painful lesions.",
        [
            ("CLINICAL HISTORY", "Painful purpuric calf lesions. On warfarin 3 years. Normal renal function."),
            (
                "FINDINGS",
                "Patchy heterogeneous subcutaneous uptake in the medial aspect of both calves, left more than "
                "right, corresponding to the marked lesions. No visceral uptake. Skeleton unremarkable.",
            ),
            (
                "IMPRESSION",
                "Heterogeneous subcutaneous calf uptake at the clinical lesions; calciphylaxis should be considered.",
            ),
        ],
    )
    draft = k.medication_request(
        p.id,
        "draft-warfarin",
        WARFARIN,
        text="Warfarin 5 mg tablet, 1 tablet orally once daily, dose by INR",
        requester=HOSPITALIST,
        dose=(5, "mg"),
        route="oral",
        frequency=(1, 1, "d"),
    )
    draft["reasonCode"] = [
        k.concept(
            coding(ICD, "Z95.2", "Presence of prosthetic heart valve"),
            text="Mechanical mitral valve; atrial fibrillation",
        )
    ]
    add(
        Case(
            id="order-warfarin-mechanical-valve-nonuremic",
            service="calciphylaxis-order-select",
            patient=p,
            drafts=[draft],
            selections=[f"MedicationRequest/{draft['id']}"],
            stage="suspected",
            summary="Warfarin re-ordered on admission for a woman with a mechanical mitral valve, normal kidney function "
            "and suspected non-uraemic calciphylaxis of the calves.",
            top="calciphylaxis",
            not_top=["warfarin-skin-necrosis"],
            cards=["harmful-drug-warning"],
            forbidden_cards=["thiosulfate-monitoring"],
            features=[
                "draft warfarin with reasonCode Z95.2 and text 'Mechanical mitral valve'",
                "eGFR 66",
                "retiform purpura and a stellate calf ulcer",
                "bone scan: uptake at the lesions",
            ],
            notes="Review S-3 reproduction: the card must say that DOACs are contraindicated with a mechanical valve, "
            "name unfractionated heparin and cardiology/haematology input, and offer no 'remove' action.",
        )
    )


def order_thiosulfate_cyanide_antidote() -> None:
    """Review S-5: sodium thiosulfate as a cyanide antidote in the emergency department."""
    p = Patient("cx-smoke-inhalation", "male", "1984-02-09", ["Smoke", "Inhalation"])
    p.cond(
        "smoke",
        [coding(ICD, "T59.811A", "Toxic effect of smoke, accidental (unintentional), initial encounter")],
        "Smoke inhalation, house fire",
        0,
        category="encounter-diagnosis",
    )
    p.cond(
        "cyanide",
        [coding(ICD, "T65.0X1A", "Toxic effect of cyanides, accidental (unintentional), initial encounter")],
        "Suspected cyanide poisoning (lactate 9.8)",
        0,
        category="encounter-diagnosis",
    )
    p.panel(0, creat=0.9, egfr=104, ca=9.1, phos=3.6, alb=4.2)
    draft = k.medication_request(
        p.id,
        "draft-sodium-thiosulfate",
        THIOSULFATE,
        text="Sodium thiosulfate 12.5 g IV over 10 minutes once, after hydroxocobalamin",
        requester=HOSPITALIST,
        dose=(12.5, "g"),
        route="intravenous",
        reason="Cyanide poisoning (smoke inhalation)",
    )
    add(
        Case(
            id="order-thiosulfate-cyanide-antidote",
            service="calciphylaxis-order-sign",
            patient=p,
            drafts=[draft],
            summary="Sodium thiosulfate 12.5 g once as a cyanide antidote for a man with smoke inhalation and normal "
            "kidneys.",
            top=None,
            not_top=["calciphylaxis"],
            cards=[],
            forbidden_cards=["thiosulfate-monitoring", "risk-card"],
            silent=True,
            features=[
                "draft sodium thiosulfate with reason 'Cyanide poisoning'",
                "eGFR 104",
                "no skin lesion",
                "no calciphylaxis diagnosis",
            ],
            notes="Review S-5 reproduction: no calciphylaxis card for the antidote (no haemodialysis dosing, no "
            "'off-label', no bone scan).",
        )
    )


def order_thiosulfate_peritoneal_dialysis() -> None:
    """Review S-5: thiosulfate for confirmed calciphylaxis in a patient on peritoneal dialysis, no scan on record."""
    p = Patient("cx-pd-calciphylaxis", "female", "1958-11-30", ["Peritoneal", "Dialysis"])
    p.esrd_on_dialysis(1400, pd=True)
    p.cond("calciphylaxis", CALCIPHYLAXIS, "Calciphylaxis, biopsy-proven, lower abdominal wall", 10, site="abdomen")
    p.sign("retiform-purpura", "Retiform purpura and an indurated plaque of the lower abdominal wall", 24, "abdomen")
    ckd_mbd_labs(p, ca=(9.4, 9.6), phos=(6.1, 6.6), pth=(410, 460), alb=(3.4, 3.0))
    bmi(p, 36.2)
    draft = k.medication_request(
        p.id,
        "draft-sodium-thiosulfate",
        THIOSULFATE,
        text="Sodium thiosulfate 12.5 g IV over 60 minutes three times weekly",
        requester=NEPHROLOGIST,
        dose=(12.5, "g"),
        route="intravenous",
        frequency=(3, 1, "wk"),
    )
    draft["reasonCode"] = [k.concept(coding(SCT, "237900002", "Calciphylaxis"), text="Calciphylaxis")]
    add(
        Case(
            id="order-thiosulfate-peritoneal-dialysis",
            service="calciphylaxis-order-sign",
            patient=p,
            drafts=[draft],
            stage="confirmed",
            summary="Intravenous sodium thiosulfate being signed for biopsy-proven abdominal-wall calciphylaxis in a woman "
            "on peritoneal dialysis; no bone scan on record.",
            top="calciphylaxis",
            not_top=[],
            cards=["thiosulfate-monitoring"],
            forbidden_cards=["biopsy-advice"],
            features=[
                "peritoneal dialysis (CPT 90945, SNOMED 71192002)",
                "draft IV sodium thiosulfate, reason coded calciphylaxis",
                "no bone scan in 180 days",
            ],
            notes="Review S-5: peritoneal-dialysis text (IV route; intraperitoneal use caused chemical peritonitis) and "
            "an optional, not recommended, baseline scan.",
        )
    )


BUILDERS += [
    order_warfarin_mechanical_valve_nonuremic,
    order_thiosulfate_cyanide_antidote,
    order_thiosulfate_peritoneal_dialysis,
]


# ------------------------------------------------------------------- the seed case report, faithfully (V-12)


def source_case_faithful() -> None:
    """Only what the seed case report states (review V-12): no binder, calcitriol, albumin, BMI, Ca x P or
    hyperparathyroidism; CT "extensive subcutaneous and a few cutaneous calcifications" (no net-like pattern);
    the biopsy after the CT, its result not stated. `source-case` is an embellished variant of this case."""
    p = Patient("cx-source-faithful", "male", "1961-03-14", ["Source", "Faithful"])
    p.esrd_on_dialysis(4950)
    p.cond(
        "diabetes",
        [coding(ICD, "E11.22", "Type 2 diabetes mellitus with diabetic chronic kidney disease")],
        "Type 2 diabetes",
        "2001-09-01",
    )
    p.cond(
        "ulcer-right-calf",
        [coding(ICD, "L97.219", "Non-pressure chronic ulcer of right calf with unspecified severity")],
        "Nonhealing ulcer, right calf",
        93,
        site="calf:right",
    )
    p.cond(
        "ankle-pain",
        [
            coding(ICD, "M25.571", "Pain in right ankle and joints of right foot"),
            coding(ICD, "M25.572", "Pain in left ankle and joints of left foot"),
        ],
        "Bilateral ankle pain",
        77,
    )
    p.cond(
        "knee-arthroplasty",
        [coding(ICD, "Z96.651", "Presence of right artificial knee joint")],
        "Right total knee arthroplasty",
        "2019-04-10",
        site="knee:right",
    )
    bone_scan(
        p,
        11,
        "Heterogeneous subcutaneous soft-tissue uptake in both calves, compatible with calciphylaxis.",
        [
            ("CLINICAL HISTORY", "Long-term dialysis, diabetes, nonhealing right calf ulcer, bilateral ankle pain."),
            (
                "FINDINGS",
                "Diffuse soft-tissue uptake throughout, consistent with delayed clearance in renal failure. "
                "Superimposed asymmetric, pronounced subcutaneous uptake in both calves, right greater than left. Faint "
                "visualisation of the kidneys. Photopenia at the right knee arthroplasty. Degenerative uptake in the left "
                "midfoot.",
            ),
            (
                "IMPRESSION",
                "Heterogeneous subcutaneous soft-tissue uptake in both calves, corresponding to the clinical "
                "lesion, compatible with calciphylaxis in this dialysis patient.",
            ),
        ],
    )
    p.report(
        "ct-legs",
        CT_LEG,
        9,
        conclusion="Extensive subcutaneous and a few cutaneous calcifications of both calves.",
        sections=[
            (
                "FINDINGS",
                "Extensive subcutaneous and a few cutaneous calcifications in both calves, at the sites "
                "of the bone-scan uptake.",
            ),
            ("IMPRESSION", "Extensive subcutaneous and a few cutaneous calcifications of both calves."),
        ],
    )
    p.proc("biopsy", [PUNCH_BIOPSY], "Skin biopsy, right calf", 5, site="calf:right")
    add(
        Case(
            id="source-case-faithful",
            service="calciphylaxis-risk",
            patient=p,
            summary="The seed case report as published: 65-year-old man on long-term dialysis with diabetes, a nonhealing "
            "right calf ulcer and bilateral ankle pain; bone scan with asymmetric subcutaneous calf uptake over "
            "diffuse renal-failure activity; CT with extensive subcutaneous and a few cutaneous calcifications; "
            "biopsy after the CT.",
            top="calciphylaxis",
            not_top=[
                "renal-failure-soft-tissue-clearance",
                "metastatic-calcification",
                "venous-insufficiency",
                "diabetic-ulcer",
            ],
            cards=["risk-card"],
            forbidden_cards=["harmful-drug-warning"],
            features=[
                "ESRD on dialysis since 2013",
                "type 2 diabetes",
                "nonhealing right calf ulcer",
                "bilateral ankle pain",
                "bone scan: asymmetric subcutaneous calf uptake over diffuse renal-failure "
                "activity; photopenia at the knee arthroplasty",
                "CT: extensive subcutaneous and a few cutaneous calcifications (no net-like pattern reported)",
                "biopsy after the CT, result not stated",
                "no laboratory values, binders, vitamin D or BMI (none reported)",
            ],
            notes="Review V-12: the faithful source case. The `source-case` request is an embellished variant written "
            "for the first knowledge base (calcium acetate, calcitriol, albumin 2.9, net-like CT pattern, BMI 31, "
            "Ca x P > 70, secondary hyperparathyroidism, a biopsy before the scan).",
        )
    )


BUILDERS += [source_case_faithful]


# ------------------------------------------------------------------- more safety pathways (issue 14)


def order_warfarin_recent_pulmonary_embolism() -> None:
    """Review S-3: warfarin for a pulmonary embolism three weeks ago; stopping leaves the patient unprotected."""
    p = suspected_patient()
    p.cond(
        "pe",
        [
            coding(ICD, "I26.99", "Other pulmonary embolism without acute cor pulmonale"),
            coding(SCT, "59282003", "Pulmonary embolism"),
        ],
        "Pulmonary embolism, right lower lobe",
        21,
        category="encounter-diagnosis",
    )
    draft = k.medication_request(
        p.id,
        "draft-warfarin",
        WARFARIN,
        text="Warfarin 5 mg tablet, 1 tablet orally once daily, dose by INR (heparin overlap)",
        requester=HOSPITALIST,
        dose=(5, "mg"),
        route="oral",
        frequency=(1, 1, "d"),
    )
    draft["reasonCode"] = [
        k.concept(
            coding(ICD, "I26.99", "Other pulmonary embolism without acute cor pulmonale"), text="Pulmonary embolism"
        )
    ]
    add(
        Case(
            id="order-warfarin-recent-pulmonary-embolism",
            service="calciphylaxis-order-sign",
            patient=p,
            drafts=[draft],
            stage="suspected",
            summary="Warfarin being signed for a pulmonary embolism 3 weeks ago in a dialysis patient with suspected "
            "calciphylaxis of the thigh.",
            top="calciphylaxis",
            not_top=[],
            cards=["harmful-drug-warning"],
            forbidden_cards=["thiosulfate-monitoring"],
            features=[
                "draft warfarin with reasonCode I26.99 (pulmonary embolism)",
                "pulmonary embolism 21 days ago",
                "suspected calciphylaxis",
            ],
            notes="Review S-3: the card must not offer 'remove' (stopping anticoagulation 3 weeks after a PE leaves the "
            "patient unprotected); it names unfractionated heparin and haematology input.",
        )
    )


def order_biopsy_unrelated_lesion() -> None:
    """Review S-9: a skin biopsy of a lesion that is not the suspected calciphylaxis lesion."""
    p = suspected_patient()
    p.cond(
        "forearm-papule",
        [coding(ICD, "L98.9", "Disorder of the skin and subcutaneous tissue, unspecified")],
        "Scaly keratotic papule, left forearm",
        40,
        site="forearm:left",
    )
    draft = k.service_request(
        p.id,
        "draft-skin-biopsy",
        PUNCH_BIOPSY,
        text="Shave biopsy, scaly papule of the left forearm",
        requester=DERMATOLOGIST,
        site="forearm:left",
        reason="Scaly papule, ?squamous cell carcinoma",
    )
    add(
        Case(
            id="order-biopsy-unrelated-lesion",
            service="calciphylaxis-order-select",
            patient=p,
            user=DERMATOLOGIST,
            drafts=[draft],
            selections=[f"ServiceRequest/{draft['id']}"],
            stage="suspected",
            summary="Skin biopsy of a forearm papule (?squamous cell carcinoma) in a dialysis patient whose suspected "
            "calciphylaxis is on the thigh and abdomen.",
            top="calciphylaxis",
            not_top=[],
            cards=[],
            forbidden_cards=["biopsy-advice", "harmful-drug-warning"],
            silent=True,
            features=[
                "draft ServiceRequest CPT 11104 with bodySite left forearm",
                "suspected calciphylaxis of the left thigh and abdomen",
                "biopsy reason: ?squamous cell carcinoma",
            ],
            notes="Review S-9: the biopsy card fires only when the biopsy's site or reason matches the suspected lesion.",
        )
    )


def cohort_thiosulfate_progression() -> None:
    """Review S-6: more uptake and a new site on the follow-up scan during sodium thiosulfate."""
    p = Patient("cx-cohort-sts-progression", "female", "1960-02-17", ["Cohort", "Progression"])
    p.esrd_on_dialysis(3100)
    p.cond(
        "calciphylaxis", CALCIPHYLAXIS, "Calciphylaxis of both thighs, biopsy-proven", 70, site="thigh:right,thigh:left"
    )
    p.sign(
        "violaceous-plaque",
        "Indurated violaceous plaques of both thighs, enlarging; new tender induration of the lower abdominal wall",
        75,
        "thigh:right,thigh:left",
    )
    ckd_mbd_labs(p, ca=(9.4, 9.6), phos=(6.4, 6.8), pth=(690, 720), alb=(3.1, 2.8))
    bmi(p, 35.0)
    p.med(
        "thiosulfate",
        THIOSULFATE,
        "Sodium thiosulfate 25 g IV over the last hour of each haemodialysis, 3 times weekly",
        60,
        reason="Calciphylaxis, biopsy-proven",
    )
    bone_scan(
        p,
        65,
        "Heterogeneous subcutaneous uptake in both thighs, matching the painful plaques; compatible with "
        "calciphylaxis.",
        [
            ("INDICATION", "Painful thigh plaques, HD. Baseline before sodium thiosulfate."),
            (
                "FINDINGS",
                "Moderate heterogeneous uptake in the subcutaneous fat of both anterior thighs at the "
                "clinical plaques. No visceral uptake.",
            ),
            ("IMPRESSION", "Soft-tissue uptake compatible with calciphylaxis of both thighs."),
        ],
        stem="bone-scan-baseline",
    )
    bone_scan(
        p,
        2,
        "Increased subcutaneous uptake in both thighs and new uptake in the lower abdominal wall since "
        "the baseline study.",
        [
            ("INDICATION", "Calciphylaxis on sodium thiosulfate for 8 weeks; worsening pain."),
            ("COMPARISON", "Bone scan 63 days earlier (baseline)."),
            (
                "FINDINGS",
                "The heterogeneous subcutaneous uptake in both thighs is more intense than on the "
                "baseline scan. New heterogeneous subcutaneous uptake in the lower abdominal wall. No visceral "
                "uptake.",
            ),
            (
                "IMPRESSION",
                "Increased uptake in both thighs and a new site in the lower abdominal wall, "
                "compatible with progression of calciphylaxis.",
            ),
        ],
        stem="bone-scan-follow-up",
    )
    add(
        Case(
            id="cohort-thiosulfate-progression",
            service="calciphylaxis-risk",
            patient=p,
            summary="Woman on haemodialysis with biopsy-proven calciphylaxis of the thighs after 8 weeks of sodium "
            "thiosulfate; the follow-up bone scan shows more uptake and a new abdominal-wall site.",
            top="calciphylaxis",
            not_top=["renal-failure-soft-tissue-clearance"],
            cards=[],
            forbidden_cards=["biopsy-advice", "harmful-drug-warning"],
            features=[
                "confirmed calciphylaxis",
                "sodium thiosulfate for 8 weeks",
                "follow-up scan: increased uptake in the thighs and a new abdominal-wall site",
            ],
            notes="Review S-6: increased uptake or new sites during treatment are called progression (warning card).",
        )
    )


BUILDERS += [order_warfarin_recent_pulmonary_embolism, order_biopsy_unrelated_lesion, cohort_thiosulfate_progression]


def _has_imaging(case: Case) -> bool:
    reports = case.patient.reports + ([case.review_report] if case.review_report else [])
    return any(r["category"][0]["coding"][0]["code"] == "RAD" for r in reports)


def manifest_entry(case: Case, request: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": case.id,
        "file": case.file,
        "hook": case.hook,
        "service": case.service,
        "summary": case.summary,
        "expected_top": case.top,
        "must_not_rank_first": case.not_top,
        "cards": case.cards,
        "forbidden_cards": case.forbidden_cards,
        "silent": case.silent if case.silent is not None else (not case.cards and not _has_imaging(case)),
    }
    if case.stage:
        entry["calciphylaxis_stage"] = case.stage
    entry["key_features"] = case.features
    entry["codes"] = [
        {"system": k.SYSTEM_NAMES[s], "code": c, "display": d, "confidence": k.CODE_CONFIDENCE[(s, c)]}
        for s, c, d in k.codes_used(request)
    ]
    if case.notes:
        entry["notes"] = case.notes
    return entry


MANIFEST_HEADER = """\
# Clinical cases in fhir_examples/requests/: one entry per file (checked by tests/test_cases.py).
# Generated by fhir_examples/build_cases.py (except the source-case entry's content, declared there too).
#
#   expected_top         hypothesis id expected first in the differential (null: none required)
#   must_not_rank_first  hypothesis ids that must not be first
#   cards                card intents that must be in the response
#   forbidden_cards      card intents that must not be in the response
#   silent               true: the response has no card at all. false with cards: [] means no card is required
#                        but a radiology-differential card is allowed (issue 5 offers it on patient-view when a
#                        recent imaging report exists); if present it must rank expected_top first.
#   codes                every coded concept in the request with its confidence:
#                          V/S = as tagged in the knowledge sheet (shared/knowledge/calciphylaxis.md section 5),
#                          R   = recalled, not in the sheet or [R] there: check before a rule relies on it,
#                          local = https://calciphylaxis-cds.org/fhir/CodeSystem/clinical-finding (README)
# Card intents: risk-card, biopsy-advice, bone-scan-question, harmful-drug-warning, thiosulfate-monitoring,
#               radiology-differential.
"""


def build() -> dict[str, str]:
    """File name -> text for every generated file (requests and manifest)."""
    import yaml

    CASES.clear()
    for builder in BUILDERS:
        builder()
    outputs: dict[str, str] = {}
    entries: list[dict[str, Any]] = [dict(SOURCE_CASE_ENTRY)]
    source = json.loads((REQUESTS / "source-case.patient-view.json").read_text(encoding="utf-8"))
    source_notes = entries[0].pop("notes")
    entries[0]["codes"] = [
        {"system": k.SYSTEM_NAMES[s], "code": c, "display": d, "confidence": k.CODE_CONFIDENCE.get((s, c), "R")}
        for s, c, d in k.codes_used(source)
    ]
    entries[0]["notes"] = source_notes
    seen: set[str] = set()
    for case in CASES:
        if case.id in seen:
            raise ValueError(f"duplicate case id {case.id}")
        seen.add(case.id)
        request = case.request()
        outputs[f"requests/{case.file}"] = json.dumps(request, indent=2, ensure_ascii=False) + "\n"
        entries.append(manifest_entry(case, request))
    outputs["cases.yaml"] = MANIFEST_HEADER + yaml.safe_dump(
        {"cases": entries}, sort_keys=False, allow_unicode=True, width=110
    )
    return outputs


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(CASES)} cases and the manifest")


if __name__ == "__main__":
    main()
