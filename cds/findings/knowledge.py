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
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cds.concepts import CodeIndex, coded_key
from cds.findings.cache import LRUCache
from cds.findings.parse import (
    _check_local_codes,
    _check_valueset_codes,
    _code_index,
    _load_valuesets,
    _parse_concept_rules,
    _parse_laterality,
    _parse_layer_options,
    _parse_max_scope,
    _parse_modalities,
    _parse_modifiers,
    _parse_qualifiers,
    _parse_sections,
    _parse_sites,
    _parse_splitter,
    _parse_targets,
    _parse_terminated_by,
    _phrases,
)
from cds.findings.specs import (
    _FILES,
    INTENSITIES,
    LOCAL_SYSTEM,
    CodedConcept,
    ConceptRule,
    FindingsRulesError,
    ModalitySpec,
    QualifierPhrase,
    SiteSpec,
    TargetSpec,
    normalise_phrase,
    normalise_text,
)
from cds.yamlio import load_yaml

# The specs and words live in cds.findings.specs, the file parsing in cds.findings.parse; these are
# re-exported because the findings modules and the FHIR layer import them from here.
__all__ = [
    "LOCAL_SYSTEM",
    "CodedConcept",
    "FindingsKnowledge",
    "FindingsRulesError",
    "normalise_phrase",
    "normalise_text",
]


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
    _nlp_box: list[Any] = field(default_factory=list, compare=False, repr=False)
    _matchers: dict[int, CodeIndex] = field(default_factory=dict, compare=False, repr=False)

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
