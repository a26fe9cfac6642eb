"""Facts honour the contract in cds/facts.py: declared attributes, scalar types, unique ids."""

from __future__ import annotations

from cds.facts import FACT_FIELDS, FACT_KINDS
from tests.fhir.resources import (
    CPT,
    ICD,
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

PY_TYPES = {"str": (str,), "number": (int, float), "bool": (bool,)}


def test_a_rich_request_gives_only_declared_well_typed_attributes(run) -> None:
    drafts = bundle(
        service_request("bs", coding(CPT, "78306")),
        medication_request("d", reference="#m", status="draft", contained=[medication("m", coding(RXNORM, "11289"))]),
    )
    facts = run(
        patient(),
        bundle(
            condition("c1", coding(ICD, "L97.222")),
            condition(
                "c2",
                coding(SCT, "46742003"),
                onset="2025-10-01",
                body_site=[coding(SCT, "68367000"), coding(SCT, "24028007")],
            ),
            condition("c3", coding(ICD, "Z99.2"), onset="2019-01-01", verification="unconfirmed"),
            condition("c4", coding(ICD, "E11.9"), clinical="resolved", abatement="2024-01-01"),
            observation("ca", "17861-6", 10.2, "mg/dL", "2026-02-10"),
            observation("ca0", "17861-6", 9.2, "mg/dL", "2026-01-10"),
            observation("p", "2777-1", 7.1, "mg/dL", "2026-02-10"),
            observation("alb", "1751-7", 2.9, "g/dL", "2026-02-10"),
            observation("pth", "2731-8", 1500, "pg/mL", "2026-02-10", comparator=">"),
            observation("bmi", "39156-5", 36.0, "kg/m2", "2026-02-10", category="vital-signs"),
            observation("w", "29463-7", 100.0, "kg", "2026-02-10", category="vital-signs"),
            observation("w0", "29463-7", 104.0, "kg", "2026-01-10", category="vital-signs"),
            medication_request("m1", coding(RXNORM, "11289"), route="oral"),
            procedure("hd", coding(CPT, "90935"), "2019-06-01"),
            procedure("bx", coding(CPT, "11104"), "2026-02-01", outcome="Nondiagnostic"),
        ),
        context={"patientId": "p1", "draftOrders": drafts, "selections": ["ServiceRequest/bs"]},
    )
    assert facts.warnings == ()
    assert {f.kind for f in facts.facts} == set(FACT_KINDS) - {"finding"}
    ids = [f.id for f in facts.facts]
    assert len(ids) == len(set(ids))
    for fact in facts.facts:
        declared = FACT_FIELDS[fact.kind]
        for name, value in fact.attrs.items():
            assert name in declared, (fact.kind, name)
            assert value is not None, (fact.id, name)
            assert isinstance(value, PY_TYPES[declared[name]]), (fact.id, name, value)
            if declared[name] == "number":
                assert not isinstance(value, bool), (fact.id, name)
