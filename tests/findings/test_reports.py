"""DiagnosticReport handling: validation, sections, text sources, modality, dates, references."""

from __future__ import annotations

import base64
import copy

from cds.facts import FactSet
from cds.findings import at_lesion_site, extract_findings
from tests.findings import fixtures as fx


def run(knowledge, now, reports, resources=None, lesions=()) -> FactSet:
    """The finding facts (the per-scan summary facts are tested in test_source_case/test_serial)."""
    fs = extract_findings(reports, resources or {}, now, lesions, knowledge)
    return FactSet(facts=tuple(f for f in fs.facts if f.kind == "finding"), warnings=fs.warnings)


def concepts(fs: FactSet) -> set[tuple]:
    return {(f.attrs["concept"], f.attrs.get("site"), f.attrs.get("laterality"), f.attrs["negated"]) for f in fs.facts}


def text_report(text: str, rid: str = "r1", code=None, **kw):
    return fx.report(rid, code or fx.BONE_SCAN_CODE, text=text, **kw)


def test_indication_and_history_sections_give_no_findings(knowledge, now) -> None:
    text = (
        "CLINICAL HISTORY: Known soft tissue calcification of both calves.\n"
        "INDICATION: Rule out calciphylaxis.\n"
        "FINDINGS: No soft tissue uptake in the lower extremities.\n"
    )
    fs = run(knowledge, now, [text_report(text)])
    assert concepts(fs) == {("soft-tissue-uptake", "lower-limb", "bilateral", True)}
    assert fs.facts[0].attrs["section"] == "findings"


def test_hypothetical_and_historical_mentions(knowledge, now) -> None:
    text = (
        "FINDINGS: If symptoms persist, CT could be performed to assess for subcutaneous calcification.\n"
        "History of calciphylaxis of the abdomen.\n"
    )
    fs = run(knowledge, now, [text_report(text)])
    assert [(f.attrs["concept"], f.attrs.get("historical")) for f in fs.facts] == [("impression-calciphylaxis", True)]


def test_conclusion_is_read_as_impression_and_not_parsed_twice(knowledge, now) -> None:
    rep = fx.report(
        "r2",
        fx.BONE_SCAN_CODE,
        conclusion="Heterogeneous subcutaneous uptake in both thighs, compatible with calciphylaxis.",
    )
    fs = run(knowledge, now, [rep], lesions=[("thigh", "left")])
    by_concept = {f.attrs["concept"]: f.attrs for f in fs.facts}
    assert by_concept["soft-tissue-uptake"]["section"] == "impression"
    assert by_concept["soft-tissue-uptake"]["distribution"] == "heterogeneous"
    assert by_concept["soft-tissue-uptake"]["at_lesion_site"] is True
    assert by_concept["impression-calciphylaxis"]["certainty"] == "probable"
    # conclusion repeated verbatim inside presentedForm: read once, same facts
    text = "FINDINGS: Heterogeneous subcutaneous uptake in both thighs, compatible with calciphylaxis."
    both = fx.report(
        "r3",
        fx.BONE_SCAN_CODE,
        text=text,
        conclusion="Heterogeneous subcutaneous uptake in both thighs, compatible with calciphylaxis.",
    )
    assert len(run(knowledge, now, [both]).facts) == 2


def test_unreadable_presented_forms_warn_without_content(knowledge, now) -> None:
    rep = fx.report("r4", fx.BONE_SCAN_CODE, conclusion="No soft tissue uptake.")
    rep["presentedForm"] = [
        {"contentType": "application/pdf", "data": fx.b64("%PDF-1.4 Jane Example")},
        {"contentType": "text/plain", "data": base64.b64encode(b"\xff\xfe\x00 Jane").decode()},
    ]
    fs = run(knowledge, now, [rep])
    messages = [w.message for w in fs.warnings]
    assert any("application/pdf" in m for m in messages)
    assert any("not valid base64" in m for m in messages)
    assert all("Jane" not in m for m in messages)
    assert concepts(fs) == {("soft-tissue-uptake", None, None, True)}  # the conclusion still counts


