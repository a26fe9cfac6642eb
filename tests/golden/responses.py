"""Golden responses: what the pipeline answers to every shipped case and shared-data request.

``python -m tests.golden.responses --write`` records the responses (cards and the response
extension, card uuids replaced by their position) of every request in fhir_examples/requests and
of the ../shared/data requests the tests use, as sha256 digests into responses.json (both engine
backends must give the same response; the file holds one digest per request).
tests/engine/test_golden_responses.py compares the live pipeline with that file, byte for byte:
the guard for the hot-path work of issue 20 (memos, precomputed matchers, the leaner adapter),
which must change speed and nothing else. The file was recorded on main before that work.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("responses.json")
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ENGINES = ("durable", "reference")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# Shared-data requests the tests use (tests/realdata, tests/fhir): file -> service id.
SHARED_REQUESTS = {
    "cds-hooks-sandbox/sandbox-patient-view-request.json": "calciphylaxis-risk",
    "cds-hooks-sandbox/sandbox-order-sign-request.json": "calciphylaxis-order-sign",
    "synthea/esrd-dialysis-patient.patient-view-request.json": "calciphylaxis-risk",
}


def shared_data_dir() -> Path:
    return Path(os.environ.get("CDS_SHARED_DATA") or REPO.parent / "shared" / "data")


def requests() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(name, service id, request body) of every golden request that exists on this machine."""
    import yaml

    examples = REPO / "fhir_examples"
    manifest = yaml.safe_load((examples / "cases.yaml").read_text(encoding="utf-8"))["cases"]
    for entry in manifest:
        body = json.loads((examples / "requests" / entry["file"]).read_text(encoding="utf-8"))
        yield f"fhir_examples/{entry['file']}", entry["service"], body
    shared = shared_data_dir()
    for file, service in SHARED_REQUESTS.items():
        path = shared / file
        if path.is_file():
            loaded = json.loads(path.read_text(encoding="utf-8"))
            # the sandbox captures wrap the request: {"headers": ..., "body": request}
            yield f"shared/{file}", service, loaded.get("body", loaded)


def answer(pipeline: Any, service_id: str, body: dict[str, Any]) -> str:
    """The response as canonical JSON, its random uuids numbered."""
    from cds.hooks.handler import parse_hook_request
    from cds.hooks.prefetch import complete_prefetch

    service = pipeline.service(service_id)
    # A capture that left prefetch to a FHIR server (the sandbox) gets empty search results instead.
    prefetch = dict(body.get("prefetch") or {})
    for key in service.prefetch:
        prefetch.setdefault(key, {"resourceType": "Bundle", "type": "searchset", "entry": []})
    request = parse_hook_request(service, {**body, "prefetch": prefetch})
    completed = asyncio.run(complete_prefetch(service, request, NOW.date(), None))
    evaluation = pipeline.evaluate(service, request, dict(completed.data), NOW)
    text = evaluation.response.model_dump_json(exclude_none=True)
    # Card and suggestion uuids are random: each becomes its order of first appearance.
    numbers: dict[str, str] = {}
    text = _UUID.sub(lambda m: numbers.setdefault(m.group(0), f"uuid-{len(numbers)}"), text)
    return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record(engine: str = "reference") -> dict[str, str]:
    """Request name -> sha256 of its canonical response (both backends answer identically)."""
    from cds.pipeline import Pipeline

    pipeline = Pipeline.load(REPO / "rules", engine=engine)
    return {name: digest(answer(pipeline, service_id, body)) for name, service_id, body in requests()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record responses.json (on a trusted checkout)")
    args = parser.parse_args()
    recorded = {engine: record(engine) for engine in ENGINES}
    if recorded["durable"] != recorded["reference"]:
        raise SystemExit("the backends answer differently: fix that before recording")
    if args.write:
        GOLDEN.write_text(json.dumps(recorded["reference"], indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(recorded['reference'])} requests, both engines")


if __name__ == "__main__":
    main()
