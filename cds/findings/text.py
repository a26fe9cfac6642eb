"""Report text -> finding mentions, with medspaCy.

The pipeline is medspaCy's blank English pipeline (its own tokenizer and the
PyRuSH sentence splitter; no downloaded model) with four rule-driven stages
built from ``rules/findings``:

* TargetMatcher ``findings_targets`` -> ``doc.ents``: finding heads and impressions
* TargetMatcher ``findings_sites`` / ``findings_qualifiers`` -> span groups: body sites,
  laterality words and qualifiers (distribution, intensity, layer, cues)
* ConText: negation, uncertainty, history, hypotheticals, serial change, clause ends
* Sectionizer: FINDINGS / IMPRESSION vs INDICATION / HISTORY / TECHNIQUE

ConText decides the assertion of each target; the joining of sites and
qualifiers to their head ("asymmetric ... uptake in both calves") is done here,
clause by clause, because ConText attaches modifiers to targets but has no
notion of a target's attributes. medspaCy and spaCy import slowly (about a
second), so the pipeline is built lazily, once per ``FindingsKnowledge``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cds.findings.knowledge import FindingsKnowledge, normalise_text
from cds.findings.model import CERTAINTY_RANK, Mention
from cds.findings.nlp import _parse_lock, _quiet_matchers
from cds.findings.nlp import get_pipeline as get_pipeline  # re-exported: cds.fhir imports it from here

log = logging.getLogger(__name__)

# Reports longer than this are cut: the findings of a bone scan or CT report fit easily, and
# a runaway attachment (a whole PDF-to-text dump) must not stall a request.
MAX_TEXT_CHARS = 20_000

_CERTAINTY_OF = {
    "PROBABLE_EXISTENCE": "probable",
    "POSSIBLE_EXISTENCE": "possible",
    "UNLIKELY": "unlikely",
}
_CHANGE_OF = {
    "CHANGE_DECREASED": "decreased",
    "CHANGE_INCREASED": "increased",
    "CHANGE_NEW": "new",
    "CHANGE_STABLE": "stable",
    "CHANGE_RESOLVED": "resolved",
}
# Precedence when one mention carries several change cues ("resolved" beats "decreased").
_CHANGE_PRECEDENCE = ("resolved", "new", "increased", "decreased", "stable")


# -- extraction --------------------------------------------------------------------------


@dataclass
class _Head:
    ent: Any  # spaCy Span
    spec: Any  # TargetSpec
    clause: tuple[int, int]
    # (distance, group, value, start token, end token)
    quals: list[tuple[int, str, str, int, int]] = field(default_factory=list)
    # (site, form, laterality, denied, start token): denied = negated for this site only
    sites: list[tuple[str, str, str | None, bool, int]] = field(default_factory=list)


def extract_text_mentions(text: str, knowledge: FindingsKnowledge) -> tuple[Mention, ...]:
    """All finding and impression mentions in ``text`` (not cached; see ``cds.findings.extract``)."""
    if not text or not text.strip():
        return ()
    nlp = get_pipeline(knowledge)
    # One parse at a time per pipeline: spaCy does not promise that a Language with matchers is
    # safe to call from several threads, and under the GIL the lock costs no throughput. Keyed
    # by the pipeline, not the knowledge: several loads of the same rules may share a pipeline.
    with _parse_lock(nlp), _quiet_matchers():
        doc = nlp(normalise_text(text[:MAX_TEXT_CHARS]))
    graph = doc._.context_graph
    modifiers = list(graph.modifiers) if graph is not None else []
    clauses = _Clauses(doc, modifiers)
    heads, impressions, ent_tokens = _targets(doc, knowledge, clauses)
    _attach_sites_and_qualifiers(doc, knowledge, clauses, heads, ent_tokens, modifiers)
    # Impressions: assertion, and the findings earlier in the same clause they explain.
    mentions, attributions = _impression_mentions(doc, knowledge, clauses, heads, impressions)
    mentions.extend(_finding_mentions(doc, knowledge, heads, attributions))
    return tuple(mentions)


class _Clauses:
    """A clause is a sentence cut at ConText terminators (";", "but", "plus", ...)."""

    def __init__(self, doc: Any, modifiers: list[Any]) -> None:
        self.terminators = sorted(m.modifier_span[0] for m in modifiers if m.category == "TERMINATE")
        self.sent_start = [0] * len(doc)
        for sent in doc.sents:
            for i in range(sent.start, sent.end):
                self.sent_start[i] = sent.start

    def of(self, i: int) -> tuple[int, int]:
        n_terms = sum(1 for t in self.terminators if self.sent_start[i] <= t <= i)
        return (self.sent_start[i], n_terms)


def _section_of(doc: Any, span: Any) -> str:
    sec = doc[span.start]._.section
    return (sec.category if sec is not None and sec.category else "none") or "none"


def _targets(
    doc: Any, knowledge: FindingsKnowledge, clauses: _Clauses
) -> tuple[list[_Head], list[tuple[Any, Any]], set[int]]:
    """The finding heads and the impressions the target matcher found, and the tokens they cover."""
    target_by_id = {t.id: t for t in knowledge.targets}
    ent_tokens: set[int] = set()
    heads: list[_Head] = []
    impressions: list[tuple[Any, Any]] = []
    for ent in doc.ents:
        ent_tokens.update(range(ent.start, ent.end))
        spec = target_by_id.get(ent.label_)
        if spec is None:
            continue
        if spec.kind == "impression":
            impressions.append((ent, spec))
        else:
            heads.append(_Head(ent=ent, spec=spec, clause=clauses.of(ent.start)))
    return heads, impressions, ent_tokens


def _nearest_head(heads: list[_Head], clauses: _Clauses, span: Any, prefer: str) -> _Head | None:
    clause = clauses.of(span.start)
    before = [h for h in heads if h.clause == clause and h.ent.end <= span.start]
    after = [h for h in heads if h.clause == clause and h.ent.start >= span.end]
    first, second = (after, before) if prefer == "following" else (before, after)
    for group in (first, second):
        if group:
            return min(group, key=lambda h: abs(h.ent.start - span.start))
    return None


def _attach_sites_and_qualifiers(
    doc: Any,
    knowledge: FindingsKnowledge,
    clauses: _Clauses,
    heads: list[_Head],
    ent_tokens: set[int],
    modifiers: list[Any],
) -> None:
    """Each site (with its laterality words) and qualifier goes to its nearest head in the clause."""
    qual_spans = [q for q in doc.spans.get("findings_qualifiers", []) if not (set(range(q.start, q.end)) & ent_tokens)]
    qual_tokens = {i for q in qual_spans for i in range(q.start, q.end)}
    site_spans = [s for s in doc.spans.get("findings_sites", []) if not (set(range(s.start, s.end)) & ent_tokens)]
    # "right greater than left" is a distribution, not two lateralities.
    lat_spans = [
        s for s in site_spans if s.label_.startswith("lat|") and not (set(range(s.start, s.end)) & qual_tokens)
    ]
    body_spans = [s for s in site_spans if s.label_.startswith("site|")]
    lat_of = _laterality_of_sites(clauses, lat_spans, body_spans)
    negations = [m.scope_span for m in modifiers if m.category in ("NEGATED_EXISTENCE", "NORMAL")]

    def denied(span: Any, head: _Head) -> bool:
        # "uptake in the thighs, not in the left calf": a negation that covers a site or a
        # qualifier but not its head denies that part only.
        return any(a <= span.start < b and not (a <= head.ent.start < b) for a, b in negations)

    for body in body_spans:
        _, site_id, form = body.label_.split("|")
        lats = lat_of.get(body.start, set())
        laterality = _combine_laterality(lats, form, knowledge.sites[site_id].paired)
        head = _nearest_head(heads, clauses, body, "preceding")
        if head is not None:
            head.sites.append((site_id, form, laterality, denied(body, head), body.start))

    for q in qual_spans:
        _, group, value, attach = q.label_.split("|")
        head = _nearest_head(heads, clauses, q, attach)
        if head is None or denied(q, head):  # "calcification without a vascular pattern"
            continue
        head.quals.append((abs(head.ent.start - q.start), group, value, q.start, q.end))


def _laterality_of_sites(clauses: _Clauses, lat_spans: list[Any], body_spans: list[Any]) -> dict[int, set[str]]:
    """Laterality words attach to the nearest site in the clause (following first: "right knee")."""
    lat_of: dict[int, set[str]] = {}
    for lat in lat_spans:
        clause = clauses.of(lat.start)
        after = [b for b in body_spans if clauses.of(b.start) == clause and b.start >= lat.end]
        before = [b for b in body_spans if clauses.of(b.start) == clause and b.end <= lat.start]
        target = (
            min(after, key=lambda b: b.start - lat.end)
            if after
            else (min(before, key=lambda b: lat.start - b.end) if before else None)
        )
        if target is not None:
            lat_of.setdefault(target.start, set()).add(lat.label_.split("|")[1])
    return lat_of


def _impression_mentions(
    doc: Any,
    knowledge: FindingsKnowledge,
    clauses: _Clauses,
    heads: list[_Head],
    impressions: list[tuple[Any, Any]],
) -> tuple[list[Mention], dict[int, str]]:
    """Impression mentions, and head start token -> the hypothesis an asserted impression explains it by."""
    mentions: list[Mention] = []
    attributions: dict[int, str] = {}
    for ent, spec in impressions:
        section = _section_of(doc, ent)
        if section not in knowledge.extract_from:
            continue
        cats = [m.category for m in ent._.modifiers]
        if "HYPOTHETICAL" in cats or "OTHER_STUDY" in cats:
            continue
        if (
            spec.needs_cue
            and section != "impression"
            and not (
                set(cats) & {"PROBABLE_EXISTENCE", "POSSIBLE_EXISTENCE", "UNLIKELY", "ATTRIBUTION", "NEGATED_EXISTENCE"}
            )
        ):
            continue
        negated, certainty, historical, change = _assertion(cats)
        mentions.append(
            Mention(
                concept=spec.concept,
                kind="impression",
                hypothesis=spec.hypothesis,
                negated=negated,
                certainty=certainty,
                historical=historical,
                change=change,
                section=section,
                start=ent.start_char,
                end=ent.end_char,
            )
        )
        if not negated and certainty in ("definite", "probable"):
            # The interpretation explains the nearest finding before it in its clause
            # ("diffuse soft-tissue uptake consistent with renal failure"), not every finding
            # earlier in a long sentence.
            clause = clauses.of(ent.start)
            before = [
                h
                for h in heads
                if h.clause == clause
                and h.ent.end <= ent.start
                and not {m.category for m in h.ent._.modifiers} & {"NEGATED_EXISTENCE", "NORMAL"}
            ]
            if before:
                nearest = max(before, key=lambda h: h.ent.start)
                attributions.setdefault(nearest.ent.start, spec.hypothesis)
    return mentions, attributions


def _finding_mentions(
    doc: Any, knowledge: FindingsKnowledge, heads: list[_Head], attributions: dict[int, str]
) -> list[Mention]:
    mentions: list[Mention] = []
    for h in heads:
        section = _section_of(doc, h.ent)
        if section not in knowledge.extract_from:
            continue
        cats = [m.category for m in h.ent._.modifiers]
        if "HYPOTHETICAL" in cats or "OTHER_STUDY" in cats:
            continue  # "to evaluate for calcification"; "the calcifications on CT" (another study)
        negated, certainty, historical, change = _assertion(cats)
        changes = [
            (
                m.modifier_span[0],
                m.modifier_span[1],
                _CHANGE_OF[m.category],
                doc[m.modifier_span[1] - 1].lower_ in _FORWARD_ENDINGS,
            )
            for m in h.ent._.modifiers
            if m.category in _CHANGE_OF
        ]
        mentions.extend(
            _head_mentions(
                h,
                doc,
                knowledge,
                changes,
                negated=negated,
                certainty=certainty,
                historical=historical,
                change=change,
                section=section,
                attributed_to=attributions.get(h.ent.start),
            )
        )
    return mentions


def _combine_laterality(lats: set[str], form: str, paired: bool) -> str | None:
    if "bilateral" in lats or {"right", "left"} <= lats:
        return "bilateral"
    if len(lats) == 1:
        return next(iter(lats))
    if form == "plural" and paired:
        return "bilateral"
    return None


def _assertion(categories: Iterable[str]) -> tuple[bool, str, bool, str | None]:
    cats = set(categories)
    changes = [c for c in _CHANGE_PRECEDENCE if any(_CHANGE_OF.get(k) == c for k in cats)]
    change = changes[0] if changes else None
    negated = bool(cats & {"NEGATED_EXISTENCE", "NORMAL"}) or change == "resolved"
    certainty = "definite"
    for cat, value in _CERTAINTY_OF.items():
        if cat in cats and CERTAINTY_RANK[value] < CERTAINTY_RANK[certainty]:
            certainty = value
    if negated:
        # "No uptake ... cannot be excluded" style conflicts: the negation is the assertion;
        # certainty describes a positive finding and is not kept on a negated one.
        certainty = "definite"
    historical = "HISTORICAL" in cats and change is None
    return negated, certainty, historical, change


_COORDINATORS = {"and", "or", ",", "/", "nor"}


def _head_mentions(
    h: _Head,
    doc: Any,
    knowledge: FindingsKnowledge,
    changes: list[tuple[int, int, str, bool]],
    **assertion: Any,
) -> list[Mention]:
    spec = h.spec
    groups: dict[str, list[str]] = {}
    for _, group, value, _, _ in sorted(h.quals):
        groups.setdefault(group, [])
        if value not in groups[group]:
            groups[group].append(value)
    dists = groups.get("distribution", [])
    distribution = next((d for d in knowledge.distribution_precedence if d in dists), None)
    symmetry = "asymmetric" if "asymmetric" in dists else ("symmetric" if "symmetric" in dists else None)
    intensities = groups.get("intensity", [])
    intensity = max(intensities, key=knowledge.intensity_order.index) if intensities else None
    cues = set(groups.get("cue", []))
    pattern = next((p for p in knowledge.pattern_cues if p in cues), None)
    layers = _layers(h, doc, knowledge)

    sites: list[tuple[str | None, str | None, bool, int]] = list(
        dict.fromkeys((s, lat, deny, start) for s, _, lat, deny, start in h.sites)
    )
    if not sites and spec.site:
        sites = [(spec.site, spec.laterality, False, -1)]

    site_changes = _changes_by_site(changes, [start for _, _, _, start in sites])
    out: list[Mention] = []
    seen: set[tuple[object, ...]] = set()
    for site, lat, deny, site_start in sites or [(None, None, False, -1)]:
        site_class = knowledge.sites[site].site_class if site else None
        readings: list[tuple[str, str | None]]
        if spec.concept:
            readings = [(spec.concept, None)]
        else:
            # The concept is decided per site: "no uptake in the upper extremities, lungs or
            # stomach" is soft-tissue uptake for the limbs and visceral uptake for the organs.
            readings = []
            candidates: list[str | None] = [*layers] if layers else [None]
            for layer in candidates:
                found = _resolve_concept(
                    knowledge,
                    spec.head,
                    layer,
                    cues,
                    {site_class} if site_class is not None else set(),
                    {site} if site is not None else set(),
                    intensity,
                )
                if found is not None and found not in {c for c, _ in readings}:
                    readings.append((found, layer))
        this: dict[str, Any] = dict(assertion)
        if len(sites) > 1 and changes:
            # Several sites, several change cues: each site takes the cue that speaks of it.
            site_change = site_changes.get(site_start)
            this["change"] = site_change
            this["negated"] = site_change == "resolved" or (assertion["negated"] and assertion["change"] != "resolved")
        if deny:
            this.update(negated=True, certainty="definite", attributed_to=None)
        for concept, layer in readings:
            key = (concept, site, lat)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                Mention(
                    concept=concept,
                    site=site,
                    laterality=lat,
                    site_class=site_class,
                    distribution=None if deny else distribution,
                    symmetry=None if deny else symmetry,
                    intensity=None if deny else intensity,
                    layer=layer,
                    pattern=pattern if concept == "vascular-calcification" else None,
                    start=h.ent.start_char,
                    end=h.ent.end_char,
                    **this,
                )
            )
    return out


def _layers(h: _Head, doc: Any, knowledge: FindingsKnowledge) -> list[str]:
    """The head's tissue layers, each read as its own finding unless it only says where a
    more specific layer lies: "subcutaneous vascular calcification" is vascular calcification,
    "muscular and fascial soft-tissue uptake" is muscular and fascial uptake; but "soft tissue
    or visceral uptake" (coordinated) is both."""
    spans = sorted((start, end, value) for _, group, value, start, end in h.quals if group == "layer")
    values = list(dict.fromkeys(v for _, _, v in spans))
    absorbed: set[str] = set()
    for a_start, a_end, a in spans:
        for b_start, b_end, b in spans:
            if a == b or b not in knowledge.layer_absorbs.get(a, ()):
                continue
            lo, hi = (a_end, b_start) if a_end <= b_start else (b_end, a_start)
            between = {t.lower_ for t in doc[lo:hi]} if hi > lo else set()
            if not between & _COORDINATORS:
                absorbed.add(b)
    return [v for v in values if v not in absorbed]


