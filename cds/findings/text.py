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
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cds.findings.knowledge import FindingsKnowledge, normalise_text
from cds.findings.model import CERTAINTY_RANK, Mention

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

COLD_START: dict[str, float] = {}  # seconds: "import" and "build", filled on first use


class TextExtractionUnavailable(RuntimeError):
    """medspaCy could not be imported or the pipeline could not be built."""


def get_pipeline(knowledge: FindingsKnowledge) -> Any:
    """The medspaCy pipeline of this rule set, built on first use (thread-safe)."""
    box = knowledge._nlp_box
    if box:
        return box[0]
    with knowledge._nlp_lock:
        if not box:
            box.append(_build_pipeline(knowledge))
    return box[0]


_PARSE_LOCKS: dict[int, threading.Lock] = {}
_PARSE_LOCKS_GUARD = threading.Lock()


def _parse_lock(nlp: Any) -> threading.Lock:
    # Keyed by id(): a Language is not hashable by value; a reused id after a pipeline is freed
    # only means two pipelines share a lock, which is still correct.
    with _PARSE_LOCKS_GUARD:
        return _PARSE_LOCKS.setdefault(id(nlp), threading.Lock())


@contextmanager
def _quiet_matchers() -> Iterator[None]:
    # spaCy's Matcher warns (W036) on every call when a medspaCy rule set has only phrase rules,
    # which is normal here. Scoped rather than global so that no other warning is hidden; it
    # runs under the parse lock, so no second parse changes the filters meanwhile.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\[W036\]")
        yield


def _build_pipeline(knowledge: FindingsKnowledge) -> Any:
    with _quiet_matchers():
        return _build_pipeline_inner(knowledge)


def _build_pipeline_inner(knowledge: FindingsKnowledge) -> Any:
    t0 = time.perf_counter()
    try:
        import medspacy
        import spacy
        from loguru import logger as loguru_logger
        from medspacy.context import ConTextRule
        from medspacy.custom_tokenizer import create_medspacy_tokenizer
        from medspacy.section_detection import SectionRule
        from medspacy.target_matcher import TargetRule
    except ImportError as exc:  # pragma: no cover - exercised only without medspaCy installed
        raise TextExtractionUnavailable(f"medspaCy is not importable: {exc}") from exc
    # PyRuSH logs every sentence boundary at DEBUG through loguru; that is slow and would put
    # report text into the logs.
    loguru_logger.disable("PyRuSH")
    t1 = time.perf_counter()
    COLD_START.setdefault("import_s", t1 - t0)

    _register_line_breaks()
    nlp = spacy.blank("en")
    nlp.tokenizer = create_medspacy_tokenizer(nlp)
    if knowledge.sentence_splitter == "pyrush":
        rush_rules = Path(medspacy.__file__).resolve().parents[1] / "resources" / "en" / "rush_rules.tsv"
        nlp.add_pipe("medspacy_pyrush", config={"rules_path": str(rush_rules)})
    elif knowledge.sentence_splitter == "pysbd":
        nlp.add_pipe("medspacy_pysbd")
    else:
        # Default: spaCy's rule sentencizer plus a break at every line end. PyRuSH (medspaCy's
        # default) is pure Python and took ~28 of 31 ms on a 2 kB bone-scan report here; this
        # takes ~1 ms and splits radiology reports (one statement per line or per full stop)
        # just as well on the corpus (ADR 0003).
        nlp.add_pipe("sentencizer", config={"punct_chars": [".", "!", "?"]})
        nlp.add_pipe("findings_line_breaks")

    targets = nlp.add_pipe("medspacy_target_matcher", name="findings_targets")
    rules = []
    for t in knowledge.targets:
        rules += [TargetRule(p, t.id) for p in t.phrases]
        rules += [TargetRule(f"{t.id}#{i}", t.id, pattern=pat) for i, pat in enumerate(t.patterns)]
    targets.add(rules)

    sites = nlp.add_pipe(
        "medspacy_target_matcher",
        name="findings_sites",
        config={"result_type": "group", "span_group_name": "findings_sites", "prune": True},
    )
    site_rules = []
    for s in knowledge.sites.values():
        site_rules += [TargetRule(p, f"site|{s.id}|single") for p in s.terms]
        site_rules += [TargetRule(p, f"site|{s.id}|plural") for p in s.plural]
    for lat, phrases in knowledge.laterality_phrases.items():
        site_rules += [TargetRule(p, f"lat|{lat}") for p in phrases]
    site_rules += [TargetRule(p, "nosite|-") for p in knowledge.not_site_phrases]
    sites.add(site_rules)

    quals = nlp.add_pipe(
        "medspacy_target_matcher",
        name="findings_qualifiers",
        config={"result_type": "group", "span_group_name": "findings_qualifiers", "prune": True},
    )
    quals.add([TargetRule(q.phrase, f"q|{q.group}|{q.value}|{q.attach}") for q in knowledge.qualifiers])

    context = nlp.add_pipe("medspacy_context", config={"rules": None, "span_attrs": None})
    ctx_rules = []
    for category, by_dir in knowledge.modifiers.items():
        # Set per rule: ConText's global `terminating_types` config arrives as spent iterators
        # through spaCy's config system (medspaCy 1.3.1) and then terminates nothing.
        ends = set(knowledge.terminated_by.get(category, ()))
        for direction, phrases in by_dir.items():
            ctx_rules += [ConTextRule(p, category, direction=direction, terminated_by=set(ends)) for p in phrases]
    context.add(ctx_rules)

    sectionizer = nlp.add_pipe("medspacy_sectionizer", config={"rules": None, "span_attrs": None})
    sectionizer.add(
        [SectionRule(p, category) for category, phrases in knowledge.section_phrases.items() for p in phrases]
    )
    COLD_START.setdefault("build_s", time.perf_counter() - t1)
    return nlp


