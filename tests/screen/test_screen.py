"""`cds screen` on data nobody here wrote (Synthea) and on a generated population, on a real local
Dask cluster: every patient once, the same cards as the service gives per patient, unknown-patient
resources counted, malformed lines reported with file and line, private outputs, no PHI in logs."""

from __future__ import annotations

import gzip
import json
import shutil
import stat
from collections import Counter
from datetime import datetime

import orjson
import pytest

from cds.cli import main, request_from_bundle
from cds.screen import synth
from cds.screen.compare import comparison_from
from cds.screen.convert import convert_bundles
from cds.screen.export import scan_export
from cds.screen.run import screen
from tests.conftest import RULES_DIR, shared_data
from tests.screen.conftest import service_answer

NOW = synth.DEFAULT_NOW
# The generated population: 120 patients in 3 files (240 in 3 before; every claim below is per patient,
# per file or per line, so holds at any size with more than one file); 120 still draws patients of each
# stated picture (4 with the calciphylaxis picture, which get the bone-scan card the rule comparison changes).
PATIENTS = 120


def _by_patient(result, index=0):
    return {row["patient_id"]: row for row in result.rows[index]}


# ------------------------------------------------------------------------------------ Synthea


@pytest.fixture(scope="module")
def synthea_export(tmp_path_factory):
    source = shared_data("synthea")
    out = tmp_path_factory.mktemp("synthea-ndjson")
    written = convert_bundles(source, out, files_per_type=3, compress=True)
    assert written["Patient"] == len(list(source.glob("*.json"))) - 1  # the .patient-view-request.json is no Bundle
    return source, out


def test_synthea_every_patient_once_and_the_same_cards_as_the_service(synthea_export, dask_client, pipeline):
    source, export = synthea_export
    result = screen(export, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True)
    patients = [
        json.loads(line)["id"]
        for path in sorted(export.glob("Patient.*.ndjson.gz"))
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]
    ids = Counter(row["patient_id"] for row in result.rows[0])
    assert sorted(ids) == sorted(patients) and set(ids.values()) == {1}
    assert result.counts["patients"] == len(patients) == result.scan.expected_patients
    assert result.counts.get("patients_failed", 0) == 0
    assert not any(row["error"] for row in result.rows[0])
    # Practitioners and Organizations belong to no patient: counted, not evaluated.
    assert result.counts["unlinked_by_type"].get("Practitioner", 0) > 0
    assert result.counts["resources_read"] == sum(result.resources_by_type.values())
    assert result.rule_versions == [pipeline.version]
    assert {row["ruleset_version"] for row in result.rows[0]} == {pipeline.version}

    # Card by card against the service answering the original Bundle (as `cds evaluate` builds it).
    rows = _by_patient(result)
    service = pipeline.service("calciphylaxis-risk")
    compared = 0
    for bundle_path in sorted(source.glob("*.json"))[:6] + [source / "esrd-dialysis-patient.bundle.json"]:
        bundle = orjson.loads(bundle_path.read_bytes())
        if bundle.get("resourceType") != "Bundle":
            continue
        request = request_from_bundle(bundle, service)
        patient_id = request["context"]["patientId"]
        assert rows[patient_id]["wire_cards"] == service_answer(pipeline, request, NOW), patient_id
        compared += 1
    assert compared >= 5


def test_a_folder_of_bundles_is_screened_like_its_ndjson(synthea_export, dask_client):
    source, export = synthea_export
    from_bundles = screen(source, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True)
    from_ndjson = screen(export, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True)
    assert _by_patient(from_bundles) == _by_patient(from_ndjson)
    assert from_bundles.counts["malformed_lines"] == 1  # the CDS Hooks request file in that folder is no Bundle
    assert from_bundles.malformed_at[0].startswith("bundle #")  # Synthea file names carry patient names


