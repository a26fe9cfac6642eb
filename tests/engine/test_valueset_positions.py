"""Value-set ids are placed (file:line:col) by one pass per file; the same places as a search per id."""

from __future__ import annotations

import re

from cds.engine.files import _id_positions
from tests.conftest import RULES_DIR


def searched(text: str, ident: str) -> tuple[int, int] | None:
    """The former per-id search, as the reference."""
    match = re.search(rf"^([ \t]*-?[ \t]*)id:[ \t]*['\"]?{re.escape(ident)}['\"]?[ \t]*$", text, re.MULTILINE)
    if match is None:
        return None
    return text.count("\n", 0, match.start()) + 1, len(match.group(1)) + 1


def test_the_same_places_as_a_search_per_id():
    text = (
        "valuesets:\n  - id: a\n    codes: []\n  -   id: 'b'  \n  - id: \"c\"\n  - id: d # note\n"
        "  - id: a\n  - name: x\n    id: e\n"
    )
    found = _id_positions(text)
    for ident in "abcde":
        assert found.get(ident) == searched(text, ident), ident
    assert found["a"] == (2, 5) and "d" not in found  # the first one; a trailing comment is not an id line


def test_every_shipped_value_set_is_placed_as_before():
    import yaml

    placed = 0
    for path in sorted((RULES_DIR / "valuesets").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        found = _id_positions(text)
        for entry in (yaml.safe_load(text) or {}).get("valuesets", []):
            assert found.get(entry["id"]) == searched(text, entry["id"]), (path.name, entry["id"])
            placed += 1
    assert placed > 50
