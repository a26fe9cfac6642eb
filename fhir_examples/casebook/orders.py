"""Order-time cases (order-select and order-sign) for suspected and confirmed calciphylaxis."""

from __future__ import annotations

from typing import Any

import casekit as k
from casekit import ICD, SCT, coding

from .common import (
    BONE_SCAN,
    CALCITRIOL,
    CALCIUM_ACETATE,
    DERMATOLOGIST,
    HOSPITALIST,
    NEPHROLOGIST,
    PUNCH_BIOPSY,
    THIOSULFATE,
    WARFARIN,
    Case,
    add,
    confirmed_patient,
    suspected_patient,
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
            summary="Calcium acetate selected for hyperphosphataemia in a dialysis patient with suspected "
            "calciphylaxis.",
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
            notes="Info card: anion-gap acidosis, blood pressure during infusion, Ca/P/PTH monitoring; a follow-up "
            "bone "
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
            summary="Admission medication reconciliation re-selects warfarin and calcium acetate together for a "
            "patient "
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
