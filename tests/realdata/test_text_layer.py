"""Concept recognition in layers: code, hierarchy, text (ADR 0005). Resources are written from
the standards (SNOMED CT, ICD-10-CM, RxNorm) and clinical wording, not from the value sets."""

from __future__ import annotations

from datetime import UTC, datetime

from cds.fhir import extract_facts

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ACTIVE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}


def _condition(cid: str, code: dict) -> dict:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": ACTIVE,
        "code": code,
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2026-02-01",
    }


def _facts(terminology, *resources, context=None):  # type: ignore[no-untyped-def]
    return extract_facts(
        context or {"patientId": "p1"}, {f"k{i}": r for i, r in enumerate(resources)}, NOW, terminology
    )


def _conditions(result) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {f.attrs["concept"]: dict(f.attrs) for f in result.facts if f.kind == "condition"}


def test_generic_skin_lesion_code_with_descriptive_text(terminology) -> None:
    # SNOMED CT 95324001 |Skin lesion|: a generic concept; the text says what the lesion is.
    result = _facts(
        terminology,
        _condition(
            "c1",
            {
                "coding": [{"system": SCT, "code": "95324001", "display": "Skin lesion"}],
                "text": "Painful indurated plaque, left medial thigh",
            },
        ),
    )
    early = _conditions(result)["calciphylaxis-early-lesion"]
    assert early["recognised_by"] == "text" and early["recognised_text"] == "indurated plaque"
    assert "code" not in early  # the coding did not say this; it is not reported as the code that did


def test_lesion_known_only_by_text(terminology) -> None:
    result = _facts(terminology, _condition("c1", {"text": "Necrotic ulcer of the right calf"}))
    facts = _conditions(result)
    assert facts["skin-necrosis"]["recognised_by"] == "text"


def test_negated_and_uncertain_text_asserts_nothing(terminology) -> None:
    result = _facts(
        terminology,
        _condition("c1", {"text": "Rule out calciphylaxis"}),
        _condition("c2", {"text": "Possible calciphylaxis"}),
        _condition("c3", {"text": "No skin ulcer"}),
    )
    assert "calciphylaxis" not in _conditions(result) and "skin-ulcer" not in _conditions(result)
    notes = [w.message for w in result.warnings]
    assert any("'calciphylaxis' not counted (hypothetical)" in n for n in notes), notes
    assert any("not counted (possible_existence)" in n for n in notes), notes
    assert any("'skin ulcer' not counted (negated_existence)" in n for n in notes), notes


def test_a_code_outranks_text(terminology) -> None:
    # ICD-10-CM L89.154: pressure ulcer of sacral region, stage 4. The free text guesses otherwise.
    result = _facts(
        terminology,
        _condition(
            "c1",
            {
                "coding": [{"system": ICD, "code": "L89.154", "display": "Pressure ulcer of sacral region, stage 4"}],
                "text": "calciphylaxis?",
            },
        ),
    )
    facts = _conditions(result)
    assert "calciphylaxis" not in facts
    assert facts["pressure-ulcer"]["recognised_by"] == "hierarchy"


def test_icd10cm_code_under_a_listed_category_is_hierarchy(terminology) -> None:
    # L97.212: non-pressure chronic ulcer of right calf limited to breakdown of skin.
    result = _facts(terminology, _condition("c1", {"coding": [{"system": ICD, "code": "L97212"}]}))
    ulcer = _conditions(result)["lower-limb-ulcer"]
    assert ulcer["recognised_by"] == "hierarchy" and ulcer["code"] == "L97.212" and ulcer["site"] == "lower-leg"


def test_snomed_code_sent_with_its_oid(terminology) -> None:
    result = _facts(
        terminology,
        _condition(
            "c1",
            {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.96", "code": "46742003", "display": "Skin ulcer"}]},
        ),
    )
    ulcer = _conditions(result)["skin-ulcer"]
    assert ulcer["recognised_by"] == "code" and ulcer["system"] == SCT


def _order(rid: str, medication: dict, **extra) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-01-15",
        **medication,
        **extra,
    }


def _medications(result) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {f.attrs["drug_class"]: dict(f.attrs) for f in result.facts if f.kind == "medication"}


def test_brand_name_in_a_contained_medication(terminology) -> None:
    order = _order(
        "m1",
        {"medicationReference": {"reference": "#med"}},
        contained=[{"resourceType": "Medication", "id": "med", "code": {"text": "Jantoven 5 mg tablet"}}],
    )
    vka = _medications(_facts(terminology, order))["vitamin-k-antagonist"]
    assert vka["recognised_by"] == "text" and vka["recognised_text"] == "jantoven"


