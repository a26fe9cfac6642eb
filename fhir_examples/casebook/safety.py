"""Order-time safety pathways (issue 14)."""

from __future__ import annotations

import casekit as k
from casekit import ICD, SCT, Patient, coding

from .common import (
    CALCIPHYLAXIS,
    DERMATOLOGIST,
    HOSPITALIST,
    NEPHROLOGIST,
    PUNCH_BIOPSY,
    THIOSULFATE,
    WARFARIN,
    Case,
    add,
    bmi,
    bone_scan,
    ckd_mbd_labs,
    suspected_patient,
)

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
            summary="Warfarin re-ordered on admission for a woman with a mechanical mitral valve, normal kidney "
            "function "
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
            summary="Intravenous sodium thiosulfate being signed for biopsy-proven abdominal-wall calciphylaxis in a "
            "woman "
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
            notes="Review S-5: peritoneal-dialysis text (IV route; intraperitoneal use caused chemical peritonitis) "
            "and "
            "an optional, not recommended, baseline scan.",
        )
    )


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
            notes="Review S-3: the card must not offer 'remove' (stopping anticoagulation 3 weeks after a PE leaves "
            "the "
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
            notes="Review S-9: the biopsy card fires only when the biopsy's site or reason matches the suspected "
            "lesion.",
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
