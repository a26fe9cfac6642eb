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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def deeper_than(value: Any, limit: int) -> bool:
    """True when JSON ``value`` nests more than ``limit`` levels (iterative: no recursion to exhaust).

    One level at a time, comparing exact types (parsed JSON holds only dict and list containers):
    it visits every container once and is about 6x faster than a stack of (node, depth) pairs with
    ``isinstance(v, dict | list)``, which took a third of a seed-like request (issue 20).
    """
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
        if not isinstance(item, Mapping) or not isinstance(item.get("resourceType"), str):
            continue
        if item["resourceType"] == "Bundle":
            entries = item.get("entry")
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, Mapping):
                    stack.append(entry.get("resource"))
        else:
            count += 1
    return count
