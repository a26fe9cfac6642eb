"""The call into the imaging-findings package (cds.findings), when it is installed.

The glue is tested with a stand-in module (the findings worker tests the package itself);
the last test runs the real package when it is importable.
"""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime
from typing import Any

import pytest

from cds.facts import Fact, FactSet, FactWarning
from cds.fhir import Terminology, extract_facts
from tests.conftest import RULES_DIR
from tests.fhir.conftest import NOW, of_kind
from tests.fhir.resources import CPT, ICD, RXNORM, bundle, coding, condition, medication_request

REPORT = {
    "resourceType": "DiagnosticReport",
    "id": "bs1",
    "status": "final",
    "code": {"coding": [coding(CPT, "78306", "Bone and/or joint imaging; whole body")]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-02-20",
    "conclusion": "Heterogeneous soft tissue uptake in the left calf, corresponding to the painful ulcer.",
}


@pytest.fixture
def fake_findings(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    calls: dict[str, Any] = {}

    def extract_findings(reports, resources_by_ref, now, lesion_sites, knowledge, medications=()):  # type: ignore[no-untyped-def]
        calls.update(
            reports=reports,
            index=resources_by_ref,
            now=now,
            lesion_sites=lesion_sites,
            knowledge=knowledge,
            medications=medications,
        )
        if knowledge == "explode":
            raise RuntimeError("boom")
        return FactSet(
            facts=(Fact("finding", "finding:DiagnosticReport/bs1:1", {"concept": "soft-tissue-uptake"}),),
            warnings=(FactWarning("DiagnosticReport", "bs1", "a findings warning"),),
        )

    module = types.ModuleType("cds.findings")
    module.extract_findings = extract_findings  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cds.findings", module)
    return calls


def _terminology(knowledge: Any) -> Terminology:
    term = Terminology.load(RULES_DIR)
    term.findings_knowledge = knowledge
    return term


def test_reports_lesion_map_and_medications_are_passed(fake_findings) -> None:
    prefetch = {
        "all": bundle(
            REPORT,
            condition("u1", coding(ICD, "L97.222")),
            condition("u2", coding(ICD, "L97.909")),  # no laterality: None, not ""
            condition(
                "u3", coding(ICD, "L97.111"), clinical="resolved", abatement="2025-01-01"
            ),  # healed: not a lesion
            medication_request("m1", coding(RXNORM, "11289")),
        )
    }
    result = extract_facts({"patientId": "p1"}, prefetch, NOW, _terminology("knowledge"))
    assert [r["id"] for r in fake_findings["reports"]] == ["bs1"]
    assert fake_findings["lesion_sites"] == {("lower-leg", "left"), ("lower-leg", None)}
    assert [f.attrs["drug_class"] for f in fake_findings["medications"]] == ["vitamin-k-antagonist"]
    assert "DiagnosticReport/bs1" in fake_findings["index"]
    assert fake_findings["now"] == NOW
    assert [f.id for f in of_kind(result, "finding")] == ["finding:DiagnosticReport/bs1:1"]
    assert ("DiagnosticReport", "bs1", "a findings warning") in [
        (w.resource_type, w.resource_id, w.message) for w in result.warnings
    ]


def test_a_failing_findings_package_is_a_warning(fake_findings) -> None:
    result = extract_facts({}, {"r": REPORT}, NOW, _terminology("explode"))
    assert of_kind(result, "finding") == []
    assert [w.message for w in result.warnings] == ["findings extraction failed: RuntimeError"]


def test_without_findings_knowledge_reports_give_no_facts(fake_findings) -> None:
    result = extract_facts({}, {"r": REPORT}, NOW, _terminology(None))
    assert of_kind(result, "finding") == [] and "reports" not in fake_findings


def test_real_findings_package_when_installed() -> None:
    pytest.importorskip("cds.findings")
    term = Terminology.load(RULES_DIR)
    if term.findings_knowledge is None:
        pytest.skip("rules/findings knowledge not present in this rule set")
    prefetch = {"all": bundle(REPORT, condition("u1", coding(ICD, "L97.222")))}
    result = extract_facts({"patientId": "p1"}, prefetch, datetime(2026, 3, 1, tzinfo=UTC), term)
    uptake = [f for f in result.facts if f.kind == "finding" and f.attrs.get("concept") == "soft-tissue-uptake"]
    assert uptake and uptake[0].attrs.get("at_lesion_site") is True
