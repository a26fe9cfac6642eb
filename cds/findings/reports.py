"""Reading one imaging or pathology resource for the findings layer: R4B validation (cached), references,
codings, whether it is imaging, its modality, date and text."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds.findings.knowledge import FindingsKnowledge, normalise_phrase

DICOM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"


V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"


# DiagnosticReport.category codes that mean "imaging" (HL7 v2 table 0074 diagnostic service
# sections; LOINC LP29684-5 "Radiology" as US Core uses it) - recalled, confidence R. LOINC
# LP7839-6 is "Pathology" (US Core): pathology reports are read by cds.fhir.pathology instead.
IMAGING_CATEGORIES = {
    (V2_0074, "RAD"),
    (V2_0074, "NMS"),
    (V2_0074, "CT"),
    (V2_0074, "CUS"),
    (V2_0074, "RX"),
    (V2_0074, "VUS"),
    (V2_0074, "OUS"),
    (V2_0074, "XRC"),
    (V2_0074, "NMR"),
    (V2_0074, "IMG"),
    ("http://loinc.org", "LP29684-5"),
}


SKIP_STATUSES = {"entered-in-error", "cancelled", "registered"}


_TEXT_TYPES = ("text/plain",)


@dataclass(frozen=True, slots=True)
class ReportInfo:
    ref: str  # "DiagnosticReport/123"
    modality: str | None
    date: str | None  # YYYY-MM-DD


def _validate(resource: Mapping[str, Any], rtype: str, knowledge: FindingsKnowledge) -> str | None:
    """None if ``resource`` validates as R4B ``rtype``, else the first error's location and type."""
    # Keyed on content, not id + version: a resource edited in place keeps both.
    key = (rtype, _content_hash(resource))

    def check() -> str | None:
        Model: Any
        if rtype == "DiagnosticReport":
            from fhir.resources.R4B.diagnosticreport import DiagnosticReport as Model
        elif rtype == "Observation":
            from fhir.resources.R4B.observation import Observation as Model
        else:
            from fhir.resources.R4B.imagingstudy import ImagingStudy as Model
        try:
            Model.model_validate(dict(resource))
        except Exception as exc:
            errors = getattr(exc, "errors", None)
            if callable(errors):
                first = errors()[0] if errors() else {}
                loc = ".".join(str(x) for x in first.get("loc", ())) or "?"
                return f"{loc}: {first.get('type', 'invalid')}"
            return type(exc).__name__
        return None

    problem: str | None = knowledge.validation_cache.get_or_compute(key, check)
    return problem


def _content_hash(resource: Any) -> str:
    import json

    return hashlib.sha256(json.dumps(resource, sort_keys=True, default=str).encode()).hexdigest()


def _refs(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(v["reference"]) for v in value if isinstance(v, Mapping) and v.get("reference")]


def _resolve(ref: str, report: Mapping[str, Any], resources_by_ref: Mapping[str, Mapping[str, Any]]) -> Any:
    if ref.startswith("#"):
        for c in report.get("contained") or ():
            if isinstance(c, Mapping) and c.get("id") == ref[1:]:
                return c
        return None
    found = resources_by_ref.get(ref)
    if found is None and "/" in ref:
        # An absolute reference ("https://ehr/fhir/Observation/1") or a versioned one
        # ("Observation/1/_history/2") resolves to the relative "Observation/1" too.
        parts = ref.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2:
            found = resources_by_ref.get("/".join(parts[-2:]))
    return found if isinstance(found, Mapping) else None


def _codings(concept: Any) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    return [c for c in concept.get("coding") or () if isinstance(c, Mapping)]


def _is_imaging(report: Mapping[str, Any]) -> bool:
    for cat in report.get("category") or ():
        for c in _codings(cat):
            if (c.get("system"), c.get("code")) in IMAGING_CATEGORIES:
                return True
        text = normalise_phrase((cat or {}).get("text", "")) if isinstance(cat, Mapping) else ""
        if text in ("imaging", "radiology", "nuclear medicine"):
            return True
    return False


def _modality(report: Mapping[str, Any], studies: list[Mapping[str, Any]], knowledge: FindingsKnowledge) -> str | None:
    codings = _codings(report.get("code"))
    for spec in knowledge.modalities:
        for c in codings:
            if set(knowledge.valuesets_for(c.get("system"), c.get("code"), knowledge.study_codes)) & set(
                spec.valuesets
            ):
                return spec.id
    dicom = _dicom_modalities(studies)
    for spec in knowledge.modalities:
        if spec.dicom_all and spec.dicom_all <= dicom:
            return spec.id
    for spec in knowledge.modalities:
        if spec.dicom & dicom:
            return spec.id
    words = " ".join(
        [str((report.get("code") or {}).get("text") or "")]
        + [str(c.get("display") or "") for c in codings]
        + [str(s.get("description") or "") for s in studies]
    )
    padded = f" {normalise_phrase(words)} "
    if padded.strip():
        for spec in knowledge.modalities:
            if any(f" {t} " in padded for t in spec.text):
                return spec.id
    return None


def _dicom_modalities(studies: list[Mapping[str, Any]]) -> set[str]:
    """The DICOM modality codes of the studies and their series."""
    dicom: set[str] = set()
    for s in studies:
        for m in s.get("modality") or ():
            if isinstance(m, Mapping) and m.get("code"):
                dicom.add(str(m["code"]))
        for series in s.get("series") or ():
            m = (series or {}).get("modality") if isinstance(series, Mapping) else None
            if isinstance(m, Mapping) and m.get("code"):
                dicom.add(str(m["code"]))
    return dicom


def _report_date(report: Mapping[str, Any], studies: list[Mapping[str, Any]]) -> str | None:
    candidates = [
        report.get("effectiveDateTime"),
        (report.get("effectivePeriod") or {}).get("start")
        if isinstance(report.get("effectivePeriod"), Mapping)
        else None,
        *[s.get("started") for s in studies],
        report.get("issued"),
    ]
    for value in candidates:
        if isinstance(value, str) and len(value) >= 10:
            try:
                return date.fromisoformat(value[:10]).isoformat()
            except ValueError:
                continue
    return None


def _report_text(report: Mapping[str, Any]) -> tuple[str, list[str]]:
    """presentedForm (text/plain) followed by the conclusion under an IMPRESSION header."""
    parts: list[str] = []
    problems: list[str] = []
    for i, att in enumerate(report.get("presentedForm") or ()):
        if not isinstance(att, Mapping):
            continue
        ctype = str(att.get("contentType") or "").split(";")[0].strip().lower()
        if ctype not in _TEXT_TYPES:
            if att.get("data"):
                problems.append(f"presentedForm[{i}] is {ctype or 'untyped'}, not text/plain; not parsed")
            continue
        data = att.get("data")
        if not data:
            continue
        try:
            parts.append(base64.b64decode(str(data), validate=True).decode("utf-8"))
        except (binascii.Error, ValueError):
            problems.append(f"presentedForm[{i}] is not valid base64 UTF-8 text; not parsed")
    conclusion = report.get("conclusion")
    if isinstance(conclusion, str) and conclusion.strip():
        body = "\n\n".join(parts)
        if conclusion.strip() not in body:
            parts.append(f"IMPRESSION: {conclusion.strip()}")
    return "\n\n".join(parts), problems
