"""The FHIR layer's fact extractor, built once per rules directory.

``default_extractor(rules_dir)`` loads the terminology (value sets, analytes, findings
vocabularies) and returns ``extract(context, prefetch, now) -> FactSet``. The pipeline
(``cds.pipeline``) and the rule-test runner (``cds.engine.ruletests``) both take it from here,
so the service and the rule tests turn a request into facts the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cds.facts import FactSet
from cds.fhir import extract_facts, warm_up
from cds.fhir.terminology import Terminology

# (context, prefetch, now) -> FactSet
Extractor = Callable[[dict[str, Any], dict[str, Any], datetime], FactSet]


def default_extractor(rules_dir: Path, warm: bool = True, terminology: Terminology | None = None) -> Extractor:
    """``extract_facts`` bound to the terminology under ``rules_dir`` (or to ``terminology``, the
    knowledge bundle's, when given: cds.knowledge).

    ``warm`` starts the report-text pipeline now; without it the pipeline starts on the first
    report that needs it (so a case without reports never pays for it)."""
    if terminology is None:
        terminology = Terminology.load(rules_dir)
    if warm:
        warm_up(terminology)

    def extract(context: dict[str, Any], prefetch: dict[str, Any], now: datetime) -> FactSet:
        return extract_facts(context, prefetch, now, terminology)

    return extract
