"""The clinical cases in fhir_examples/: well-formed CDS Hooks requests, valid FHIR R4B, consistent with the manifest,
and accepted by the app. What each case should *produce* (cards, ranking) is checked by the rule tests."""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import sys
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class

from cds.hooks.models import CDSRequest, context_model_for
from cds.hooks.services import load_services
from cds.settings import Settings
from tests.conftest import REPO, RULES_DIR, shipped_app

EXAMPLES = REPO / "fhir_examples"
REQUESTS = EXAMPLES / "requests"
MANIFEST = EXAMPLES / "cases.yaml"
TODAY = "2026-11-21"
HOOK_NAMESPACE = "org.calciphylaxis-cds"

# Hypothesis ids of issue 5 (the radiologist's differential) and issue 6.
KNOWN_HYPOTHESES = {
    "calciphylaxis",
    "renal-failure-soft-tissue-clearance",
    "venous-insufficiency",
    "venous-thrombosis",
    "diabetic-ulcer",
    "metastatic-calcification",
    "scleroderma-calcinosis",
    "dermatomyositis-calcinosis",
    "connective-tissue-disease",
    "heterotopic-ossification",
    "tumoral-calcinosis",
    "warfarin-skin-necrosis",
    "cholesterol-embolism",
    "vasculitis",
    "peripheral-arterial-disease",
    "nephrogenic-systemic-fibrosis",
    "oxalosis",
    "pyoderma-gangrenosum",
    "necrotizing-soft-tissue-infection",
}
KNOWN_CARDS = {
    "risk-card",
    "biopsy-advice",
    "bone-scan-question",
    "harmful-drug-warning",
    "thiosulfate-monitoring",
    "radiology-differential",
}
CONFIDENCE_TAGS = {"V", "S", "R", "D", "local"}
SYSTEM_NAMES = {
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://snomed.info/sct": "SNOMED CT",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://www.ama-assn.org/go/cpt": "CPT",
    "https://calciphylaxis-cds.org/fhir/CodeSystem/clinical-finding": "local",
}
SERVICES = {s.id: s for s in load_services(RULES_DIR / "services.yaml", HOOK_NAMESPACE)}


@cache
def manifest() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))["cases"])


ENTRIES = manifest()
IDS = [e["id"] for e in ENTRIES]


@cache
def request_of(file: str) -> dict[str, Any]:
    return json.loads((REQUESTS / file).read_text(encoding="utf-8"))


def resources_in(value: Any) -> list[dict[str, Any]]:
    """The resource itself, or the entries of a Bundle."""
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        return [e["resource"] for e in value.get("entry", [])]
    return [value]


