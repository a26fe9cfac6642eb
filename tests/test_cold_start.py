"""Cold start (docs/adr/0014-cold-start.md): the collector paused for the start runs again before the
first request; a store already at the newest revision is opened without importing Alembic."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

from fastapi.testclient import TestClient

from cds.app import create_app
from cds.pipeline import Pipeline
from cds.settings import Settings
from tests.conftest import REPO, RULES_DIR


def app_for(tmp_path, resume: bool):
    settings = Settings(
        profile="demo", auth_required=False, rules_dir=RULES_DIR, database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}"
    )
    pipeline = Pipeline.load(RULES_DIR, run_tests=False, warm=False)
    return create_app(settings, pipeline=pipeline, resume_collector=resume)


def test_the_collector_paused_for_the_start_runs_before_the_first_request(tmp_path):
    gc.disable()
    try:
        app = app_for(tmp_path, resume=True)
        assert not gc.isenabled()  # still paused while the app is built
        with TestClient(app) as client:
            assert gc.isenabled()
            assert client.get("/healthz").status_code == 200
    finally:
        gc.enable()


def test_an_app_not_asked_to_resume_it_leaves_the_collector_alone(tmp_path):
    gc.disable()
    try:
        with TestClient(app_for(tmp_path, resume=False)):
            assert not gc.isenabled()
    finally:
        gc.enable()


PROBE = """
import json, sys
from pathlib import Path
from cds.settings import Settings
from cds.store import open_store
store = open_store(Settings(profile="demo", auth_required=False, database_url=sys.argv[1]))
store.close()
print(json.dumps(sorted(m for m in ("alembic",) if m in sys.modules)))
"""


def test_a_store_at_the_newest_revision_opens_without_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'cds.sqlite3'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def imported() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, url], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert imported() == ["alembic"]  # a new database: Alembic creates the schema
    assert imported() == []  # at the newest revision: one query, no Alembic


def test_serve_loads_no_websocket_protocol(monkeypatch):
    """No route takes a WebSocket, so `cds serve` asks uvicorn for none (its default imports websockets)."""
    import signal

    import uvicorn

    import cds.cli
    import cds.observability.logs

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.setattr(cds.cli, "_app_from", lambda settings: object())
    # what a real start changes in the process: restored after this test
    monkeypatch.setattr(gc, "disable", lambda: None)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    monkeypatch.setattr(cds.observability.logs, "configure_logging", lambda level: None)
    for name, value in {"CDS_PROFILE": "demo", "CDS_AUTH_REQUIRED": "false", "CDS_RULES_DIR": str(RULES_DIR)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CDS_WORKERS", "1")
    assert cds.cli.main(["serve", "--host", "127.0.0.1", "--port", "8099", "--workers", "1"]) == 0
    assert seen["ws"] == "none" and seen["port"] == 8099