# A change phrase ending in a preposition names the site after it ("resolution at the right
# buttock", "decrease in the thigh uptake"); any other speaks of the site before it ("the
# uptake in both thighs has decreased").
_FORWARD_ENDINGS = {"at", "in", "of", "on", "within", "over"}


def _changes_by_site(changes: list[tuple[int, int, str, bool]], site_starts: list[int]) -> dict[int, str]:
    """Site start token -> the change its nearest cue states ("interval decrease of the uptake in
    both thighs and resolution at the right buttock": thighs decreased, buttock resolved)."""
    starts = sorted(s for s in site_starts if s >= 0)
    out: dict[int, tuple[int, str]] = {}
    for start, end, change, forward in changes:
        after = [s for s in starts if s >= end]
        before = [s for s in starts if s < start]
        first, second = (after, before) if forward else (before, after)
        if first:
            site = min(first) if first is after else max(first)
        elif second:
            site = min(second) if second is after else max(second)
        else:
            continue
        distance = abs(site - start)
        if site not in out or distance < out[site][0]:
            out[site] = (distance, change)
    return {site: change for site, (_, change) in out.items()}


def _resolve_concept(
    knowledge: FindingsKnowledge,
    head: str | None,
    layer: str | None,
    cues: set[str],
    site_classes: set[str],
    site_ids: set[str],
    intensity: str | None,
) -> str | None:
    facts = {
        "head": {head} if head else set(),
        "layer": {layer} if layer else set(),
        "cue": cues,
        "site_class": site_classes,
        "site": site_ids,
        "intensity": {intensity} if intensity else set(),
    }
    for rule in knowledge.concept_rules:
        ok = True
        for key, allowed in rule.conditions.items():
            if key == "no_site_class":
                if site_classes & allowed:
                    ok = False
                    break
            elif not (facts[key] & allowed):
                ok = False
                break
        if ok:
            return rule.concept
    return None
