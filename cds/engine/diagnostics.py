"""Messages to rule authors: ``file:line:col: CODE message (rule id)``.

Codes are stable; ``docs/rule-errors.md`` has a section per code (what it means, a wrong
and a right example), and ``Diagnostic.with_link()`` points to it. Errors refuse a
rule set, warnings fail ``cds rules lint`` but not loading, notes are
informational.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "note"]
DOCS_PAGE = "docs/rule-errors.md"

# code -> (severity, one-line explanation). The single registry of codes.
CODES: dict[str, tuple[Severity, str]] = {
    "E001": ("error", "YAML syntax error"),
    "E002": ("error", "unknown key"),
    "E003": ("error", "wrong type or invalid value"),
    "E004": ("error", "required key missing"),
    "E005": ("error", "duplicate key in a YAML mapping"),
    "E006": ("error", "file cannot be read"),
    "E010": ("error", "duplicate id"),
    "E011": ("error", "undefined value set"),
    "E012": ("error", "undefined hypothesis"),
    "E013": ("error", "undefined reference"),
    "E014": ("error", "unknown fact kind"),
    "E015": ("error", "unknown attribute for this fact kind"),
    "E016": ("error", "likelihood ratio must be finite, greater than 0 and at most 1000"),
    "E017": ("error", "evidence, prior, test, card threshold or numeric rule threshold without a reference"),
    "E018": ("error", "undefined card template"),
    "E019": ("error", "invalid join (unknown alias, later pattern, or absence)"),
    "E020": ("error", "comparison can never be true for this attribute's type"),
    "E021": ("error", "rule can never fire"),
    "E022": ("error", "unknown or unresolvable template placeholder"),
    "E023": ("error", "undefined population or missing prior"),
    "E024": ("error", "undefined service"),
    "E025": ("error", "derived facts depend on each other in a cycle"),
    "E026": ("error", "undefined analyte"),
    "E027": ("error", "suggested FHIR resource is invalid"),
    "E028": ("error", "rule test refers to something undefined"),
    "E029": ("error", "rule has nothing to do (no derive, evidence or card)"),
    "E030": ("error", "evidence group names a rule that is undefined or weighs no evidence"),
    "E031": ("error", "number not finite or outside its plausible range"),
    "E032": ("error", "control, bidirectional or invisible character"),
    "E040": ("error", "an explainer's `explains` names an undefined rule, or a non-explainer declares `explains`"),
    "E041": ("error", "evidence outside every evidence group, or a rule in two groups"),
    "E042": ("error", "the causes' priors in a population leave no share for 'other'"),
    "W101": ("warning", "value set defined but used by no rule"),
    "W102": ("warning", "likelihood ratio of 1 has no effect"),
    "W103": ("warning", "active rule without a rule test that fires it"),
    "W104": ("warning", "active rule without a rule test that keeps it silent (rule file with tests beside it)"),
    "N201": ("note", "value sets or analytes not found; references to them are not checked"),
    "N202": ("note", "value set used by no rule, with the reason it exists (`used_by:`)"),
    "N203": ("note", "case path written relative to the repository root instead of the file naming it"),
    "N204": ("note", "rule file without a tests file beside it (X.tests.yaml)"),
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    line: int
    column: int
    code: str
    message: str
    rule_id: str | None = None

    @property
    def severity(self) -> Severity:
        return CODES[self.code][0]

    @property
    def link(self) -> str:
        return f"{DOCS_PAGE}#{self.code.lower()}"

    def with_link(self) -> str:
        """The message and the page that explains its code (CLI output, reload log, /readyz)."""
        return f"{self} [{self.link}]"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        suffix = f" ({self.rule_id})" if self.rule_id else ""
        return f"{where}: {self.code} {self.message}{suffix}"


class RulesetError(ValueError):
    """The rule set has errors; ``diagnostics`` lists them (errors first)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        shown = "\n".join(str(d) for d in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"rule set has {len(errors)} error(s):\n{shown}{more}")