def test_invalid_report_becomes_a_warning_and_never_raises(knowledge, now) -> None:
    bad = text_report("FINDINGS: Soft tissue uptake in the calves.", rid="bad-1")
    bad["effectiveDateTime"] = "Jane Example, yesterday"
    not_a_report = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}}
    fs = run(knowledge, now, [bad, not_a_report, "garbage", text_report("Soft tissue uptake in the calves.")])
    assert len(fs.facts) == 1
    assert [w.resource_id for w in fs.warnings if w.resource_type == "DiagnosticReport"] == ["bad-1"]
    assert "effectiveDateTime" in fs.warnings[0].message
    assert all("Jane" not in w.message for w in fs.warnings)


def test_cancelled_and_non_imaging_reports_are_skipped(knowledge, now) -> None:
    cancelled = text_report("Soft tissue uptake in the calves.", rid="c1")
    cancelled["status"] = "entered-in-error"
    lab = text_report("Soft tissue uptake in the calves.", rid="lab1", code={"text": "Basic metabolic panel"})
    lab["category"] = [{"coding": [{"system": fx.V2_0074, "code": "CH", "display": "Chemistry"}]}]
    assert run(knowledge, now, [cancelled, lab]).facts == ()


def test_modality_from_codes_imaging_study_and_text(knowledge, now) -> None:
    text = "Soft tissue uptake in the right calf."

    def modality(rep, resources=None):
        return {f.attrs.get("modality") for f in run(knowledge, now, [rep], resources).facts}

    assert modality(text_report(text)) == {"NM"}  # CPT 78306
    spect = {"coding": [{"system": "http://loinc.org", "code": "39813-1", "display": "SPECT Bone limited"}]}
    assert modality(text_report(text, code=spect)) == {"SPECT"}
    plain = {"text": "Imaging study"}
    study_nm_ct = fx.imaging_study("s1", "NM")
    study_nm_ct["modality"].append({"system": fx.DCM, "code": "CT"})
    rep = text_report(text, code=plain, studies=["ImagingStudy/s1"])
    assert modality(rep, {"ImagingStudy/s1": study_nm_ct}) == {"SPECT"}  # NM + CT study = SPECT/CT
    assert modality(rep, {"ImagingStudy/s1": fx.imaging_study("s1", "CR")}) == {"XR"}
    assert modality(text_report(text, code={"text": "US soft tissue lower extremity"})) == {"US"}
    assert modality(text_report(text, code={"text": "Mammogram bilateral diagnostic"})) == {"MG"}
    unknown = text_report(text, code=plain)
    assert modality(unknown) == {None}  # imaging category, modality unknown: attribute omitted


def test_date_falls_back_to_period_and_imaging_study(knowledge, now) -> None:
    rep = text_report("Soft tissue uptake in the right calf.", studies=["ImagingStudy/s2"])
    del rep["effectiveDateTime"], rep["issued"]
    study = fx.imaging_study("s2", "NM", started="2026-09-30T08:00:00Z")
    fact = run(knowledge, now, [rep], {"ImagingStudy/s2": study}).facts[0]
    assert fact.attrs["date"] == "2026-09-30" and fact.attrs["days_ago"] == 10
    rep2 = text_report("Soft tissue uptake in the right calf.", rid="r9")
    del rep2["effectiveDateTime"], rep2["issued"]
    fact2 = run(knowledge, now, [rep2]).facts[0]
    assert "date" not in fact2.attrs and "days_ago" not in fact2.attrs


def test_references_absolute_versioned_and_contained(knowledge, now) -> None:
    rep, resources = fx.source_ct_coded()
    absolute = {
        ("https://ehr.example.org/fhir/" + k if k.startswith("Observation/") else k): v for k, v in resources.items()
    }
    rep_abs = copy.deepcopy(rep)
    rep_abs["result"] = [
        {"reference": "https://ehr.example.org/fhir/Observation/ct-o1"},
        {"reference": "Observation/ct-o2/_history/1"},
    ]
    assert (
        len(
            run(
                knowledge,
                now,
                [rep_abs],
                {
                    **absolute,
                    "Observation/ct-o2": resources["Observation/ct-o2"],
                    "ImagingStudy/ct-study-1": resources["ImagingStudy/ct-study-1"],
                },
            ).facts
        )
        == 2
    )
    contained = copy.deepcopy(rep)
    contained["contained"] = [resources["Observation/ct-o1"]]
    contained["result"] = [{"reference": "#ct-o1"}]
    assert {f.attrs["concept"] for f in run(knowledge, now, [contained], resources).facts} == {
        "subcutaneous-calcification"
    }