def test_ingredient_code_of_a_referenced_medication(terminology) -> None:
    # A compounded product coded only locally; its ingredient is RxNorm 11289 (warfarin).
    medication = {
        "resourceType": "Medication",
        "id": "compound-1",
        "code": {"coding": [{"system": "http://hospital.example.org/formulary", "code": "F-7781"}]},
        "ingredient": [{"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "11289"}]}}],
    }
    order = _order("m2", {"medicationReference": {"reference": "Medication/compound-1"}})
    vka = _medications(_facts(terminology, medication, order))["vitamin-k-antagonist"]
    assert vka["recognised_by"] == "code"


def test_branded_product_code_from_rxnorm(terminology) -> None:
    # RxNorm 855336: Warfarin Sodium 5 MG Oral Tablet [Jantoven] (SBD), as the sandbox offers it.
    order = _order("m3", {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "855336"}]}})
    assert _medications(_facts(terminology, order))["vitamin-k-antagonist"]["recognised_by"] == "code"


def test_brand_names_of_other_drug_classes(terminology) -> None:
    orders = [
        _order("a", {"medicationCodeableConcept": {"text": "PhosLo 667 mg gelcap"}}),
        _order("b", {"medicationCodeableConcept": {"text": "Rocaltrol 0.25 mcg capsule"}}),
        _order("c", {"medicationCodeableConcept": {"text": "Zemplar 1 mcg capsule"}}),
        _order("d", {"medicationCodeableConcept": {"text": "Hectorol 0.5 mcg capsule"}}),
        _order("e", {"medicationCodeableConcept": {"text": "Sensipar 30 mg tablet"}}),
        _order("f", {"medicationCodeableConcept": {"text": "Sodium thiosulfate 25 g IV three times weekly"}}),
    ]
    by_source = {
        f.attrs["source"]: f.attrs["drug_class"] for f in _facts(terminology, *orders).facts if f.kind == "medication"
    }
    assert by_source == {
        "MedicationRequest/a": "calcium-based-binder",
        "MedicationRequest/b": "active-vitamin-d",
        "MedicationRequest/c": "active-vitamin-d",
        "MedicationRequest/d": "active-vitamin-d",
        "MedicationRequest/e": "calcimimetic",
        "MedicationRequest/f": "sodium-thiosulfate",
    }


def test_unrelated_drug_text_is_not_matched(terminology) -> None:
    order = _order("m4", {"medicationCodeableConcept": {"text": "Apixaban 5 mg tablet"}})
    assert _medications(_facts(terminology, order)) == {}


def test_specific_snomed_ulcer_not_in_the_value_set_is_read_from_its_display(terminology) -> None:
    """A more specific SNOMED CT disorder than the value sets list, sent with its FSN as display: the
    text layer reads the display; the code itself is left to the value set (and counted as a gap)."""
    from cds.fhir.gaps import GAPS

    GAPS.clear()
    result = _facts(
        terminology,
        _condition(
            "c1", {"coding": [{"system": SCT, "code": "1000000000099", "display": "Ulcer of thigh (disorder)"}]}
        ),
    )
    ulcer = _conditions(result)["lower-limb-ulcer"]
    assert ulcer["recognised_by"] == "text" and ulcer["recognised_text"] == "ulcer of thigh"
    assert [(g.code, g.text_match) for g in GAPS.snapshot()] == [("1000000000099", "lower-limb-ulcer")]


def test_kinds_of_skin_ulcer_coded_in_snomed_ct(terminology) -> None:
    """SNOMED CT has no prefix hierarchy, so kinds of skin ulcer are recognised by listed codes. Codes and
    displays from the HL7 Lower Extremity Skin Wound Assessment IG's woundTypeVS, written as an EHR sends them."""
    result = _facts(
        terminology,
        _condition("c1", {"coding": [{"system": SCT, "code": "371032004", "display": "Stasis ulcer"}]}),
        _condition("c2", {"coding": [{"system": SCT, "code": "13954005", "display": "Ischemic ulcer"}]}),
        _condition("c3", {"coding": [{"system": SCT, "code": "399912005", "display": "Pressure sore"}]}),
    )
    by_source = {f.attrs["source"]: f.attrs for f in result.facts if f.kind == "condition"}
    assert by_source["Condition/c1"]["concept"] == "skin-ulcer" and by_source["Condition/c1"]["recognised_by"] == "code"
    assert by_source["Condition/c2"]["concept"] == "skin-ulcer"
    assert by_source["Condition/c3"]["concept"] == "pressure-ulcer"  # a look-alike, kept apart


def test_every_listed_code_source_is_a_reference() -> None:
    """A code listed with its own source names a reference a clinician or informaticist can open."""
    import yaml

    from tests.conftest import RULES_DIR

    references = {r["id"] for r in yaml.safe_load((RULES_DIR / "references.yaml").read_text())["references"]}
    sources = [
        code["source"]
        for path in (RULES_DIR / "valuesets").glob("*.yaml")
        for vs in (yaml.safe_load(path.read_text()) or {}).get("valuesets", [])
        for code in vs.get("codes", [])
        if "source" in code
    ]
    assert sources and set(sources) <= references
