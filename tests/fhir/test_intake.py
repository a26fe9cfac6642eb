"""Intake: prefetch flattening, reference resolution, validation policy, never raising."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cds.fhir.intake as intake_module
from cds.fhir import extract_facts
from cds.fhir.intake import Intake
from tests.fhir.conftest import NOW, of_kind, one
from tests.fhir.resources import ICD, RXNORM, bundle, coding, condition, medication, observation, patient
from tests.mutation import element_paths, replaced


def test_references_relative_absolute_history_urn_and_contained() -> None:
    intake = Intake()
    med = medication("m1", coding(RXNORM, "11289"))
    urn_obs = observation("0f2d8c52-9f5e-4c7e-8d7a-3e2b1c0a9f88", "17861-6", 9.0, "mg/dL", "2026-01-01")
    container = {"resourceType": "MedicationRequest", "contained": [medication("inner")]}
    intake.add_prefetch({"a": bundle(med), "b": bundle(urn_obs, urn=True)})
    assert intake.resolve({"reference": "Medication/m1"}) is med
    assert intake.resolve("http://other.example.org/fhir/Medication/m1") is med
    assert intake.resolve("Medication/m1/_history/3") is med
    assert intake.resolve("urn:uuid:0f2d8c52-9f5e-4c7e-8d7a-3e2b1c0a9f88") is urn_obs
    assert intake.resolve("#inner", container)["id"] == "inner"
    assert intake.resolve("#inner") is None
    assert intake.resolve("Medication/none") is None
    assert intake.resolve({"display": "no reference"}) is None


def test_the_same_resource_in_two_prefetch_keys_counts_once(run) -> None:
    esrd = condition("c1", coding(ICD, "N18.6"))
    facts = run(bundle(esrd), bundle(esrd))
    assert len(of_kind(facts, "condition", concept="esrd")) == 1


def test_invalid_resource_is_a_warning_without_values(run) -> None:
    bad = condition("c1", coding(ICD, "N18.6"), onset="not-a-date-SECRET")
    facts = run(bad)
    assert of_kind(facts, "condition") == []
    (warning,) = facts.warnings
    assert (warning.resource_type, warning.resource_id) == ("Condition", "c1")
    assert "onsetDateTime" in warning.message
    assert "SECRET" not in warning.message


def test_patient_ids_stay_out_of_warnings(run) -> None:
    bad = patient("p1", birth="1956-13-45")
    facts = run(bad)
    assert [w.resource_id for w in facts.warnings] == ["(patient)"]
    assert all("p1" not in w.message for w in facts.warnings)


def test_prefetch_values_that_are_not_resources_are_warnings(run) -> None:
    facts = run(["not", "a", "resource"], {"resourceType": "OperationOutcome", "issue": []}, None)
    assert [(w.resource_type, w.resource_id) for w in facts.warnings] == [("prefetch", "key0")]


def test_resource_types_no_rule_uses_and_unmatched_codes_are_never_validated(run, monkeypatch) -> None:
    validated: list[str] = []
    real = intake_module.get_fhir_model_class

    def counting(resource_type: str) -> Any:
        validated.append(resource_type)
        return real(resource_type)

    monkeypatch.setattr(intake_module, "get_fhir_model_class", counting)
    monkeypatch.setattr(intake_module, "_MEMO", intake_module._ValidationMemo(size=100))  # nothing remembered
    encounter = {"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "AMB"}}
    pharyngitis = condition("c2", coding("http://snomed.info/sct", "195662009"))
    heart_rate = observation("hr", "8867-4", 80, "/min", "2026-02-01")
    calcium = [observation(f"ca{i}", "17861-6", 9.0 + i / 10, "mg/dL", f"2026-02-0{i + 1}") for i in range(5)]
    facts = run(bundle(encounter, pharyngitis, heart_rate, *calcium, condition("c1", coding(ICD, "N18.6"))))
    # Full validation: the ESRD condition and only the newest calcium (the fact's source).
    assert sorted(validated) == ["Condition", "Observation"]
    assert one(facts, "lab", analyte="calcium-total").attrs["count"] == 5


def test_nested_bundles_and_bundles_without_entries(run) -> None:
    inner = bundle(condition("c1", coding(ICD, "N18.6")))
    facts = run(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]},
        {"resourceType": "Bundle", "type": "searchset"},
    )
    one(facts, "condition", concept="esrd")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceType",
                    "id",
                    "code",
                    "coding",
                    "system",
                    "valueQuantity",
                    "value",
                    "unit",
                    "status",
                    "entry",
                    "resource",
                    "effectiveDateTime",
                    "medicationReference",
                    "reference",
                    "contained",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_types = st.sampled_from(
    [
        "Bundle",
        "Observation",
        "Condition",
        "MedicationRequest",
        "Procedure",
        "Patient",
        "ServiceRequest",
        "MedicationStatement",
        "DiagnosticReport",
        "Encounter",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resource_type=_types, body=st.dictionaries(st.text(max_size=10), _json, max_size=5), context=_json)
def test_garbage_never_raises(terminology, resource_type, body, context) -> None:
    resource = {**body, "resourceType": resource_type}
    result = extract_facts(context if isinstance(context, dict) else {}, {"x": resource, "y": body}, NOW, terminology)
    # The catch-all in extract_facts would hide a crash; a crash inside the layer is a bug here.
    assert not [w for w in result.warnings if w.message.startswith("fact extraction failed")]


@pytest.mark.parametrize(
    "draft_orders", ["text", {"resourceType": "Bundle", "entry": "x"}, {"resourceType": "Patient"}]
)
def test_malformed_draft_orders_never_raise(run, draft_orders) -> None:
    facts = run(context={"patientId": "p1", "draftOrders": draft_orders, "selections": "x"})
    assert of_kind(facts, "draft-order") == []


_BASES = [
    condition("c1", coding(ICD, "L97.222"), body_site=[coding("http://snomed.info/sct", "53840002")]),
    observation("o1", "17861-6", 9.0, "mg/dL", "2026-02-01", comparator="<"),
    observation("o2", "2777-1", 5.0, "mg/dL", "2026-02-01"),
    {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "contained": [medication("x", coding(RXNORM, "11289"))],
        "medicationReference": {"reference": "#x"},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2025-01-01",
        "dosageInstruction": [
            {"timing": {"repeat": {"boundsPeriod": {"start": "2025-01-02"}}}, "route": {"text": "oral"}}
        ],
    },
    {
        "resourceType": "Procedure",
        "id": "pr",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [coding("http://www.ama-assn.org/go/cpt", "90935")]},
        "performedPeriod": {"start": "2020-01-01"},
        "outcome": {"text": "ok"},
        "bodySite": [{"coding": [coding("http://snomed.info/sct", "7771000")]}],
    },
    patient(),
]


@settings(max_examples=200, deadline=None)
@given(base=st.sampled_from(range(len(_BASES))), data=st.data(), garbage=_json)
def test_mutated_resources_of_every_handled_type_never_crash_the_layer(terminology, base, data, garbage) -> None:
    resource = _BASES[base]
    path = data.draw(st.sampled_from(element_paths(resource)))
    mutated = replaced(resource, path, garbage)
    context = {"patientId": "p1", "draftOrders": bundle(mutated) if base == 3 else None}
    result = extract_facts(context, {"a": bundle(*_BASES), "b": mutated}, NOW, terminology)
    assert not [w for w in result.warnings if w.message.startswith("fact extraction failed")]


def test_contained_that_is_not_a_list_resolves_to_nothing() -> None:
    # Found by the property test: `contained` holding an object or a number crashed reference resolution.
    from cds.fhir.intake import Intake

    for odd in (42, {"resourceType": "Medication", "id": "x"}, "x"):
        container = {
            "resourceType": "MedicationRequest",
            "id": "mr",
            "contained": odd,
            "medicationReference": {"reference": "#x"},
        }
        assert Intake([container]).resolve("#x", container) is None


def test_full_validation_is_remembered_by_content_and_still_warns_per_request(monkeypatch) -> None:
    from cds.fhir import intake as intake_module

    calls = []
    real = intake_module._validate_model
    monkeypatch.setattr(intake_module, "_MEMO", intake_module._ValidationMemo(size=10))
    monkeypatch.setattr(intake_module, "_validate_model", lambda r: calls.append(r.get("id")) or real(r))
    valid = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p"}, "code": {"text": "ulcer"}}
    invalid = {"resourceType": "Condition", "id": "c2", "subject": "Patient/p"}
    for _ in range(3):  # three requests carrying the same history
        request_intake = intake_module.Intake([valid, invalid])
        assert request_intake.validate_full(valid) is True
        assert request_intake.validate_full(invalid) is False
        assert [w.resource_id for w in request_intake.warnings] == ["c2"]
    assert calls == ["c1", "c2"]  # validated once each
    changed = {**valid, "code": {"text": "ulcer, right calf"}}
    assert intake_module.Intake([changed]).validate_full(changed) is True
    assert calls == ["c1", "c2", "c1"]  # new content is validated again
