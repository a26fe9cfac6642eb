"""DiagnosticReports (coded results and report text) -> ``finding`` facts.

Flow for one evaluation::

    reports -> validate (fhir.resources R4B, cached) -> modality, date
            -> coded mentions (result Observations, conclusionCode)
            -> text mentions (conclusion + presentedForm, medspaCy, cached per report)
            -> merged per report -> serial comparison of bone scans
            -> facts (+ at_lesion_site, days_ago for this patient and moment)

Never raises on bad data: an invalid or unreadable resource becomes a FactWarning
(resource type, id and the reason; never resource content).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cds.concepts import coded_key
from cds.facts import Fact, FactSet, FactWarning
from cds.findings.knowledge import LOCAL_SYSTEM, FindingsKnowledge, normalise_phrase
from cds.findings.model import Mention

log = logging.getLogger(__name__)

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


def extract_findings(
    reports: Sequence[Mapping[str, Any]],
    resources_by_ref: Mapping[str, Mapping[str, Any]],
    now: datetime,
    lesion_sites: Collection[tuple[str, str | None]],
    knowledge: FindingsKnowledge,
    medications: Iterable[Fact] = (),
) -> FactSet:
    """Finding facts from imaging DiagnosticReports.

    ``reports``: DiagnosticReport JSON dicts. ``resources_by_ref``: "Observation/1",
    "ImagingStudy/2" (and full URLs as they appear in references) -> resource dicts.
    ``lesion_sites``: (site, laterality or None) of the patient's clinical lesions, site ids as
    in rules/findings/sites.yaml. ``medications``: medication facts (drug_class, start), used
    to tell a treatment response from a spontaneous change in the serial comparison.
    """
    warnings: list[FactWarning] = []
    per_report: list[tuple[ReportInfo, list[Mention]]] = []
    seen_refs: set[str] = set()
    for report in reports:
        rid = str(report.get("id", "")) if isinstance(report, Mapping) else ""
        try:
            result = _read_report(report, resources_by_ref, knowledge, warnings)
        except Exception as exc:
            log.warning("findings: unexpected %s while reading DiagnosticReport", type(exc).__name__)
            warnings.append(FactWarning("DiagnosticReport", rid, f"findings not extracted: {type(exc).__name__}"))
            continue
        if result is None:
            continue
        info, mentions = result
        if info.ref in seen_refs:
            continue  # the same report twice in a prefetch (e.g. two keys) gives one set of facts
        seen_refs.add(info.ref)
        per_report.append((info, mentions))

    from cds.findings.serial import compare_bone_scans

    per_report, derived = compare_bone_scans(per_report, knowledge, medications)
    facts: list[Fact] = []
    for info, mentions in per_report:
        facts.extend(_facts(info, mentions, now, lesion_sites, knowledge))
        summary = _bone_scan_summary(info, mentions, lesion_sites, knowledge)
        if summary is not None:
            facts.append(summary)
    facts.extend(derived)
    return FactSet(facts=tuple(facts), warnings=tuple(warnings))


def _bone_scan_summary(
    info: ReportInfo,
    mentions: list[Mention],
    lesion_sites: Collection[tuple[str, str | None]],
    knowledge: FindingsKnowledge,
) -> Fact | None:
    """One report-level answer per bone scan: is there soft-tissue uptake at all?

    A negated soft-tissue-uptake fact may deny one region only ("no uptake in the upper
    extremities" beside calf uptake), so it is not a negative scan by itself. This fact is:
    text "present" when any soft-tissue uptake is asserted (definite or probable, not
    historical), "absent" when none is and the report denies some; no fact when the report does
    not speak of soft-tissue uptake. flag: present and at a clinical lesion site.
    """
    if info.modality not in knowledge.bone_scan_modalities:
        return None
    uptake = [m for m in mentions if m.concept in knowledge.compare_concepts]
    positive = [m for m in uptake if not m.negated and not m.historical and m.certainty in ("definite", "probable")]
    if positive:
        text = "present"
    elif any(m.negated for m in uptake):
        text = "absent"
    else:
        return None
    attrs: dict[str, Any] = {
        "name": "bone-scan-soft-tissue-uptake",
        "text": text,
        "flag": any(at_lesion_site(m.site, m.laterality, lesion_sites, knowledge) for m in positive),
        "source": info.ref,
    }
    if info.date:
        attrs["date"] = info.date
    return Fact(kind="derived", id=f"derived:bone-scan-soft-tissue-uptake:{info.ref}", attrs=attrs)


# -- one report --------------------------------------------------------------------------


def _read_report(
    report: Any,
    resources_by_ref: Mapping[str, Mapping[str, Any]],
    knowledge: FindingsKnowledge,
    warnings: list[FactWarning],
) -> tuple[ReportInfo, list[Mention]] | None:
    if not isinstance(report, Mapping) or report.get("resourceType") != "DiagnosticReport":
        rtype = report.get("resourceType", "?") if isinstance(report, Mapping) else type(report).__name__
        warnings.append(FactWarning(str(rtype), "", "not a DiagnosticReport; skipped by the findings extractor"))
        return None
    rid = str(report.get("id") or "")
    problem = _validate(report, "DiagnosticReport", knowledge)
    if problem:
        warnings.append(FactWarning("DiagnosticReport", rid, f"invalid DiagnosticReport ({problem}); skipped"))
        return None
    if report.get("status") in SKIP_STATUSES:
        return None
    studies = [
        s
        for s in (_resolve(ref, report, resources_by_ref) for ref in _refs(report.get("imagingStudy")))
        if s is not None and s.get("resourceType") == "ImagingStudy"
    ]
    modality = _modality(report, studies, knowledge)
    if not _is_imaging(report) and modality is None:
        return None
    ref = f"DiagnosticReport/{rid}" if rid else f"DiagnosticReport/draft-{_content_hash(report)[:12]}"
    info = ReportInfo(ref=ref, modality=modality, date=_report_date(report, studies))

    coded = _coded_mentions(report, resources_by_ref, knowledge, warnings)
    text, text_problems = _report_text(report)
    for p in text_problems:
        warnings.append(FactWarning("DiagnosticReport", rid, p))
    textual: tuple[Mention, ...] = ()
    from cds.findings.text import MAX_TEXT_CHARS

    if len(text) > MAX_TEXT_CHARS:
        warnings.append(
            FactWarning(
                "DiagnosticReport",
                rid,
                f"report text longer than {MAX_TEXT_CHARS} characters; only the first {MAX_TEXT_CHARS} were read",
            )
        )
    if text:
        version = (report.get("meta") or {}).get("versionId")
        # Parsed once per process per report version. The text's digest is part of the key
        # besides id + meta.versionId: a draft report under review (diagnosticreport-review)
        # changes while its id and version stay the same, and hashing ~2 kB costs microseconds.
        key = (rid, str(version or ""), hashlib.sha256(text.encode()).hexdigest())
        try:
            from cds.findings.text import extract_text_mentions

            textual = knowledge.text_cache.get_or_compute(key, lambda: extract_text_mentions(text, knowledge))
        except ImportError as exc:
            warnings.append(FactWarning("DiagnosticReport", rid, f"report text not parsed: {exc}"))
    return info, _merge([*coded, *textual])


def _validate(resource: Mapping[str, Any], rtype: str, knowledge: FindingsKnowledge) -> str | None:
    """None if ``resource`` validates as R4B ``rtype``, else the first error's location and type."""
    # Keyed on content, not id + version: a resource edited in place keeps both.
    key = (rtype, _content_hash(resource))

    def check() -> str | None:
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

    return knowledge.validation_cache.get_or_compute(key, check)


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
    dicom: set[str] = set()
    for s in studies:
        for m in s.get("modality") or ():
            if isinstance(m, Mapping) and m.get("code"):
                dicom.add(str(m["code"]))
        for series in s.get("series") or ():
            m = (series or {}).get("modality") if isinstance(series, Mapping) else None
            if isinstance(m, Mapping) and m.get("code"):
                dicom.add(str(m["code"]))
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


# -- coded results -----------------------------------------------------------------------


def _coded_mentions(
    report: Mapping[str, Any],
    resources_by_ref: Mapping[str, Mapping[str, Any]],
    knowledge: FindingsKnowledge,
    warnings: list[FactWarning],
) -> list[Mention]:
    out: list[Mention] = []
    for ref in _refs(report.get("result")):
        obs = _resolve(ref, report, resources_by_ref)
        if obs is None or obs.get("resourceType") != "Observation":
            continue
        oid = str(obs.get("id") or ref)
        problem = _validate(obs, "Observation", knowledge)
        if problem:
            warnings.append(FactWarning("Observation", oid, f"invalid Observation ({problem}); skipped"))
            continue
        if obs.get("status") in SKIP_STATUSES:
            continue
        concepts = [
            v
            for c in _codings(obs.get("code"))
            for v in knowledge.valuesets_for(c.get("system"), c.get("code"), knowledge.finding_codes)
        ]
        if not concepts:
            continue
        out.extend(_observation_mentions(obs, list(dict.fromkeys(concepts)), knowledge))
    for cc in report.get("conclusionCode") or ():
        for c in _codings(cc):
            for concept in knowledge.valuesets_for(c.get("system"), c.get("code"), knowledge.finding_codes):
                hyp = knowledge.hypothesis_of.get(concept)
                if hyp:
                    out.append(
                        Mention(
                            concept=concept, kind="impression", hypothesis=hyp, extraction="coded", section="impression"
                        )
                    )
    return out


_NEGATIVE_VALUES = {
    ("http://snomed.info/sct", "2667000"),
    ("http://snomed.info/sct", "260385009"),
}  # Absent; Negative [R]
_NEGATIVE_INTERPRETATIONS = {"NEG", "N", "ND"}


def _observation_mentions(obs: Mapping[str, Any], concepts: list[str], knowledge: FindingsKnowledge) -> list[Mention]:
    qual: dict[str, str] = {}
    laterality: str | None = None
    for comp in obs.get("component") or ():
        if not isinstance(comp, Mapping):
            continue
        value_codings = _codings(comp.get("valueCodeableConcept"))
        for code in _codings(comp.get("code")):
            key = coded_key(code.get("system"), code.get("code"))
            if key in knowledge.laterality_component_codes:
                for v in value_codings:
                    laterality = knowledge.laterality_of(v.get("system"), v.get("code")) or laterality
            elif code.get("system") == LOCAL_SYSTEM and value_codings:
                qual[str(code.get("code"))] = str(value_codings[0].get("code"))

    sites: list[tuple[str, str | None]] = []
    body = obs.get("bodySite")
    site: str | None = None
    for c in _codings(body):
        coded_site = knowledge.site_of(c.get("system"), c.get("code"))
        coded_side = knowledge.laterality_of(c.get("system"), c.get("code"))
        if coded_site is not None:
            site = coded_site
        elif coded_side is not None:
            laterality = coded_side
    if site is None and isinstance(body, Mapping) and body.get("text"):
        # The same lexicon as report text: bodySite.text "Both calves" -> lower-leg, bilateral.
        site, text_lat = _site_from_text(str(body["text"]), knowledge)
        laterality = laterality or text_lat
    if site is not None:
        sites.append((site, laterality))

    negated = False
    for c in _codings(obs.get("valueCodeableConcept")):
        if (c.get("system"), str(c.get("code"))) in _NEGATIVE_VALUES:
            negated = True
    if obs.get("valueBoolean") is False:
        negated = True
    for interp in obs.get("interpretation") or ():
        if any(str(c.get("code")) in _NEGATIVE_INTERPRETATIONS for c in _codings(interp)):
            negated = True
    if qual.get("change") == "resolved":
        negated = True
    certainty = qual.get("certainty", "definite")
    if certainty not in ("definite", "probable", "possible", "unlikely") or negated:
        certainty = "definite"
    distribution = qual.get("distribution")
    out = []
    for concept in concepts:
        for s, lat in sites or [(None, None)]:
            out.append(
                Mention(
                    concept=concept,
                    kind="impression" if concept in knowledge.hypothesis_of else "finding",
                    hypothesis=knowledge.hypothesis_of.get(concept),
                    site=s,
                    laterality=lat,
                    site_class=knowledge.sites[s].site_class if s else None,
                    distribution=distribution,
                    symmetry=distribution if distribution in ("symmetric", "asymmetric") else None,
                    intensity=qual.get("intensity"),
                    layer=qual.get("layer"),
                    pattern=qual.get("pattern"),
                    negated=negated,
                    certainty=certainty,
                    change=qual.get("change"),
                    attributed_to=qual.get("attributed-to"),
                    extraction="coded",
                )
            )
    return out


def _site_from_text(text: str, knowledge: FindingsKnowledge) -> tuple[str | None, str | None]:
    words = f" {normalise_phrase(text)} "
    site = form = None
    best = 0
    for s in knowledge.sites.values():
        for f, phrases in (("single", s.terms), ("plural", s.plural)):
            for p in phrases:
                if f" {p} " in words and len(p) > best:
                    site, form, best = s.id, f, len(p)
    lats = {lat for lat, phrases in knowledge.laterality_phrases.items() for p in phrases if f" {p} " in words}
    if site is None:
        return None, None
    from cds.findings.text import _combine_laterality

    return site, _combine_laterality(lats, form or "single", knowledge.sites[site].paired)


# -- merging and facts -------------------------------------------------------------------


def _merge(mentions: Iterable[Mention]) -> list[Mention]:
    merged: dict[tuple, Mention] = {}
    for m in mentions:
        k = m.key()
        merged[k] = merged[k].merged_with(m) if k in merged else m
    return list(merged.values())


def at_lesion_site(
    site: str | None,
    laterality: str | None,
    lesion_sites: Collection[tuple[str, str | None]],
    knowledge: FindingsKnowledge,
) -> bool | None:
    """Whether a finding at (site, laterality) covers or lies within a clinical lesion site.

    None when the finding has no site. Sites match when one is the other or an ancestor of
    it ("right lower extremity" covers a right calf ulcer); lateralities match when either is
    unknown or bilateral, or both are equal.
    """
    if site is None:
        return None
    spec = knowledge.sites.get(site)
    if spec is not None and not spec.matches_lesions:
        return False
    mine = knowledge.site_ancestors(site)
    for lesion_site, lesion_lat in lesion_sites:
        theirs = knowledge.site_ancestors(lesion_site)
        if lesion_site not in mine and site not in theirs:
            continue
        # An empty laterality ("" from a lesion coded without side) is unknown, like None.
        if not laterality or not lesion_lat or "bilateral" in (laterality, lesion_lat) or laterality == lesion_lat:
            return True
    return False


def _facts(
    info: ReportInfo,
    mentions: list[Mention],
    now: datetime,
    lesion_sites: Collection[tuple[str, str | None]],
    knowledge: FindingsKnowledge,
) -> list[Fact]:
    out = []
    for m in sorted(mentions, key=lambda m: (m.concept, m.site or "", m.laterality or "", m.negated)):
        attrs: dict[str, Any] = {
            "concept": m.concept,
            "negated": m.negated,
            "certainty": m.certainty,
            "report": info.ref,
            "extraction": m.extraction,
        }
        optional = {
            "modality": info.modality,
            "date": info.date,
            "hypothesis": m.hypothesis,
            "site": m.site,
            "laterality": m.laterality,
            "site_class": m.site_class,
            "distribution": m.distribution,
            "symmetry": m.symmetry,
            "intensity": m.intensity,
            "layer": m.layer,
            "pattern": m.pattern,
            "change": m.change,
            "attributed_to": m.attributed_to,
            "section": m.section,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        if m.historical:
            attrs["historical"] = True
        if info.date:
            attrs["days_ago"] = (now.date() - date.fromisoformat(info.date)).days
        at_site = at_lesion_site(m.site, m.laterality, lesion_sites, knowledge)
        if at_site is not None:
            attrs["at_lesion_site"] = at_site
        fid = ":".join(
            ["finding", info.ref, m.concept, m.site or "-", m.laterality or "-"] + (["negated"] if m.negated else [])
        )
        out.append(Fact(kind="finding", id=fid, attrs=attrs))
    return out
