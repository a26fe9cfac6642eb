"""The findings vocabulary's words and shapes: the fixed value lists (modifier categories, heads, site
classes, ...), the specs one entry of rules/findings becomes, and FindingsRulesError."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds.diagnostics import KnowledgeFileError

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
