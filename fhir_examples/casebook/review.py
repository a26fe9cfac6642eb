"""The radiologist's report-review hook."""

from __future__ import annotations

from casekit import ICD, Patient, coding

from .common import CALCITRIOL, CALCIUM_ACETATE, CT_LEG, RADIOLOGIST, T2DM_CKD, Case, add, bmi, bone_scan, ckd_mbd_labs

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
            summary="Radiologist reviewing a draft bone scan of a source-case-like dialysis patient: pronounced "
            "asymmetric "
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
            notes="Same pattern as the source case, for the reverse-domain hook; the draft report is sent in the "
            "context "
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
            notes="Issue 5 done-when: renal-failure clearance ranks above calciphylaxis. The draft report is only in "
            "the "
            "`report` prefetch (not in the context), to exercise that path.",
        )
    )
