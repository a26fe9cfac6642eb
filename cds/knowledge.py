"""The knowledge bundle: everything under ``rules/``, read by one loader into one immutable object.

``load_bundle(rules_dir)`` reads every file kind under ``rules/`` once:

* the rule language (rules, hypotheses, populations, references, cards, rule tests;
  ``cds.engine.loader``), checked and compiled;
* value sets, the text-layer lexicon and the analytes (``cds.fhir.terminology``);
* the findings vocabularies ``rules/findings/*.yaml`` (``cds.findings.knowledge``), which hold
  the one body-site vocabulary (``sites.yaml``) the FHIR layer uses too;
* the service definitions ``services.yaml`` (``cds.hooks.services``).

It returns a ``BundleResult``: the ``KnowledgeBundle`` when nothing has an error, and every
diagnostic of every file kind in one format, ``file:line:col: CODE message (id)``. Nothing is
swallowed: a broken findings vocabulary is an error of the bundle (E051), so ``cds rules
validate`` fails and a reload is refused naming the file. The stages receive the bundle (or
the part they need); hot reload builds a new bundle off to the side and swaps one reference.

The stages' own objects stay where they are (a ``Terminology`` keeps its look-up caches); the
bundle only ties one version of each together. See docs/adr/0011-knowledge-bundle.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cds.diagnostics import Diagnostic, KnowledgeError, KnowledgeFileError, display_path
from cds.engine.loader import RuleSet, load_ruleset

if TYPE_CHECKING:
    from cds.fhir.terminology import Terminology
    from cds.findings.knowledge import FindingsKnowledge
    from cds.hooks.services import ServiceDefinition
    from cds.settings import Settings

DEFAULT_NAMESPACE = "org.calciphylaxis-cds"


class ServicesError(KnowledgeFileError):
    """services.yaml is invalid, as the bundle reports it: ``file:line:col: E052 message``."""

    code = "E052"


@dataclass(frozen=True)
class KnowledgeBundle:
    """One version of everything under ``rules/``; immutable, replaced as a whole on reload."""

    rules_dir: Path
    ruleset: RuleSet
    terminology: Terminology
    findings: FindingsKnowledge | None
    services: tuple[ServiceDefinition, ...]
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def version(self) -> str:
        """Declared version + hash of every file under rules/ (cards and audit records carry it)."""
        return self.ruleset.version


@dataclass(frozen=True)
class BundleResult:
    bundle: KnowledgeBundle | None
    diagnostics: tuple[Diagnostic, ...]
    # rule-language errors that follow from a root cause shown in `diagnostics` (cds.engine.rootcause)
    consequences: tuple[Diagnostic, ...] = field(default=())

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def raise_for_errors(self) -> KnowledgeBundle:
        if self.bundle is None or self.errors:
            raise KnowledgeError(list(self.diagnostics))
        return self.bundle


def load_bundle(rules_dir: Path, hook_namespace: str = DEFAULT_NAMESPACE) -> BundleResult:
    """Read, check and compile everything under ``rules_dir``; every file kind's errors, none hidden."""
    from cds.fhir.terminology import Terminology
    from cds.findings.knowledge import FindingsKnowledge

    rules_dir = Path(rules_dir)
    problems: list[Diagnostic] = []
    services = _load_services(rules_dir, hook_namespace, problems)
    findings: FindingsKnowledge | None = None
    terminology: Terminology | None = None
    try:
        if (rules_dir / "findings").is_dir():  # a rule set may have no findings layer (value sets only)
            findings = FindingsKnowledge.load(rules_dir)
        terminology = Terminology.load(rules_dir, findings)
    except KnowledgeError as exc:
        problems.extend(exc.diagnostics)
    result = load_ruleset(rules_dir, None if services is None else [s.id for s in services])
    diagnostics = (*problems, *result.diagnostics)
    consequences = tuple(result.consequences)
    if result.ruleset is None or services is None or terminology is None or result.errors:
        return BundleResult(None, diagnostics, consequences)
    bundle = KnowledgeBundle(rules_dir, result.ruleset, terminology, findings, services, diagnostics)
    return BundleResult(bundle, diagnostics, consequences)


def parse_cache_directory(settings: Settings) -> Path | None:
    """Where the YAML parse results of ``rules/`` are kept between starts (``cds.yamlio.cached_parses``):
    ``CDS_RULES_PARSE_CACHE_DIR``, else ``parsed-rules/`` in the rule-test verdict directory; None when
    ``CDS_RULES_PARSE_CACHE`` is off (docs/adr/0014-cold-start.md)."""
    from cds.engine.verdicts import default_directory

    if not settings.rules_parse_cache:
        return None
    return settings.rules_parse_cache_dir or (settings.rule_test_verdicts_dir or default_directory()) / "parsed-rules"


def load_bundle_or_raise(rules_dir: Path, hook_namespace: str = DEFAULT_NAMESPACE) -> KnowledgeBundle:
    return load_bundle(rules_dir, hook_namespace).raise_for_errors()


_PLACED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$")


def _load_services(
    rules_dir: Path, hook_namespace: str, problems: list[Diagnostic]
) -> tuple[ServiceDefinition, ...] | None:
    """services.yaml as the service loads it; its errors as E052 diagnostics (None when it has any)."""
    from cds.hooks.services import ServiceDefinitionError, load_services

    path = rules_dir / "services.yaml"
    try:
        return load_services(path, hook_namespace)
    except ServiceDefinitionError as exc:
        problems.extend(service_diagnostics(path, str(exc)))
        return None


def service_diagnostics(path: Path, text: str) -> list[Diagnostic]:
    """``ServiceDefinitionError`` lines (``path:l:c: msg``, ``path: services.0.hook: msg``) as E052."""
    out = []
    prefix = f"{path}: "
    for line in text.splitlines():
        placed = _PLACED.match(line)
        if placed and placed.group("file") == str(path):
            out.append(
                Diagnostic(
                    display_path(path),
                    int(placed.group("line")),
                    int(placed.group("column")),
                    "E052",
                    placed.group("message"),
                )
            )
            continue
        message = line[len(prefix) :] if line.startswith(prefix) else line
        at = _pydantic_location(message)
        out.append(ServicesError(path, message, at).diagnostic)
    return out


def _pydantic_location(message: str) -> tuple[str | int, ...] | None:
    """``services.0.prefetch: ...`` -> ("services", 0, "prefetch")."""
    head = message.split(": ", 1)[0]
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[\w-]+)*", head):
        return None
    return tuple(int(p) if p.isdigit() else p for p in head.split("."))
