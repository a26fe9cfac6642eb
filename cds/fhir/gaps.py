"""Coverage telemetry: codes seen that matched no concept (issue 13 item 6).

Each evaluation adds the codings no value set recognised (system, code, resource type) and, where
the text layer recognised the concept instead, which value set. Kept per process, bounded, with
counts only: no patient id, no text, no dates, so nothing here is PHI. ``cds terminology gaps``
lists them (from the files it is given) so an informaticist can extend a value set with evidence;
the live service counts them in ``cds_terminology_unmatched_codes_total{system}`` and the audit
store keeps them across processes and restarts (``cds.store.gaps``, table ``terminology_gap``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cds.concepts import CPT, ICD10CM, LOINC, RXNORM, SNOMED
from cds.observability import metrics

KNOWN_SYSTEMS = {SNOMED: "snomed-ct", ICD10CM: "icd-10-cm", RXNORM: "rxnorm", LOINC: "loinc", CPT: "cpt"}
MAX_ENTRIES = 10_000  # distinct (system, code, type) kept; beyond that only the metric counts


@dataclass(frozen=True, slots=True)
class Gap:
    system: str
    code: str
    resource_type: str
    count: int
    text_match: str  # value set(s) the text layer recognised instead, "" when none


class GapCounter:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._counts: dict[tuple[str, str, str], list[object]] = {}
        # Seen since the audit store last took them (cds.store.gaps), as (count, text match).
        self._pending: dict[tuple[str, str, str], tuple[int, str]] = {}
        self._lock = threading.Lock()

    def add(self, gaps: dict[tuple[str, str, str], str]) -> None:
        if not gaps:
            return
        with self._lock:
            for key, text_match in gaps.items():
                metrics.UNMATCHED_CODES.labels(KNOWN_SYSTEMS.get(key[0], "other")).inc()
                self._add_pending(key, 1, text_match)
                entry = self._counts.get(key)
                if entry is None:
                    if len(self._counts) >= self.max_entries:
                        continue
                    self._counts[key] = [1, text_match]
                else:
                    entry[0] = int(entry[0]) + 1  # type: ignore[call-overload]
                    if text_match and not entry[1]:
                        entry[1] = text_match

    def _add_pending(self, key: tuple[str, str, str], count: int, text_match: str) -> None:
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) < self.max_entries:
                self._pending[key] = (count, text_match)
            return
        self._pending[key] = (pending[0] + count, pending[1] or text_match)

    def take_pending(self) -> list[Gap]:
        """What was seen since the last call (for the audit store), and forget it."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return [Gap(s, c, t, n, m) for (s, c, t), (n, m) in pending.items()]

    def restore(self, gaps: Sequence[Gap]) -> None:
        """Give back what ``take_pending`` returned when the store could not take it."""
        with self._lock:
            for g in gaps:
                self._add_pending((g.system, g.code, g.resource_type), g.count, g.text_match)

    def snapshot(self) -> list[Gap]:
        with self._lock:
            rows = [Gap(s, c, t, int(v[0]), str(v[1])) for (s, c, t), v in self._counts.items()]  # type: ignore[call-overload]
        return sorted(rows, key=lambda g: (not g.text_match, -g.count, g.system, g.code))

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._pending.clear()


GAPS = GapCounter()


def render(gaps: list[Gap]) -> str:
    """A table: codes the text layer recognised first (evidence for a value set), then by count."""
    if not gaps:
        return "no unmatched codes\n"
    lines = ["count  system                                        code                resource            text match"]
    for g in gaps:
        lines.append(
            f"{g.count:>5}  {g.system[:44]:<44}  {g.code[:18]:<18}  {g.resource_type[:18]:<18}  {g.text_match or '-'}"
        )
    return "\n".join(lines) + "\n"
