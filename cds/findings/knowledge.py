"""The findings knowledge: rules/findings/*.yaml and the imaging value sets, loaded once.

Everything an informaticist edits to teach the extractor new wording lives in
``rules/findings/`` as data (targets, ConText modifiers, sections, sites and
laterality, qualifiers, concept rules, modalities, serial comparison) plus the
value sets in ``rules/valuesets/``. This module reads and checks them; a
mistake is reported as ``FindingsRulesError`` naming the file and the entry,
at load time rather than at request time.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cds.concepts import CodeIndex, coded_key
from cds.diagnostics import KnowledgeFileError
from cds.findings.cache import LRUCache
from cds.yamlio import load_yaml

LOCAL_SYSTEM = "urn:calciphylaxis-cds:codesystem:imaging-finding"

MODIFIER_CATEGORIES = (
    "NEGATED_EXISTENCE",
    "NORMAL",
    "POSSIBLE_EXISTENCE",
    "PROBABLE_EXISTENCE",
    "UNLIKELY",
    "HISTORICAL",
    "HYPOTHETICAL",
    "OTHER_STUDY",
    "ATTRIBUTION",
    "CHANGE_DECREASED",
    "CHANGE_INCREASED",
    "CHANGE_NEW",
    "CHANGE_STABLE",
    "CHANGE_RESOLVED",
    "TERMINATE",
    "PSEUDO",
)
DIRECTIONS = ("FORWARD", "BACKWARD", "BIDIRECTIONAL", "TERMINATE", "PSEUDO")
LATERALITIES = ("right", "left", "bilateral")
SITE_CLASSES = ("central", "distal", "visceral", "joint", "bone", "region")
QUALIFIER_GROUPS = ("distribution", "intensity", "layer", "cue")
DISTRIBUTIONS = ("diffuse", "symmetric", "focal", "heterogeneous", "asymmetric")
INTENSITIES = ("faint", "mild", "moderate", "intense")
CERTAINTIES = ("definite", "probable", "possible", "unlikely")
CHANGES = ("new", "increased", "decreased", "stable", "resolved")
HEADS = ("uptake", "calcification", "calcific-mass", "photopenia")
CONDITION_KEYS = ("head", "layer", "cue", "site_class", "site", "no_site_class", "intensity")
_FILES = (
    "targets.yaml",
    "context.yaml",
    "sections.yaml",
    "sites.yaml",
    "qualifiers.yaml",
    "concepts.yaml",
    "modalities.yaml",
    "serial.yaml",
    "codesystem.yaml",
)

# Letters joined by a hyphen are read as two words ("soft-tissue" = "soft tissue",
# "net-like" = "net like"). Replacing one character by one keeps every offset.
_HYPHEN = re.compile(r"(?<=[A-Za-z])-(?=[A-Za-z])")


def normalise_text(text: str) -> str:
    return _HYPHEN.sub(" ", text)


def normalise_phrase(phrase: str) -> str:
    return " ".join(normalise_text(str(phrase)).lower().split())


class FindingsRulesError(KnowledgeFileError):
    """A rules/findings or imaging value-set file is malformed: ``file:line:col: E051 message (entry)``."""

    code = "E051"


@dataclass(frozen=True, slots=True)
class TargetSpec:
    id: str
    kind: str  # finding | impression
    phrases: tuple[str, ...]
    patterns: tuple[Any, ...] = ()
    head: str | None = None
    concept: str | None = None
    hypothesis: str | None = None
    site: str | None = None
    laterality: str | None = None
    needs_cue: bool = False


@dataclass(frozen=True, slots=True)
class SiteSpec:
    id: str
    site_class: str
    parent: str | None
    paired: bool
    terms: tuple[str, ...]
    plural: tuple[str, ...]
    matches_lesions: bool = True


@dataclass(frozen=True, slots=True)
class QualifierPhrase:
    group: str
    value: str
    attach: str  # following | preceding
    phrase: str


@dataclass(frozen=True, slots=True)
class ConceptRule:
    concept: str
    conditions: Mapping[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class ModalitySpec:
    id: str
    valuesets: tuple[str, ...]
    dicom: frozenset[str]
    dicom_all: frozenset[str]
    text: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CodedConcept:
    """A value-set code: (system, code or prefix) -> value-set id."""

    valueset: str
    system: str
    code: str
    prefix: bool


@dataclass(frozen=True)
class FindingsKnowledge:
    """Findings rules and value sets of one rule set. Load once with ``FindingsKnowledge.load``."""

    rules_dir: Path
    digest: str
    targets: tuple[TargetSpec, ...]
    modifiers: Mapping[str, Mapping[str, tuple[str, ...]]]
    terminated_by: Mapping[str, tuple[str, ...]]
    modifier_max_scope: Mapping[str, int]
    section_phrases: Mapping[str, tuple[str, ...]]
    sentence_splitter: str
    extract_from: frozenset[str]
    sites: Mapping[str, SiteSpec]
    laterality_phrases: Mapping[str, tuple[str, ...]]
    not_site_phrases: tuple[str, ...]
    laterality_codes: Mapping[tuple[str, str], str]
    laterality_component_codes: frozenset[tuple[str, str]]
    site_codes: Mapping[tuple[str, str], str]
    qualifiers: tuple[QualifierPhrase, ...]
    distribution_precedence: tuple[str, ...]
    pattern_cues: tuple[str, ...]
    layer_absorbs: Mapping[str, frozenset[str]]
    concept_rules: tuple[ConceptRule, ...]
    modalities: tuple[ModalitySpec, ...]
    bone_scan_modalities: frozenset[str]
    study_codes: tuple[CodedConcept, ...]
    finding_codes: tuple[CodedConcept, ...]
    finding_valuesets: frozenset[str]
    hypothesis_of: Mapping[str, str]  # impression concept -> hypothesis id
    compare_concepts: frozenset[str]
    intensity_order: tuple[str, ...]
    response_treatments: frozenset[str]
    cache_size: int = 512
    # Per-process state, not part of the knowledge's identity.
    text_cache: LRUCache = field(default=None, compare=False, repr=False)  # type: ignore[assignment]
    validation_cache: LRUCache = field(default=None, compare=False, repr=False)  # type: ignore[assignment]
    _nlp_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    _nlp_box: list = field(default_factory=list, compare=False, repr=False)
    _matchers: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.text_cache is None:
            object.__setattr__(self, "text_cache", LRUCache(self.cache_size))
        if self.validation_cache is None:
            object.__setattr__(self, "validation_cache", LRUCache(self.cache_size))

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, rules_dir: Path, cache_size: int = 512) -> FindingsKnowledge:
        rules_dir = Path(rules_dir)
        fdir = rules_dir / "findings"
        docs: dict[str, Any] = {}
        digest = hashlib.sha256()
        for name in _FILES:
            path = fdir / name
            if not path.is_file():
                raise FindingsRulesError(path, "missing findings rules file")
            raw = path.read_bytes()
            digest.update(name.encode() + b"\0" + raw)
            try:
                docs[name] = load_yaml(raw) or {}
            except yaml.YAMLError as exc:
                raise FindingsRulesError(path, f"invalid YAML: {exc}") from exc
            if not isinstance(docs[name], dict):
                raise FindingsRulesError(path, "top level must be a mapping")
        valuesets = _load_valuesets(rules_dir / "valuesets", digest)

        sites, site_codes = _parse_sites(fdir / "sites.yaml", docs["sites.yaml"])
        lat_phrases, lat_codes, lat_components = _parse_laterality(fdir / "sites.yaml", docs["sites.yaml"])
        targets = _parse_targets(fdir / "targets.yaml", docs["targets.yaml"], sites)
        modifiers = _parse_modifiers(fdir / "context.yaml", docs["context.yaml"])
        terminated_by = _parse_terminated_by(fdir / "context.yaml", docs["context.yaml"])
        max_scope = _parse_max_scope(fdir / "context.yaml", docs["context.yaml"])
        section_phrases, extract_from = _parse_sections(fdir / "sections.yaml", docs["sections.yaml"])
        qualifiers, precedence = _parse_qualifiers(fdir / "qualifiers.yaml", docs["qualifiers.yaml"])
        pattern_cues, absorbs = _parse_layer_options(fdir / "qualifiers.yaml", docs["qualifiers.yaml"], qualifiers)
        concept_rules = _parse_concept_rules(fdir / "concepts.yaml", docs["concepts.yaml"], sites)
        modalities, bone_mods = _parse_modalities(fdir / "modalities.yaml", docs["modalities.yaml"], valuesets)
        serial = docs["serial.yaml"]

        finding_vs = {vid for vid, vs in valuesets.items() if vs.get("fact_kind") == "finding"}
        study_vs = {v for m in modalities for v in m.valuesets}
        _check_valueset_codes(valuesets, finding_vs | study_vs)
        study_codes = tuple(_code_index(valuesets, study_vs))
        finding_codes = tuple(_code_index(valuesets, finding_vs))
        _check_local_codes(fdir / "codesystem.yaml", docs["codesystem.yaml"], finding_codes)

        hypothesis_of: dict[str, str] = {}
        for t in targets:
            if t.concept and t.concept not in finding_vs:
                raise FindingsRulesError(
                    fdir / "targets.yaml",
                    f"target {t.id}: concept {t.concept!r} has no finding value set in rules/valuesets",
                )
            if t.kind == "impression" and t.concept and t.hypothesis:
                hypothesis_of[t.concept] = t.hypothesis
        for rule in concept_rules:
            if rule.concept not in finding_vs:
                raise FindingsRulesError(
                    fdir / "concepts.yaml", f"concept {rule.concept!r} has no finding value set in rules/valuesets"
                )
        compare = frozenset(str(c) for c in serial.get("compare_concepts") or ())
        for c in compare:
            if c not in finding_vs:
                raise FindingsRulesError(fdir / "serial.yaml", f"compare_concepts: unknown concept {c!r}")
        order = tuple(str(x) for x in serial.get("intensity_order") or INTENSITIES)
        if set(order) != set(INTENSITIES):
            raise FindingsRulesError(fdir / "serial.yaml", f"intensity_order must list {', '.join(INTENSITIES)}")
        return cls(
            rules_dir=rules_dir,
            digest=digest.hexdigest()[:16],
            targets=targets,
            modifiers=modifiers,
            terminated_by=terminated_by,
            modifier_max_scope=max_scope,
            section_phrases=section_phrases,
            sentence_splitter=_parse_splitter(fdir / "sections.yaml", docs["sections.yaml"]),
            extract_from=extract_from,
            sites=sites,
            laterality_phrases=lat_phrases,
            not_site_phrases=_phrases(fdir / "sites.yaml", "not_sites", docs["sites.yaml"].get("not_sites")),
            laterality_codes=lat_codes,
            laterality_component_codes=lat_components,
            site_codes=site_codes,
            qualifiers=qualifiers,
            distribution_precedence=precedence,
            pattern_cues=pattern_cues,
            layer_absorbs=absorbs,
            concept_rules=concept_rules,
            modalities=modalities,
            bone_scan_modalities=bone_mods,
            study_codes=study_codes,
            finding_codes=finding_codes,
            finding_valuesets=frozenset(finding_vs),
            hypothesis_of=hypothesis_of,
            compare_concepts=compare,
            intensity_order=order,
            response_treatments=frozenset(str(x) for x in serial.get("response_treatments") or ()),
            cache_size=cache_size,
        )

    # -- look-ups -----------------------------------------------------------------------

    def valuesets_for(self, system: str | None, code: str | None, index: tuple[CodedConcept, ...]) -> list[str]:
        """Value sets of ``index`` (study_codes or finding_codes) the coding belongs to.

        Matched by the one code matcher of the service (``cds.concepts.CodeIndex``): the same
        system aliases (OID forms) and ICD-10-CM prefix rules as the FHIR layer.
        """
        matcher = self._matchers.get(id(index))
        if matcher is None:
            matcher = CodeIndex.of((c.valueset, c.system, f"{c.code}*" if c.prefix else c.code, "V") for c in index)
            self._matchers[id(index)] = matcher
        return matcher.valuesets(system, code)

    def site_of(self, system: object, code: object) -> str | None:
        return self.site_codes.get(coded_key(system, code))

    def laterality_of(self, system: object, code: object) -> str | None:
        return self.laterality_codes.get(coded_key(system, code))

    def site_ancestors(self, site: str) -> list[str]:
        """``site`` and its ancestors, nearest first (cycle-safe)."""
        chain: list[str] = []
        current: str | None = site
        while current and current not in chain:
            chain.append(current)
            spec = self.sites.get(current)
            current = spec.parent if spec else None
        return chain


# -- parsing helpers ---------------------------------------------------------------------


def _phrases(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise FindingsRulesError(path, f"{where}: expected a list of phrases")
    if any(isinstance(v, bool) for v in value):
        # YAML 1.1 reads a bare no / yes / on / off as a boolean.
        raise FindingsRulesError(path, f'{where}: a phrase was read as a boolean; quote it ("no", "on")')
    out = tuple(dict.fromkeys(normalise_phrase(v) for v in value))
    if any(not p for p in out):
        raise FindingsRulesError(path, f"{where}: empty phrase")
    return out


def _parse_targets(path: Path, doc: Mapping[str, Any], sites: Mapping[str, SiteSpec]) -> tuple[TargetSpec, ...]:
    items = doc.get("targets")
    if not isinstance(items, list) or not items:
        raise FindingsRulesError(path, "`targets` must be a non-empty list")
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("id"):
            raise FindingsRulesError(path, f"targets[{i}]: needs an id")
        tid = str(item["id"])
        if tid in seen:
            raise FindingsRulesError(path, f"target {tid}: duplicate id")
        seen.add(tid)
        if item.get("status") == "retired":
            continue
        kind = item.get("kind")
        if kind not in ("finding", "impression"):
            raise FindingsRulesError(path, f"target {tid}: kind must be finding or impression")
        head, concept = item.get("head"), item.get("concept")
        if kind == "finding" and bool(head) == bool(concept):
            raise FindingsRulesError(path, f"target {tid}: a finding target names exactly one of head, concept")
        if head and head not in HEADS:
            raise FindingsRulesError(path, f"target {tid}: unknown head {head!r} (one of {', '.join(HEADS)})")
        if kind == "impression" and not (concept and item.get("hypothesis")):
            raise FindingsRulesError(path, f"target {tid}: an impression target needs concept and hypothesis")
        site = item.get("site")
        if site is not None and site not in sites:
            raise FindingsRulesError(path, f"target {tid}: unknown site {site!r}")
        lat = item.get("laterality")
        if lat is not None and lat not in LATERALITIES:
            raise FindingsRulesError(path, f"target {tid}: laterality must be one of {', '.join(LATERALITIES)}")
        phrases = _phrases(path, f"target {tid}: phrases", item.get("phrases"))
        patterns = item.get("patterns") or []
        if not isinstance(patterns, list) or not all(isinstance(p, list) for p in patterns):
            raise FindingsRulesError(path, f"target {tid}: patterns must be a list of spaCy token patterns")
        if not phrases and not patterns:
            raise FindingsRulesError(path, f"target {tid}: needs phrases or patterns")
        out.append(
            TargetSpec(
                id=tid,
                kind=kind,
                phrases=phrases,
                patterns=tuple(patterns),
                head=head,
                concept=concept,
                hypothesis=item.get("hypothesis"),
                site=site,
                laterality=lat,
                needs_cue=bool(item.get("needs_cue", False)),
            )
        )
    return tuple(out)


def _parse_modifiers(path: Path, doc: Mapping[str, Any]) -> dict[str, dict[str, tuple[str, ...]]]:
    mods = doc.get("modifiers")
    if not isinstance(mods, dict):
        raise FindingsRulesError(path, "`modifiers` must map categories to directions to phrases")
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for cat, by_dir in mods.items():
        if cat not in MODIFIER_CATEGORIES:
            raise FindingsRulesError(path, f"unknown modifier category {cat!r}")
        if not isinstance(by_dir, dict):
            raise FindingsRulesError(path, f"{cat}: expected direction -> phrases")
        out[cat] = {}
        for direction, phrases in by_dir.items():
            if direction not in DIRECTIONS:
                raise FindingsRulesError(path, f"{cat}: unknown direction {direction!r}")
            out[cat][direction] = _phrases(path, f"{cat}.{direction}", phrases)
    return out


def _parse_max_scope(path: Path, doc: Mapping[str, Any]) -> dict[str, int]:
    raw = doc.get("max_scope") or {}
    if not isinstance(raw, dict):
        raise FindingsRulesError(path, "`max_scope` must map a category to a number of tokens")
    for cat, n in raw.items():
        if cat not in MODIFIER_CATEGORIES or not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise FindingsRulesError(path, f"max_scope.{cat}: needs a known category and a positive whole number")
    return {str(k): int(v) for k, v in raw.items()}


def _parse_terminated_by(path: Path, doc: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    raw = doc.get("terminated_by") or {}
    if not isinstance(raw, dict):
        raise FindingsRulesError(path, "`terminated_by` must map a category to the categories that end its scope")
    out = {}
    for cat, others in raw.items():
        cats = [cat, *(others or [])] if isinstance(others, list) else None
        if cats is None or any(c not in MODIFIER_CATEGORIES for c in cats):
            raise FindingsRulesError(path, f"terminated_by.{cat}: unknown modifier category")
        out[str(cat)] = tuple(str(o) for o in others)
    return out


SENTENCE_SPLITTERS = ("sentencizer", "pyrush", "pysbd")


def _parse_splitter(path: Path, doc: Mapping[str, Any]) -> str:
    value = str(doc.get("sentence_splitter", "sentencizer"))
    if value not in SENTENCE_SPLITTERS:
        raise FindingsRulesError(path, f"sentence_splitter must be one of {', '.join(SENTENCE_SPLITTERS)}")
    return value


def _parse_sections(path: Path, doc: Mapping[str, Any]) -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    secs = doc.get("sections")
    if not isinstance(secs, dict) or not secs:
        raise FindingsRulesError(path, "`sections` must map categories to header phrases")
    out = {str(k): _phrases(path, f"sections.{k}", v) for k, v in secs.items()}
    extract = frozenset(str(x) for x in doc.get("extract_from") or ())
    unknown = extract - set(out) - {"none"}
    if unknown:
        raise FindingsRulesError(path, f"extract_from: unknown sections {sorted(unknown)}")
    return out, extract


def _parse_sites(path: Path, doc: Mapping[str, Any]) -> tuple[dict[str, SiteSpec], dict[tuple[str, str], str]]:
    items = doc.get("sites")
    if not isinstance(items, list) or not items:
        raise FindingsRulesError(path, "`sites` must be a non-empty list")
    sites: dict[str, SiteSpec] = {}
    codes: dict[tuple[str, str], str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("id"):
            raise FindingsRulesError(path, f"sites[{i}]: needs an id")
        sid = str(item["id"])
        if sid in sites:
            raise FindingsRulesError(path, f"site {sid}: duplicate id")
        cls_ = item.get("site_class")
        if cls_ not in SITE_CLASSES:
            raise FindingsRulesError(path, f"site {sid}: site_class must be one of {', '.join(SITE_CLASSES)}")
        sites[sid] = SiteSpec(
            id=sid,
            site_class=cls_,
            parent=item.get("parent"),
            paired=bool(item.get("paired", False)),
            terms=_phrases(path, f"site {sid}: terms", item.get("terms")),
            plural=_phrases(path, f"site {sid}: plural", item.get("plural")),
            matches_lesions=bool(item.get("matches_lesions", True)),
        )
        for c in item.get("codes") or ():
            _check_code(path, f"site {sid}", c)
            codes[(c["system"], str(c["code"]))] = sid
    for s in sites.values():
        if s.parent and s.parent not in sites:
            raise FindingsRulesError(path, f"site {s.id}: unknown parent {s.parent!r}")
    return sites, codes


def _parse_laterality(
    path: Path, doc: Mapping[str, Any]
) -> tuple[dict[str, tuple[str, ...]], dict[tuple[str, str], str], frozenset[tuple[str, str]]]:
    lat = doc.get("laterality")
    if not isinstance(lat, dict):
        raise FindingsRulesError(path, "`laterality` must be a mapping")
    phrases = {v: _phrases(path, f"laterality.{v}", lat.get(v)) for v in LATERALITIES}
    codes: dict[tuple[str, str], str] = {}
    for c in lat.get("codes") or ():
        _check_code(path, "laterality.codes", c)
        if c.get("laterality") not in LATERALITIES:
            raise FindingsRulesError(path, f"laterality.codes {c.get('code')}: laterality must be right|left|bilateral")
        codes[(c["system"], str(c["code"]))] = c["laterality"]
    comps = set()
    for c in lat.get("component_codes") or ():
        _check_code(path, "laterality.component_codes", c)
        comps.add((c["system"], str(c["code"])))
    return phrases, codes, frozenset(comps)


def _parse_qualifiers(path: Path, doc: Mapping[str, Any]) -> tuple[tuple[QualifierPhrase, ...], tuple[str, ...]]:
    groups = doc.get("groups")
    if not isinstance(groups, dict):
        raise FindingsRulesError(path, "`groups` must be a mapping")
    out: list[QualifierPhrase] = []
    for group, spec in groups.items():
        if group not in QUALIFIER_GROUPS:
            raise FindingsRulesError(path, f"unknown qualifier group {group!r}")
        attach = (spec or {}).get("attach", "following")
        values = (spec or {}).get("values")
        if attach not in ("following", "preceding") or not isinstance(values, dict):
            raise FindingsRulesError(path, f"{group}: needs attach (following|preceding) and values")
        for value, phrases in values.items():
            if group == "distribution" and value not in DISTRIBUTIONS:
                raise FindingsRulesError(path, f"distribution: unknown value {value!r}")
            if group == "intensity" and value not in INTENSITIES:
                raise FindingsRulesError(path, f"intensity: unknown value {value!r}")
            by_attach = phrases if isinstance(phrases, dict) else {attach: phrases}
            for att, plist in by_attach.items():
                if att not in ("following", "preceding"):
                    raise FindingsRulesError(path, f"{group}.{value}: unknown attach {att!r}")
                for p in _phrases(path, f"{group}.{value}.{att}", plist):
                    out.append(QualifierPhrase(group=group, value=str(value), attach=att, phrase=p))
    precedence = tuple(str(x) for x in doc.get("distribution_precedence") or DISTRIBUTIONS)
    if set(precedence) != set(DISTRIBUTIONS):
        raise FindingsRulesError(path, f"distribution_precedence must list {', '.join(DISTRIBUTIONS)}")
    return tuple(out), precedence


def _parse_layer_options(
    path: Path, doc: Mapping[str, Any], qualifiers: tuple[QualifierPhrase, ...]
) -> tuple[tuple[str, ...], dict[str, frozenset[str]]]:
    values = {(q.group, q.value) for q in qualifiers}
    patterns = tuple(str(p) for p in doc.get("pattern_cues") or ())
    for p in patterns:
        if ("cue", p) not in values:
            raise FindingsRulesError(path, f"pattern_cues: {p!r} is not a cue value")
    absorbs: dict[str, frozenset[str]] = {}
    for layer, others in (doc.get("layer_absorbs") or {}).items():
        named = [layer, *(others or [])]
        bad = [x for x in named if ("layer", x) not in values]
        if bad:
            raise FindingsRulesError(path, f"layer_absorbs.{layer}: unknown layer values {bad}")
        absorbs[str(layer)] = frozenset(str(o) for o in others)
    return patterns, absorbs


def _parse_concept_rules(path: Path, doc: Mapping[str, Any], sites: Mapping[str, SiteSpec]) -> tuple[ConceptRule, ...]:
    items = doc.get("rules")
    if not isinstance(items, list) or not items:
        raise FindingsRulesError(path, "`rules` must be a non-empty list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("concept"):
            raise FindingsRulesError(path, f"rules[{i}]: needs a concept")
        conds: dict[str, frozenset[str]] = {}
        for key, val in item.items():
            if key == "concept":
                continue
            if key not in CONDITION_KEYS:
                raise FindingsRulesError(path, f"rules[{i}] ({item['concept']}): unknown condition {key!r}")
            if not isinstance(val, list) or not val:
                raise FindingsRulesError(path, f"rules[{i}] ({item['concept']}): {key} must be a non-empty list")
            conds[key] = frozenset(str(v) for v in val)
        for key in ("site_class", "no_site_class"):
            bad = conds.get(key, frozenset()) - set(SITE_CLASSES)
            if bad:
                raise FindingsRulesError(path, f"rules[{i}] ({item['concept']}): unknown {key} {sorted(bad)}")
        bad_sites = conds.get("site", frozenset()) - set(sites)
        if bad_sites:
            raise FindingsRulesError(path, f"rules[{i}] ({item['concept']}): unknown site {sorted(bad_sites)}")
        out.append(ConceptRule(concept=str(item["concept"]), conditions=conds))
    return tuple(out)


def _parse_modalities(
    path: Path, doc: Mapping[str, Any], valuesets: Mapping[str, Any]
) -> tuple[tuple[ModalitySpec, ...], frozenset[str]]:
    items = doc.get("modalities")
    if not isinstance(items, list) or not items:
        raise FindingsRulesError(path, "`modalities` must be a non-empty list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("id"):
            raise FindingsRulesError(path, f"modalities[{i}]: needs an id")
        vsets = tuple(str(v) for v in item.get("valuesets") or ())
        for v in vsets:
            if v not in valuesets:
                raise FindingsRulesError(path, f"modality {item['id']}: unknown value set {v!r}")
        out.append(
            ModalitySpec(
                id=str(item["id"]),
                valuesets=vsets,
                dicom=frozenset(str(x) for x in item.get("dicom") or ()),
                dicom_all=frozenset(str(x) for x in item.get("dicom_all") or ()),
                text=_phrases(path, f"modality {item['id']}: text", item.get("text")),
            )
        )
    bone = frozenset(str(x) for x in doc.get("bone_scan_modalities") or ())
    return tuple(out), bone


def _check_code(path: Path, where: str, c: Any) -> None:
    if not isinstance(c, dict) or not c.get("system") or not c.get("code"):
        raise FindingsRulesError(path, f"{where}: a code needs system and code")
    if c.get("confidence") not in ("V", "S", "R"):
        raise FindingsRulesError(path, f"{where}: code {c.get('code')}: confidence must be V, S or R")


def _load_valuesets(vdir: Path, digest: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not vdir.is_dir():
        raise FindingsRulesError(vdir, "value-set directory missing")
    for path in sorted(vdir.glob("*.yaml")):
        raw = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + raw)
        try:
            doc = load_yaml(raw) or {}
        except yaml.YAMLError as exc:
            raise FindingsRulesError(path, f"invalid YAML: {exc}") from exc
        for i, vs in enumerate(doc.get("valuesets") or ()):
            if not isinstance(vs, dict) or not vs.get("id"):
                raise FindingsRulesError(path, f"valuesets[{i}]: needs an id")
            if vs["id"] in out:
                raise FindingsRulesError(path, f"value set {vs['id']}: duplicate id across value-set files")
            # Codes are checked only for the value sets this layer reads (see load): a mistake in
            # another layer's value set is that layer's loader's to report.
            out[vs["id"]] = {**vs, "_file": path}
    return out


def _check_valueset_codes(valuesets: Mapping[str, Mapping[str, Any]], ids: set[str]) -> None:
    for vid in sorted(ids):
        vs = valuesets[vid]
        for c in vs.get("codes") or ():
            _check_code(vs["_file"], f"value set {vid}", c)


def _code_index(valuesets: Mapping[str, Mapping[str, Any]], ids: set[str]) -> list[CodedConcept]:
    out = []
    for vid in sorted(ids):
        for c in valuesets[vid].get("codes") or ():
            code = str(c["code"])
            prefix = code.endswith("*")
            out.append(
                CodedConcept(
                    valueset=vid,
                    system=c["system"],
                    code=code.rstrip("*").rstrip(".") if prefix else code,
                    prefix=prefix,
                )
            )
    return out


def _check_local_codes(path: Path, doc: Mapping[str, Any], finding_codes: tuple[CodedConcept, ...]) -> None:
    if doc.get("url") != LOCAL_SYSTEM:
        raise FindingsRulesError(path, f"url must be {LOCAL_SYSTEM}")
    declared = {str(c.get("code")) for c in doc.get("concepts") or () if isinstance(c, dict)}
    for c in finding_codes:
        if c.system == LOCAL_SYSTEM and c.code not in declared:
            raise FindingsRulesError(path, f"local code {c.code!r} (value set {c.valueset}) is not declared")
