"""Imaging findings from bone scans, CT, radiographs, mammography and ultrasound.

Public interface (see docs/adr/0003-report-text-extraction.md)::

    knowledge = FindingsKnowledge.load(rules_dir)        # once per rule set
    facts = extract_findings(reports, resources_by_ref, now, lesion_sites, knowledge,
                             medications=medication_facts)

``extract_findings`` returns a ``cds.facts.FactSet`` of ``finding`` facts (and ``derived``
facts of the serial comparison: bone-scan-response / bone-scan-progression /
bone-scan-change). It never raises on bad data. Report text is parsed with medspaCy,
imported lazily on the first report that has text (``warm_up`` does it ahead of time).
"""

from __future__ import annotations

from cds.findings.extract import at_lesion_site, extract_findings
from cds.findings.knowledge import FindingsKnowledge, FindingsRulesError
from cds.findings.model import Mention

__all__ = [
    "FindingsKnowledge",
    "FindingsRulesError",
    "Mention",
    "at_lesion_site",
    "cold_start_seconds",
    "extract_findings",
    "warm_up",
]


def warm_up(knowledge: FindingsKnowledge) -> dict[str, float]:
    """Import medspaCy and build the pipeline now (e.g. at service start-up); returns the
    cold-start cost in seconds (``import_s``, ``build_s``)."""
    from cds.findings.nlp import get_pipeline

    get_pipeline(knowledge)
    return cold_start_seconds()


def cold_start_seconds() -> dict[str, float]:
    from cds.findings.nlp import COLD_START

    return dict(COLD_START)
