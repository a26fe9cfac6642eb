"""Real EHR data (issue 13): one example per recognition layer."""

from __future__ import annotations

import casekit as k
from casekit import ICD, Patient, coding

from .common import PATHOLOGY, PUNCH_BIOPSY, Case, add, bmi, ckd_mbd_labs

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
            summary="Woman on haemodialysis whose painful indurated thigh plaque and necrotic eschar are recorded only "
            "as "
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
            notes="Issue 13: without the text layer, the MedicationStatement and comparator handling this record has "
            "no "
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
            notes="Issue 13: the order must give the warfarin warning although neither the diagnosis nor the drug is "
            "coded.",
        )
    )
