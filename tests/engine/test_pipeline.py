"""Pipeline integration: cards, trace, ruleset version, engine selection, HTTP trace extension.

The FHIR layer (cds.fhir) is written in parallel; these tests put a stand-in
extractor (test-only) into the loaded pipeline that returns inline facts.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.engine import durable_backend
from cds.engine.prepare import facts_from_dicts
from cds.hooks.models import CDSRequest
from cds.pipeline import Pipeline, RulesetLoadError
from cds.settings import Settings
from tests.engine.helpers import SAMPLE_RULES as RULES_DIR

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ESRD_ULCER_SCAN = [
    {"kind": "condition", "id": "condition:Condition/e1:esrd", "concept": "esrd", "status": "active"},
    {
        "kind": "condition",
        "id": "condition:Condition/u1:lower-limb-ulcer",
        "concept": "lower-limb-ulcer",
        "status": "active",
    },
    {
        "kind": "finding",
        "id": "finding:DiagnosticReport/b1:1",
        "concept": "soft-tissue-uptake",
        "modality": "NM",
        "distribution": "heterogeneous",
        "negated": False,
    },
]
ENGINES = ["reference"] + (["durable"] if durable_backend.AVAILABLE else [])


@pytest.fixture(autouse=True)
def no_fhir_layer(monkeypatch):
    """The sample fixture has no value sets for cds.fhir's terminology; tests put facts in directly."""
    monkeypatch.setattr("cds.pipeline.default_extractor", lambda rules_dir, **_: None)


def with_facts(pipeline: Pipeline, facts: list[dict]) -> Pipeline:
    """Test-only stand-in for cds.fhir.extract_facts."""
    pipeline._loaded = dataclasses.replace(
        pipeline._loaded, extractor=lambda context, prefetch, now: facts_from_dicts(facts)
    )
    return pipeline


def request(hook: str = "patient-view", extension: dict | None = None, **context) -> dict:
    body = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/p1", "patientId": "pat-1", **context},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "pat-1"},
            **{k: {"resourceType": "Bundle", "type": "searchset", "entry": []} for k in ("conditions", "labs", "meds")},
        },
    }
    if extension:
        body["extension"] = extension
    return body


@pytest.mark.parametrize("engine", ENGINES)
def test_risk_card_with_bone_scan_suggestion_and_version(engine):
    pipeline = with_facts(Pipeline.load(RULES_DIR, engine=engine), ESRD_ULCER_SCAN)
    service = pipeline.service("calciphylaxis-risk")
    evaluation = pipeline.evaluate(service, CDSRequest.model_validate(request()), {}, NOW)
    cards = evaluation.response.cards
    assert len(cards) == 1
    card = cards[0].to_wire()
    assert card["indicator"] == "warning"
    assert "77%" in card["summary"]
    assert "Related findings count once" in card["detail"]  # what the number means (cds.cards.wording)
    assert "Heterogeneous soft-tissue uptake" in card["detail"]  # evidence for, by rule title
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "create"
    assert action["resource"]["code"]["coding"][0]["code"] == "78306"
    assert action["resource"]["subject"]["reference"] == "Patient/pat-1"
    assert card["extension"]["org.calciphylaxis-cds.ruleset"]["version"] == pipeline.version
    assert card["source"]["topic"]["code"] == "calciphylaxis-risk"
    assert set(evaluation.card_rules[card["uuid"]]) >= {"bone-scan-heterogeneous-soft-tissue-uptake"}
    assert "population-kidney-failure" in evaluation.rules_fired
    differential = evaluation.response.extension["org.calciphylaxis-cds.differential"]
    assert differential["version"] == "2"
    assert differential["causes"][0]["hypothesis"] == "calciphylaxis"
    assert differential["causes"][0]["evidence_for"][0]["reference"] == "paul-2015-derived-lr"


def test_order_card_deletes_the_matched_draft_order():
    facts = [
        *ESRD_ULCER_SCAN[:2],
        {
            "kind": "draft-order",
            "id": "draft-order:MedicationRequest/d1:vka",
            "drug_class": "vitamin-k-antagonist",
            "source": "MedicationRequest/d1",
        },
    ]
    pipeline = with_facts(Pipeline.load(RULES_DIR, engine="reference"), facts)
    body = request("order-sign", draftOrders={"resourceType": "Bundle", "entry": []})
    evaluation = pipeline.evaluate(
        pipeline.service("calciphylaxis-order-sign"), CDSRequest.model_validate(body), {}, NOW
    )
    (card,) = [c.to_wire() for c in evaluation.response.cards]
    action = card["suggestions"][0]["actions"][0]
    assert action == {"type": "delete", "description": "Remove the draft order", "resourceId": "MedicationRequest/d1"}
    assert card["overrideReasons"][0]["display"]


