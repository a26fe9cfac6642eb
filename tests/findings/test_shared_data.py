"""Every DiagnosticReport in the shared data (HL7 R4 examples, US Core, Synthea) goes through the
extractor without an exception. None is a bone scan or CT of soft-tissue findings, so none may
give a finding: a new finding here is a change to review (false-positive baseline)."""

from __future__ import annotations

import json
from typing import Any

from cds.findings import extract_findings
from tests.conftest import shared_data


def load_reports() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    reports, index = [], {}
    for folder in ("hl7-r4-examples", "us-core", "synthea"):
        for path in sorted(shared_data(folder).glob("*.json")):
            doc = json.loads(path.read_text())
            entries = (
                [e.get("resource") for e in doc.get("entry", [])] if doc.get("resourceType") == "Bundle" else [doc]
            )
            for res in entries:
                if not isinstance(res, dict) or not res.get("id"):
                    continue
                index[f"{res['resourceType']}/{res['id']}"] = res
                if res["resourceType"] == "DiagnosticReport":
                    reports.append(res)
    return reports, index


def test_shared_reports_give_no_findings_and_no_crash(knowledge, now) -> None:
    reports, index = load_reports()
    assert len(reports) > 100  # Synthea notes and lab panels, HL7 and US Core examples
    fs = extract_findings(reports, index, now, [("calf", "left")], knowledge)
    assert fs.facts == ()
    for w in fs.warnings:  # only unreadable attachments and invalid examples, each named
        assert w.resource_type == "DiagnosticReport" and w.resource_id
