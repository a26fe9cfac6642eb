"""One terminology matcher: a coding, in its canonical or its HL7 OID system form, is recognised
identically by every layer that matches codes: the FHIR layer (``Terminology.match``), the findings
layer (``FindingsKnowledge.valuesets_for``) and the engine's code membership (``prepare``).

The OIDs are HL7's (HL7 OID registry; FHIR R4 "Using Codes in Resources", external code systems).
"""

from __future__ import annotations

import pytest

from cds.concepts import ICD10CM, LOINC, RXNORM, SNOMED
from cds.engine.prepare import _in_valueset
from cds.knowledge import KnowledgeBundle, load_bundle_or_raise
from tests.conftest import RULES_DIR

OID = {
    SNOMED: "urn:oid:2.16.840.1.113883.6.96",
    LOINC: "urn:oid:2.16.840.1.113883.6.1",
    RXNORM: "urn:oid:2.16.840.1.113883.6.88",
    ICD10CM: "urn:oid:2.16.840.1.113883.6.90",
}


@pytest.fixture(scope="module")
def bundle() -> KnowledgeBundle:
    return load_bundle_or_raise(RULES_DIR)


def _layers(bundle: KnowledgeBundle, system: str, code: str) -> tuple[set[str], set[str], set[str]]:
    fhir = {m.valueset for m in bundle.terminology.match(system, code)}
    engine = {
        vs
        for vs, info in bundle.ruleset.valuesets.items()
        if _in_valueset({"system": system, "code": code}, (info.codes, info.prefixes))
    }
    k = bundle.findings
    assert k is not None
    findings = set(k.valuesets_for(system, code, k.finding_codes)) | set(k.valuesets_for(system, code, k.study_codes))
    return fhir, engine, findings


def _codings(bundle: KnowledgeBundle) -> list[tuple[str, str]]:
    out = []
    for info in bundle.ruleset.valuesets.values():
        out.extend(info.codes)
        out.extend((system, stem + "9") for system, stem in info.prefixes)  # a code under the prefix
    return sorted(set(out))


def test_every_value_set_code_is_recognised_identically_by_every_layer_in_both_system_forms(bundle) -> None:
    findings_sets = bundle.findings.finding_valuesets | {v for m in bundle.findings.modalities for v in m.valuesets}
    checked = dict.fromkeys(OID, 0)
    for system, code in _codings(bundle):
        fhir, engine, findings = _layers(bundle, system, code)
        assert fhir and fhir == engine, (system, code, fhir, engine)
        assert findings == fhir & findings_sets, (system, code)
        if system in OID:
            assert _layers(bundle, OID[system], code) == (fhir, engine, findings), (OID[system], code)
            checked[system] += 1
    assert all(checked.values()), checked  # each of the four code systems occurs in the value sets


def test_icd10cm_in_the_oid_form_undotted_and_lower_case_is_the_same_code(bundle) -> None:
    # N18.6 End stage renal disease (ICD-10-CM), as some EHRs send it
    assert _layers(bundle, OID[ICD10CM], "n186") == _layers(bundle, ICD10CM, "N18.6")
    assert _layers(bundle, ICD10CM, "N18.6")[0]


def test_an_unknown_system_matches_nothing_anywhere(bundle) -> None:
    assert _layers(bundle, "urn:oid:1.2.3.4", "N18.6") == (set(), set(), set())
