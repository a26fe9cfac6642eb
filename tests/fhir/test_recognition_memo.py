"""recognise() is memoised by the concepts' codes and words (issue 20): a repeated drug coding gives
the same answer as the first, gap telemetry is still counted for every resource, and no caller can
change what the next one is told."""

from __future__ import annotations

import pytest

from cds.fhir.terminology import RXNORM, Terminology
from tests.conftest import RULES_DIR

# RxNorm 855332: Warfarin Sodium 5 MG Oral Tablet (a clinical drug, RxNav).
WARFARIN_TABLET = {"coding": [{"system": RXNORM, "code": "855332", "display": "warfarin sodium 5 MG Oral Tablet"}]}
# A hospital formulary code no value set can hold, with the brand name as its text.
LOCAL_BRAND = {
    "coding": [{"system": "http://hospital.example.org/formulary", "code": "F-10293"}],
    "text": "Coumadin 5 mg",
}


@pytest.fixture(scope="module")
def terminology() -> Terminology:
    return Terminology.load(RULES_DIR)


def test_a_repeated_coding_gets_the_first_answer(terminology):
    first, _ = terminology.recognise([WARFARIN_TABLET], ("medication",))
    again, _ = terminology.recognise([dict(WARFARIN_TABLET)], ("medication",))
    assert first and again == first
    assert {m.layer for m in first.values()} <= {"code", "hierarchy"}


def test_gaps_are_counted_for_every_resource_type_on_a_repeated_answer(terminology):
    gaps: dict[tuple[str, str, str], str] = {}
    found, _ = terminology.recognise([LOCAL_BRAND], ("medication",), gaps, "MedicationRequest")
    again, _ = terminology.recognise([LOCAL_BRAND], ("medication",), gaps, "MedicationStatement")
    assert found and again == found and {m.layer for m in found.values()} == {"text"}
    text_match = ",".join(sorted(found))
    assert gaps == {
        ("http://hospital.example.org/formulary", "F-10293", "MedicationRequest"): text_match,
        ("http://hospital.example.org/formulary", "F-10293", "MedicationStatement"): text_match,
    }


def test_changing_an_answer_does_not_change_the_next_one(terminology):
    first, withheld = terminology.recognise([WARFARIN_TABLET], ("medication",))
    first.clear()
    withheld.append("changed by a caller")
    again, withheld_again = terminology.recognise([WARFARIN_TABLET], ("medication",))
    assert again and "changed by a caller" not in withheld_again


def test_a_coding_that_is_not_plain_strings_is_still_read_and_not_memoised(terminology):
    odd = {"coding": [{"system": RXNORM, "code": 855332}], "text": "warfarin"}
    remembered = len(terminology._recognised)
    found, _ = terminology.recognise([odd], ("medication",))
    assert found  # the text still names the drug
    assert len(terminology._recognised) == remembered
