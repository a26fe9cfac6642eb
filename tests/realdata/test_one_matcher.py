"""One code matcher (cds.concepts.CodeIndex) for the FHIR layer and the findings layer: the same
coding, in its canonical or HL7 OID system form, is recognised identically by both."""

from __future__ import annotations

import pytest

from cds.concepts import SYSTEM_ALIASES, CodeIndex, canonical_system

OIDS = {canonical: alias for alias, canonical in SYSTEM_ALIASES.items() if alias.startswith("urn:oid:")}


def _findings_codes(terminology) -> list[tuple[str, str, tuple]]:  # type: ignore[no-untyped-def]
    k = terminology.findings_knowledge
    out = []
    for index in (k.finding_codes, k.study_codes):
        for c in index:
            code = c.code + ("9" if c.prefix else "")
            out.append((c.system, code, index))
    return out


def test_oid_table_is_the_hl7_one() -> None:
    # HL7 OID registry / FHIR R4 "Using Codes" external code systems table.
    assert canonical_system("urn:oid:2.16.840.1.113883.6.96") == "http://snomed.info/sct"
    assert canonical_system("urn:oid:2.16.840.1.113883.6.1") == "http://loinc.org"
    assert canonical_system("urn:oid:2.16.840.1.113883.6.88") == "http://www.nlm.nih.gov/research/umls/rxnorm"
    assert canonical_system("urn:oid:2.16.840.1.113883.6.90") == "http://hl7.org/fhir/sid/icd-10-cm"


def test_every_findings_code_is_recognised_the_same_by_both_layers(terminology) -> None:
    k = terminology.findings_knowledge
    checked = 0
    for system, code, index in _findings_codes(terminology):
        in_findings = set(k.valuesets_for(system, code, index))
        in_fhir = {m.valueset for m in terminology.match(system, code)} & in_findings
        assert in_findings and in_fhir == in_findings, (system, code)
        oid = OIDS.get(system)
        if oid:
            assert set(k.valuesets_for(oid, code, index)) == in_findings, (oid, code)
            assert {m.valueset for m in terminology.match(oid, code)} >= in_findings, (oid, code)
            checked += 1
    assert checked > 10


@pytest.mark.parametrize(
    ("system", "code", "layer"),
    [
        ("http://hl7.org/fhir/sid/icd-10-cm", "L97.212", "hierarchy"),  # non-pressure chronic ulcer of right calf
        ("urn:oid:2.16.840.1.113883.6.90", "l97212", "hierarchy"),
        ("urn:oid:2.16.840.1.113883.6.96", "46742003", "code"),  # SNOMED CT Skin ulcer
    ],
)
def test_layer_is_reported(terminology, system: str, code: str, layer: str) -> None:
    matches = terminology.match(system, code)
    assert matches and {m.layer for m in matches} == {layer}


def test_code_index_prefix_semantics() -> None:
    index = CodeIndex.of(
        [
            ("ulcer", "http://hl7.org/fhir/sid/icd-10-cm", "L97.*", "V"),
            ("athero", "http://hl7.org/fhir/sid/icd-10-cm", "I70.2*", "V"),
        ]
    )
    assert index.valuesets("http://hl7.org/fhir/sid/icd-10-cm", "L97") == ["ulcer"]
    assert index.valuesets("http://hl7.org/fhir/sid/icd-10-cm", "L97.901") == ["ulcer"]
    assert index.valuesets("http://hl7.org/fhir/sid/icd-10-cm", "L970") == ["ulcer"]  # undotted form
    assert index.valuesets("http://hl7.org/fhir/sid/icd-10-cm", "L98.4") == []
    assert index.valuesets("urn:oid:2.16.840.1.113883.6.90", "I70.25") == ["athero"]
