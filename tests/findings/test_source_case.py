"""The source case: bone scan and CT of a dialysis patient with bilateral calf ulcers."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.observation import Observation

from cds.facts import FACT_FIELDS, Fact
from cds.findings import extract_findings
from tests.findings import fixtures as fx

CALF_ULCERS = [("calf", "left"), ("calf", "right")]
# Provenance, not content: where in the report (or whether from codes) a finding was read.
PROVENANCE = {"extraction", "section"}


def by_id(facts: tuple[Fact, ...]) -> dict[str, dict[str, Any]]:
    """Finding facts by id."""
    return {f.id: dict(f.attrs) for f in facts if f.kind == "finding"}


def summaries(facts: tuple[Fact, ...]) -> dict[str, dict[str, Any]]:
    return {f.id: dict(f.attrs) for f in facts if f.kind == "derived"}


def content(facts: tuple[Fact, ...]) -> dict[str, dict[str, Any]]:
    return {fid: {k: v for k, v in attrs.items() if k not in PROVENANCE} for fid, attrs in by_id(facts).items()}


def test_fixtures_are_valid_r4() -> None:
    DiagnosticReport.model_validate(fx.source_bone_scan_text_only())
    DiagnosticReport.model_validate(fx.source_ct_text_only())
    for rep, resources in (fx.source_bone_scan_coded(), fx.source_ct_coded()):
        DiagnosticReport.model_validate(rep)
        for res in resources.values():
            (Observation if res["resourceType"] == "Observation" else ImagingStudy).model_validate(res)


def test_source_bone_scan_text(knowledge, now) -> None:
    fs = extract_findings([fx.source_bone_scan_text_only()], {}, now, CALF_ULCERS, knowledge)
    assert fs.warnings == ()
    facts = by_id(fs.facts)
    ref = "finding:DiagnosticReport/bone-scan-1"

    calves = facts[f"{ref}:soft-tissue-uptake:calf:bilateral"]
    assert calves["distribution"] == "asymmetric"
    assert calves["intensity"] == "intense"
    assert calves["layer"] == "subcutaneous"
    assert calves["at_lesion_site"] is True
    assert calves["negated"] is False and calves["certainty"] == "definite"
    assert calves["modality"] == "NM" and calves["date"] == "2026-10-02" and calves["days_ago"] == 8
    assert "attributed_to" not in calves  # the calf uptake is not explained away as renal failure

    diffuse = facts[f"{ref}:soft-tissue-uptake:-:-"]
    assert diffuse["distribution"] == "diffuse"
    assert diffuse["attributed_to"] == "renal-failure-soft-tissue-clearance"
    assert "at_lesion_site" not in diffuse  # no site: correspondence unknown, not false

    assert facts[f"{ref}:faint-renal-uptake:kidney:bilateral"]["negated"] is False
    knee = facts[f"{ref}:arthroplasty-photopenia:knee:right"]
    assert knee["at_lesion_site"] is False
    midfoot = facts[f"{ref}:degenerative-joint-uptake:midfoot:-"]
    assert midfoot["site_class"] == "joint"
    imp = facts[f"{ref}:impression-calciphylaxis:-:-"]
    assert imp["hypothesis"] == "calciphylaxis" and imp["certainty"] == "probable"
    assert facts[f"{ref}:impression-renal-failure-soft-tissue-clearance:-:-"]["negated"] is False

    # Incidental findings are recognised as such and never counted as soft-tissue uptake:
    soft = [a for a in facts.values() if a["concept"] == "soft-tissue-uptake"]
    assert {a.get("site") for a in soft} == {None, "calf"}
    # The indication ("rule out calciphylaxis", "ulcers of both calves") is not a finding:
    assert len(facts) == 7
    # One report-level answer: soft-tissue uptake present, at the lesion sites.
    assert summaries(fs.facts) == {
        "derived:bone-scan-soft-tissue-uptake:DiagnosticReport/bone-scan-1": {
            "name": "bone-scan-soft-tissue-uptake",
            "text": "present",
            "flag": True,
            "source": "DiagnosticReport/bone-scan-1",
            "date": "2026-10-02",
        }
    }


def test_source_ct_text(knowledge, now) -> None:
    fs = extract_findings([fx.source_ct_text_only()], {}, now, CALF_ULCERS, knowledge)
    facts = by_id(fs.facts)
    assert set(facts) == {
        "finding:DiagnosticReport/ct-1:subcutaneous-calcification:calf:bilateral",
        "finding:DiagnosticReport/ct-1:cutaneous-calcification:calf:bilateral",
    }
    for attrs in facts.values():
        assert attrs["modality"] == "CT"
        assert attrs["at_lesion_site"] is True
        assert attrs["negated"] is False


@pytest.mark.parametrize(
    "text_report, coded",
    [(fx.source_bone_scan_text_only, fx.source_bone_scan_coded), (fx.source_ct_text_only, fx.source_ct_coded)],
)
def test_coded_and_text_versions_give_the_same_findings(knowledge, now, text_report, coded) -> None:
    from_text = extract_findings([text_report()], {}, now, CALF_ULCERS, knowledge)
    rep, resources = coded()
    from_codes = extract_findings([rep], resources, now, CALF_ULCERS, knowledge)
    assert from_codes.warnings == () and from_text.warnings == ()
    assert content(from_codes.facts) == content(from_text.facts)
    assert summaries(from_codes.facts) == summaries(from_text.facts)
    assert {a["extraction"] for a in by_id(from_codes.facts).values()} == {"coded"}
    assert {a["extraction"] for a in by_id(from_text.facts).values()} == {"text"}


def test_coded_and_text_together_merge_into_one_fact_per_finding(knowledge, now) -> None:
    rep, resources = fx.source_bone_scan_coded()
    text = fx.source_bone_scan_text_only()
    rep = {**rep, "presentedForm": text["presentedForm"], "conclusion": text["conclusion"]}
    fs = extract_findings([rep], resources, now, CALF_ULCERS, knowledge)
    only_text = extract_findings([text], {}, now, CALF_ULCERS, knowledge)
    assert set(by_id(fs.facts)) == set(by_id(only_text.facts))


def test_facts_respect_the_contract(knowledge, now) -> None:
    rep, resources = fx.source_bone_scan_coded()
    fs = extract_findings(
        [fx.source_bone_scan_text_only(), fx.source_ct_text_only(), rep], resources, now, CALF_ULCERS, knowledge
    )
    ids = [f.id for f in fs.facts]
    assert len(ids) == len(set(ids))
    for f in fs.facts:
        declared = FACT_FIELDS[f.kind]
        for name, value in f.attrs.items():
            assert name in declared, f"{f.kind}.{name} not declared in FACT_FIELDS"
            assert value is not None
            kind = declared[name]
            assert isinstance(value, {"str": str, "number": (int, float), "bool": bool}[kind])
        if f.kind == "finding":
            assert f.attrs["concept"] in knowledge.finding_valuesets
