"""Prefetch templates use only CDS Hooks 2.0 tokens (issue 16, item 2).

2.0.1 §Prefetch tokens: ``{{context.<field>}}`` for the hook's context fields marked
"Prefetch Token: Yes" and the four user tokens. ``{{today() - 730 days}}`` is 3.0 STU
syntax: a 2.0 EHR cannot fill it, so a required key using it meant 412 on every call.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import yaml

from tests.conftest import REPO, RULES_DIR

TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# Written from the 2.0.1 spec and the hook library, not from the loader's table.
SPEC_TOKENS = {
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
    "context.userId",
    "context.patientId",
    "context.encounterId",
}
REPORT_REVIEW_TOKENS = SPEC_TOKENS | {"context.diagnosticReportId"}  # this service's own hook definition


def test_every_shipped_template_uses_only_2_0_tokens():
    services = yaml.safe_load((RULES_DIR / "services.yaml").read_text())["services"]
    for service in services:
        allowed = REPORT_REVIEW_TOKENS if service["hook"].endswith("diagnosticreport-review") else SPEC_TOKENS
        for key, template in service["prefetch"].items():
            for token in TOKEN.findall(template):
                assert token in allowed, f"{service['id']}.{key}: {{{{{token}}}}}"


def validate(rules_dir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cds.cli", "rules", "validate", "--rules", str(rules_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_rules_validate_refuses_undefined_tokens_with_file_line_col(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    (tmp_path / "fhir_examples").symlink_to(REPO / "fhir_examples")  # the rule tests' cases
    services = rules / "services.yaml"
    lines = services.read_text().splitlines(keepends=True)
    (index,) = [i for i, line in enumerate(lines) if line.lstrip().startswith("labs:")]
    lines[index] = lines[index].replace("_sort=-date", "date=ge{{today() - 730 days}}")
    lines[index] = lines[index].replace("{{context.patientId}}", "{{context.medications.MedicationRequest.id}}")
    services.write_text("".join(lines))
    result = validate(rules)
    assert result.returncode != 0
    reported = [line for line in result.stderr.splitlines() if "is not a CDS Hooks 2.0 prefetch token" in line]
    today_column = lines[index].index("{{today()") + 1
    nested_column = lines[index].index("{{context.medications") + 1
    # one format for every file under rules/ (cds.knowledge): rules/<file>:line:col: CODE message
    shown = "rules/services.yaml"
    assert any(line.startswith(f"{shown}:{index + 1}:{today_column}: E052 ") for line in reported), result.stderr
    assert any(line.startswith(f"{shown}:{index + 1}:{nested_column}: E052 ") for line in reported), result.stderr
