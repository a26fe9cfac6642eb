"""What the case modules share: the codes of studies, drugs and diagnoses; the ``Case`` record, which holds one
case's request and its expectations (written once: fhir_examples/cases.yaml is generated from it); clinical
fragments used by several cases; and the suspected and confirmed patients of the order-time cases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import casekit as k
from casekit import CPT, ICD, RXNORM, SCT, Patient, coding

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
