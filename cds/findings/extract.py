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

import hashlib
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from cds.concepts import coded_key
from cds.facts import Fact, FactSet, FactWarning
from cds.findings.knowledge import LOCAL_SYSTEM, FindingsKnowledge, normalise_phrase
from cds.findings.model import Mention
from cds.findings.reports import (
    SKIP_STATUSES,
    ReportInfo,
    _codings,
    _content_hash,
    _is_imaging,
    _modality,
    _refs,
    _report_date,
    _report_text,
    _resolve,
    _validate,
)

log = logging.getLogger(__name__)


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


def _observation_components(obs: Mapping[str, Any], knowledge: FindingsKnowledge) -> tuple[dict[str, str], str | None]:
    """The qualifiers (local code system) and the laterality the observation's components state."""
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
    return qual, laterality


def _observation_sites(
    obs: Mapping[str, Any], knowledge: FindingsKnowledge, laterality: str | None
) -> list[tuple[str, str | None]]:
    """The body site (coded, else from bodySite.text) with its laterality, or none."""
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
    return sites


def _observation_negated(obs: Mapping[str, Any]) -> bool:
    """A negative value, ``valueBoolean: false`` or a negative interpretation."""
    negated = False
    for c in _codings(obs.get("valueCodeableConcept")):
        if (c.get("system"), str(c.get("code"))) in _NEGATIVE_VALUES:
            negated = True
    if obs.get("valueBoolean") is False:
        negated = True
    for interp in obs.get("interpretation") or ():
        if any(str(c.get("code")) in _NEGATIVE_INTERPRETATIONS for c in _codings(interp)):
            negated = True
    return negated


def _observation_mentions(obs: Mapping[str, Any], concepts: list[str], knowledge: FindingsKnowledge) -> list[Mention]:
    qual, laterality = _observation_components(obs, knowledge)
    sites = _observation_sites(obs, knowledge, laterality)
    negated = _observation_negated(obs) or qual.get("change") == "resolved"
    certainty = qual.get("certainty", "definite")
    if certainty not in ("definite", "probable", "possible", "unlikely") or negated:
        certainty = "definite"
    distribution = qual.get("distribution")
    out = []
    for concept in concepts:
        unsited: list[tuple[str | None, str | None]] = [(None, None)]
        for s, lat in sites or unsited:
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
    merged: dict[tuple[object, ...], Mention] = {}
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
