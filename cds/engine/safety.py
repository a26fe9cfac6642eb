"""Authoring safety: the characters and numbers every file under ``rules/`` must pass.

Kept apart from the loader's cross-reference checks because these are about single values:
a likelihood ratio of ``.nan`` or ``1.0e+308`` reached a clinician as "possible (nan%)" and
a ">99%" card before this module existed, and a right-to-left override in a title is
rendered verbatim into a card. Each check returns plain tuples; the loader turns them into
``file:line:col`` diagnostics with stable codes (E016 likelihood ratios, E031 numbers,
E032 characters).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

# Likelihood ratios: (0, 1000]. 1000 is far beyond any published ratio for this differential
# (the strongest, a positive biopsy, is in the tens to hundreds); above it a typo like an
# extra zero would make one finding decide the differential alone.
LR_MAX = 1000.0
# A cap on a group's combined ratio: above 1 (else it is not a cap) and within the same ceiling.
CAP_MAX = LR_MAX

# Plausible ranges of rule thresholds on fact attributes whose unit is fixed (cds/facts.py).
# A threshold outside its range can never be met by a real patient or is a unit slip (years
# written as days, a percentage as a fraction). Lab values depend on the analyte: see
# ``lab_value_range``.
ATTRIBUTE_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("patient", "age_years"): (0, 130),
    ("patient", "bmi"): (5, 150),
    ("patient", "weight_change_percent_90d"): (-100, 1000),
    ("condition", "days_since_onset"): (0, 130 * 366),
    ("lab", "days_ago"): (0, 130 * 366),
    ("lab", "count"): (0, 100_000),
    ("lab", "count_above_high"): (0, 100_000),
    ("lab", "count_below_low"): (0, 100_000),
    ("lab", "censored_count"): (0, 100_000),
    ("medication", "days_since_start"): (0, 130 * 366),
    ("medication", "days_since_first_start"): (0, 130 * 366),
    ("procedure", "days_ago"): (0, 130 * 366),
    ("procedure", "years_since_first"): (0, 130),
    ("procedure", "count"): (0, 100_000),
}
# A lab threshold in the analyte's canonical unit lies in [0, LAB_HIGH_FACTOR x its upper
# reference limit]: the rules' strongest thresholds are ~15x (PTH > 1000 pg/mL, high 65).
LAB_HIGH_FACTOR = 50.0
LAB_VALUE_ATTRS = frozenset({"value", "limit", "previous_value", "max", "min"})

# Characters that must not appear anywhere in a rule file.
# C0 controls other than tab, line feed and carriage return; DEL; C1 controls (a mis-decoded
# paste, e.g. U+009F): PyYAML refuses them and they never belong in clinical text.
# Bidirectional embeddings, overrides, isolates and marks reorder what a clinician reads.
# Zero-width and invisible characters make two ids or codes look equal when they are not.
BIDI = {
    "\u061c": "ARABIC LETTER MARK",
    "\u200e": "LEFT-TO-RIGHT MARK",
    "\u200f": "RIGHT-TO-LEFT MARK",
    "\u202a": "LEFT-TO-RIGHT EMBEDDING",
    "\u202b": "RIGHT-TO-LEFT EMBEDDING",
    "\u202c": "POP DIRECTIONAL FORMATTING",
    "\u202d": "LEFT-TO-RIGHT OVERRIDE",
    "\u202e": "RIGHT-TO-LEFT OVERRIDE",
    "\u2066": "LEFT-TO-RIGHT ISOLATE",
    "\u2067": "RIGHT-TO-LEFT ISOLATE",
    "\u2068": "FIRST STRONG ISOLATE",
    "\u2069": "POP DIRECTIONAL ISOLATE",
}
INVISIBLE = {
    "\u00ad": "SOFT HYPHEN",
    "\u180e": "MONGOLIAN VOWEL SEPARATOR",
    "\u200b": "ZERO WIDTH SPACE",
    "\u200c": "ZERO WIDTH NON-JOINER",
    "\u200d": "ZERO WIDTH JOINER",
    "\u2060": "WORD JOINER",
    "\u2061": "FUNCTION APPLICATION",
    "\u2062": "INVISIBLE TIMES",
    "\u2063": "INVISIBLE SEPARATOR",
    "\u2064": "INVISIBLE PLUS",
    "\ufeff": "ZERO WIDTH NO-BREAK SPACE (byte-order mark)",
}


def character_problem(char: str) -> str | None:
    """Why ``char`` may not appear in a rule file, or None."""
    point = ord(char)
    if char in "\t\n\r":
        return None
    if point < 0x20 or point == 0x7F or 0x80 <= point <= 0x9F:
        return f"control character U+{point:04X} (a bad paste or encoding?)"
    if char in BIDI:
        return f"bidirectional control U+{point:04X} {BIDI[char]}: it reorders the text a clinician reads"
    if char in INVISIBLE:
        return f"invisible character U+{point:04X} {INVISIBLE[char]}"
    if 0xD800 <= point <= 0xDFFF or unicodedata.category(char) == "Cs":
        return f"lone surrogate U+{point:04X} (broken encoding)"
    if point in (0xFFFE, 0xFFFF):
        return f"non-character U+{point:04X}"
    return None


# Every character ``character_problem`` objects to, for one regex pass over a file (a
# character-by-character Python loop cost 0.1 s per start on the knowledge base).
_SUSPECT = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff"
    + "".join(re.escape(c) for c in (*BIDI, *INVISIBLE))
    + "]"
)


def scan_characters(text: str) -> list[tuple[int, int, str]]:
    """``(line, column, problem)`` (1-based) for every forbidden character in ``text``.

    A byte-order mark at the very start of the file is allowed (editors write it)."""
    found: list[tuple[int, int, str]] = []
    for match in _SUSPECT.finditer(text):
        index = match.start()
        char = match.group()
        if index == 0 and char == "\ufeff":
            continue
        problem = character_problem(char)
        if problem:
            line = text.count("\n", 0, index) + 1
            column = index - (text.rfind("\n", 0, index) + 1) + 1
            found.append((line, column, problem))
    return found


def non_finite(data: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], float]]:
    """Every ``nan``/``inf`` float in a YAML document (any file, any key)."""
    if isinstance(data, float):
        if not math.isfinite(data):
            yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from non_finite(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from non_finite(value, (*path, index))


def likelihood_ratio_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable likelihood ratio, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"likelihood ratio {value!r} is not a number"
    if not math.isfinite(value):
        return f"likelihood ratio {value} is not a finite number"
    if value <= 0:
        return f"likelihood ratio {value} must be greater than 0"
    if value > LR_MAX:
        return f"likelihood ratio {value:g} is above the ceiling of {LR_MAX:g} (a typo? no finding decides alone)"
    return None


def cap_problem(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > CAP_MAX:
        return f"cap {value:g} is above the ceiling of {CAP_MAX:g}"
    return None


def lab_value_range(high: float | None, low: float | None = None) -> tuple[float, float] | None:
    """The plausible range of a lab threshold for an analyte with reference limits ``low``/``high``."""
    if high is None or not math.isfinite(high) or high <= 0:
        return None
    lower = 0.0 if low is None or low >= 0 else low * LAB_HIGH_FACTOR
    return lower, high * LAB_HIGH_FACTOR


def threshold_problem(value: Any, valid: tuple[float, float] | None, what: str) -> str | None:
    """Why a threshold ``value`` on ``what`` is implausible, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return f"threshold {value} on {what} is not a finite number"
    if valid is not None and not valid[0] <= value <= valid[1]:
        return f"threshold {value:g} on {what} is outside its plausible range [{valid[0]:g}, {valid[1]:g}]"
    return None
