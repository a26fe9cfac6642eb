"""Procedures (dialysis vintage), draft orders with selections, and the patient fact."""

from __future__ import annotations

import pytest

from tests.fhir.conftest import of_kind, one
from tests.fhir.resources import (
    CPT,
    ICD,
    LOINC,
    RXNORM,
    SCT,
    bundle,
    coding,
    condition,
    medication,
    medication_request,
    observation,
    patient,
    procedure,
    service_request,
)


@pytest.mark.parametrize(
    ("code", "concepts"),
    [
        (coding(CPT, "90935"), {"dialysis", "hemodialysis"}),
        (coding(CPT, "90945"), {"dialysis", "peritoneal-dialysis"}),
        (coding(SCT, "265764009", "Renal dialysis (procedure)"), {"dialysis"}),
        (coding(CPT, "50360"), {"kidney-transplant"}),
        (coding(CPT, "11104"), {"skin-biopsy"}),
        (coding(CPT, "60500"), {"parathyroidectomy"}),
        (coding(CPT, "78306"), {"bone-scan"}),
        (coding(CPT, "74177"), {"ct-imaging"}),
        (coding(CPT, "73720"), {"gadolinium-mri"}),
        (coding(SCT, "415070008"), {"vascular-catheterisation"}),
    ],
)
def test_each_procedure_concept(run, code, concepts) -> None:
    facts = run(procedure("pr1", code, "2025-12-01"))
    assert {f.attrs["concept"] for f in of_kind(facts, "procedure")} == concepts


def test_one_fact_per_concept_with_first_date_count_and_vintage(run) -> None:
    sessions = [procedure(f"hd{i}", coding(CPT, "90935"), f"2020-0{i}-15T09:00:00Z") for i in range(1, 4)]
    facts = run(bundle(*sessions, procedure("hd-planned", coding(CPT, "90935"), "2026-01-10", status="preparation")))
    fact = one(facts, "procedure", concept="hemodialysis")
    assert fact.id == "procedure:hemodialysis"
    assert (fact.attrs["first_date"], fact.attrs["date"], fact.attrs["count"]) == ("2020-01-15", "2020-03-15", 3)
    assert fact.attrs["years_since_first"] == pytest.approx(6.13, abs=0.01)
    assert fact.attrs["source"] == "Procedure/hd3"
    vintage = one(facts, "derived", name="dialysis-vintage-years")
    assert vintage.attrs["text"] == "2020-01-15" and vintage.attrs["value"] == fact.attrs["years_since_first"]


def test_dialysis_vintage_from_dependence_condition_when_earlier(run) -> None:
    facts = run(
        bundle(condition("c1", coding(ICD, "Z99.2"), onset="2018-05-01")),
        bundle(procedure("hd1", coding(CPT, "90935"), "2021-01-01")),
    )
    assert one(facts, "derived", name="dialysis-vintage-years").attrs["text"] == "2018-05-01"


def test_biopsy_outcome(run) -> None:
    facts = run(procedure("b1", coding(CPT, "11104"), "2026-02-01", outcome="Positive"))
    assert one(facts, "procedure", concept="skin-biopsy").attrs["outcome"] == "positive"


def test_order_select_draft_orders_with_selections(run) -> None:
    drafts = bundle(
        service_request("bs", coding(CPT, "78306", "Bone and/or joint imaging; whole body")),
        service_request("bx", coding(CPT, "11104")),
        medication_request("w", coding(RXNORM, "11289"), status="draft", intent="proposal"),
        medication_request(
            "med", reference="#m", status="draft", contained=[medication("m", coding(RXNORM, "214342"))]
        ),
    )
    context = {"patientId": "p1", "draftOrders": drafts, "selections": ["ServiceRequest/bs", "MedicationRequest/med"]}
    facts = run(context=context)
    assert one(facts, "draft-order", concept="bone-scan").attrs["selected"] is True
    assert one(facts, "draft-order", concept="skin-biopsy").attrs["selected"] is False
    assert one(facts, "draft-order", drug_class="vitamin-k-antagonist").attrs["selected"] is False
    binder = one(facts, "draft-order", drug_class="calcium-based-binder")
    assert binder.attrs["selected"] is True and binder.attrs["resource_type"] == "MedicationRequest"
    assert binder.id == "draft-order:MedicationRequest/med:calcium-based-binder"
    assert of_kind(facts, "medication") == []  # drafts are not medications the patient takes


def test_order_sign_selects_every_draft(run) -> None:
    drafts = bundle(service_request("bs", coding(LOINC, "39813-1", "SPECT Bone limited")))
    facts = run(context={"patientId": "p1", "draftOrders": drafts})
    assert one(facts, "draft-order", concept="bone-scan").attrs["selected"] is True


