"""The requests the benchmarks send: the source case, the Synthea ESRD patient, synthetic patients.

Every body is made safe for loopback benchmarking: ``fhirServer`` and
``fhirAuthorization`` are removed (a benchmark that wants fetching adds a
loopback ``fhirServer`` itself), so no request can make the service reach
outside 127.0.0.1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks import synthetic

REPO = Path(__file__).resolve().parent.parent
SOURCE_CASE = REPO / "fhir_examples" / "requests" / "source-case.patient-view.json"
# Read in place from the shared data folder beside the repository; never copied.
# CDS_SHARED_DATA names the folder where it is elsewhere (a worktree, CI).
SHARED_DATA = Path(os.environ.get("CDS_SHARED_DATA") or REPO.parent / "shared" / "data")
SYNTHEA_ESRD = SHARED_DATA / "synthea" / "esrd-dialysis-patient.patient-view-request.json"
SERVICE_ID = "calciphylaxis-risk"

# The Synthea request names its prefetch keys after resource types; the service's keys differ.
_SYNTHEA_KEYS = {"Patient": "patient", "Condition": "conditions", "MedicationRequest": "meds"}


@dataclass(frozen=True)
class Case:
    name: str
    payload: dict[str, Any]
    body: bytes
    resources: int
    note: str = ""


def make_case(name: str, payload: dict[str, Any], note: str = "") -> Case:
    payload = loopback_safe(payload)
    return Case(name, payload, orjson.dumps(payload), sum(1 for _ in synthetic.resources_in(payload)), note)


def loopback_safe(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in ("fhirServer", "fhirAuthorization")}


def source_case() -> Case:
    return make_case("source-case", orjson.loads(SOURCE_CASE.read_bytes()))


def synthetic_case(size: int) -> Case:
    return make_case(f"synthetic-{size}", synthetic.make_request(size))


def synthea_esrd_case(path: Path = SYNTHEA_ESRD) -> Case | None:
    """The 1.6 MB Synthea ESRD request, its prefetch keys renamed to this service's keys.

    The patient has no lab Observations, so ``labs`` is sent as ``null`` ("no data",
    CDS Hooks §prefetch) rather than left absent (which would ask for a fetch).
    Returns None when the shared data folder is not beside the repository.
    """
    if not path.exists():
        return None
    raw = orjson.loads(path.read_bytes())
    prefetch = {_SYNTHEA_KEYS.get(k, k): v for k, v in (raw.get("prefetch") or {}).items()}
    prefetch.setdefault("labs", None)
    return make_case(
        "synthea-esrd",
        {**raw, "prefetch": prefetch},
        note="Synthea ESRD request, prefetch keys renamed to the service's (Patient->patient, "
        "Condition->conditions, MedicationRequest->meds), labs null, fhirServer removed",
    )


def without_prefetch_key(case: Case, key: str, fhir_server: str) -> Case:
    """The case with one prefetch key absent and a loopback fhirServer to fetch it from."""
    if not fhir_server.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"benchmarks only fetch from loopback, not {fhir_server!r}")
    prefetch = {k: v for k, v in case.payload["prefetch"].items() if k != key}
    payload = {**case.payload, "prefetch": prefetch, "fhirServer": fhir_server}
    return Case(
        f"{case.name}-fetch-{key}", payload, orjson.dumps(payload), case.resources, f"prefetch key {key!r} fetched"
    )
