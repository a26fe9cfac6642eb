"""Reading and checking rules/findings/*.yaml and the imaging value sets: each _parse_* turns one file's
data into specs, raising FindingsRulesError (E051) at the first mistake, with its place."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cds.findings.specs import (
    CONDITION_KEYS,
    DIRECTIONS,
    DISTRIBUTIONS,
    HEADS,
    INTENSITIES,
    LATERALITIES,
    LOCAL_SYSTEM,
    MODIFIER_CATEGORIES,
    QUALIFIER_GROUPS,
    SITE_CLASSES,
    CodedConcept,
    ConceptRule,
    FindingsRulesError,
    ModalitySpec,
    QualifierPhrase,
    SiteSpec,
    TargetSpec,
    normalise_phrase,
)
from cds.yamlio import load_yaml


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
