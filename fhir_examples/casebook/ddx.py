"""One case per hypothesis of the differential: the look-alikes of calciphylaxis."""

from __future__ import annotations

from casekit import ICD, SCT, Patient, coding

from .common import (
    ABI_STUDY,
    AMLODIPINE,
    APIXABAN,
    ASPIRIN,
    ATORVASTATIN,
    CALCITRIOL,
    CALCIUM_ACETATE,
    CALCIUM_CARBONATE,
    CARDIAC_CATH,
    CT_ABD_PELVIS,
    CT_CHEST,
    CT_LEG,
    DERMATOLOGIST,
    DUPLEX_BILAT,
    DUPLEX_UNILAT,
    ENOXAPARIN,
    HEPARIN,
    HOSPITALIST,
    HYDROXYCHLOROQUINE,
    INSULIN_GLARGINE,
    MESALAMINE,
    METFORMIN,
    MRI_LEG_GAD,
    PATHOLOGY,
    PREDNISONE,
    PUNCH_BIOPSY,
    T2DM_CKD,
    THREE_PHASE,
    VANCOMYCIN,
    WARFARIN,
    XR_FEMUR,
    XR_FOOT,
    XR_HAND,
    XR_HIP,
    XR_SHOULDER,
    Case,
    add,
    bmi,
    bone_scan,
    ckd_mbd_labs,
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
            summary="Woman on haemodialysis with PTH 2350 pg/mL, Ca x P about 98 and no skin lesions; bone scan shows "
            "lung "
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
            summary="Man on haemodialysis for 11 years with phosphate 9.4 mg/dL and painless lobulated calcific masses "
            "at "
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
            summary="Woman with normal kidney function who started warfarin (10 mg loading, heparin stopped early) 6 "
            "days "
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
            summary="Woman with hepatitis C and mixed cryoglobulinaemia, CKD 4 from glomerulonephritis, palpable "
            "purpura "
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
            summary="Man on haemodialysis with diabetes, claudication and rest pain, absent right pedal pulses, ABI "
            "0.48 "
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
            notes="Dialysis and diabetes raise the calciphylaxis prior; the absent pulses and low ABI should outweigh "
            "it.",
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
            summary="Woman with CKD 5 (eGFR 11) who had a gadolinium-enhanced MRI 11 weeks ago and now has symmetric "
            "woody "
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
            summary="Diabetic man on haemodialysis with fever, sepsis, crepitus and erythema of the right thigh "
            "spreading "
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
