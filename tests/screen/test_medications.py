"""A MedicationRequest that names its drug by ``medicationReference`` to a Medication resource of the
export (Medication.ndjson, no patient reference) is answered as if the drug were inline: the screen
joins the Medication by id to every patient whose order references it. On Synthea's Bundles
(rewritten the way newer Synthea versions and many EHRs write orders) and on a generated population."""

from __future__ import annotations

import json

import orjson
import pytest

from cds.screen import synth
from cds.screen.convert import convert_bundles
from cds.screen.evaluate import build_request
from cds.screen.run import screen
from tests.conftest import RULES_DIR, shared_data

NOW = synth.DEFAULT_NOW
PATIENTS = 80


def _rows(result):
    return {row["patient_id"]: row for row in result.rows[0]}


def _drop_from_manifest(export, resource_type):
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["output"] = [o for o in manifest["output"] if o["type"] != resource_type]
    (export / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def populations(tmp_path_factory):
    inline = tmp_path_factory.mktemp("inline")
    referenced = tmp_path_factory.mktemp("referenced")
    # 80 patients in 3 files (160 in 3 before): the join is per order, so any population with orders of
    # several drugs over more than one file shows it; these 80 hold every drug of the generator's
    # formulary (the >= 4 Medications below) and patients whose answer depends on their order.
    synth.write_population(inline, PATIENTS, seed=23, patients_per_file=30)
    summary = synth.write_population(referenced, PATIENTS, seed=23, patients_per_file=30, medication_resources=True)
    return inline, referenced, summary


def test_generated_orders_by_reference_are_answered_like_inline_drugs(populations, dask_client):
    inline, referenced, summary = populations
    assert summary["resources"]["Medication"] >= 4  # formulary: one per drug, shared by many patients
    lines = (referenced / "MedicationRequest.001.ndjson").read_text().splitlines()
    assert lines and all("medicationReference" in line and "medicationCodeableConcept" not in line for line in lines)

    by_value = screen(inline, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True)
    by_reference = screen(referenced, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True)
    assert _rows(by_reference) == _rows(by_value)
    orders = summary["resources"]["MedicationRequest"]
    assert by_reference.counts["medication_references_resolved"] == orders
    assert by_reference.counts.get("medication_references_unresolved", 0) == 0
    # Medications are joined, not dropped as resources of no patient.
    assert "Medication" not in by_reference.counts["unlinked_by_type"]
    assert by_reference.counts["patients"] == PATIENTS and by_reference.counts["patients_evaluated_twice"] == 0


def test_without_the_medication_file_the_references_are_counted_unresolved_and_answers_change(
    populations, dask_client, tmp_path
):
    """The comparison above can fail: the same export without Medication.ndjson answers differently."""
    import shutil

    _, referenced, summary = populations
    export = tmp_path / "no-medications"
    shutil.copytree(referenced, export)
    _drop_from_manifest(export, "Medication")
    inline_rows = _rows(screen(populations[0], [RULES_DIR], client=dask_client, now=NOW, keep_cards=True))
    result = screen(export, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True)
    assert result.counts["medication_references_unresolved"] == summary["resources"]["MedicationRequest"]
    assert result.counts.get("medication_references_resolved", 0) == 0
    changed = [pid for pid, row in _rows(result).items() if row != inline_rows[pid]]
    assert changed, "no patient's answer depended on a medication: the join test above proves nothing"


def _synthea_with_medication_resources(source, out):
    """Synthea's Bundles with every MedicationRequest's drug moved to a Medication entry it references
    by ``urn:uuid:`` (as Synthea writes references); returns the number of orders rewritten."""
    out.mkdir()
    rewritten = 0
    for path in sorted(source.glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        if bundle.get("resourceType") != "Bundle":
            continue
        added = []
        for entry in bundle["entry"]:
            resource = entry["resource"]
            concept = resource.get("medicationCodeableConcept")
            if resource["resourceType"] != "MedicationRequest" or concept is None:
                continue
            medication_id = f"{resource['id']}-drug"
            added.append(
                {
                    "fullUrl": f"urn:uuid:{medication_id}",
                    "resource": {"resourceType": "Medication", "id": medication_id, "code": concept},
                }
            )
            del resource["medicationCodeableConcept"]
            resource["medicationReference"] = {"reference": f"urn:uuid:{medication_id}"}
            rewritten += 1
        bundle["entry"] += added
        (out / path.name).write_bytes(orjson.dumps(bundle))
    return rewritten


def test_synthea_orders_by_reference_are_answered_like_inline_drugs(dask_client, tmp_path):
    source = shared_data("synthea")
    bundles = tmp_path / "bundles"
    rewritten = _synthea_with_medication_resources(source, bundles)
    assert rewritten > 50
    original, by_reference = tmp_path / "original", tmp_path / "by-reference"
    convert_bundles(source, original, files_per_type=2)
    written = convert_bundles(bundles, by_reference, files_per_type=2)
    assert written["Medication"] == rewritten
    expected = _rows(screen(original, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True))
    result = screen(by_reference, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True)
    assert _rows(result) == expected
    assert result.counts["medication_references_resolved"] == rewritten
    # The folder of Bundles itself: each Bundle's Medications reach its patient too.
    from_bundles = screen(bundles, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True)
    assert _rows(from_bundles) == expected
    assert from_bundles.counts["medication_references_resolved"] == rewritten


def test_the_request_carries_the_medications_as_included_entries_of_the_order_search(pipeline):
    service = pipeline.service("calciphylaxis-risk")
    patient = {"resourceType": "Patient", "id": "p1"}
    order = {
        "resourceType": "MedicationRequest",
        "id": "o1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/m1"},
    }
    medication = {"resourceType": "Medication", "id": "m1", "code": {"text": "warfarin"}}
    request = build_request(service, "p1", [patient, order, medication])
    searches = [v for v in request["prefetch"].values() if isinstance(v, dict) and v.get("type") == "searchset"]
    carrying = [s for s in searches if any(e["resource"] is medication for e in s["entry"])]
    assert len(carrying) == 1  # once, in the order search, as _include would put it
    (search,) = carrying
    assert search["total"] == 1 and search["entry"][-1]["search"] == {"mode": "include"}
    assert search["entry"][0]["resource"] is order
