"""Negative controls: patients who must get no calciphylaxis card."""

from __future__ import annotations

import casekit as k
from casekit import ICD, SCT, Patient, coding

from .common import (
    CINACALCET,
    INSULIN_GLARGINE,
    LISINOPRIL,
    METFORMIN,
    NEPHROLOGIST,
    T2DM_CKD,
    WARFARIN,
    Case,
    add,
    bmi,
    ckd_mbd_labs,
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
            summary="Woman with type 2 diabetes, neuropathy and normal kidney function (eGFR 92) with a neuropathic "
            "heel "
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
            summary="Woman on haemodialysis with new atrial fibrillation; warfarin is being signed; no skin lesions "
            "and no "
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
