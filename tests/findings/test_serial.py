"""Serial bone-scan comparison: treatment response and progression."""

from __future__ import annotations

from cds.facts import Fact
from cds.findings import extract_findings
from tests.findings import fixtures as fx

BEFORE = "FINDINGS: Intense heterogeneous subcutaneous uptake in both calves and the left thigh.\n"
STS = Fact(
    kind="medication",
    id="medication:MedicationRequest/m1:sodium-thiosulfate",
    attrs={"drug_class": "sodium-thiosulfate", "status": "active", "start": "2026-08-20"},
)


def scans(later_text: str, later_code=None):
    first = fx.report("scan-a", fx.BONE_SCAN_CODE, text=BEFORE, effective="2026-08-15T10:00:00Z")
    second = fx.report("scan-b", later_code or fx.BONE_SCAN_CODE, text=later_text, effective="2026-10-01T10:00:00Z")
    return [second, first]  # order of the prefetch does not matter


def derived(fs):
    return {
        f.attrs["name"]: f.attrs
        for f in fs.facts
        if f.kind == "derived" and f.attrs["name"] != "bone-scan-soft-tissue-uptake"
    }


def latest(fs, site):
    return next(
        f.attrs
        for f in fs.facts
        if f.attrs.get("report") == "DiagnosticReport/scan-b"
        and f.attrs.get("concept") == "soft-tissue-uptake"
        and f.attrs.get("site") == site
    )


def test_decrease_after_sodium_thiosulfate_is_a_treatment_response(knowledge, now) -> None:
    later = "FINDINGS: Faint subcutaneous uptake in both calves. No soft tissue uptake in the thighs."
    fs = extract_findings(scans(later), {}, now, [], knowledge, medications=[STS])
    d = derived(fs)
    assert set(d) == {"bone-scan-response"}
    assert d["bone-scan-response"]["text"] == "decreased"
    assert d["bone-scan-response"]["flag"] is True
    assert d["bone-scan-response"]["value"] == 47  # days between the scans
    assert d["bone-scan-response"]["source"] == "DiagnosticReport/scan-b"
    assert latest(fs, "calf")["change"] == "decreased"
    thigh = latest(fs, "thigh")
    assert thigh["negated"] is True and thigh["change"] == "resolved"


def test_the_same_decrease_without_treatment_is_only_a_change(knowledge, now) -> None:
    later = "FINDINGS: Faint subcutaneous uptake in both calves and the left thigh."
    fs = extract_findings(scans(later), {}, now, [], knowledge, medications=[])
    d = derived(fs)
    assert set(d) == {"bone-scan-change"}
    assert d["bone-scan-change"]["text"] == "decreased" and d["bone-scan-change"]["flag"] is False


def test_treatment_started_after_the_later_scan_does_not_count(knowledge, now) -> None:
    late_sts = Fact(kind="medication", id="m2", attrs={"drug_class": "sodium-thiosulfate", "start": "2026-10-05"})
    later = "FINDINGS: Faint subcutaneous uptake in both calves and the left thigh."
    assert set(derived(extract_findings(scans(later), {}, now, [], knowledge, medications=[late_sts]))) == {
        "bone-scan-change"
    }


def test_new_site_is_progression(knowledge, now) -> None:
    later = (
        "FINDINGS: Intense heterogeneous subcutaneous uptake in both calves and the left thigh, "
        "and subcutaneous uptake in the abdominal wall."
    )
    fs = extract_findings(scans(later), {}, now, [], knowledge, medications=[STS])
    d = derived(fs)
    assert set(d) == {"bone-scan-progression"}
    assert d["bone-scan-progression"]["text"] == "new" and d["bone-scan-progression"]["flag"] is True
    assert latest(fs, "abdomen")["change"] == "new"
    assert latest(fs, "calf")["change"] == "stable"


def test_stated_change_counts_without_the_prior_report(knowledge, now) -> None:
    only_later = fx.report(
        "scan-b",
        fx.BONE_SCAN_CODE,
        effective="2026-10-01T10:00:00Z",
        text="FINDINGS: Interval increase in the soft tissue uptake of both calves.",
    )
    d = derived(extract_findings([only_later], {}, now, [], knowledge, medications=[STS]))
    assert set(d) == {"bone-scan-progression"} and d["bone-scan-progression"]["text"] == "increased"
    assert "value" not in d["bone-scan-progression"]


def test_unchanged_scans_and_ct_reports(knowledge, now) -> None:
    fs = extract_findings(scans(BEFORE), {}, now, [], knowledge, medications=[STS])
    assert derived(fs) == {"bone-scan-change": derived(fs)["bone-scan-change"]}
    assert derived(fs)["bone-scan-change"]["text"] == "stable"
    # A CT after the bone scan is not a bone scan: nothing to compare.
    ct = fx.report(
        "scan-b", fx.CT_CODE, text="FINDINGS: No subcutaneous calcification.", effective="2026-10-01T10:00:00Z"
    )
    first = fx.report("scan-a", fx.BONE_SCAN_CODE, text=BEFORE, effective="2026-08-15T10:00:00Z")
    assert derived(extract_findings([ct, first], {}, now, [], knowledge)) == {}


def summary(fs):
    return [f.attrs for f in fs.facts if f.kind == "derived" and f.attrs["name"] == "bone-scan-soft-tissue-uptake"]


def test_a_partial_negative_is_not_a_negative_scan(knowledge, now) -> None:
    mixed = fx.report(
        "m1",
        fx.BONE_SCAN_CODE,
        text="FINDINGS: No soft tissue uptake in the upper extremities. Patchy subcutaneous uptake in the left thigh.",
    )
    negative = fx.report("n1", fx.BONE_SCAN_CODE, text="FINDINGS: No abnormal soft tissue uptake.")
    silent = fx.report("s1", fx.BONE_SCAN_CODE, text="FINDINGS: Degenerative uptake in both knees.")
    ct = fx.report("c1", fx.CT_CODE, text="FINDINGS: No soft tissue uptake.")
    lesions = [("thigh", "left")]
    assert [(a["text"], a["flag"]) for a in summary(extract_findings([mixed], {}, now, lesions, knowledge))] == [
        ("present", True)
    ]
    assert [(a["text"], a["flag"]) for a in summary(extract_findings([negative], {}, now, lesions, knowledge))] == [
        ("absent", False)
    ]
    assert summary(extract_findings([silent, ct], {}, now, lesions, knowledge)) == []