def codings_in(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and node["system"] in SYSTEM_NAMES and "code" in node:
            found.append(node)
        for value in node.values():
            found.extend(codings_in(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(codings_in(value))
    return found


def dates_in(node: Any, key: str = "") -> list[tuple[str, str]]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            found.extend(dates_in(v, k))
    elif isinstance(node, list):
        for v in node:
            found.extend(dates_in(v, key))
    elif isinstance(node, str) and (key.endswith(("DateTime", "Date", "On")) or key in {"issued", "birthDate"}):
        found.append((key, node))
    return found


# ------------------------------------------------------------------ manifest <-> directory


def test_every_request_file_is_in_the_manifest_and_vice_versa():
    on_disk = {p.name for p in REQUESTS.glob("*.json")}
    listed = [e["file"] for e in ENTRIES]
    assert len(listed) == len(set(listed)), "a file is listed twice in cases.yaml"
    assert len(IDS) == len(set(IDS)), "a case id is listed twice in cases.yaml"
    assert on_disk - set(listed) == set(), f"not in cases.yaml: {sorted(on_disk - set(listed))}"
    assert set(listed) - on_disk == set(), f"listed but missing: {sorted(set(listed) - on_disk)}"


def test_manifest_covers_every_hypothesis_card_and_hook():
    """The brief: one case per differential hypothesis, every card intent, every service."""
    tops = {e["expected_top"] for e in ENTRIES}
    assert tops >= KNOWN_HYPOTHESES, f"no case ranks first: {sorted(KNOWN_HYPOTHESES - tops)}"
    cards = {c for e in ENTRIES for c in e["cards"]}
    assert cards == KNOWN_CARDS
    assert {e["service"] for e in ENTRIES} == set(SERVICES)
    for stage in ("suspected", "confirmed"):
        for drug in ("warfarin", "calcium-acetate", "calcitriol"):
            assert any(e["id"] == f"order-{drug}-{stage}" for e in ENTRIES), (drug, stage)
    assert any(len(request_of(e["file"])["context"].get("draftOrders", {}).get("entry", [])) >= 2 for e in ENTRIES)


def test_readme_describes_every_case():
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    missing = [i for i in IDS if f"`{i}`" not in readme]
    assert not missing, f"fhir_examples/README.md does not mention {missing}"


def test_builder_reproduces_the_checked_in_files():
    """The JSON is generated by fhir_examples/build_cases.py: edit the builder, not the JSON."""
    spec = importlib.util.spec_from_file_location("build_cases", EXAMPLES / "build_cases.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    for name, text in module.build().items():
        assert (EXAMPLES / name).read_text(encoding="utf-8") == text, f"{name} differs from build_cases.py output"


# ------------------------------------------------------------------ per case


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_manifest_entry_is_well_formed(entry):
    assert entry["service"] in SERVICES, entry["service"]
    assert entry["hook"] == SERVICES[entry["service"]].hook
    top = entry["expected_top"]
    assert top is None or top in KNOWN_HYPOTHESES, top
    assert set(entry["must_not_rank_first"]) <= KNOWN_HYPOTHESES
    assert top not in entry["must_not_rank_first"]
    if top is None:
        assert entry["must_not_rank_first"], "a case without an expected top must say what may not be first"
    assert set(entry["cards"]) <= KNOWN_CARDS and set(entry["forbidden_cards"]) <= KNOWN_CARDS
    assert not set(entry["cards"]) & set(entry["forbidden_cards"])
    assert isinstance(entry["silent"], bool)
    if entry["silent"]:
        assert entry["cards"] == [], "a silent case expects no card"
    assert entry["summary"].strip() and entry["key_features"]
    for code in entry["codes"]:
        assert code["confidence"] in CONFIDENCE_TAGS, code


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_case_is_a_valid_cds_hooks_request_for_its_service(entry):
    body = request_of(entry["file"])
    request = CDSRequest.model_validate(body)
    service = SERVICES[entry["service"]]
    assert request.hook == service.hook == entry["hook"]
    context = context_model_for(request.hook).model_validate(request.context)
    # Every prefetch key the service declares is sent, so no case depends on fetching from fhirServer.
    assert set(service.prefetch) <= set(request.prefetch), set(service.prefetch) - set(request.prefetch)
    assert request.prefetch["patient"]["id"] == context.patientId
    if request.hook == "order-select":
        drafts = {f"{r['resourceType']}/{r['id']}" for r in resources_in(request.context["draftOrders"])}
        assert set(request.context["selections"]) <= drafts
    if "diagnosticReportId" in request.context:
        assert request.prefetch["report"]["id"] == request.context["diagnosticReportId"]
        if "diagnosticReport" in request.context:
            assert request.context["diagnosticReport"] == request.prefetch["report"]


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_every_resource_validates_with_fhir_resources_r4b(entry):
    body = request_of(entry["file"])
    patient_ref = f"Patient/{body['context']['patientId']}"
    seen: set[str] = set()
    checked = 0
    groups = [*body["prefetch"].values(), body["context"].get("draftOrders"), body["context"].get("diagnosticReport")]
    for group in groups:
        if isinstance(group, dict) and group.get("resourceType") == "Bundle":
            get_fhir_model_class("Bundle").model_validate(group)
        for resource in resources_in(group):
            model = get_fhir_model_class(resource["resourceType"])
            model.model_validate(resource)
            checked += 1
            if resource["resourceType"] != "Patient":
                assert resource["subject"]["reference"] == patient_ref, resource["id"]
            key = f"{resource['resourceType']}/{resource['id']}"
            if group is not body["context"].get("diagnosticReport") and group is not body["prefetch"].get("report"):
                assert key not in seen, f"duplicate resource {key}"
                seen.add(key)
    assert checked > 1


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_no_date_after_today_and_no_lab_older_than_the_prefetch_window(entry):
    body = request_of(entry["file"])
    for key, value in dates_in(body["prefetch"]) + dates_in(body["context"]):
        assert value[:10] <= TODAY, (key, value)
    for lab in resources_in(body["prefetch"]["labs"]):
        assert lab["effectiveDateTime"][:10] >= "2024-11-21", lab["id"]  # labs template: date=ge{{today() - 730 days}}


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_every_code_is_in_the_manifest_with_its_confidence(entry):
    body = request_of(entry["file"])
    listed = {(c["system"], c["code"]): c["confidence"] for c in entry["codes"]}
    used = {(SYSTEM_NAMES[c["system"]], c["code"]) for c in codings_in(body)}
    assert used == set(listed), {"unlisted": used - set(listed), "unused": set(listed) - used}


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_reports_are_radiology_prose_with_sections(entry):
    body = request_of(entry["file"])
    reports = resources_in(body["prefetch"]["reports"]) + resources_in(body["prefetch"].get("report"))
    for report in reports:
        assert report["conclusion"].strip()
        text = base64.b64decode(report["presentedForm"][0]["data"]).decode("utf-8")
        assert report["presentedForm"][0]["contentType"] == "text/plain"
        assert "IMPRESSION:" in text or "DIAGNOSIS:" in text, report["id"]
        assert "FINDINGS:" in text or "MICROSCOPIC:" in text, report["id"]


# ------------------------------------------------------------------ the app accepts every case


@pytest.fixture(scope="module")
def client() -> TestClient:
    settings = Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, hook_namespace=HOOK_NAMESPACE)
    return TestClient(shipped_app(settings))


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_app_answers_the_case(client, entry, caplog):
    body = (REQUESTS / entry["file"]).read_bytes()
    with caplog.at_level(logging.DEBUG):
        response = client.post(
            f"/cds-services/{entry['service']}", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["cards"], list)
    patient_id = orjson.loads(body)["context"]["patientId"]
    assert patient_id not in caplog.text, "a patient id reached the logs"


def test_encounter_start_case_exists_and_needs_an_encounter():
    entry = next(e for e in ENTRIES if e["hook"] == "encounter-start")
    assert request_of(entry["file"])["context"]["encounterId"]
    assert Path(REQUESTS / entry["file"]).exists()
