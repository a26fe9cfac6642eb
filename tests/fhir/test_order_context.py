"""What a draft order is for, and how much: reasons, daily dose and body site (issue 14).

The order-time cards read these: a VKA for a mechanical valve must not be answered with
"remove" or "switch to a DOAC", thiosulfate as a cyanide antidote is not calciphylaxis
treatment, and low-dose calcitriol is not the consensus risk factor (> 0.5 ug/day).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fhir.conftest import of_kind, one
from tests.fhir.resources import ICD, RXNORM, SCT, bundle, coding, condition, medication_request, service_request

CPT = "http://www.ama-assn.org/go/cpt"


def _draft(res: dict[str, Any], **extra: Any) -> dict[str, Any]:
    res = {**medication_request(res["id"], res["rx"], status="draft"), **extra} if "rx" in res else {**res, **extra}
    return res


def _sign(run, *drafts: dict[str, Any], prefetch: tuple[dict[str, Any], ...] = ()):  # type: ignore[no-untyped-def]
    return run(*prefetch, context={"patientId": "p1", "draftOrders": bundle(*drafts)})


def test_a_coded_reason_becomes_a_second_fact_with_reason(run) -> None:
    warfarin = _draft(
        {"id": "w", "rx": coding(RXNORM, "11289")},
        reasonCode=[{"coding": [coding(ICD, "Z95.2", "Presence of prosthetic heart valve")]}],
    )
    facts = _sign(run, warfarin)
    plain = one(facts, "draft-order", drug_class="vitamin-k-antagonist", reason=None)
    assert "reason" not in plain.attrs
    reasoned = one(facts, "draft-order", drug_class="vitamin-k-antagonist", reason="prosthetic-heart-valve")
    assert reasoned.attrs["source"] == plain.attrs["source"] == "MedicationRequest/w"
    assert reasoned.id != plain.id


def test_a_reason_given_only_as_text_is_read_for_a_mechanical_valve(run) -> None:
    """The review's S-3 reproduction: reasonCode text "Mechanical mitral valve; atrial fibrillation"."""
    warfarin = _draft(
        {"id": "w", "rx": coding(RXNORM, "11289")},
        reasonCode=[{"text": "Mechanical mitral valve; atrial fibrillation"}],
    )
    facts = _sign(run, warfarin)
    one(facts, "draft-order", drug_class="vitamin-k-antagonist", reason="prosthetic-heart-valve")


@pytest.mark.parametrize("text", ["Cyanide poisoning (smoke inhalation)", "Mitral valve repair planned", "AF"])
def test_other_reason_texts_add_no_reason(run, text: str) -> None:
    sts = _draft({"id": "s", "rx": coding(RXNORM, "56466")}, reasonCode=[{"text": text}])
    facts = (
        _sign(run, sts)
        if "Cyanide" in text
        else _sign(run, _draft({"id": "s", "rx": coding(RXNORM, "11289")}, reasonCode=[{"text": text}]))
    )
    assert all("reason" not in f.attrs for f in of_kind(facts, "draft-order"))


def test_reason_reference_to_a_prefetched_condition(run) -> None:
    dvt = condition(
        "dvt",
        coding(ICD, "I82.401", "Acute embolism and thrombosis of unspecified deep veins of right lower extremity"),
        clinical="active",
    )
    warfarin = _draft({"id": "w", "rx": coding(RXNORM, "11289")}, reasonReference=[{"reference": "Condition/dvt"}])
    facts = _sign(run, warfarin, prefetch=(bundle(dvt),))
    one(facts, "draft-order", drug_class="vitamin-k-antagonist", reason="venous-thromboembolism")


def test_thiosulfate_ordered_for_calciphylaxis(run) -> None:
    sts = _draft(
        {"id": "s", "rx": coding(RXNORM, "56466")},
        reasonCode=[{"coding": [coding(SCT, "237900002", "Calciphylaxis")], "text": "Calciphylaxis"}],
    )
    facts = _sign(run, sts)
    one(facts, "draft-order", drug_class="sodium-thiosulfate", reason="calciphylaxis")


@pytest.mark.parametrize(
    ("dose", "timing", "expected"),
    [
        ({"value": 0.5, "unit": "mcg"}, {"frequency": 3, "period": 1, "periodUnit": "wk"}, 0.214),
        ({"value": 0.25, "code": "ug"}, {"frequency": 1, "period": 1, "periodUnit": "d"}, 0.25),
        ({"value": 1, "code": "ug"}, {"frequency": 2, "period": 1, "periodUnit": "d"}, 2.0),
        ({"value": 0.001, "code": "mg"}, {"frequency": 1, "period": 1, "periodUnit": "d"}, 1.0),
    ],
)
def test_daily_dose_of_active_vitamin_d(run, dose: dict[str, Any], timing: dict[str, Any], expected: float) -> None:
    calcitriol = _draft(
        {"id": "d", "rx": coding(RXNORM, "1894")},
        dosageInstruction=[
            {"text": "as directed", "timing": {"repeat": timing}, "doseAndRate": [{"doseQuantity": dose}]}
        ],
    )
    facts = _sign(run, calcitriol)
    assert one(facts, "draft-order", drug_class="active-vitamin-d").attrs["daily_dose_ug"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "dosage",
    [
        {"text": "0.25 mcg daily"},  # free text only
        {"doseAndRate": [{"doseQuantity": {"value": 0.25, "code": "ug"}}]},  # no timing
        {
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 2, "code": "{capsule}"}}],
        },  # a count, not a mass
    ],
)
def test_an_unreadable_dose_is_left_out_not_guessed(run, dosage: dict[str, Any]) -> None:
    calcitriol = _draft({"id": "d", "rx": coding(RXNORM, "1894")}, dosageInstruction=[dosage])
    facts = _sign(run, calcitriol)
    assert "daily_dose_ug" not in one(facts, "draft-order", drug_class="active-vitamin-d").attrs


def test_biopsy_body_site(run) -> None:
    biopsy = {
        **service_request("bx", coding(CPT, "11104")),
        "bodySite": [{"coding": [coding(SCT, "68367000", "Thigh structure")], "text": "left medial thigh"}],
    }
    facts = _sign(run, biopsy)
    assert one(facts, "draft-order", concept="skin-biopsy").attrs["site"] == "thigh"
