"""Root causes first: one mistake is reported once, at its place, with what it causes folded under it.

Before this, one bad indent or one quoted likelihood ratio dropped a whole file, and every rule
test, cap and card naming a rule of that file reported its own "undefined" error: 189 lines for
one mistake, with the real one 23rd and ``/readyz`` leading with a consequence. Now:

* a wrong type or unknown key drops only the entry (rule, card, test, ...) that has it
  (``drop_entries``); the rest of the file still loads;
* errors that only say "undefined X" are folded under the root causes when something was
  dropped (``fold``); the root cause says how many, and ``cds rules validate --all`` lists them;
* roots sort first, so ``/readyz`` and the reload log lead with them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cds.engine.diagnostics import Diagnostic
from cds.engine.yamlpos import PositionedYaml

# Codes raised while reading a file or validating its shape: the mistakes themselves.
ROOT_CODES = frozenset({"E001", "E002", "E003", "E004", "E005", "E006", "E014", "E032"})
# Codes that only say something named elsewhere is missing or unreachable: when a file or an
# entry was dropped, these are usually its consequences.
CONSEQUENCE_CODES = frozenset({"E011", "E012", "E013", "E018", "E021", "E022", "E023", "E024", "E026", "E028", "E030"})
ENTRY_SECTIONS = frozenset({"references", "populations", "hypotheses", "rules", "cards", "tests"})


def bad_entries(locations: list[tuple[Any, ...]]) -> set[tuple[str, int]] | None:
    """The ``(section, index)`` entries the validation errors are in, or None when an error is
    outside any entry (then the whole file is dropped)."""
    entries: set[tuple[str, int]] = set()
    for loc in locations:
        if len(loc) >= 2 and loc[0] in ENTRY_SECTIONS and isinstance(loc[1], int):
            entries.add((loc[0], loc[1]))
        else:
            return None
    return entries


def drop_entries(doc: PositionedYaml, bad: set[tuple[str, int]]) -> tuple[PositionedYaml, list[str]]:
    """``doc`` without the ``bad`` entries, positions re-keyed so later entries keep their lines;
    and the ids of the dropped entries (for folding their consequences)."""
    data = dict(doc.data)
    dropped_ids: list[str] = []
    # old index -> new index per section
    remap: dict[str, dict[int, int]] = {}
    for section in {s for s, _ in bad}:
        items = data.get(section)
        if not isinstance(items, list):
            continue
        kept: list[Any] = []
        mapping: dict[int, int] = {}
        for index, entry in enumerate(items):
            if (section, index) in bad:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    dropped_ids.append(entry["id"])
                continue
            mapping[index] = len(kept)
            kept.append(entry)
        data[section] = kept
        remap[section] = mapping
    positions: dict[tuple[str | int, ...], tuple[int, int]] = {}
    for path, where in doc.positions.items():
        if len(path) >= 2 and path[0] in remap and isinstance(path[1], int):
            new_index = remap[path[0]].get(path[1])
            if new_index is None:
                continue
            path = (path[0], new_index, *path[2:])
        positions[path] = where
    return PositionedYaml(data=data, positions=positions, duplicate_keys=doc.duplicate_keys), dropped_ids


def fold(
    diagnostics: list[Diagnostic], file_dropped: bool, dropped_ids: list[str]
) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """Split ``diagnostics`` into what to show and the consequences folded under the roots.

    Nothing is folded when nothing was dropped. When a whole file was dropped every
    "undefined" error is a likely consequence; when only entries were, those naming a dropped id."""
    roots = [d for d in diagnostics if d.code in ROOT_CODES]
    if not roots or not (file_dropped or dropped_ids):
        return diagnostics, []
    quoted = tuple(f"'{ident}'" for ident in dropped_ids)

    def is_consequence(d: Diagnostic) -> bool:
        if d.code not in CONSEQUENCE_CODES:
            return False
        if file_dropped:
            return True
        return any(q in d.message for q in quoted) or (d.rule_id in dropped_ids)

    folded = [d for d in diagnostics if is_consequence(d)]
    if not folded:
        return diagnostics, []
    shown = [d for d in diagnostics if not is_consequence(d)]
    first = shown.index(roots[0])
    note = f" [and {len(folded)} consequence(s) of the mistakes here, folded: fix this first; `--all` lists them]"
    shown[first] = replace(roots[0], message=roots[0].message + note)
    return shown, folded