def test_quiet_when_unlikely():
    pipeline = with_facts(Pipeline.load(RULES_DIR, engine="reference"), ESRD_ULCER_SCAN[:1])
    evaluation = pipeline.evaluate(
        pipeline.service("calciphylaxis-risk"), CDSRequest.model_validate(request()), {}, NOW
    )
    assert evaluation.response.cards == []


def test_trace_lists_facts_rules_evidence_posteriors_and_cards():
    pipeline = with_facts(Pipeline.load(RULES_DIR, engine="reference"), ESRD_ULCER_SCAN)
    evaluation = pipeline.evaluate(
        pipeline.service("calciphylaxis-risk"), CDSRequest.model_validate(request()), {}, NOW, want_trace=True
    )
    trace = evaluation.trace
    assert {f["id"] for f in trace["facts"]} >= {f["id"] for f in ESRD_ULCER_SCAN}
    fired = {r["rule"]: r["matched"] for r in trace["rules_fired"]}
    assert fired["bone-scan-heterogeneous-soft-tissue-uptake"] == [["finding:DiagnosticReport/b1:1"]]
    assert fired["population-kidney-failure-with-lower-limb-ulcer"] == [
        ["derived:kidney-failure:population-kidney-failure", "condition:Condition/u1:lower-limb-ulcer"]
    ]
    assert trace["evidence"][0]["likelihood_ratio"] == 29.7
    assert trace["population"] == "kidney-failure-with-lesion"
    assert trace["differential"][0]["posterior"] == pytest.approx(0.7674, abs=1e-3)
    assert trace["cards"] == [
        {"template": "calciphylaxis-risk", "rules": ["bone-scan-heterogeneous-soft-tissue-uptake"]}
    ]
    assert trace["ruleset"] == pipeline.version
    assert trace["fact_warnings"] == []


def test_without_the_fhir_layer_the_trace_says_so():
    pipeline = Pipeline.load(RULES_DIR, engine="reference")
    pipeline._loaded = dataclasses.replace(pipeline._loaded, extractor=None)
    evaluation = pipeline.evaluate(
        pipeline.service("calciphylaxis-risk"), CDSRequest.model_validate(request()), {}, NOW, want_trace=True
    )
    assert evaluation.response.cards == []
    assert any("cds.fhir" in w for w in evaluation.trace["fact_warnings"])


def test_an_extractor_that_raises_gives_no_cards_not_a_crash():
    pipeline = Pipeline.load(RULES_DIR, engine="reference")

    def broken(context, prefetch, now):
        raise RuntimeError("bug")

    pipeline._loaded = dataclasses.replace(pipeline._loaded, extractor=broken)
    evaluation = pipeline.evaluate(
        pipeline.service("calciphylaxis-risk"), CDSRequest.model_validate(request()), {}, NOW
    )
    assert evaluation.response.cards == []


def test_http_trace_only_when_the_extension_asks_for_it():
    settings = Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, engine="reference")
    pipeline = with_facts(Pipeline.load(RULES_DIR, engine="reference"), ESRD_ULCER_SCAN)
    client = TestClient(create_app(settings, pipeline=pipeline))
    key = settings.trace_extension_key
    plain = client.post("/cds-services/calciphylaxis-risk", json=request())
    assert plain.status_code == 200, plain.text
    assert key not in plain.json().get("extension", {})
    traced = client.post("/cds-services/calciphylaxis-risk", json=request(extension={key: True}))
    assert traced.status_code == 200, traced.text
    traced = traced.json()
    assert traced["extension"][key]["rules_fired"]
    assert len(traced["cards"]) == 1


def test_healthz_reports_engine_and_version():
    settings = Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, engine="reference")
    client = TestClient(create_app(settings))
    ruleset = client.get("/healthz").json()["ruleset"]
    assert ruleset["engine"] == "reference"
    assert ruleset["version"].startswith("0.1.0+sha256.")
    assert ruleset["errors"] == []


def test_auto_falls_back_to_reference_when_durable_is_missing(monkeypatch):
    monkeypatch.setattr(durable_backend, "AVAILABLE", False)
    pipeline = Pipeline.load(RULES_DIR, engine="auto")
    assert pipeline.status()["engine"] == "reference (durable-rules unavailable)"
    with pytest.raises(RulesetLoadError, match="cannot be imported"):
        Pipeline.load(RULES_DIR, engine="durable")


@pytest.mark.skipif(not durable_backend.AVAILABLE, reason="durable-rules not importable")
def test_auto_uses_durable_when_available():
    assert Pipeline.load(RULES_DIR, engine="auto").status()["engine"] == "durable"


def test_cds_engine_environment_variable_selects(monkeypatch):
    monkeypatch.setenv("CDS_ENGINE", "reference")
    assert Pipeline.load(RULES_DIR).backend == "reference"
