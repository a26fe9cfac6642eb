"""Every handled resource in the shared data (HL7 R4 examples, US Core, Synthea, sandbox
captures) goes through intake and fact extraction without an error.

Each test prints how many facts of each kind came out (shown even without ``-s``).
"""

from __future__ import annotations

import collections
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from cds.facts import FACT_FIELDS, FactSet
from cds.fhir import extract_facts
from tests.conftest import shared_data

INTERNAL_FAILURE = "fact extraction failed"


def _load(path: Path):  # type: ignore[no-untyped-def]
    return orjson.loads(path.read_bytes())


def _check(result: FactSet, allow_invalid: bool = False) -> None:
    assert not [w for w in result.warnings if w.message.startswith(INTERNAL_FAILURE)]
    if not allow_invalid:
        assert not [w for w in result.warnings if w.message.startswith("invalid R4 resource")], result.warnings
    for fact in result.facts:
        declared = FACT_FIELDS[fact.kind]
        assert set(fact.attrs) <= set(declared), (fact.kind, set(fact.attrs) - set(declared))


def _report(capsys: pytest.CaptureFixture[str], title: str, counts: collections.Counter, warnings: int) -> None:
    with capsys.disabled():
        print(f"\n{title}: facts by kind {dict(sorted(counts.items()))}; warnings: {warnings}")


@pytest.mark.parametrize("folder", ["hl7-r4-examples", "us-core"])
def test_examples_one_by_one_and_all_together(terminology, folder, capsys) -> None:
    files = sorted(shared_data(folder).glob("*.json"))
    assert files
    resources = [_load(f) for f in files]
    counts: collections.Counter = collections.Counter()
    warnings = 0
    # The examples are dated 2012-2021: evaluate inside and after their era.
    for now in (datetime(2013, 6, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)):
        for resource in resources:
            result = extract_facts({}, {"r": resource}, now, terminology)
            _check(result)
            counts.update(f.kind for f in result.facts)
            warnings += len(result.warnings)
        together = extract_facts({}, {f"k{i}": r for i, r in enumerate(resources)}, now, terminology)
        _check(together)
    _report(capsys, folder, counts, warnings)
    assert counts["patient"] > 0


def _synthea_bundles() -> list[Path]:
    return sorted(p for p in shared_data("synthea").glob("*.json") if "request" not in p.name)


def _latest_day(bundle: dict) -> date:
    days = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        when = (
            resource.get("effectiveDateTime")
            or resource.get("performedDateTime")
            or (resource.get("performedPeriod") or {}).get("start")
        )
        if isinstance(when, str):
            days.append(date.fromisoformat(when[:10]))
    return max(days)


def test_every_synthea_bundle(terminology, capsys) -> None:
    totals: collections.Counter = collections.Counter()
    warnings = 0
    calcium_bundles = 0
    for path in _synthea_bundles():
        bundle = _load(path)
        today = _latest_day(bundle) + timedelta(days=1)
        result = extract_facts(
            {}, {"everything": bundle}, datetime(today.year, today.month, today.day, 12, tzinfo=UTC), terminology
        )
        _check(result)
        counts = collections.Counter(f.kind for f in result.facts)
        totals.update(counts)
        warnings += len(result.warnings)
        # Independently count Synthea's calcium results (LOINC 49765-1) inside the window.
        window_start = today - timedelta(days=terminology.settings.lab_lookback_days)
        calcium = [
            e["resource"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Observation"
            and any(c.get("code") == "49765-1" for c in e["resource"]["code"].get("coding", []))
            and e["resource"]["status"] in ("final", "amended", "corrected")
            and window_start <= date.fromisoformat(e["resource"]["effectiveDateTime"][:10]) <= today
        ]
        facts = [f for f in result.facts if f.id == "lab:calcium-total"]
        if calcium:
            calcium_bundles += 1
            assert len(facts) == 1, path.name
            assert facts[0].attrs["code"] == "49765-1"
            assert facts[0].attrs["count"] == len(calcium)
            assert facts[0].attrs["unit"] == "mg/dL"
        else:
            assert facts == []
    _report(
        capsys,
        f"synthea ({len(_synthea_bundles())} bundles; calcium facts from 49765-1 in {calcium_bundles})",
        totals,
        warnings,
    )
    assert calcium_bundles >= 10
    assert totals["condition"] > 0 and totals["medication"] > 0 and totals["procedure"] > 0


def test_synthea_esrd_dialysis_patient(terminology) -> None:
    bundle = _load(shared_data("synthea", "esrd-dialysis-patient.bundle.json"))
    today = _latest_day(bundle) + timedelta(days=1)
    now = datetime(today.year, today.month, today.day, tzinfo=UTC)
    result = extract_facts({}, {"everything": bundle}, now, terminology)
    _check(result)
    dialysis = next(f for f in result.facts if f.id == "procedure:dialysis")
    assert dialysis.attrs["count"] == 430
    vintage = next(f for f in result.facts if f.id == "derived:dialysis-vintage")
    assert vintage.attrs["text"] == dialysis.attrs["first_date"]
    concepts = {f.attrs.get("concept") for f in result.facts if f.kind == "condition"}
    assert {"esrd", "kidney-transplant-status"} <= concepts
    assert any(f.id == "procedure:kidney-transplant" for f in result.facts)

    request = _load(shared_data("synthea", "esrd-dialysis-patient.patient-view-request.json"))
    from_request = extract_facts(request["context"], request["prefetch"], now, terminology)
    _check(from_request)
    assert {"esrd"} <= {f.attrs.get("concept") for f in from_request.facts if f.kind == "condition"}
    assert any(f.kind == "patient" for f in from_request.facts)


def test_sandbox_requests(terminology) -> None:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    view = _load(shared_data("cds-hooks-sandbox", "sandbox-patient-view-request.json"))["body"]
    result = extract_facts(view["context"], view.get("prefetch") or {}, now, terminology)
    _check(result)
    assert any(f.kind == "patient" for f in result.facts)
    sign = _load(shared_data("cds-hooks-sandbox", "sandbox-order-sign-request.json"))["body"]
    result = extract_facts(sign["context"], sign.get("prefetch") or {}, now, terminology)
    _check(result, allow_invalid=True)
    # The sandbox's draft MedicationRequest has no medication and no intent: a warning, not a fact.
    assert [(w.resource_type, w.resource_id) for w in result.warnings] == [("MedicationRequest", "request-123")]
    assert not [f for f in result.facts if f.kind == "draft-order"]
