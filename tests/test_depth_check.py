"""The nesting check of a hook call (cds.hooks.limits.deeper_than) decides like an exact walk (issue 20).

The fast path reads the serialised form; strings may hold any bracket, quote or backslash, so the
cases below put them where a byte-level reading would go wrong if it ignored strings or escapes.
"""

from __future__ import annotations

import json

import pytest

from cds.hooks.limits import _deeper_than_walk, deeper_than
from tests.conftest import REPO


def _nest(depth: int, leaf: object = 1) -> object:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


TRICKY_STRINGS = ["[[[[[[[[", "]]]]]]]]}}}}", '"[{', "\\", '\\"[[[[', "\\\\]]]]", "a\nb\u2028[", "{}[]{}[]"]


@pytest.mark.parametrize("text", TRICKY_STRINGS)
@pytest.mark.parametrize("depth", [1, 6, 7, 8, 15, 16, 17, 40])
@pytest.mark.parametrize("limit", [7, 16])
def test_strings_never_change_the_depth(text: str, depth: int, limit: int) -> None:
    value = _nest(depth, {"div": text, "list": [text, {"t": text}]})
    assert deeper_than(value, limit) is _deeper_than_walk(value, limit)


@pytest.mark.parametrize("limit", [16, 100, 1000])
def test_the_limit_is_exact_at_its_edge_and_beyond_what_orjson_writes(limit: int) -> None:
    assert deeper_than(_nest(limit), limit) is False
    assert deeper_than(_nest(limit + 1), limit) is True
    assert deeper_than([_nest(3), _nest(limit + 1)], limit) is True  # a deep branch beside a shallow one


def test_a_real_request_is_within_the_default_limit_and_over_a_tiny_one() -> None:
    payload = json.loads((REPO / "fhir_examples" / "requests" / "source-case.patient-view.json").read_text())
    assert deeper_than(payload, 100) is False and _deeper_than_walk(payload, 100) is False
    for limit in range(3, 12):
        assert deeper_than(payload, limit) is _deeper_than_walk(payload, limit)
