"""One patient's resources -> the same request the patient-view service receives -> its answer.

Workers get the rule set as a ``RuleBundle`` (the files' bytes), shipped once per worker by
Dask, and load a ``Pipeline`` from it once per process (``pipeline_for``). Each patient is
answered by ``cds.hooks.handler.answer_hook``, the function behind the HTTP route and
``cds evaluate``: same validation, prefetch checks and ``Pipeline.evaluate``; no HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from cds.hooks.errors import HookError

SCREEN_USER = "Device/cds-screen"  # who asks: the screening job, not a clinician
TRACE_KEY = "org.calciphylaxis-cds.screen-trace"
_CASE_LINE = re.compile(r"^\s*-?\s*case:\s*['\"]?([^'\"\s#]+)", re.MULTILINE)
_INDICATOR_RANK = {"critical": 3, "warning": 2, "info": 1}
# Prefetch searches that carry the referenced Medications (the first of the service's keys of these types).
MEDICATION_INCLUDED_BY = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")


@dataclass(frozen=True)
class RuleBundle:
    """A rules directory as bytes, plus the request files its rule tests name, for shipping to workers."""

    files: tuple[tuple[str, bytes], ...]  # (path relative to the bundle root, content); rules under "rules/"
    digest: str

    @classmethod
    def from_directory(cls, rules_dir: Path) -> RuleBundle:
        rules_dir = Path(rules_dir).resolve()
        if not (rules_dir / "ruleset.yaml").is_file():
            raise FileNotFoundError(f"{rules_dir}: not a rules directory (no ruleset.yaml)")
        files: list[tuple[str, bytes]] = []
        for path in sorted(rules_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files.append(("rules/" + path.relative_to(rules_dir).as_posix(), path.read_bytes()))
        # Rule tests name request files relative to the repository root (the rules folder's parent).
        cases: set[str] = set()
        for name, content in files:
            if name.startswith("rules/tests/") and name.endswith((".yaml", ".yml")):
                cases.update(_CASE_LINE.findall(content.decode("utf-8", "replace")))
        for case in sorted(cases):
            if case.startswith("/") or ".." in Path(case).parts:
                continue  # only files under the repository root travel with the rules
            candidate = rules_dir.parent / case
            if candidate.is_file():
                files.append((case, candidate.read_bytes()))
        digest = hashlib.sha256()
        for name, content in files:
            digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
        return cls(tuple(files), "sha256:" + digest.hexdigest())

    def materialize(self, root: Path) -> Path:
        for name, content in self.files:
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return root / "rules"


_PIPELINES: dict[tuple[str, str | None], Any] = {}
_PIPELINES_LOCK = threading.Lock()


def pipeline_for(bundle: RuleBundle, engine: str | None = None) -> Any:
    """The Pipeline for ``bundle`` in this process, loaded on first use (rule tests included)."""
    from cds.pipeline import Pipeline

    key = (bundle.digest, engine)
    with _PIPELINES_LOCK:
        pipeline = _PIPELINES.get(key)
        if pipeline is None:
            root = Path(tempfile.mkdtemp(prefix="cds-screen-rules-"))
            pipeline = Pipeline.load(bundle.materialize(root), engine=engine)
            _PIPELINES[key] = pipeline
        return pipeline


def build_request(service: Any, patient_id: str, resources: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The CDS Hooks request an EHR would send for this patient: the service's prefetch filled from
    the patient's resources (a read key gets the resource, a search key a searchset Bundle)."""
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    prefetch: dict[str, Any] = {}
    # Medications the patient's orders reference (joined by the screen) travel as an EHR sends them
    # for ``MedicationRequest?...&_include=MedicationRequest:medication``: extra entries of that
    # search, in search mode "include", not counted in its total.
    includes = by_type.get("Medication", [])
    for key, template in service.prefetch.items():
        resource_type = template.split("?", 1)[0].split("/", 1)[0]
        matching = by_type.get(resource_type, [])
        if "?" not in template:
            prefetch[key] = matching[0] if matching else None
            continue
        entries: list[dict[str, Any]] = [{"resource": r} for r in matching]
        if includes and resource_type in MEDICATION_INCLUDED_BY:
            entries += [{"resource": r, "search": {"mode": "include"}} for r in includes]
            includes = []
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(matching), "entry": entries}
    return {
        "hook": service.hook,
        # Deterministic per patient so that two runs send byte-identical requests.
        "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cds-screen:{patient_id}")),
        "context": {"userId": SCREEN_USER, "patientId": patient_id},
        "prefetch": prefetch,
        "extension": {TRACE_KEY: True},
    }


def comparable_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """A wire card without the per-response uuids (its own and its suggestions'), for comparing
    two answers card by card."""
    out = {k: v for k, v in card.items() if k != "uuid"}
    if isinstance(out.get("suggestions"), list):
        out["suggestions"] = [
            {k: v for k, v in s.items() if k != "uuid"} if isinstance(s, Mapping) else s for s in out["suggestions"]
        ]
    return out


def _differential(extension: Any) -> list[dict[str, Any]]:
    """The ranked hypotheses of the differential extension; read defensively (its shape is evolving)."""
    if not isinstance(extension, Mapping):
        return []
    for key, value in extension.items():
        if not key.endswith(".differential"):
            continue
        if isinstance(value, Mapping):  # version 2: {version, causes: [...], explainers, coexisting, ...}
            value = value.get("causes") or value.get("hypotheses") or []
        if isinstance(value, list):
            return [dict(h) for h in value if isinstance(h, Mapping) and isinstance(h.get("hypothesis"), str)]
    return []


