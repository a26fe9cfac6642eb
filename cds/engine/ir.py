"""The compiled form of a rule set, shared by both backends.

The loader turns the YAML models into these frozen records after every check
has passed; the reference interpreter and the durable-rules compiler read only
these, so both execute the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cds.facts import Scalar

# eq/ne/lt/le/gt/ge compare with a literal; any_of is an OR of equalities;
# member tests a precomputed value-set membership attribute; join is an
# equality with an attribute of an earlier pattern.
Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "any_of", "member", "join"]

ABSENCE_KIND = "$absent"  # facts the Python layer asserts for satisfied absences
SENTINEL_KIND = "$sentinel"


@dataclass(frozen=True, slots=True)
class Test:
    attr: str
    op: Op
    value: Scalar | None = None
    values: tuple[Scalar, ...] = ()
    join_pattern: int = -1  # index of the earlier pattern (op == "join")
    join_attr: str = ""


@dataclass(frozen=True, slots=True)
class Pattern:
    kind: str
    tests: tuple[Test, ...]
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    """Precomputed attribute ``attr`` = True on facts of ``kind`` whose (system, code) is in a value set."""

    attr: str
    kind: str
    valueset: str


@dataclass(frozen=True, slots=True)
class Absence:
    """``key`` holds when no input fact of ``kind`` passes ``tests``."""

    key: str
    kind: str
    tests: tuple[Test, ...]


@dataclass(frozen=True, slots=True)
class EvidenceSpec:
    hypothesis: str
    likelihood_ratio: float
    reference: str
    confidence: str
    test: str | None = None
    note: str | None = None
    low: float | None = None  # interval of the ratio (stated or derived from counts); None: the judgement range
    high: float | None = None


@dataclass(frozen=True, slots=True)
class DeriveSpec:
    name: str
    attrs: tuple[tuple[str, Scalar], ...]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int  # position in the evaluation order (producers of derived facts first)
    id: str
    version: int
    title: str
    patterns: tuple[Pattern, ...]
    derive: DeriveSpec | None
    evidence: tuple[EvidenceSpec, ...]
    cards: tuple[str, ...]
    references: tuple[str, ...] = ()
    uses_derived: bool = False


@dataclass(frozen=True, slots=True)
class CompiledRules:
    rules: tuple[CompiledRule, ...]
    memberships: tuple[Membership, ...] = ()
    absences: tuple[Absence, ...] = ()
    # value set id -> (exact codes {(system, code)}, prefixes ((system, prefix), ...))
    valueset_codes: dict[str, tuple[frozenset[tuple[str, str]], tuple[tuple[str, str], ...]]] = field(
        default_factory=dict
    )
    # Condition concepts that are skin lesions: their earliest onset anchors exposure windows (ADR 0004, time).
    lesion_concepts: frozenset[str] = frozenset()
