"""``Intake.bind_patient``'s inline first test (issue 20) never keeps a resource ``_about`` would drop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cds.fhir.intake import Intake, _about, _subject_accepted

PATIENT = "p1"
ACCEPTED = frozenset({f"Patient/{PATIENT}", f"urn:uuid:{PATIENT}", "http://x/fhir/Patient/p1"})
_REFERENCES = st.one_of(
    st.sampled_from([*ACCEPTED, "Patient/p2", "urn:uuid:p2", "Patient/p1/_history/3", "", "Group/p1"]),
    st.none(),
    st.integers(),
    st.lists(st.text(max_size=3), max_size=2),
)
_REFERENCE_ELEMENT = st.one_of(st.none(), st.text(max_size=3), st.fixed_dictionaries({"reference": _REFERENCES}))
_RESOURCES = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Condition", "Observation", "MedicationRequest", "Medication"])},
    optional={"subject": _REFERENCE_ELEMENT, "patient": _REFERENCE_ELEMENT, "id": st.sampled_from(["a", "p1"])},
)


@settings(max_examples=800, deadline=None, derandomize=True)
@given(resource=_RESOURCES)
def test_the_inline_test_implies_about(resource):
    if _subject_accepted(resource, ACCEPTED):
        assert _about(resource, PATIENT, ACCEPTED)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(resources=st.lists(_RESOURCES, max_size=6))
def test_binding_keeps_exactly_what_about_keeps(resources):
    intake = Intake()
    for n, resource in enumerate(resources):
        intake.add_resource({**resource, "id": f"r{n}"})
    expected = {t: [r for r in rs if _about(r, PATIENT, ACCEPTED)] for t, rs in intake.by_type.items()}
    intake.bind_patient(PATIENT, frozenset({"http://x/fhir/Patient/p1"}))
    assert {t: rs for t, rs in intake.by_type.items()} == expected
