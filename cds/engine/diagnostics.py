"""The rule language's diagnostics: moved to ``cds.diagnostics`` (shared by every file kind
under ``rules/``, with the knowledge-base error hierarchy); re-exported here."""

from __future__ import annotations

from cds.diagnostics import CODES, DOCS_PAGE, Diagnostic, KnowledgeError, RulesetError, Severity

__all__ = ["CODES", "DOCS_PAGE", "Diagnostic", "KnowledgeError", "RulesetError", "Severity"]