def posterior_bin(posterior: float | None) -> str:
    """A neutral probability range, used when the differential states no band of its own."""
    if posterior is None:
        return "not weighed"
    if posterior < 0.05:
        return "<5%"
    if posterior < 0.25:
        return "5-25%"
    if posterior < 0.75:
        return "25-75%"
    return ">=75%"


def _band(hypothesis: Mapping[str, Any] | None) -> str:
    if hypothesis is None:
        return "not weighed"
    band = hypothesis.get("band")
    if isinstance(band, str) and band:
        return band
    if isinstance(band, Mapping) and isinstance(band.get("label") or band.get("word"), str):
        return str(band.get("label") or band.get("word"))
    posterior = hypothesis.get("posterior")
    if isinstance(posterior, int | float) and isinstance(band, list) and len(band) == 2:
        from cds.cards.wording import band as card_band  # the same band words as the cards

        return str(card_band(float(posterior), float(band[0]), float(band[1])))
    return posterior_bin(float(posterior) if isinstance(posterior, int | float) else None)


def summarize(
    patient_id: str, wire: Mapping[str, Any], trace: Mapping[str, Any] | None, version: str, keep_cards: bool
) -> dict[str, Any]:
    """The worklist row of one answered patient."""
    cards = [c for c in wire.get("cards") or [] if isinstance(c, Mapping)]
    raised = []
    for card in cards:
        topic = (card.get("source") or {}).get("topic") or {}
        raised.append(
            {
                "family": str(topic.get("code") or "unlabelled"),
                "indicator": str(card.get("indicator") or ""),
                "summary": str(card.get("summary") or ""),
            }
        )
    ranked = sorted(_differential(wire.get("extension")), key=lambda h: -float(h.get("posterior") or 0))
    leading = ranked[0] if ranked and (ranked[0].get("evidence_for") or ranked[0].get("evidence_against")) else None
    calci = next((h for h in ranked if h.get("hypothesis") == "calciphylaxis"), None)
    evidence = sorted((calci or {}).get("evidence_for") or [], key=lambda e: -float(e.get("likelihood_ratio") or 0))
    key_evidence = [f"{e.get('rule')} (LR {e.get('likelihood_ratio')})" for e in evidence[:5] if isinstance(e, Mapping)]
    row = {
        "patient_id": patient_id,
        "population": str((trace or {}).get("population") or "unknown"),
        "leading_cause": str(leading["hypothesis"]) if leading else "",
        "leading_band": _band(leading) if leading else "",
        "calciphylaxis_posterior": float(calci["posterior"]) if calci and calci.get("posterior") is not None else None,
        "calciphylaxis_band": _band(calci),
        "max_indicator": max((c["indicator"] for c in raised), key=lambda i: _INDICATOR_RANK.get(i, 0), default=""),
        "card_count": len(raised),
        "cards": raised,
        "key_evidence": key_evidence,
        "fact_warnings": len((trace or {}).get("fact_warnings") or []),
        "ruleset_version": version,
        "error": "",
    }
    if keep_cards:
        row["wire_cards"] = [comparable_card(c) for c in cards]
    return row


def failed_row(patient_id: str, version: str, error: str) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "population": "",
        "leading_cause": "",
        "leading_band": "",
        "calciphylaxis_posterior": None,
        "calciphylaxis_band": "",
        "max_indicator": "",
        "card_count": 0,
        "cards": [],
        "key_evidence": [],
        "fact_warnings": 0,
        "ruleset_version": version,
        "error": error,
    }


async def _answer(
    pipeline: Any, service: Any, patient_id: str, resources: list[dict[str, Any]], now: datetime, keep_cards: bool
) -> dict[str, Any]:
    from cds.hooks.handler import answer_hook

    payload = build_request(service, patient_id, resources)
    try:
        evaluation = await answer_hook(pipeline, service, payload, now, None, TRACE_KEY)
    except HookError as exc:
        return failed_row(patient_id, pipeline.version, f"HTTP {exc.status}: " + "; ".join(exc.diagnostics)[:500])
    except Exception as exc:
        return failed_row(patient_id, pipeline.version, f"{type(exc).__name__}: {str(exc)[:300]}")
    return summarize(patient_id, evaluation.response.to_wire(), evaluation.trace, pipeline.version, keep_cards)


def answer_patients(
    bundle: RuleBundle,
    service_id: str,
    patients: list[tuple[str, list[dict[str, Any]]]],
    now: datetime,
    keep_cards: bool = False,
    engine: str | None = None,
) -> list[dict[str, Any]]:
    """Answer each (patient id, resources) with the service ``service_id``; one event loop for all."""
    pipeline = pipeline_for(bundle, engine)
    service = pipeline.service(service_id)
    if service is None:
        raise LookupError(f"the rule set has no service {service_id!r}")

    async def run_all() -> list[dict[str, Any]]:
        return [await _answer(pipeline, service, pid, resources, now, keep_cards) for pid, resources in patients]

    return asyncio.run(run_all())


def parse_line(raw: bytes) -> dict[str, Any]:
    value = orjson.loads(raw)
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise ValueError("not a FHIR resource (no resourceType)")
    return value
