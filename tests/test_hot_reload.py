"""Hot reload as a hospital sees it: a broken rule file is refused, the old rules keep answering,
/readyz says so, and a good edit is picked up by the file watch without a restart."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cds.app import create_app
from cds.settings import Settings
from tests.conftest import REPO
from tests.engine.helpers import copy_live_rules

SOURCE_CASE = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())


def reloads(client: TestClient, result: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == "cds_rule_reloads_total" and s.labels.get("result") == result:
                return s.value
    return 0.0


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_file_watch_refuses_a_broken_rule_file_and_takes_a_good_edit(tmp_path):
    rules = copy_live_rules(tmp_path)
    settings = Settings(
        profile="demo",
        auth_required=False,
        rules_dir=rules,
        rules_watch_seconds=0.2,
        database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        version = client.get("/healthz").json()["ruleset"]["version"]
        refused_before = reloads(client, "refused")

        imaging = rules / "rules" / "imaging.yaml"
        good_text = imaging.read_text()
        imaging.write_text(good_text + "\n  - id: broken\n    title: [unclosed\n")
        assert wait_for(lambda: client.get("/readyz").status_code == 503), "a broken rule file turns /readyz unready"
        unready = client.get("/readyz").text
        assert "rules/imaging.yaml:" in unready or "imaging.yaml:" in unready
        assert reloads(client, "refused") == refused_before + 1
        # The previous rules keep serving.
        answer = client.post("/cds-services/calciphylaxis-risk", json=SOURCE_CASE)
        assert answer.status_code == 200 and answer.json()["cards"]
        assert client.get("/healthz").json()["ruleset"]["version"] == version

        imaging.write_text(good_text)
        ruleset_file = rules / "ruleset.yaml"
        ruleset_file.write_text(ruleset_file.read_text().replace('version: "', 'version: "9.', 1))
        assert wait_for(lambda: client.get("/readyz").status_code == 200), "a good edit makes it ready again"
        new_version = client.get("/healthz").json()["ruleset"]["version"]
        assert new_version != version and new_version.startswith("9.")
        assert client.post("/cds-services/calciphylaxis-risk", json=SOURCE_CASE).status_code == 200
