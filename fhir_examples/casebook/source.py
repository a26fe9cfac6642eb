"""The seed case report: the manifest entry of the lead's variant (not generated) and the faithful case."""

from __future__ import annotations

from typing import Any

from casekit import ICD, Patient, coding

from .common import CT_LEG, PUNCH_BIOPSY, Case, add, bone_scan

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
                "Superimposed asymmetric, pronounced subcutaneous uptake in both calves, right greater than left. "
                "Faint "
                "visualisation of the kidneys. Photopenia at the right knee arthroplasty. Degenerative uptake in the "
                "left "
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
            summary="The seed case report as published: 65-year-old man on long-term dialysis with diabetes, a "
            "nonhealing "
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
