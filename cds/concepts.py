"""Concept recognition by code: the one matcher of the FHIR layer and the findings layer.

A coding is recognised in layers (docs/adr/0005-concept-recognition.md):

* ``code``: the (system, code) pair is listed in a value set. The system is compared in its
  canonical FHIR form, so the HL7 OID forms real EHRs send (``urn:oid:2.16.840.1.113883.6.96``
  for SNOMED CT, ``...6.1`` LOINC, ``...6.88`` RxNorm, ``...6.90`` ICD-10-CM, ``...6.12`` CPT)
  and trailing-slash variants match the same entries;
* ``hierarchy``: the code falls under a listed ICD-10-CM style prefix (``L97.*``); SNOMED CT has
  no such structure in its codes, so its descendants are listed explicitly in the value sets,
  each with its source, and match at the ``code`` layer;
* ``text`` (``cds.fhir.textlayer``): the CodeableConcept's text or a coding's display, through
  the synonym lexicon, only when no coding matched (a code always outranks text).

Both layers build a ``CodeIndex`` from their value sets, so a coding is recognised identically
wherever it appears (issue 18: the findings layer used to compare systems verbatim).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"

# HL7 OIDs of the code systems (HL7 OID registry; FHIR R4 terminologies-systems page) and
# trailing-slash spellings some EHRs send.
SYSTEM_ALIASES: dict[str, str] = {
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    "http://hl7.org/fhir/sid/icd-10-cm/": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "http://snomed.info/sct/": SNOMED,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "http://loinc.org/": LOINC,
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
    "http://www.nlm.nih.gov/research/umls/rxnorm/": RXNORM,
    "urn:oid:2.16.840.1.113883.6.12": CPT,
    "http://www.ama-assn.org/go/cpt/": CPT,
    "urn:oid:2.16.840.1.113883.6.8": UCUM,
}

LAYERS = ("code", "hierarchy", "text")


def canonical_system(system: str | None) -> str | None:
    if system is None:
        return None
    return SYSTEM_ALIASES.get(system, system)


def normalise_code(system: str | None, code: str) -> str:
    """ICD-10-CM codes compare without case and with the dot after the category; others verbatim."""
    if system == ICD10CM:
        code = code.strip().upper()
        if "." not in code and len(code) > 3:
            code = f"{code[:3]}.{code[3:]}"
    return code


@dataclass(frozen=True, slots=True)
class CodeMatch:
    """One value set a coding belongs to, and how it was recognised."""

    valueset: str
    system: str
    code: str
    confidence: str  # V | S | R
    layer: str = "code"  # code | hierarchy | text
    phrase: str = ""  # text layer: the lexicon term that matched (never the patient's own text)


@dataclass
class CodeIndex:
    """Exact codes plus ICD-10-CM style prefixes, by canonical system."""

    _exact: dict[tuple[str, str], list[CodeMatch]] = field(default_factory=dict)
    # system -> [(stem, dotted, match)], for prefix codes ("L97.*", "E11*")
    _prefixes: dict[str, list[tuple[str, bool, CodeMatch]]] = field(default_factory=dict)

    def add(self, valueset: str, system: str, code: str, confidence: str = "V") -> None:
        system = canonical_system(system) or system
        if code.endswith("*"):
            # "L97.*": the category itself or any code under it; "I70.2*": any code starting so.
            dotted = code.endswith(".*")
            stem = code[:-2] if dotted else code[:-1]
            if system == ICD10CM:
                stem = stem.upper()
            match = CodeMatch(valueset, system, code, confidence, "hierarchy")
            self._prefixes.setdefault(system, []).append((stem, dotted, match))
        else:
            code = normalise_code(system, code)
            self._exact.setdefault((system, code), []).append(CodeMatch(valueset, system, code, confidence, "code"))

    def match(self, system: object, code: object) -> list[CodeMatch]:
        """Every value set the coding belongs to (empty when none)."""
        if not system or not code or not isinstance(code, str) or not isinstance(system, str):
            return []
        system = SYSTEM_ALIASES.get(system, system)
        code = normalise_code(system, code)
        found = self._exact.get((system, code))
        prefixes = self._prefixes.get(system)
        if not prefixes:
            return found or []
        result = list(found or ())
        for stem, dotted, match in prefixes:
            if dotted:
                if code == stem or code.startswith(stem + "."):
                    result.append(match)
            elif code.startswith(stem):
                result.append(match)
        return result

    def valuesets(self, system: object, code: object) -> list[str]:
        """Ids of the value sets the coding belongs to, in first-match order, without repeats."""
        return list(dict.fromkeys(m.valueset for m in self.match(system, code)))

    def knows_system(self, system: object) -> bool:
        canonical = SYSTEM_ALIASES.get(system, system) if isinstance(system, str) else None
        return any(s == canonical for s, _ in self._exact) or canonical in self._prefixes

    @classmethod
    def of(cls, entries: Iterable[tuple[str, str, str, str]]) -> CodeIndex:
        """From (value set, system, code, confidence) entries."""
        index = cls()
        for valueset, system, code, confidence in entries:
            index.add(valueset, system, code, confidence)
        return index


def coded_key(system: object, code: object) -> tuple[str, str]:
    """A (canonical system, code) key for look-ups of single codes (body sites, laterality)."""
    csys = canonical_system(system) if isinstance(system, str) else ""
    return (csys or "", str(code))
