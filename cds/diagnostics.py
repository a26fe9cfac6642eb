"""Messages to authors of ``rules/`` and the knowledge-base error hierarchy.

Every message reads ``file:line:col: CODE message (id)``, for every file kind under ``rules/``
(rule language, value sets, lexicon, analytes, findings vocabularies, services, rule tests).
Codes are stable; ``docs/rule-errors.md`` has a section per code (what it means, a wrong
and a right example), and ``Diagnostic.with_link()`` points to it. Errors refuse a
rule set, warnings fail ``cds rules lint`` but not loading, notes are informational.

The error hierarchy for loading ``rules/`` (one tree; every error carries its diagnostics)::

    KnowledgeError(ValueError)          .diagnostics: list[Diagnostic]; "rules/ does not load"
     +-- RulesetError                   the rule language (cds.engine.loader): E001-E042, W, N
     +-- KnowledgeFileError             a data file read by another layer, one Diagnostic
          +-- TerminologyError          value sets, lexicon, analytes (cds.fhir.terminology): E050
          +-- FindingsRulesError        rules/findings/*.yaml (cds.findings.knowledge): E051
          +-- ServicesError             services.yaml, as the bundle reports it (cds.knowledge): E052

``cds.knowledge.load_bundle`` collects all of them into one list; the CLI, a reload and
``/readyz`` print that list. This module is a leaf (it imports only ``cds.yamlio``), so every
layer that reads ``rules/`` may raise these errors without importing another stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from cds.yamlio import YamlSyntaxError, load_positioned, locate

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
    "E050": ("error", "value-set, lexicon or analyte file is invalid"),
    "E051": ("error", "findings vocabulary (rules/findings) is invalid"),
    "E052": ("error", "service definition (services.yaml) is invalid"),
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


class KnowledgeError(ValueError):
    """``rules/`` does not load; ``diagnostics`` lists why (errors first), each ``file:line:col: CODE``."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        shown = "\n".join(str(d) for d in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"rule set has {len(errors)} error(s):\n{shown}{more}")


class RulesetError(KnowledgeError):
    """The rule language has errors; ``diagnostics`` lists them (errors first)."""


class KnowledgeFileError(KnowledgeError):
    """One mistake in a knowledge file another layer reads, located in the file.

    Raised as ``TerminologyError(path, "value set 'a': needs ...")``: the place is found from the
    key path ``at`` when given, else from the entry the message names (``cds.yamlio.locate``).
    ``str()`` is the one diagnostic line.
    """

    code: ClassVar[str] = "E050"

    def __init__(self, file: Path | str, message: str, at: tuple[str | int, ...] | None = None) -> None:
        self.file = Path(file)
        self.message = message
        line, column = _position(self.file, message, at)
        self.diagnostic = Diagnostic(display_path(self.file), line, column, self.code, message, _entry_id(message))
        self.diagnostics = [self.diagnostic]
        ValueError.__init__(self, str(self.diagnostic))


def display_path(path: Path) -> str:
    """``rules/x/y.yaml``: the path from the folder that holds ``rules/`` (as the rule language shows it)."""
    parts = path.parts
    for index in range(max(len(parts) - 3, 0), len(parts) - 1):  # rules/<file> or rules/<folder>/<file>
        if parts[index] == "rules":
            return str(Path(*parts[index:]))
    return str(path)


def _position(file: Path, message: str, at: tuple[str | int, ...] | None) -> tuple[int, int]:
    try:
        doc = load_positioned(file.read_text(encoding="utf-8"))
    except YamlSyntaxError as exc:
        return exc.line, exc.column
    except (OSError, UnicodeDecodeError):
        return 0, 0
    return doc.where(at) if at is not None else locate(doc, message)


def _entry_id(message: str) -> str | None:
    """The entry a message names first (``site calf: ...`` -> ``calf``), shown as ``(id)``."""
    head = message.split(": ", 1)[0].split()
    if len(head) >= 2 and head[0] in {"site", "target", "modality", "analyte", "set", "service", "concept"}:
        return head[-1].strip("'\"")
    return None