def test_synthea_export_with_a_stray_and_a_broken_line_counts_and_names_them(synthea_export, dask_client, tmp_path):
    _, export = synthea_export
    copy = tmp_path / "synthea"
    shutil.copytree(export, copy)
    first = json.loads(gzip.decompress((copy / "Patient.001.ndjson.gz").read_bytes()).splitlines()[0])
    stray = {
        "resourceType": "Condition",
        "id": "stray",
        "code": {"text": "Calciphylaxis"},
        "subject": {"reference": "Patient/nobody-in-this-export"},
    }
    lines = [
        orjson.dumps({**stray, "subject": {"reference": f"Patient/{first['id']}"}, "id": "known"}),
        b'{"resourceType": "Condition", "subject": ',
        orjson.dumps(stray),
    ]
    (copy / "Condition.extra.ndjson.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["output"].append({"type": "Condition", "url": "Condition.extra.ndjson.gz"})
    (copy / "manifest.json").write_text(json.dumps(manifest))
    baseline = screen(export, [RULES_DIR], client=dask_client, now=NOW)
    result = screen(copy, [RULES_DIR], client=dask_client, now=NOW)
    assert result.counts["patients"] == baseline.counts["patients"] and result.counts["patients_evaluated_twice"] == 0
    assert result.counts["unknown_patients"] == 1 and result.counts["unknown_patient_resources"] == 1
    assert result.malformed_at == [result.malformed_at[0]] and result.malformed_at[0].startswith(
        "Condition.extra.ndjson.gz:2: "
    )
    assert result.counts["resources_read"] == baseline.counts["resources_read"] + 2
    assert result.counts["patient_resources"] == baseline.counts["patient_resources"] + 1


# ------------------------------------------------------------------------------------ generated population


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    out = tmp_path_factory.mktemp("population")
    summary = synth.write_population(out, PATIENTS, seed=7, patients_per_file=50)
    # Resources of a patient the export does not contain, and one broken line, in extra files.
    extra = out / "Observation.extra.ndjson"
    stray = {
        "resourceType": "Observation",
        "id": "stray",
        "status": "final",
        "code": {"text": "Calcium"},
        "subject": {"reference": "Patient/not-in-this-export"},
    }
    lines = [
        orjson.dumps(stray),
        b'{"resourceType": "Observation", "id": "cut-off", "subj',
        orjson.dumps({**stray, "id": "stray-2"}),
    ]
    extra.write_bytes(b"\n".join(lines) + b"\n")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["output"].append({"type": "Observation", "url": extra.name})
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out, summary


def test_population_counts_unknown_patients_and_reports_the_malformed_line(population, dask_client):
    export, summary = population
    result = screen(export / "manifest.json", [RULES_DIR], client=dask_client, now=NOW)
    assert result.counts["patients"] == PATIENTS and len({r["patient_id"] for r in result.rows[0]}) == PATIENTS
    assert result.counts["patients_evaluated_twice"] == 0
    assert result.counts["unknown_patients"] == 1 and result.counts["unknown_patient_resources"] == 2
    assert result.counts["malformed_lines"] == 1
    assert result.malformed_at == [result.malformed_at[0]] and result.malformed_at[0].startswith(
        "Observation.extra.ndjson:2: "
    )
    assert sum(summary["resources"].values()) + 2 == result.counts["resources_read"]
    # The generator's stated picture shows up: the patients drawn with it are the ones with a bone-scan card.
    flagged = {row["patient_id"] for row in result.rows[0] if row["card_count"]}
    assert len(flagged) >= summary["drawn"]["calciphylaxis_picture"] > 0


def test_population_sample_matches_the_service_card_by_card(population, dask_client, pipeline):
    export, _ = population
    result = screen(export, [RULES_DIR], client=dask_client, now=NOW, keep_cards=True)
    rows = _by_patient(result)
    service = pipeline.service("calciphylaxis-risk")
    carded = [pid for pid, row in rows.items() if row["card_count"]]
    sample = set(sorted(rows)[:8]) | set(carded[:4])
    compared = 0
    for resources in synth.generate(PATIENTS, seed=7):
        patient_id = resources[0]["id"]
        if patient_id not in sample:
            continue
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
        expected = service_answer(pipeline, request_from_bundle(bundle, service), NOW)
        assert rows[patient_id]["wire_cards"] == expected, patient_id
        compared += 1
    assert compared == len(sample) and any(rows[p]["wire_cards"] for p in sample)


def test_compare_rules_reports_the_delta_and_the_changed_patients(population, dask_client, tmp_path):
    export, _ = population
    other = tmp_path / "rules"
    shutil.copytree(RULES_DIR, other)
    (tmp_path / "fhir_examples").symlink_to(RULES_DIR.parent / "fhir_examples")
    cards = other / "cards.yaml"
    text = cards.read_text()
    # Lower the indicator of one card family: the same patients get it, as "info".
    target = "  - id: calciphylaxis-risk-after-bone-scan\n"
    head, _, tail = text.partition(target)
    assert tail, "card family calciphylaxis-risk-after-bone-scan not found"
    tail = tail.replace("indicator: warning", "indicator: info", 1)
    cards.write_text(head + target + tail)
    result = screen(export, [RULES_DIR, other], client=dask_client, now=NOW)
    comparison = comparison_from(result)
    before = [r for r in result.rows[0] if any(c["family"] == "calciphylaxis-risk-after-bone-scan" for c in r["cards"])]
    assert before and {c.patient_id for c in comparison.changed} == {r["patient_id"] for r in before}
    assert all(c.added == ("calciphylaxis-risk-after-bone-scan (info)",) for c in comparison.changed)
    family = next(f for f in comparison.families if f.family == "calciphylaxis-risk-after-bone-scan")
    assert family.delta_per_1000 == 0 and family.base_per_1000 == pytest.approx(1000 * len(before) / PATIENTS)
    assert comparison.base_version != comparison.other_version


def test_the_same_rules_twice_change_nothing(population, dask_client):
    export, _ = population
    comparison = comparison_from(screen(export, [RULES_DIR, RULES_DIR], client=dask_client, now=NOW))
    assert comparison.changed == () and all(f.delta_per_1000 == 0 for f in comparison.families)


# ------------------------------------------------------------------------------------ the command


def test_cds_screen_writes_private_outputs_and_prints_no_patient_id(population, dask_client, tmp_path, capsys):
    export, _ = population
    out = tmp_path / "out"
    code = main(
        [
            "screen",
            str(export),
            "--out",
            str(out),
            "--scheduler",
            dask_client.scheduler.address,
            "--now",
            NOW.isoformat(),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"screened {PATIENTS} patients" in printed.out and "Observation.extra.ndjson:2" in printed.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in ("worklist.parquet", "worklist.csv", "report.html", "run.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    record = json.loads((out / "run.json").read_text())
    assert record["input"]["digest"] == scan_export(export).digest
    assert record["counts"]["patients"] == PATIENTS and record["counts"]["malformed_lines"] == 1
    assert record["rules"][0]["version"].startswith("0.")
    run_text = (out / "run.json").read_text() + printed.out + printed.err
    assert "synth-0000" not in run_text  # counts and digests only
    csv_ids = [line.split(",")[1] for line in (out / "worklist.csv").read_text().splitlines()[1:]]
    assert len(csv_ids) == PATIENTS and all(pid.startswith("synth-") for pid in csv_ids)


def test_an_unreadable_export_is_a_clear_error(tmp_path, capsys):
    assert main(["screen", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_generator_is_seeded_and_states_its_prevalence(tmp_path):
    a = synth.write_population(tmp_path / "a", 50, seed=3)
    b = synth.write_population(tmp_path / "b", 50, seed=3)
    assert a == b
    for path in (tmp_path / "a").glob("*.ndjson"):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()
    assert a["stated_prevalence"]["lesion"] == synth.LESION_PREVALENCE
    assert datetime.fromisoformat(a["now"]) == NOW


def test_the_bundled_example_population_is_the_generator_output(tmp_path):
    """fhir_examples/population is `cds synth fhir_examples/population --patients 30 --seed 19 --gzip`."""
    bundled = RULES_DIR.parent / "fhir_examples" / "population"
    synth.write_population(tmp_path, 30, seed=19, compress=True)
    assert sorted(p.name for p in bundled.iterdir()) == sorted(p.name for p in tmp_path.iterdir())
    for path in tmp_path.iterdir():
        assert path.read_bytes() == (bundled / path.name).read_bytes(), f"{path.name} is stale: regenerate it"