def test_draft_invalid_only_on_unread_elements_is_read_with_a_warning(run) -> None:
    # No intent (required in R4): the rules do not read it, so the drug is still checked (sandbox drafts).
    drafts = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "request-123",
                    "status": "draft",
                    "medicationCodeableConcept": {"coding": [coding(RXNORM, "11289")]},
                    "subject": {"reference": "Patient/p1"},
                    "authoredOn": "2026-11-21",
                }
            }
        ],
    }
    facts = run(context={"patientId": "p1", "draftOrders": drafts})
    assert one(facts, "draft-order", drug_class="vitamin-k-antagonist")
    assert [(w.resource_type, w.resource_id) for w in facts.warnings] == [("MedicationRequest", "request-123")]
    assert "intent" in facts.warnings[0].message and facts.warnings[0].message.startswith("read leniently")
    assert facts.notices == ()


def test_draft_invalid_on_a_read_element_is_a_notice(run) -> None:
    drafts = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "request-124",
                    "status": "draft",
                    "intent": "order",
                    "medicationCodeableConcept": {"coding": "not a list"},
                    "subject": {"reference": "Patient/p1"},
                    "authoredOn": "2026-11-21",
                }
            }
        ],
    }
    facts = run(context={"patientId": "p1", "draftOrders": drafts})
    assert of_kind(facts, "draft-order") == []
    assert [(w.resource_type, w.resource_id) for w in facts.notices] == [("MedicationRequest", "request-124")]


def test_patient_age_sex_and_bmi(run) -> None:
    facts = run(
        patient(birth="1956-04-02", gender="female"),
        bundle(observation("b", "39156-5", 34.24, "kg/m2", "2026-01-05", category="vital-signs")),
    )
    fact = one(facts, "patient")
    assert fact.attrs["age_years"] == 69  # the birthday in April has not come yet on 2026-03-01
    assert fact.attrs["sex"] == "female"
    assert (fact.attrs["bmi"], fact.attrs["bmi_date"]) == (34.2, "2026-01-05")
    assert of_kind(facts, "lab") == []  # vitals feed the patient fact only


def test_bmi_from_weight_and_height_and_weight_change(run) -> None:
    facts = run(
        patient(),
        bundle(
            observation("w1", "29463-7", 220.5, "[lb_av]", "2025-12-10", category="vital-signs"),  # 100.0 kg
            observation("w2", "29463-7", 92.0, "kg", "2026-02-15", category="vital-signs"),
            observation("h1", "8302-2", 68.9, "[in_i]", "2019-05-01", category="vital-signs"),  # 175 cm
        ),
    )
    fact = one(facts, "patient")
    assert fact.attrs["bmi"] == pytest.approx(92.0 / 1.75006**2, abs=0.1)
    assert fact.attrs["weight_change_percent_90d"] == pytest.approx(-8.0, abs=0.1)


def test_patient_is_chosen_by_context_patient_id(run) -> None:
    facts = run(bundle(patient("other", gender="male"), patient("p1", gender="female")))
    assert one(facts, "patient").attrs["sex"] == "female"


def test_partial_birth_date_never_overstates_age(run) -> None:
    assert one(run(patient(birth="1956")), "patient").attrs["age_years"] == 69  # born by 1956-12-31 at the latest


def test_only_the_latest_and_earliest_procedure_get_the_full_model(run, monkeypatch) -> None:
    import cds.fhir.intake as intake_module

    validated: list[str] = []
    real = intake_module.get_fhir_model_class
    monkeypatch.setattr(intake_module, "get_fhir_model_class", lambda t: validated.append(t) or real(t))
    sessions = [
        procedure(f"hd{i}", coding(CPT, "90935"), f"2025-{1 + i // 28:02d}-{1 + i % 28:02d}") for i in range(50)
    ]
    facts = run(bundle(*sessions))
    assert one(facts, "procedure", concept="hemodialysis").attrs["count"] == 50
    assert validated == ["Procedure", "Procedure"]


def test_invalid_latest_procedure_falls_back_to_the_previous_with_a_warning(run) -> None:
    bad = procedure("hd-bad", coding(CPT, "90935"), "2026-02-01")
    bad["subject"] = {"reference": ["not", "a", "string"]}
    facts = run(
        bundle(
            procedure("hd1", coding(CPT, "90935"), "2025-01-01"),
            procedure("hd2", coding(CPT, "90935"), "2026-01-01"),
            bad,
        )
    )
    fact = one(facts, "procedure", concept="hemodialysis")
    assert (fact.attrs["source"], fact.attrs["count"], fact.attrs["first_date"]) == ("Procedure/hd2", 2, "2025-01-01")
    assert [(w.resource_type, w.resource_id) for w in facts.warnings] == [("Procedure", "hd-bad")]
