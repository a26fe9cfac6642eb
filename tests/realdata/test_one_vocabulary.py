"""Issue 18's two behaviour bugs: one body-site vocabulary, and a broken findings file is reported."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cds.diagnostics import KnowledgeError
from cds.fhir import extract_facts
from cds.fhir.terminology import Terminology
from tests.conftest import REPO, RULES_DIR

SCT = "http://snomed.info/sct"


def _ulcer_with_site(site_code: str, system: str = SCT) -> dict:
    # SNOMED CT 402863001 |Ulcer of lower limb| (Skin ulcer hierarchy), site and side post-coordinated in bodySite.
    return {
        "resourceType": "Condition",
        "id": "u1",
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": SCT, "code": "46742003", "display": "Skin ulcer"}]},
        "bodySite": [
            {"coding": [{"system": system, "code": site_code, "display": "Lower limb structure"}]},
            {"coding": [{"system": system, "code": "24028007", "display": "Right"}]},
        ],
        "onsetDateTime": "2026-01-10",
    }


def test_lower_limb_code_gives_the_site_imaging_findings_use(terminology) -> None:
    facts = extract_facts(
        {"patientId": "p1"}, {"c": _ulcer_with_site("61685007")}, datetime(2026, 3, 1, tzinfo=UTC), terminology
    )
    lesion = next(f for f in facts.facts if f.kind == "condition")
    findings_site = terminology.findings_knowledge.site_codes[(SCT, "61685007")]
    assert lesion.attrs["site"] == findings_site == "lower-limb"
    assert lesion.attrs["laterality"] == "right"


def test_site_code_with_the_snomed_oid_is_the_same_site(terminology) -> None:
    facts = extract_facts(
        {"patientId": "p1"},
        {"c": _ulcer_with_site("61685007", "urn:oid:2.16.840.1.113883.6.96")},
        datetime(2026, 3, 1, tzinfo=UTC),
        terminology,
    )
    lesion = next(f for f in facts.facts if f.kind == "condition")
    assert lesion.attrs["site"] == "lower-limb" and lesion.attrs["laterality"] == "right"


@pytest.fixture
def broken_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    sites = rules / "findings" / "sites.yaml"
    sites.write_text(sites.read_text().replace("    parent: lower-leg\n", "    parent: no-such-site\n", 1))
    return rules


def test_broken_findings_file_fails_the_terminology_load_naming_file_and_line(broken_rules: Path) -> None:
    with pytest.raises(KnowledgeError) as raised:
        Terminology.load(broken_rules)
    message = str(raised.value)
    assert "sites.yaml:" in message and "E051" in message and "no-such-site" in message
    line = int(message.split("sites.yaml:", 1)[1].split(":", 1)[0])
    assert "parent: no-such-site" in (broken_rules / "findings" / "sites.yaml").read_text().splitlines()[line - 1]


def test_broken_findings_file_fails_cds_rules_validate(broken_rules: Path) -> None:
    env_path = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "cds.cli", "rules", "validate", "--rules", str(broken_rules)],
        check=False,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode != 0, done.stdout
    assert "sites.yaml" in done.stderr and "no-such-site" in done.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "cds.cli", "rules", "validate", "--rules", str(RULES_DIR)],
        check=False,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
