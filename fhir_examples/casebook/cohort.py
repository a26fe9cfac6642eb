"""Cohort-like cases (Paul et al. 2015): lesions of patients on dialysis, with and without calciphylaxis."""

from __future__ import annotations

from casekit import ICD, SCT, Patient, coding

from .common import (
    AMLODIPINE,
    CALCIPHYLAXIS,
    CALCITRIOL,
    CALCIUM_ACETATE,
    CALCIUM_CARBONATE,
    INSULIN_GLARGINE,
    PATHOLOGY,
    PUNCH_BIOPSY,
    T2DM_CKD,
    THIOSULFATE,
    WARFARIN,
    XR_TIB_FIB,
    Case,
    add,
    bmi,
    bone_scan,
    ckd_mbd_labs,
)

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
            summary="Obese woman on haemodialysis and long-term warfarin with 3 weeks of painful retiform plaques on "
            "both "
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
            summary="Man on haemodialysis for 10 years with necrotic eschar-covered ulcers of both calves; bone scan "
            "shows "
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
            notes="ESRD control of the Paul 2015 type; also the patient-view case for "
            "renal-failure-soft-tissue-clearance. "
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
                "normal limits for a dialysis patient; there is no focal, heterogeneous or asymmetric soft tissue "
                "uptake "
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
            summary="Woman on haemodialysis without skin lesions; bone scan for hip pain is normal apart from "
            "degenerative "
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
            summary="Obese woman on haemodialysis with a painful necrotic pannus ulcer and retiform purpura; a "
            "superficial "
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
            notes="Tests the biopsy rule: the first-biopsy sensitivity is about 52%, so the non-diagnostic result "
            "weakens "
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
            summary="Woman with normal kidney function on warfarin for 3 years (mechanical valve) with painful "
            "retiform "
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
            notes="Contrast pair with ddx-warfarin-skin-necrosis: the same drug, but long exposure and a positive "
            "scan. "
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
            summary="Woman on haemodialysis with biopsy-proven calciphylaxis of the thighs and buttock after 12 weeks "
            "of "
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
            notes="Serial comparison (issue 5): the later scan should become a treatment-response fact, supportive "
            "only, "
            "not a stopping rule (sheet section 6). Whether patient-view shows a card for an already treated "
            "patient is left to the card design; biopsy advice must not appear.",
        )
    )
