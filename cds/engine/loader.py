"""Load, check and compile the rule set under ``rules/``.

``load_ruleset(rules_dir)`` returns a ``LoadResult``: the ``RuleSet`` when it
has no errors, and every diagnostic (``file:line:col: CODE message (rule)``).
Everything a rule file refers to is checked here (value sets, fact kinds and
attributes, hypotheses, references, card templates and their placeholders,
services, rule tests), so nothing is discovered at request time.

The loader is split by step (docs/adr/0011-knowledge-bundle.md): ``files`` reads the files
(positioned YAML, pydantic errors as diagnostics, the ids of value sets and analytes);
``check_base``, ``check_rules`` and ``check_cards`` check and compile (``_Checker`` here combines
them and builds the IR); ``ruleset`` holds the result. ``cds.knowledge`` loads the rest of
``rules/`` beside it into one bundle.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from cds.engine import ir, rootcause
from cds.engine.check_cards import PLACEHOLDER, _CardChecks, validate_fhir_resource
from cds.engine.check_rules import _RuleChecks
from cds.engine.diagnostics import Diagnostic
from cds.engine.files import (
    _check_other_file,
    _Collector,
    _other_yaml_files,
    _parse_checked,
    _read_analyte_limits,
    _read_service_ids,
    _read_terminology,
    _report_validation,
    _without_duplicates,
    content_hash,
    rule_language_files,
)
from cds.engine.model import (
    Rule,
    RuleFile,
)
from cds.engine.ruleset import (
    LoadResult,
    RuleSet,
    ValueSetInfo,
    _compiled_interval,
    _lesion_concepts,
    evidence_interval,
)
from cds.engine.yamlpos import PositionedYaml

__all__ = [
    "PLACEHOLDER",
    "LoadResult",
    "RuleSet",
    "ValueSetInfo",
    "content_hash",
    "evidence_interval",
    "load_or_raise",
    "load_ruleset",
    "rule_language_files",
    "validate_fhir_resource",
]


def load_ruleset(rules_dir: Path, services: Iterable[str] | None = None) -> LoadResult:
    """Parse, validate, lint and compile. ``services`` are the service ids of services.yaml."""
    rules_dir = Path(rules_dir)
    out = _Collector()
    display_root = rules_dir.parent

    def display(path: Path) -> str:
        try:
            return str(path.relative_to(display_root))
        except ValueError:
            return str(path)

    parsed: list[tuple[RuleFile, str, PositionedYaml]] = []
    file_dropped, dropped_ids = False, []
    for path in rule_language_files(rules_dir):
        name = display(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            out.add((name, 0, 0), "E006", f"cannot read: {exc}")
            file_dropped = True
            continue
        doc = _parse_checked(text, name, out)
        if doc is None:
            file_dropped = True
            continue
        if doc.data is None:
            continue
        try:
            parsed.append((RuleFile.model_validate(doc.data), name, doc))
        except ValidationError as exc:
            _report_validation(exc, doc, name, out)
            # drop only the entries with the mistake, so the rest of the file still loads
            bad = rootcause.bad_entries([err["loc"] for err in exc.errors()])
            if bad is None or not isinstance(doc.data, dict):
                file_dropped = True
                continue
            kept, ids = rootcause.drop_entries(doc, bad)
            dropped_ids.extend(ids)
            try:
                parsed.append((RuleFile.model_validate(kept.data), name, kept))
            except ValidationError:
                file_dropped = True
    for path in _other_yaml_files(rules_dir):
        # value sets, analytes, services, findings: their own layers validate the shape;
        # characters and numbers are checked here for every file alike
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # reported by the layer that reads the file
        _check_other_file(text, display(path), out)

    if services is None:
        services = _read_service_ids(rules_dir / "services.yaml")
    valuesets, analytes = _read_terminology(rules_dir, out, display)
    checker = _Checker(rules_dir, out, parsed, frozenset(services), valuesets, analytes)
    checker.analyte_limits = _read_analyte_limits(rules_dir / "analytes.yaml")
    ruleset = checker.run()
    diagnostics = _without_duplicates(out.diagnostics)
    order = {"error": 0, "warning": 1, "note": 2}
    diagnostics.sort(
        key=lambda d: (order[d.severity], d.code not in rootcause.ROOT_CODES, d.file, d.line, d.column, d.code)
    )
    diagnostics, consequences = rootcause.fold(diagnostics, file_dropped, dropped_ids)
    if any(d.severity == "error" for d in diagnostics) or ruleset is None:
        return LoadResult(None, diagnostics, consequences)
    ruleset = _with_diagnostics(ruleset, diagnostics)
    return LoadResult(ruleset, diagnostics)


def _with_diagnostics(ruleset: RuleSet, diagnostics: list[Diagnostic]) -> RuleSet:
    from dataclasses import replace

    return replace(ruleset, diagnostics=tuple(diagnostics))


class _Checker(_RuleChecks, _CardChecks):
    # ------------------------------------------------------------------ entry
    def run(self) -> RuleSet | None:
        if len(self.infos) != 1:
            where = self.infos[1].at() if len(self.infos) > 1 else (str(self.rules_dir.name), 0, 0)
            self.out.add(
                where, "E004" if not self.infos else "E010", "declare `ruleset: {version, title}` exactly once"
            )
        references = self._unique("references", "reference")
        populations = self._unique("populations", "population")
        hypotheses = self._unique("hypotheses", "hypothesis")
        rules = self._unique("rules", "rule")
        cards = self._unique("cards", "card template")
        tests = self._unique("tests", "rule test")
        self.references, self.hypotheses, self.rules, self.cards = references, hypotheses, rules, cards

        self._check_populations(populations, hypotheses, rules)
        for item in hypotheses.values():
            self._check_hypothesis(item)
        evidence_groups = self._unique("evidence_groups", "evidence group")
        self._check_evidence_groups(evidence_groups, rules)
        self._check_cause_priors(populations, hypotheses)
        aliases: dict[str, dict[str, tuple[int, str]]] = {}
        compiled_patterns: dict[str, tuple[ir.Pattern, ...]] = {}
        for item in rules.values():
            patterns, rule_aliases = self._check_rule(item)
            aliases[item.value.id] = rule_aliases
            compiled_patterns[item.value.id] = patterns
        order = self._order_rules(rules)
        for item in cards.values():
            self._check_card(item, rules, aliases)
        for item in tests.values():
            self._check_test(item)
        self._check_unused_valuesets()
        self._check_untested(rules, tests)

        if any(d.severity == "error" for d in self.out.diagnostics) or not self.infos:
            return None
        compiled_rules = []
        for index, rule_id in enumerate(order):
            rule: Rule = rules[rule_id].value
            derive = None
            if rule.then.derive is not None:
                d = rule.then.derive
                attrs = tuple(
                    (k, v) for k, v in (("value", d.value), ("text", d.text), ("flag", d.flag)) if v is not None
                )
                derive = ir.DeriveSpec(d.name, (("name", d.name), *attrs))
            compiled_rules.append(
                ir.CompiledRule(
                    index=index,
                    id=rule.id,
                    version=rule.version,
                    title=rule.title,
                    patterns=compiled_patterns[rule_id],
                    derive=derive,
                    evidence=tuple(
                        ir.EvidenceSpec(
                            e.hypothesis,
                            float(e.likelihood_ratio),
                            e.reference or "",
                            e.confidence,
                            e.test,
                            e.note,
                            *_compiled_interval(e),
                        )
                        for e in rule.then.evidence
                    ),
                    cards=tuple(rule.then.cards),
                    references=tuple(rule.references),
                    uses_derived=any(p.kind == "derived" for p in compiled_patterns[rule_id]),
                )
            )
        valueset_codes = {
            m.valueset: (self.valuesets[m.valueset].codes, self.valuesets[m.valueset].prefixes)
            for m in self.memberships.values()
            if self.valuesets is not None
        }
        compiled = ir.CompiledRules(
            rules=tuple(compiled_rules),
            memberships=tuple(self.memberships.values()),
            absences=tuple(self.absences.values()),
            valueset_codes=valueset_codes,
            lesion_concepts=_lesion_concepts(rules[r].value for r in order),
        )
        return RuleSet(
            rules_dir=self.rules_dir,
            info=self.infos[0].value,
            content_hash=content_hash(self.rules_dir),
            references={k: v.value for k, v in references.items()},
            populations=tuple(p.value for p in populations.values()),
            hypotheses={k: v.value for k, v in hypotheses.items()},
            rules={k: v.value for k, v in rules.items()},
            cards={k: v.value for k, v in cards.items()},
            tests=tuple(t.value for t in tests.values()),
            compiled=compiled,
            valuesets=self.valuesets or {},
            services=self.services,
            aliases=aliases,
            evidence_groups={k: v.value for k, v in evidence_groups.items()},
            test_files={k: self.rules_dir.parent / v.file for k, v in tests.items()},
            rule_files={k: self.rules_dir.parent / v.file for k, v in rules.items()},
            test_lines={k: v.at("id")[1] for k, v in tests.items()},
        )


def load_or_raise(rules_dir: Path, services: Iterable[str] | None = None) -> RuleSet:
    return load_ruleset(rules_dir, services).raise_for_errors()
