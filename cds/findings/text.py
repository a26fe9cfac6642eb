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


# Pipelines by knowledge digest, shared by every load of the same findings rules: a rule
# reload (or a test) that leaves rules/findings unchanged does not pay the ~1.5 s build again.
# Bounded, so a long run of edited reloads keeps at most a few pipelines alive.
_PIPELINES: dict[str, Any] = {}
_PIPELINES_MAX = 4
_PIPELINES_LOCK = threading.Lock()


def get_pipeline(knowledge: FindingsKnowledge) -> Any:
    """The medspaCy pipeline of this rule set, built on first use (thread-safe)."""
    box = knowledge._nlp_box
    if box:
        return box[0]
    with knowledge._nlp_lock:
        if not box:
            with _PIPELINES_LOCK:
                nlp = _PIPELINES.get(knowledge.digest)
            if nlp is None:
                nlp = _build_pipeline(knowledge)
                with _PIPELINES_LOCK:
                    while len(_PIPELINES) >= _PIPELINES_MAX:
                        _PIPELINES.pop(next(iter(_PIPELINES)))
                    _PIPELINES[knowledge.digest] = nlp
            box.append(nlp)
    return box[0]


_PARSE_LOCKS: dict[int, threading.Lock] = {}
_PARSE_LOCKS_GUARD = threading.Lock()


def _parse_lock(nlp: Any) -> threading.Lock:
    # One lock per vocabulary: the pipelines of ``blank_pipeline`` share theirs and their tokenizer,
    # so they parse one at a time. Keyed by id(): a Vocab is not hashable by value; a reused id
    # after one is freed only means two pipelines share a lock, which is still correct.
    with _PARSE_LOCKS_GUARD:
        return _PARSE_LOCKS.setdefault(id(nlp.vocab), threading.Lock())


_SHARED_TOKENIZER = "cds.shared_medspacy_tokenizer.v1"
_BLANK: list[Any] = []
_BLANK_LOCK = threading.Lock()


def blank_pipeline() -> Any:
    """A blank English pipeline with medspaCy's tokenizer, sharing its vocabulary and tokenizer with
    every other pipeline made here (report text, the concept lexicon, biopsy terms; every reload).

    Building spaCy's English tokenizer and then medspaCy's (each adds some 2,700 special cases)
    cost ~0.25 s of CPU a pipeline (benchmarks/startup_profile.py); the second and later
    pipelines now take ~0.02 s. Neither tokenizer depends on the rules."""
    import spacy
    from medspacy.custom_tokenizer import create_medspacy_tokenizer

    with _BLANK_LOCK:
        if not _BLANK:
            base = spacy.blank("en")
            base.tokenizer = create_medspacy_tokenizer(base)
            shared = base.tokenizer
            spacy.util.registry.tokenizers.register(_SHARED_TOKENIZER, func=lambda: lambda _nlp: shared)
            _BLANK.append(base)
        vocab = _BLANK[0].vocab
    return spacy.blank("en", vocab=vocab, config={"nlp": {"tokenizer": {"@tokenizers": _SHARED_TOKENIZER}}})


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
        from loguru import logger as loguru_logger
        from medspacy.context import ConTextRule
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
    nlp = blank_pipeline()
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

    # prune_on_target_overlap: a modifier word inside a target is part of it ("kidneys are not
    # visualised" is one finding, not a negated one).
    context = nlp.add_pipe(
        "medspacy_context", config={"rules": None, "span_attrs": None, "prune_on_target_overlap": True}
    )
    ctx_rules = []
    for category, by_dir in knowledge.modifiers.items():
        # Set per rule: ConText's global `terminating_types` config arrives as spent iterators
        # through spaCy's config system (medspaCy 1.3.1) and then terminates nothing.
        ends = set(knowledge.terminated_by.get(category, ()))
        scope = knowledge.modifier_max_scope.get(category)
        for direction, phrases in by_dir.items():
            ctx_rules += [
                ConTextRule(p, category, direction=direction, terminated_by=set(ends), max_scope=scope) for p in phrases
            ]
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
    lat_spans = [
        s for s in site_spans if s.label_.startswith("lat|") and not (set(range(s.start, s.end)) & qual_tokens)
    ]
    body_spans = [s for s in site_spans if s.label_.startswith("site|")]
    # Laterality words attach to the nearest site in the clause (following first: "right knee").
    lat_of: dict[int, set[str]] = {}
    for lat in lat_spans:
        clause = clause_of(lat.start)
        after = [b for b in body_spans if clause_of(b.start) == clause and b.start >= lat.end]
        before = [b for b in body_spans if clause_of(b.start) == clause and b.end <= lat.start]
        target = (
            min(after, key=lambda b: b.start - lat.end)
            if after
            else (min(before, key=lambda b: lat.start - b.end) if before else None)
        )
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
            head.sites.append((site_id, form, laterality, denied(body, head), body.start))

    for q in qual_spans:
        _, group, value, attach = q.label_.split("|")
        head = nearest_head(q, attach)
        if head is None or denied(q, head):  # "calcification without a vascular pattern"
            continue
        head.quals.append((abs(head.ent.start - q.start), group, value, q.start, q.end))

    # Impressions: assertion, and the findings earlier in the same clause they explain.
    mentions: list[Mention] = []
    attributions: dict[int, str] = {}
    for ent, spec in impressions:
        section = section_of(ent)
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
            clause = clause_of(ent.start)
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

    for h in heads:
        section = section_of(h.ent)
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


_COORDINATORS = {"and", "or", ",", "/", "nor"}


def _head_mentions(
    h: _Head, doc: Any, knowledge: FindingsKnowledge, changes: list[tuple[int, str]], **assertion: Any
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

    sites = list(dict.fromkeys((s, lat, deny, start) for s, _, lat, deny, start in h.sites))
    if not sites and spec.site:
        sites = [(spec.site, spec.laterality, False, -1)]

    site_changes = _changes_by_site(changes, [start for _, _, _, start in sites])
    out: list[Mention] = []
    seen: set[tuple] = set()
    for site, lat, deny, site_start in sites or [(None, None, False, -1)]:
        site_class = knowledge.sites[site].site_class if site else None
        if spec.concept:
            readings = [(spec.concept, None)]
        else:
            # The concept is decided per site: "no uptake in the upper extremities, lungs or
            # stomach" is soft-tissue uptake for the limbs and visceral uptake for the organs.
            readings = []
            for layer in layers or [None]:
                concept = _resolve_concept(
                    knowledge, spec.head, layer, cues, {site_class} - {None}, {site} - {None}, intensity
                )
                if concept is not None and concept not in {c for c, _ in readings}:
                    readings.append((concept, layer))
        this = dict(assertion)
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
