"""One patient per request (reviews/security-reliability.md F4): data about anyone but
context.patientId is dropped, counted and logged without identifiers; a prefetched Patient
with another id is refused with 422."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from cds.fhir import extract_facts
from cds.hooks.errors import HookError
from cds.hooks.handler import answer_hook
from cds.observability import metrics
from tests.conftest import shared_data, shipped_pipeline
from tests.realdata.helpers import deep, example, post, summaries

CONTROL = "control-esrd-no-skin-findings.patient-view.json"
SOURCE = "source-case.patient-view.json"


def _foreign_count(rtype: str) -> float:
    return metrics.FOREIGN_PATIENT_RESOURCES.labels(rtype)._value.get()


def _with_source_case_bundles() -> dict:
    control = example(CONTROL)
    source = example(SOURCE)
    body = deep(control)
    for key in ("conditions", "labs", "reports"):
        body["prefetch"][key] = source["prefetch"][key]  # every entry: subject Patient/source-case-patient
    return body


def test_another_patients_bundles_do_not_reach_the_answer(caplog) -> None:
    alone = post("calciphylaxis-risk", example(CONTROL))
    before = _foreign_count("Condition")
    mixed = post("calciphylaxis-risk", _with_source_case_bundles())
    assert mixed.status_code == 200, mixed.text
    assert summaries(mixed) == summaries(alone)
    assert not [c for c in mixed.json()["cards"] if c["indicator"] in ("warning", "critical")]
    assert _foreign_count("Condition") > before
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "cds.fhir")
    assert "another patient" in logged and "source-case-patient" not in logged


def test_a_prefetched_patient_with_another_id_is_422() -> None:
    body = example(SOURCE)
    body["prefetch"]["patient"] = {
        "resourceType": "Patient",
        "id": "someone-else",
        "gender": "female",
        "birthDate": "2010-01-01",
    }
    response = post("calciphylaxis-risk", body)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "prefetch patient" in outcome["issue"][0]["diagnostics"]
    assert "someone-else" not in response.text


def test_fetched_pages_about_another_patient_are_dropped() -> None:
    """A FHIR server answering for the wrong patient (mock transport: nothing is sent anywhere)."""
    source = example(SOURCE)
    control = example(CONTROL)
    pipeline = shipped_pipeline()
    service = pipeline.service("calciphylaxis-risk")
    body = deep(control)
    body["fhirServer"] = "http://127.0.0.1:9/fhir"
    for key in ("conditions", "labs", "reports"):
        del body["prefetch"][key]
    served = {
        "Condition": source["prefetch"]["conditions"],
        "Observation": source["prefetch"]["labs"],
        "DiagnosticReport": source["prefetch"]["reports"],
    }
    asked: list[str] = []

    async def wrong_patient_server(query: str, request) -> dict:  # type: ignore[no-untyped-def]
        asked.append(query)
        return served.get(query.split("?", 1)[0], {"resourceType": "Bundle", "type": "searchset", "total": 0})

    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    evaluation = asyncio.run(answer_hook(pipeline, service, body, now, wrong_patient_server))
    assert sorted(q.split("?")[0] for q in asked) == ["Condition", "DiagnosticReport", "Observation"]
    assert not [c for c in evaluation.response.cards if c.indicator in ("warning", "critical")]
    reference = asyncio.run(answer_hook(pipeline, service, example(CONTROL), now))
    assert [c.summary for c in evaluation.response.cards] == [c.summary for c in reference.response.cards]


def test_the_same_history_for_the_right_patient_still_counts() -> None:
    """The control for the test above: the source case's own data gives its warning card."""
    response = post("calciphylaxis-risk", example(SOURCE))
    assert [c for c in response.json()["cards"] if c["indicator"] == "warning"]


def test_draft_orders_about_another_patient_are_dropped(terminology) -> None:
    body = example("order-warfarin-confirmed.order-sign.json")
    for entry in body["context"]["draftOrders"]["entry"]:
        entry["resource"]["subject"] = {"reference": "Patient/someone-else"}
    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    facts = extract_facts(body["context"], body["prefetch"], now, terminology)
    assert not [f for f in facts.facts if f.kind == "draft-order"]
    assert any("another patient" in w.message for w in facts.warnings)
    own = example("order-warfarin-confirmed.order-sign.json")
    assert [
        f for f in extract_facts(own["context"], own["prefetch"], now, terminology).facts if f.kind == "draft-order"
    ]


def test_hook_error_for_foreign_patient_names_no_one() -> None:
    pipeline = shipped_pipeline()
    body = example(SOURCE)
    body["prefetch"]["patient"]["id"] = "p-other"
    with pytest.raises(HookError) as raised:
        asyncio.run(answer_hook(pipeline, pipeline.service("calciphylaxis-risk"), body, datetime.now(UTC)))
    assert raised.value.status == 422 and "p-other" not in str(raised.value)


def test_synthea_bundles_bound_to_their_patient_lose_nothing(terminology) -> None:
    """Synthea references its patient by urn:uuid fullUrl: binding must keep every resource."""
    for path in sorted(p for p in shared_data("synthea").glob("*.json") if "request" not in p.name)[:6]:
        bundle = orjson.loads(path.read_bytes())
        patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        now = datetime(2026, 1, 1, tzinfo=UTC)
        unbound = extract_facts({}, {"all": bundle}, now, terminology)
        bound = extract_facts({"patientId": patient["id"]}, {"all": bundle}, now, terminology)
        assert [f.id for f in bound.facts] == [f.id for f in unbound.facts], path.name
        assert not [w for w in bound.warnings if "another patient" in w.message]