def _register_line_breaks() -> None:
    from spacy.language import Language

    if "findings_line_breaks" in Language.factories:
        return

    @Language.component("findings_line_breaks")
    def line_breaks(doc: Any) -> Any:
        # A line break ends a sentence: report lines ("FINDINGS: ...", list items) often have no
        # full stop, and a negation must not run on into the next line.
        for token in doc[:-1]:
            if token.is_space and "\n" in token.text:
                doc[token.i + 1].is_sent_start = True
        return doc


# -- extraction --------------------------------------------------------------------------


@dataclass
class _Head:
    ent: Any  # spaCy Span
    spec: Any  # TargetSpec
    clause: tuple[int, int]
    quals: list[tuple[int, str, str]] = field(default_factory=list)  # (distance, group, value)
    # (site, form, laterality, denied): denied = negated for this site only
    sites: list[tuple[str, str, str | None, bool]] = field(default_factory=list)


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
    target_by_id = {t.id: t for t in knowledge.targets}

    graph = doc._.context_graph
    modifiers = list(graph.modifiers) if graph is not None else []
    terminators = sorted(m.modifier_span[0] for m in modifiers if m.category == "TERMINATE")
    sent_start = [0] * len(doc)
    for sent in doc.sents:
        for i in range(sent.start, sent.end):
            sent_start[i] = sent.start

    def clause_of(i: int) -> tuple[int, int]:
        # A clause is a sentence cut at ConText terminators (";", "but", "plus", ...).
        n_terms = sum(1 for t in terminators if sent_start[i] <= t <= i)
        return (sent_start[i], n_terms)

    def section_of(span: Any) -> str:
        sec = doc[span.start]._.section
        return (sec.category if sec is not None and sec.category else "none") or "none"

    ent_tokens = set()
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
            heads.append(_Head(ent=ent, spec=spec, clause=clause_of(ent.start)))

    def nearest_head(span: Any, prefer: str) -> _Head | None:
        clause = clause_of(span.start)
        before = [h for h in heads if h.clause == clause and h.ent.end <= span.start]
        after = [h for h in heads if h.clause == clause and h.ent.start >= span.end]
        first, second = (after, before) if prefer == "following" else (before, after)
        for group in (first, second):
            if group:
                return min(group, key=lambda h: abs(h.ent.start - span.start))
        return None

    qual_spans = [q for q in doc.spans.get("findings_qualifiers", []) if not (set(range(q.start, q.end)) & ent_tokens)]
    qual_tokens = {i for q in qual_spans for i in range(q.start, q.end)}
    site_spans = [s for s in doc.spans.get("findings_sites", []) if not (set(range(s.start, s.end)) & ent_tokens)]
    # "right greater than left" is a distribution, not two lateralities.
    lat_spans = [s for s in site_spans if s.label_.startswith("lat|") and not (set(range(s.start, s.end)) & qual_tokens)]
    body_spans = [s for s in site_spans if s.label_.startswith("site|")]
    # Laterality words attach to the nearest site in the clause (following first: "right knee").
    lat_of: dict[int, set[str]] = {}
    for lat in lat_spans:
        clause = clause_of(lat.start)
        after = [b for b in body_spans if clause_of(b.start) == clause and b.start >= lat.end]
        before = [b for b in body_spans if clause_of(b.start) == clause and b.end <= lat.start]
        target = min(after, key=lambda b: b.start - lat.end) if after else (
            min(before, key=lambda b: lat.start - b.end) if before else None)
        if target is not None:
            lat_of.setdefault(target.start, set()).add(lat.label_.split("|")[1])
    negations = [m.scope_span for m in modifiers if m.category in ("NEGATED_EXISTENCE", "NORMAL")]

    def denied(span: Any, head: _Head) -> bool:
        # "uptake in the thighs, not in the left calf": a negation that covers a site or a
        # qualifier but not its head denies that part only.
        return any(a <= span.start < b and not (a <= head.ent.start < b) for a, b in negations)

    for body in body_spans:
        _, site_id, form = body.label_.split("|")
        lats = lat_of.get(body.start, set())
        laterality = _combine_laterality(lats, form, knowledge.sites[site_id].paired)
        head = nearest_head(body, "preceding")
        if head is not None:
            head.sites.append((site_id, form, laterality, denied(body, head)))

    for q in qual_spans:
        _, group, value, attach = q.label_.split("|")
        head = nearest_head(q, attach)
        if head is None or denied(q, head):  # "calcification without a vascular pattern"
            continue
        head.quals.append((abs(head.ent.start - q.start), group, value))

    # Impressions: assertion, and the findings earlier in the same clause they explain.
    mentions: list[Mention] = []
    attributions: dict[int, str] = {}
    for ent, spec in impressions:
        section = section_of(ent)
        if section not in knowledge.extract_from:
            continue
        cats = [m.category for m in ent._.modifiers]
        if "HYPOTHETICAL" in cats:
            continue
        if spec.needs_cue and section != "impression" and not (
            set(cats) & {"PROBABLE_EXISTENCE", "POSSIBLE_EXISTENCE", "UNLIKELY", "ATTRIBUTION", "NEGATED_EXISTENCE"}
        ):
            continue
        negated, certainty, historical, change = _assertion(cats)
        mentions.append(
            Mention(concept=spec.concept, kind="impression", hypothesis=spec.hypothesis, negated=negated,
                    certainty=certainty, historical=historical, change=change, section=section,
                    start=ent.start_char, end=ent.end_char)
        )
        if not negated and certainty in ("definite", "probable"):
            # The interpretation explains the nearest finding before it in its clause
            # ("diffuse soft-tissue uptake consistent with renal failure"), not every finding
            # earlier in a long sentence.
            clause = clause_of(ent.start)
            before = [h for h in heads if h.clause == clause and h.ent.end <= ent.start
                      and not {m.category for m in h.ent._.modifiers} & {"NEGATED_EXISTENCE", "NORMAL"}]
            if before:
                nearest = max(before, key=lambda h: h.ent.start)
                attributions.setdefault(nearest.ent.start, spec.hypothesis)

    for h in heads:
        section = section_of(h.ent)
        if section not in knowledge.extract_from:
            continue
        cats = [m.category for m in h.ent._.modifiers]
        if "HYPOTHETICAL" in cats:
            continue
        negated, certainty, historical, change = _assertion(cats)
        mentions.extend(
            _head_mentions(h, knowledge, negated=negated, certainty=certainty, historical=historical,
                           change=change, section=section, attributed_to=attributions.get(h.ent.start))
        )
    return tuple(mentions)


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


