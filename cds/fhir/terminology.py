"""Value sets, body sites and analytes, loaded once per rule set from ``rules/`` (the files are read by
``cds.fhir.terminology_files``; this module holds the look-ups every request makes).

An informaticist adds a code by editing YAML (``rules/valuesets/*.yaml``,
``rules/analytes.yaml``); nothing here names a clinical code. Look-ups are
dictionary hits (exact codes) plus a short scan of declared prefixes, because
they run once per coded element of every resource in a prefetch.

The matcher is hand-written rather than a terminology server client: the
service must answer without network access, and the value sets are small,
enumerated lists with ICD-10-CM style prefixes, which a dict answers faster
than any general ECL or FHIR ``$validate-code`` implementation would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

# Code systems, their aliases and the code matcher live in cds.concepts (shared with cds.findings);
# re-exported here because the FHIR modules import them from this module.
from cds.concepts import (
    CPT,
    ICD10CM,
    LOINC,
    RXNORM,
    SNOMED,
    SYSTEM_ALIASES,
    UCUM,
    CodeIndex,
    CodeMatch,
    canonical_system,
    normalise_code,
)
from cds.fhir.terminology_files import (
    CONFIDENCE_RANK,
    Analyte,
    BodySite,
    ExtractionSettings,
    TerminologyError,
    UnitConversion,
    ValueSet,
    check_settings,
    load_analytes,
    load_findings_knowledge,
    load_valueset_file,
    normalise_unit,
    reading,
)

if TYPE_CHECKING:
    from cds.findings.knowledge import FindingsKnowledge

__all__ = [
    "CPT",
    "ICD10CM",
    "LOINC",
    "RXNORM",
    "SNOMED",
    "SYSTEM_ALIASES",
    "UCUM",
    "CodeIndex",
    "Analyte",
    "BodySite",
    "CodeMatch",
    "ExtractionSettings",
    "Terminology",
    "TerminologyError",
    "UnitConversion",
    "ValueSet",
    "canonical_system",
    "normalise_code",
    "normalise_unit",
    "recognition_attrs",
]


@dataclass
class Terminology:
    """Value sets + analytes + body sites of one rule set."""

    valuesets: dict[str, ValueSet] = field(default_factory=dict)
    body_sites: dict[str, BodySite] = field(default_factory=dict)
    analytes: dict[str, Analyte] = field(default_factory=dict)
    settings: ExtractionSettings = field(default_factory=ExtractionSettings)
    codes: CodeIndex = field(default_factory=CodeIndex)  # value-set codes: the one matcher (cds.concepts)
    # (system, code) -> body-site id; laterality codes -> left | right | bilateral
    _site_codes: dict[tuple[str, str], str] = field(default_factory=dict)
    _laterality_codes: dict[tuple[str, str], str] = field(default_factory=dict)
    # LOINC code -> analyte id
    loinc_to_analyte: dict[str, str] = field(default_factory=dict)
    findings_knowledge: FindingsKnowledge | None = None  # rules/findings: sites, report-text vocabulary
    # Text layer: (term, value-set id) pairs and each pair's confidence (rules/valuesets/lexicon.yaml).
    synonyms: dict[tuple[str, str], str] = field(default_factory=dict)
    # (term, value set) -> the file and synonyms entry that declare it (for messages)
    _synonym_files: dict[tuple[str, str], tuple[Path, int]] = field(default_factory=dict)
    _lexicon: Any = None
    # Pathology report wording -> skin-biopsy result (lexicon.yaml biopsy_results): (term, result) pairs.
    biopsy_terms: set[tuple[str, str]] = field(default_factory=set)
    _biopsy_lexicon: Any = None
    _text_cache: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    # recognise() by (fact kinds, the concepts' codes and words): EHR drug and problem codings repeat
    # heavily (1,036 MedicationRequests of ~20 drugs in the Synthea ESRD record), and recognising
    # them was half of that record's fact extraction (issue 20). Bounded like the text cache.
    _recognised: dict[Any, _Recognised] = field(default_factory=dict)
    _matched: dict[tuple[Any, Any], tuple[CodeMatch, ...]] = field(default_factory=dict)  # match() memo
    rules_dir: Path | None = None

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(cls, rules_dir: Path, findings: FindingsKnowledge | None = None) -> Terminology:
        """Value sets, lexicon and analytes of ``rules_dir``; body sites from the findings knowledge.

        ``findings`` is the findings knowledge already loaded from the same folder (the knowledge
        bundle passes it, so it is read once); without it, it is loaded here. Raises a
        ``KnowledgeError`` (``TerminologyError`` or ``FindingsRulesError``) naming file:line:col.
        """
        rules_dir = Path(rules_dir)
        term = cls(rules_dir=rules_dir)
        valueset_dir = rules_dir / "valuesets"
        if valueset_dir.is_dir():
            for path in sorted(valueset_dir.glob("*.yaml")):
                with reading(path):
                    load_valueset_file(term, path)
        analytes = rules_dir / "analytes.yaml"
        if analytes.exists():
            with reading(analytes):
                load_analytes(term, analytes)
        check_settings(term, rules_dir)
        term.findings_knowledge = findings if findings is not None else load_findings_knowledge(rules_dir)
        term._use_findings_sites()
        return term

    def _use_findings_sites(self) -> None:
        """Body sites and laterality codes from rules/findings/sites.yaml: one vocabulary for lesions and findings."""
        knowledge = self.findings_knowledge
        if knowledge is None:
            return
        for site in knowledge.sites.values():
            self.body_sites[site.id] = BodySite(site.id, site.site_class)
        for (system, code), site_id in knowledge.site_codes.items():
            self._site_codes[(canonical_system(system) or system, code)] = site_id
        for (system, code), side in knowledge.laterality_codes.items():
            self._laterality_codes[(canonical_system(system) or system, code)] = side

    def _add_code(self, vs_id: str, system: str, code: str, confidence: str) -> None:
        self.codes.add(vs_id, system, code, confidence)
        self._matched.clear()  # a code added after a look-up (while loading) must not be missed

    # ----------------------------------------------------------------- look-ups

    def match(self, system: str | None, code: str | None) -> list[CodeMatch]:
        """Every value set the coding belongs to (empty when none).

        Memoised by (system, code) as sent: the same codes recur within a record and across calls,
        and a match scans the value sets' prefixes. A non-string system or code matches nothing, so
        keys that compare equal across types (1 and True) cannot mix up two different answers."""
        key = (system, code)
        try:
            found = self._matched.get(key)
        except TypeError:  # an unhashable value where a string belongs: it matches nothing anyway
            return self.codes.match(system, code)
        if found is None:
            found = tuple(self.codes.match(system, code))
            if len(self._matched) >= 8192:
                self._matched.clear()
            self._matched[key] = found
        return list(found)

    def match_codings(self, codings: Iterable[Mapping[str, Any]], fact_kinds: tuple[str, ...]) -> dict[str, CodeMatch]:
        """Value set id -> best match, over all codings, limited to value sets of ``fact_kinds``."""
        best: dict[str, CodeMatch] = {}
        for coding in codings:
            if not isinstance(coding, (dict, Mapping)):
                continue
            for match in self.match(coding.get("system"), coding.get("code")):
                if self.valuesets[match.valueset].fact_kind not in fact_kinds:
                    continue
                current = best.get(match.valueset)
                if current is None or CONFIDENCE_RANK[match.confidence] > CONFIDENCE_RANK[current.confidence]:
                    best[match.valueset] = match
        return best

    def match_text(
        self, concepts: Iterable[Any], fact_kinds: tuple[str, ...]
    ) -> tuple[dict[str, CodeMatch], list[str]]:
        """The text layer: value set id -> match from the concepts' text and codings' displays.

        Only for use when no coding matched (a code outranks text). Returns the matches and, for the
        trace, the lexicon terms that were found but not asserted ("no ...", "rule out ...").
        """
        best: dict[str, CodeMatch] = {}
        withheld: list[str] = []
        for text in _concept_texts(concepts):
            for mention in self._text_mentions(text):
                vs = self.valuesets.get(mention.label)
                if vs is None or vs.fact_kind not in fact_kinds:
                    continue
                if not mention.asserted:
                    withheld.append(f"text term {mention.phrase!r} not counted ({mention.modifier.lower()})")
                    continue
                confidence = self.synonyms.get((mention.phrase, mention.label), "R")
                current = best.get(mention.label)
                if current is None or CONFIDENCE_RANK[confidence] > CONFIDENCE_RANK[current.confidence]:
                    best[mention.label] = CodeMatch(mention.label, "", "", confidence, "text", mention.phrase)
        return best, withheld

    def recognise(
        self,
        concepts: list[Any],
        fact_kinds: tuple[str, ...],
        gaps: dict[tuple[str, str, str], str] | None = None,
        resource_type: str = "",
    ) -> tuple[dict[str, CodeMatch], list[str]]:
        """Codes first (code, hierarchy layers); the text layer only when no coding matched.

        ``gaps`` collects the codings of a concept no code recognised, as (system, code, resource
        type) -> the value set the text layer found instead ("" when none): coverage telemetry
        for informaticists (``cds terminology gaps``), codes only, never text or patient data.
        """
        # The memo's key is the concepts' JSON (one C call; equal JSON, equal answer). It is only
        # filled when _signature finds every part recognise() reads to be a plain string, and a long
        # key (a pasted note as a drug's text) is not kept, so the memo stays small. JSON with a null
        # is not used: orjson writes NaN and infinities as null too, so null would not be one value.
        try:
            encoded = orjson.dumps(concepts)
        except TypeError:  # not plain JSON data (e.g. a Mapping that is not a dict)
            encoded = b"null"
        key: Any = None if b"null" in encoded else (fact_kinds, encoded)
        known = self._recognised.get(key) if key is not None else None
        if known is None:
            known = self._recognise(concepts, fact_kinds)
            if key is not None and len(key[1]) <= _MEMO_KEY_BYTES and _signature(concepts) is not None:
                if len(self._recognised) >= 8192:
                    self._recognised.clear()
                self._recognised[key] = known
        if gaps is not None:
            for system, code in known.gap_codes:
                gaps[(system, code, resource_type)] = known.text_match
        return dict(known.matches), list(known.withheld)

    def _recognise(self, concepts: list[Any], fact_kinds: tuple[str, ...]) -> _Recognised:
        codings = [c for concept in concepts for c in _codings_of(concept)]
        matches = self.match_codings(codings, fact_kinds)
        if matches:
            return _Recognised(matches, (), (), "")
        found, withheld = self.match_text(concepts, fact_kinds) if self.synonyms else ({}, [])
        gap_codes = tuple(
            (canonical_system(system) or system, code[:64])
            for coding in codings
            for system, code in [(coding.get("system"), coding.get("code"))]
            if isinstance(system, str) and isinstance(code, str) and system and code
        )
        return _Recognised(found, tuple(withheld), gap_codes, ",".join(sorted(found)))

    def _text_mentions(self, text: str) -> tuple[Any, ...]:
        cached = self._text_cache.get(text)
        if cached is not None:
            return cached
        lexicon = self._lexicon_matcher()
        found: tuple[Any, ...] = lexicon.mentions(text) if lexicon is not None else ()
        if len(self._text_cache) >= 8192:  # bounded; texts repeat heavily (EHR drug and problem names)
            self._text_cache.clear()
        self._text_cache[text] = found
        return found

    def _lexicon_matcher(self) -> Any:
        if self._lexicon is None and self.findings_knowledge is not None and self.synonyms:
            from cds.findings.lexicon import LexiconMatcher

            self._lexicon = LexiconMatcher(self.synonyms, self.findings_knowledge)
        return self._lexicon

    def biopsy_matcher(self) -> Any:
        if self._biopsy_lexicon is None and self.findings_knowledge is not None and self.biopsy_terms:
            from cds.findings.lexicon import LexiconMatcher

            self._biopsy_lexicon = LexiconMatcher(self.biopsy_terms, self.findings_knowledge)
        return self._biopsy_lexicon

    def body_site(self, system: str | None, code: str | None) -> str | None:
        if not system or not code:
            return None
        return self._site_codes.get((canonical_system(system) or "", code))

    def laterality(self, system: str | None, code: str | None) -> str | None:
        if not system or not code:
            return None
        return self._laterality_codes.get((canonical_system(system) or "", code))

    def site_class(self, site: str | None) -> str | None:
        entry = self.body_sites.get(site or "")
        return entry.site_class if entry else None

    def analyte_for(self, system: str | None, code: str | None) -> str | None:
        if code is None or canonical_system(system) != LOINC:
            return None
        return self.loinc_to_analyte.get(code)


# --------------------------------------------------------------------- helpers


def recognition_attrs(match: CodeMatch) -> dict[str, str]:
    """The fact attributes that say how a concept was recognised (code | hierarchy | text)."""
    if match.layer == "text":
        return {"recognised_by": "text", "recognised_text": match.phrase}
    return {"recognised_by": match.layer}


@dataclass(frozen=True, slots=True)
class _Recognised:
    """What recognise() found for one set of concepts (callers get copies of the containers)."""

    matches: dict[str, CodeMatch]
    withheld: tuple[str, ...]
    gap_codes: tuple[tuple[str, str], ...]  # (system, code) no code layer recognised
    text_match: str  # the value sets the text layer found instead, comma-separated


_MEMO_KEY_BYTES = 4096


def _signature(concepts: Iterable[Any]) -> tuple[Any, ...] | None:
    """The parts of ``concepts`` recognise() reads (text; each coding's system, code, display), or
    None when one of them is not a plain string (then the result is not memoised).

    Checks ``dict`` before the ``Mapping`` ABC (parsed JSON is dicts; the ABC check costs ~0.3 µs)."""
    signature: list[Any] = []
    for concept in concepts:
        if not isinstance(concept, (dict, Mapping)):
            signature.append(None)
            continue
        text = concept.get("text")
        if text is not None and type(text) is not str:
            return None
        codings = concept.get("coding")
        parts: list[tuple[Any, ...]] = []
        for coding in codings if isinstance(codings, list) else ():
            if not isinstance(coding, (dict, Mapping)):
                continue
            system, code, display = coding.get("system"), coding.get("code"), coding.get("display")
            if (
                (system is not None and type(system) is not str)
                or (code is not None and type(code) is not str)
                or (display is not None and type(display) is not str)
            ):
                return None
            parts.append((system, code, display))
        signature.append((text, tuple(parts)))
    return tuple(signature)


def _codings_of(concept: Any) -> list[Mapping[str, Any]]:
    codings = concept.get("coding") if isinstance(concept, (dict, Mapping)) else None
    return [c for c in codings if isinstance(c, (dict, Mapping))] if isinstance(codings, list) else []


def _concept_texts(concepts: Iterable[Any]) -> list[str]:
    """CodeableConcept.text and every coding.display, each once."""
    texts: list[str] = []
    for concept in concepts:
        if not isinstance(concept, (dict, Mapping)):
            continue
        if isinstance(concept.get("text"), str):
            texts.append(concept["text"])
        texts.extend(c["display"] for c in _codings_of(concept) if isinstance(c.get("display"), str))
    return list(dict.fromkeys(t for t in texts if t.strip()))