def test_invalid_observation_is_skipped_with_a_warning(knowledge, now) -> None:
    rep, resources = fx.source_ct_coded()
    resources = copy.deepcopy(resources)
    resources["Observation/ct-o1"]["effectiveDateTime"] = "not a date"
    fs = run(knowledge, now, [rep], resources)
    assert {f.attrs["concept"] for f in fs.facts} == {"cutaneous-calcification"}
    assert [(w.resource_type, w.resource_id) for w in fs.warnings] == [("Observation", "ct-o1")]


def test_coded_negative_result_and_conclusion_code(knowledge, now) -> None:
    obs = fx.observation("n1", "soft-tissue-uptake", site_text="Upper extremities", negated=True)
    rep = fx.report(
        "n-rep",
        fx.BONE_SCAN_CODE,
        results=["Observation/n1"],
        conclusion_codes=[{"system": fx.SCT, "code": "237900002", "display": "Calciphylaxis"}],
    )
    fs = run(knowledge, now, [rep], {"Observation/n1": obs})
    assert concepts(fs) == {
        ("soft-tissue-uptake", "upper-limb", "bilateral", True),
        ("impression-calciphylaxis", None, None, False),
    }


def test_same_report_twice_gives_one_set_of_facts(knowledge, now) -> None:
    rep = fx.source_ct_text_only()
    assert len(run(knowledge, now, [rep, copy.deepcopy(rep)]).facts) == 2


def test_at_lesion_site(knowledge) -> None:
    lesions = [("lower-leg", "right")]
    assert at_lesion_site("lower-leg", "right", lesions, knowledge) is True
    assert at_lesion_site("lower-leg", "left", lesions, knowledge) is False
    assert at_lesion_site("lower-leg", "bilateral", lesions, knowledge) is True
    assert at_lesion_site("lower-limb", "right", lesions, knowledge) is True  # region covers the calf
    assert at_lesion_site("extremities", None, lesions, knowledge) is False  # too broad to correspond
    assert at_lesion_site("whole-body", None, lesions, knowledge) is False
    assert at_lesion_site("thigh", "right", lesions, knowledge) is False
    assert at_lesion_site("knee", "right", lesions, knowledge) is False
    assert at_lesion_site(None, None, lesions, knowledge) is None
    assert at_lesion_site("thigh", None, [], knowledge) is False
    # the FHIR layer's site ids: calf is part of lower-leg; "" laterality is unknown; "other" matches nothing
    assert at_lesion_site("calf", "left", [("lower-leg", "")], knowledge) is True
    assert at_lesion_site("midfoot", None, [("heel-midfoot", "left")], knowledge) is True
    assert at_lesion_site("calf", "left", [("other", "left")], knowledge) is False


def test_overlong_text_is_cut_with_a_warning(knowledge, now) -> None:
    text = "FINDINGS: Soft tissue uptake in the right calf.\n" + "Normal skeletal survey otherwise. " * 700
    fs = run(knowledge, now, [text_report(text, rid="long-9")])
    assert concepts(fs) == {("soft-tissue-uptake", "calf", "right", False)}
    assert [w.resource_id for w in fs.warnings] == ["long-9"] and "20000" in fs.warnings[0].message


def test_snomed_coded_result_observation(knowledge, now) -> None:
    obs = fx.observation("sn1", "impression-calciphylaxis")
    obs["code"] = {"coding": [{"system": fx.SCT, "code": "237900002", "display": "Calciphylaxis"}]}
    rep = fx.report("sn-rep", fx.BONE_SCAN_CODE, results=["Observation/sn1"])
    facts = run(knowledge, now, [rep], {"Observation/sn1": obs}).facts
    assert [(f.attrs["concept"], f.attrs["hypothesis"], f.attrs["extraction"]) for f in facts] == [
        ("impression-calciphylaxis", "calciphylaxis", "coded")
    ]
