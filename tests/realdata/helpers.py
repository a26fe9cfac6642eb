"""Posting requests to an in-process app (auth off, loopback demo profile) and rewriting patients."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import orjson
from fastapi.testclient import TestClient

from cds.settings import Settings
from tests.conftest import REPO, RULES_DIR, shipped_app

REQUESTS = REPO / "fhir_examples" / "requests"
NAMESPACE = "org.calciphylaxis-cds"
NOTICES = f"{NAMESPACE}.notices"


@cache
def client() -> TestClient:
    # Default settings but the request deadline: these tests post whole Synthea records (up to 3 MB)
    # and thousands of padded resources, which a loaded CI machine answers after the default 3 s (a
    # 503 that says nothing about the answer under test); the deadline has tests of its own.
    app = shipped_app(Settings(profile="demo", auth_required=False, rules_dir=RULES_DIR, request_deadline_seconds=60))
    return TestClient(app, raise_server_exceptions=False)


def example(name: str) -> dict[str, Any]:
    return orjson.loads((REQUESTS / name).read_bytes())


def post(service: str, body: dict[str, Any]) -> Any:
    # json, not orjson: orjson refuses to write nesting deeper than 255, which some tests need.
    return client().post(
        f"/cds-services/{service}", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


def rebind(body: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The same request about patient ``new`` (every reference and id of ``old`` rewritten)."""
    text = json.dumps(body).replace(f"Patient/{old}", f"Patient/{new}").replace(f'"id": "{old}"', f'"id": "{new}"')
    out = json.loads(text)
    out["context"]["patientId"] = new
    return out


def summaries(response: Any) -> list[str]:
    return [c["summary"] for c in response.json()["cards"]]


def deep(value: Any) -> Any:
    return copy.deepcopy(value)
