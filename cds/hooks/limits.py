"""Size limits of one hook call: answered with a clear OperationOutcome, never with silence.

Without them, one resource nested 150 levels deep ended the fact extraction (RecursionError)
and padding past the engine's fact cap dropped labs and imaging facts; both answered 200 with
zero cards (reviews/security-reliability.md F8). The limits are settings (``CDS_MAX_JSON_DEPTH``,
``CDS_MAX_RESOURCES``, ``CDS_MAX_FACTS``; docs/deployment.md) and each one refuses the request:

* nesting deeper than ``max_json_depth`` -> 422 (no FHIR resource needs it; the parsers recurse);
* more than ``max_resources`` resources in the prefetch (sent or fetched) and draft orders -> 413;
* more than ``max_facts`` facts from them -> 422 (evaluating only some of them could hide a card).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cds.engine.prepare import MAX_FACTS

DEFAULT_MAX_JSON_DEPTH = 100
DEFAULT_MAX_RESOURCES = 50_000


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    max_resources: int = DEFAULT_MAX_RESOURCES
    max_facts: int = MAX_FACTS

    @classmethod
    def from_settings(cls, settings: Any) -> RequestLimits:
        return cls(
            max_json_depth=int(getattr(settings, "max_json_depth", DEFAULT_MAX_JSON_DEPTH)),
            max_resources=int(getattr(settings, "max_resources", DEFAULT_MAX_RESOURCES)),
            max_facts=min(int(getattr(settings, "max_facts", MAX_FACTS)), MAX_FACTS),
        )


_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'{}[]"')
# ``[`` and ``]`` read as ``{`` and ``}``: in well-nested JSON a bracket closes the last one opened, whatever
# its kind, so one kind of pair tells the depth, and one ``replace`` per level strips it.
_ONE_KIND_OF_BRACKET = bytes.maketrans(b"[]", b"{}")


def deeper_than(value: Any, limit: int, text: bytes | None = None) -> bool:
    """True when JSON ``value`` nests more than ``limit`` levels (no recursion to exhaust).

    ``text`` is the JSON text ``value`` was parsed from (the request body), when there is one: it is
    read instead of serialising ``value`` again (on the 1.6 MB Synthea ESRD request that second
    serialisation cost more than parsing, issue 20). A text with a duplicate key may nest deeper
    than the value parsed from it (the last key wins); such a text is judged by what it says.

    The common case is decided on the serialised form in C-level byte operations: drop the escapes,
    keep only brackets (all read as ``{}``) and quotes, drop the strings, then strip the innermost
    ``{}`` pairs pass by pass. A pass removes every container that holds no other (one ``replace`` does
    not look again at what it joined), so the passes count the depth exactly. Only a text that is not
    valid JSON (no pass can shorten it) or a ``value`` that does not serialise goes to the exact walk.
    """
    if text is None:
        try:
            text = orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError):  # not plain JSON, or deeper than orjson writes (255)
            return _deeper_than_walk(value, limit)
    structure = _brackets_outside_strings(text)
    passes = 0
    while structure:
        passes += 1
        if passes > limit:
            return True
        shorter = structure.replace(b"{}", b"")
        if len(shorter) == len(structure):  # cannot happen for valid JSON; let the walk decide
            return _deeper_than_walk(value, limit)
        structure = shorter
    return False


def _brackets_outside_strings(text: bytes) -> bytes:
    """The ``{}[]`` bytes of JSON ``text`` that are not inside a string, in order, ``[]`` read as ``{}``.

    Escapes live only in strings: each is dropped whole, read left to right as a JSON reader does
    (``_escape_free_structure``). Then every quote left delimits a string and they alternate open,
    close. Two adjacent quotes (once all but brackets and quotes are gone) are a string without
    brackets, or the end of one string and the start of the next with no bracket between them; dropping
    such a pair keeps the alternation, so only the rare strings that hold a bracket are left to split
    out. UTF-8 never puts these ASCII bytes inside a multi-byte character.
    """
    structure = _escape_free_structure(text).replace(b'""', b"")
    if b'"' in structure:
        structure = b"".join(structure.split(b'"')[::2])
    return structure


_KEPT = b'{}[]"\\'
_NOT_STRUCTURE_NOR_ESCAPE = bytes(b for b in range(256) if b not in _KEPT)
_ESCAPE = re.compile(rb"\\.?", re.DOTALL)  # .?: a last lone backslash (not JSON) goes too, as in the walk
_FEW_ESCAPES = 64


def _escape_free_structure(text: bytes) -> bytes:
    """The brackets (``[]`` read as ``{}``) and quotes of ``text``, without its escape sequences (a
    backslash and the byte after it: ``\\"`` and ``\\\\`` are the two that matter).

    One ``translate`` keeps brackets, quotes and backslashes; a text with no backslash (the usual case)
    is done. Otherwise the escapes are read in the text, left to right, with a one-byte ``find``
    (``memchr``), and each one's backslash is found, in the same order, in the much shorter structure:
    it is dropped, with the byte after it when that byte was kept too (an escaped quote or backslash).
    Cutting the escapes out of the text itself would copy the whole body first (0.5-0.9 ms on the 1.6
    MB Synthea request, which has five). Past ``_FEW_ESCAPES`` one regular expression removes them
    from the text instead, at C speed; two-byte searches (``b"\\\\" in text``) cost about ten times a
    ``memchr`` on that request (issue 20).
    """
    structure = text.translate(_ONE_KIND_OF_BRACKET, _NOT_STRUCTURE_NOR_ESCAPE)
    if b"\\" not in structure:
        return structure
    pieces = []
    kept = 0  # how much of the structure has been read
    at = text.find(b"\\")
    for _ in range(_FEW_ESCAPES):
        if at < 0:
            pieces.append(structure[kept:])
            return b"".join(pieces)
        mark = structure.find(b"\\", kept)  # this escape's backslash, in the structure
        pieces.append(structure[kept:mark])
        kept = mark + (2 if text[at + 1 : at + 2] in _ESCAPED_KEPT else 1)
        at = text.find(b"\\", at + 2)  # the next escape starts after this one's escaped byte
    return _ESCAPE.sub(b"", text).translate(_ONE_KIND_OF_BRACKET, _NOT_STRUCTURE)


_ESCAPED_KEPT = frozenset(bytes([b]) for b in _KEPT)


def _deeper_than_walk(value: Any, limit: int) -> bool:
    """The exact answer: one level at a time, comparing exact types (parsed JSON holds dict and list)."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below += [v for v in children if type(v) is dict or type(v) is list]
        level = below
    return False


def count_resources(value: Any) -> int:
    """FHIR resources in a prefetch value or Bundle, counting Bundle entries (and nested Bundles) one each."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        # type() first: parsed JSON holds dicts, and an abstract Mapping check costs far more (issue 20).
        if not (type(item) is dict or isinstance(item, Mapping)) or not isinstance(item.get("resourceType"), str):
            continue
        if item["resourceType"] != "Bundle":
            count += 1
            continue
        entries = item.get("entry")
        for entry in entries if isinstance(entries, list) else ():
            if type(entry) is dict:
                resource = entry.get("resource")
                # The usual entry, decided here: a parsed resource that is not a Bundle (no push and pop).
                if type(resource) is dict and type(kind := resource.get("resourceType")) is str and kind != "Bundle":
                    count += 1
                else:
                    stack.append(resource)
            elif isinstance(entry, Mapping):
                stack.append(entry.get("resource"))
    return count
