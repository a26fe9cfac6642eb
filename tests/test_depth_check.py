"""The nesting check of a hook call (cds.hooks.limits.deeper_than) decides like an exact walk (issue 20).

The fast path reads the serialised form; strings may hold any bracket, quote or backslash, so the
cases below put them where a byte-level reading would go wrong if it ignored strings or escapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.hooks.limits import (
    _FEW_ESCAPES,
    _NOT_STRUCTURE,
    _ONE_KIND_OF_BRACKET,
    _deeper_than_walk,
    _escape_free_structure,
    count_resources,
    deeper_than,
)
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


# The hook route passes the request's own bytes (issue 20): any spelling of the same JSON (whitespace,
# escapes a serialiser may or may not use, non-ASCII text) must give the same answer as the exact walk.
_TRICKY_TEXT = st.text(alphabet=st.sampled_from(list('[]{}"\\/:, \n\tab\u00e9\u2028\U0001f600')), max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | _TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY_TEXT, inner, max_size=3),
    max_leaves=40,
)


@given(value=_JSON, limit=st.integers(1, 12), indent=st.sampled_from([None, 0, 2]), ascii_only=st.booleans())
@settings(max_examples=400, deadline=None)
def test_the_request_bytes_decide_like_the_walk(
    value: object, limit: int, indent: int | None, ascii_only: bool
) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode()
    assert json.loads(text) == value  # hypothesis' dictionaries have no duplicate keys
    expected = _deeper_than_walk(value, limit)
    assert deeper_than(value, limit, text) is expected
    assert deeper_than(value, limit) is expected  # serialised again, as for fetched data


@pytest.mark.parametrize("text", TRICKY_STRINGS)
def test_escaped_quotes_and_backslashes_in_the_request_bytes(text: str) -> None:
    value = _nest(9, {"div": text, "list": [text, {"t": text}]})
    for spelling in (json.dumps(value), json.dumps(value, ensure_ascii=False), json.dumps(value, indent=1)):
        for limit in (8, 9, 10, 11, 12):
            assert deeper_than(value, limit, spelling.encode()) is _deeper_than_walk(value, limit)


# The escapes are dropped one find at a time up to a count, then by one regular expression on the text
# (issue 20): both ways must drop exactly the escape sequences a JSON reader would, read left to right.
@given(
    text=st.binary(max_size=400)
    | st.text(alphabet=st.sampled_from(list('\\"[]{}ab')), max_size=300).map(str.encode)
    | st.text(alphabet=st.sampled_from(list('\\"[]{}abn')), max_size=60).map(str.encode)
)
@settings(max_examples=600, deadline=None)
def test_escapes_are_dropped_left_to_right_either_way(text: bytes) -> None:
    expected = re.sub(rb"\\.?", b"", text, flags=re.DOTALL).translate(_ONE_KIND_OF_BRACKET, _NOT_STRUCTURE)
    assert _escape_free_structure(text) == expected


@pytest.mark.parametrize("escapes", [0, 1, _FEW_ESCAPES - 1, _FEW_ESCAPES, _FEW_ESCAPES + 1, 10 * _FEW_ESCAPES])
@pytest.mark.parametrize("limit", [9, 10, 11, 19, 20, 21])
def test_many_escaped_quotes_and_brackets_inside_strings(escapes: int, limit: int) -> None:
    tricky = '\\"[{' * escapes + "\\\\" + '"]]]}}'
    value = _nest(10, {"div": tricky, "list": [tricky, {"t": "[" * escapes}], "n": _nest(10)})
    for spelling in (json.dumps(value), json.dumps(value, ensure_ascii=False), json.dumps(value, indent=1)):
        assert deeper_than(value, limit, spelling.encode()) is _deeper_than_walk(value, limit)


@given(value=_JSON, limit=st.integers(1, 12), escapes=st.integers(0, 3 * _FEW_ESCAPES))
@settings(max_examples=200, deadline=None)
def test_a_long_run_of_escapes_before_the_structure_decides_like_the_walk(
    value: object, limit: int, escapes: int
) -> None:
    padded = {"pad": '"\\[' * escapes, "value": value}
    text = json.dumps(padded).encode()
    assert deeper_than(padded, limit, text) is _deeper_than_walk(padded, limit)


def _count_reference(value: object) -> int:
    """count_resources as it was before its fast path for the usual Bundle entry (issue 20)."""
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


_KIND = st.sampled_from(["Observation", "Bundle", "Patient", 7, None])
_RESOURCE = st.recursive(
    st.fixed_dictionaries({"resourceType": _KIND}) | st.none() | st.integers() | st.just("Bundle"),
    lambda inner: (
        st.fixed_dictionaries(
            {"resourceType": st.just("Bundle")},
            optional={
                "entry": st.lists(
                    st.fixed_dictionaries({}, optional={"resource": inner})
                    | inner
                    | inner.filter(lambda v: isinstance(v, dict)).map(MappingProxyType),
                    max_size=4,
                )
                | st.integers()
            },
        )
        | st.fixed_dictionaries({"resourceType": _KIND}).map(MappingProxyType)
    ),
    max_leaves=30,
)


@given(value=_RESOURCE)
@settings(max_examples=400, deadline=None)
def test_count_resources_counts_like_before_its_fast_path(value: object) -> None:
    assert count_resources(value) == _count_reference(value)
