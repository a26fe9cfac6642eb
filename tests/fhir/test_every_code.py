"""Data-driven: every value set and every declared unit conversion, through real extraction.

A code an informaticist adds to rules/ is exercised here without a new test: one resource per
value set (built from its first code) must give a fact of that concept, and one Observation per
declared unit must come out in the canonical unit with the declared factor.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import RULES_DIR
from tests.fhir.conftest import of_kind
from tests.fhir.resources import bundle, coding, condition, medication_request, observation, procedure, service_request


def _valuesets() -> list[dict[str, Any]]:
    out = []
    for path in sorted((RULES_DIR / "valuesets").glob("*.yaml")):
        out.extend(yaml.safe_load(path.read_text()).get("valuesets") or [])
    return out


def _example_code(code: str) -> str:
    # a code under a prefix pattern: "L97.*" -> "L97.9", "I70.2*" -> "I70.29"
    if code.endswith(".*"):
        return code[:-2] + ".9"
    if code.endswith("*"):
        return code[:-1] + "9"
    return code


def _resource(vs: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
    code = coding(entry["system"], _example_code(str(entry["code"])))
    kind = vs["fact_kind"]
    if kind == "condition":
        return condition("c1", code)
    if kind == "medication":
        return medication_request("m1", code)
    if kind == "procedure":
        return procedure("p1", code, "2026-01-15")
    return None


CASES = [
    pytest.param(vs, entry, id=f"{vs['id']}-{entry['code']}")
    for vs in _valuesets()
    if vs["fact_kind"] in ("condition", "medication", "procedure")
    for entry in vs["codes"]
]


@pytest.mark.parametrize(("vs", "entry"), CASES)
def test_every_code_of_every_value_set_gives_its_fact(run, vs, entry) -> None:
    facts = run(bundle(_resource(vs, entry)))
    attr = "drug_class" if vs["fact_kind"] == "medication" else "concept"
    found = of_kind(facts, vs["fact_kind"], **{attr: vs["id"]})
    assert len(found) == 1, (vs["id"], entry, [f.as_dict() for f in facts.facts])
    assert found[0].attrs["code_confidence"] in ("V", "S", "R")
    assert facts.warnings == ()


@pytest.mark.parametrize("vs", [v for v in _valuesets() if v["fact_kind"] == "procedure"], ids=lambda v: v["id"])
def test_every_procedure_concept_as_a_draft_service_request(run, vs) -> None:
    entry = vs["codes"][0]
    drafts = bundle(service_request("s1", coding(entry["system"], _example_code(str(entry["code"])))))
    facts = run(context={"patientId": "p1", "draftOrders": drafts})
    assert of_kind(facts, "draft-order", concept=vs["id"], selected=True)


def _conversions() -> list[Any]:
    cases = []
    for analyte in yaml.safe_load((RULES_DIR / "analytes.yaml").read_text())["analytes"]:
        if not analyte.get("codes"):
            continue
        loinc = analyte["codes"][0]["code"]
        cases.append(pytest.param(analyte, loinc, analyte["unit"], 1.0, id=f"{analyte['id']}-{analyte['unit']}"))
        for conv in analyte.get("conversions") or []:
            for unit in [conv["unit"], *(conv.get("aliases") or [])]:
                cases.append(pytest.param(analyte, loinc, unit, conv["factor"], id=f"{analyte['id']}-{unit}"))
    return cases


@pytest.mark.parametrize(("analyte", "loinc", "unit", "factor"), _conversions())
def test_every_declared_unit_converts_with_its_factor(run, analyte, loinc, unit, factor) -> None:
    category = "laboratory" if analyte.get("emit_fact", True) else "vital-signs"
    facts = run(observation("o1", loinc, 2.0, unit, "2026-02-20", category=category))
    assert facts.warnings == ()
    if analyte.get("emit_fact", True):
        (fact,) = of_kind(facts, "lab", analyte=analyte["id"])
        assert fact.attrs["unit"] == analyte["unit"]
        assert fact.attrs["value"] == pytest.approx(2.0 * factor, rel=1e-4)