def _head_mentions(h: _Head, knowledge: FindingsKnowledge, **assertion: Any) -> list[Mention]:
    spec = h.spec
    groups: dict[str, list[str]] = {}
    for _, group, value in sorted(h.quals):
        groups.setdefault(group, [])
        if value not in groups[group]:
            groups[group].append(value)
    dists = groups.get("distribution", [])
    distribution = next((d for d in knowledge.distribution_precedence if d in dists), None)
    symmetry = "asymmetric" if "asymmetric" in dists else ("symmetric" if "symmetric" in dists else None)
    intensities = groups.get("intensity", [])
    intensity = max(intensities, key=knowledge.intensity_order.index) if intensities else None
    cues = set(groups.get("cue", []))
    pattern = "net-like" if "net-like" in cues else None

    sites = list(dict.fromkeys((s, lat, deny) for s, _, lat, deny in h.sites))
    if not sites and spec.site:
        sites = [(spec.site, spec.laterality, False)]
    site_classes = {knowledge.sites[s].site_class for s, _, _ in sites}
    site_ids = {s for s, _, _ in sites}

    readings: list[tuple[str, str | None]] = []  # (concept, layer)
    if spec.concept:
        readings.append((spec.concept, None))
    else:
        layers = groups.get("layer") or [None]
        for layer in layers:
            concept = _resolve_concept(knowledge, spec.head, layer, cues, site_classes, site_ids, intensity)
            if concept is not None and concept not in {c for c, _ in readings}:
                readings.append((concept, layer))

    out = []
    for concept, layer in readings:
        for site, lat, deny in sites or [(None, None, False)]:
            if site is not None and knowledge.sites[site].site_class == "bone" and len(sites) > 1:
                continue  # "uptake in the tibia and calf": the bone part is skeletal uptake
            this = dict(assertion, negated=True, certainty="definite", attributed_to=None) if deny else assertion
            out.append(
                Mention(
                    concept=concept, site=site, laterality=lat,
                    site_class=knowledge.sites[site].site_class if site else None,
                    distribution=None if deny else distribution, symmetry=None if deny else symmetry,
                    intensity=None if deny else intensity, layer=layer,
                    pattern=pattern if concept == "vascular-calcification" else None,
                    start=h.ent.start_char, end=h.ent.end_char, **this,
                )
            )
    return out


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
