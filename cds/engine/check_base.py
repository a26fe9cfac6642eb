"""The rule-language checker's state and its checks of references, populations, hypotheses, evidence
groups, priors, rule order and coverage (``cds.engine.loader._Checker`` combines it with the rule and card checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cds.engine import ir, safety
from cds.engine.beside import check_tests_beside
from cds.engine.files import _Collector, _Item
from cds.engine.model import (
    Hypothesis,
    RuleFile,
)
from cds.engine.ruleset import ValueSetInfo
from cds.engine.yamlpos import PositionedYaml

# Derived facts computed in Python before the rules run (not by a rule's `derive`), so a rule may
# test them: dialysis vintage (cds/fhir/__init__.py) and the serial bone-scan comparison
# (cds/findings/serial.py).
EXTERNAL_DERIVED_NAMES = frozenset(
    {"dialysis-vintage-years", "bone-scan-response", "bone-scan-change", "bone-scan-progression"}
)


class _CheckerBase:
    # the unique entries by id, set by ``_Checker.run`` before the checks that read them
    references: dict[str, _Item]
    hypotheses: dict[str, _Item]
    rules: dict[str, _Item]
    cards: dict[str, _Item]

    def __init__(
        self,
        rules_dir: Path,
        out: _Collector,
        parsed: list[tuple[RuleFile, str, PositionedYaml]],
        services: frozenset[str],
        valuesets: dict[str, ValueSetInfo] | None,
        analytes: set[str] | None,
    ) -> None:
        self.rules_dir = rules_dir
        self.out = out
        self.services = services
        self.valuesets = valuesets
        self.analytes = analytes
        self.infos: list[_Item] = []
        self.sections: dict[str, list[_Item]] = {
            k: [] for k in ("references", "populations", "hypotheses", "evidence_groups", "rules", "cards", "tests")
        }
        for model, name, doc in parsed:
            if model.ruleset is not None:
                self.infos.append(_Item(model.ruleset, name, doc, ("ruleset",)))
            for section, items in self.sections.items():
                for index, value in enumerate(getattr(model, section)):
                    items.append(_Item(value, name, doc, (section, index)))
        self.analyte_limits: dict[str, tuple[float | None, float | None]] = {}
        self.used_valuesets: set[str] = set()
        self.memberships: dict[tuple[str, str], ir.Membership] = {}
        self.absences: dict[tuple[Any, ...], ir.Absence] = {}

    # ------------------------------------------------------------------ helpers
    def _unique(self, section: str, noun: str) -> dict[str, _Item]:
        seen: dict[str, _Item] = {}
        for item in self.sections[section]:
            ident = item.value.id
            if ident in seen:
                first = seen[ident]
                self.out.add(
                    item.at("id"),
                    "E010",
                    f"duplicate {noun} id {ident!r} (first defined at {first.file}:{first.at('id')[1]})",
                    ident if section == "rules" else None,
                )
                continue
            seen[ident] = item
        return seen

    def _reference(
        self, item: _Item, ref: str | None, path: tuple[str | int, ...], what: str, rule_id: str | None
    ) -> None:
        if ref is None:
            self.out.add(item.at(*path), "E017", f"{what} names no reference", rule_id)
        elif ref not in self.references:
            self.out.add(item.at(*path, "reference"), "E013", f"undefined reference {ref!r}", rule_id)

    def _lr(self, item: _Item, value: float, path: tuple[str | int, ...], rule_id: str | None) -> None:
        problem = safety.likelihood_ratio_problem(value)
        if problem:
            self.out.add(item.at(*path), "E016", problem, rule_id)
        elif value == 1:
            self.out.add(item.at(*path), "W102", "likelihood ratio 1 changes nothing", rule_id)

    # ------------------------------------------------------------------ populations and hypotheses
    def _check_populations(
        self, populations: dict[str, _Item], hypotheses: dict[str, _Item], rules: dict[str, _Item]
    ) -> None:
        defaults = [p for p in populations.values() if p.value.default]
        if len(defaults) != 1 and (populations or hypotheses):
            where = (
                defaults[1].at("default")
                if len(defaults) > 1
                else (next(iter(populations.values())).at() if populations else (str(self.rules_dir.name), 0, 0))
            )
            self.out.add(where, "E023", "exactly one population must be `default: true`")
        derived_names = self._derived_names(rules)
        for item in populations.values():
            name = item.value.derived
            if name is not None and name not in derived_names:
                self.out.add(
                    item.at("derived"), "E021", f"no active rule derives {name!r}: this population is never selected"
                )
        for hyp in hypotheses.values():
            declared = {}
            for index, prior in enumerate(hyp.value.priors):
                if prior.population not in populations:
                    self.out.add(
                        hyp.at("priors", index, "population"),
                        "E023",
                        f"undefined population {prior.population!r}",
                        hyp.value.id,
                    )
                if prior.population in declared:
                    self.out.add(
                        hyp.at("priors", index, "population"),
                        "E010",
                        f"second prior for population {prior.population!r}",
                        hyp.value.id,
                    )
                declared[prior.population] = prior
                self._reference(hyp, prior.reference, ("priors", index), "prior", hyp.value.id)
            for missing in sorted(set(populations) - set(declared)):
                self.out.add(hyp.at("priors"), "E023", f"no prior for population {missing!r}", hyp.value.id)

    def _check_hypothesis(self, item: _Item) -> None:
        hyp: Hypothesis = item.value
        seen = set()
        for index, test in enumerate(hyp.tests):
            if test.id in seen:
                self.out.add(item.at("tests", index, "id"), "E010", f"duplicate test id {test.id!r}", hyp.id)
            seen.add(test.id)
            self._reference(item, test.reference, ("tests", index), "test", hyp.id)
            self._lr(item, test.lr_positive, ("tests", index, "lr_positive"), hyp.id)
            self._lr(item, test.lr_negative, ("tests", index, "lr_negative"), hyp.id)
        if hyp.kind != "explainer" and hyp.explains:
            self.out.add(item.at("explains"), "E040", "only an explainer (`kind: explainer`) takes up findings", hyp.id)
        for index, rule_id in enumerate(hyp.explains):
            if rule_id not in self.rules:
                self.out.add(item.at("explains", index), "E040", f"explains undefined rule {rule_id!r}", hyp.id)
        if hyp.time_critical is not None and hyp.time_critical_reason is None:
            self.out.add(
                item.at("time_critical"), "E017", "a safety threshold states why (`time_critical_reason`)", hyp.id
            )

    def _check_evidence_groups(self, groups: dict[str, _Item], rules: dict[str, _Item]) -> None:
        """Every rule that weighs evidence belongs to exactly one declared group (issue 12: dependent evidence)."""
        owner: dict[str, str] = {}
        for item in groups.values():
            group = item.value
            self._reference(item, group.reference, (), "evidence group", None)
            if group.max_likelihood_ratio is not None and (problem := safety.cap_problem(group.max_likelihood_ratio)):
                self.out.add(item.at("max_likelihood_ratio"), "E016", problem)
            for index, rule_id in enumerate(group.members):
                rule = rules.get(rule_id)
                if rule is None:
                    self.out.add(
                        item.at("members", index), "E030", f"evidence group {group.id!r}: undefined rule {rule_id!r}"
                    )
                elif not rule.value.then.evidence:
                    self.out.add(
                        item.at("members", index),
                        "E030",
                        f"evidence group {group.id!r}: rule {rule_id!r} weighs no evidence",
                    )
                elif rule_id in owner:
                    self.out.add(
                        item.at("members", index),
                        "E041",
                        f"rule {rule_id!r} is in evidence groups {owner[rule_id]!r} and {group.id!r}; "
                        "a rule belongs to one",
                        rule_id,
                    )
                else:
                    owner[rule_id] = group.id
        if not groups:
            return
        for item in rules.values():
            rule = item.value
            if rule.then.evidence and rule.status != "retired" and rule.id not in owner:
                self.out.add(
                    item.at("then", "evidence"),
                    "E041",
                    "evidence outside every evidence group: add the rule to a group in rules/hypotheses.yaml "
                    "(`combine: independent` declares it independent)",
                    rule.id,
                )

    def _check_cause_priors(self, populations: dict[str, _Item], hypotheses: dict[str, _Item]) -> None:
        """The causes are exclusive: in each population their priors leave a share for 'other'."""
        for pid in populations:
            total = sum(
                p.probability
                for h in hypotheses.values()
                if h.value.kind == "cause"
                for p in h.value.priors
                if p.population == pid
            )
            if total >= 1:
                self.out.add(
                    populations[pid].at(),
                    "E042",
                    f"the causes' priors in population {pid!r} sum to {total:.3f}; they must leave a share for 'other'",
                )

    def _derived_names(self, rules: dict[str, _Item]) -> set[str]:
        by_rules = {
            r.value.then.derive.name for r in rules.values() if r.value.status == "active" and r.value.then.derive
        }
        return by_rules | EXTERNAL_DERIVED_NAMES

    def _valueset(self, item: _Item, where: tuple[str, int, int], vs: str) -> None:
        self.used_valuesets.add(vs)
        if self.valuesets is not None and vs not in self.valuesets:
            self.out.add(where, "E011", f"undefined value set {vs!r}", item.value.id)

    def _order_rules(self, rules: dict[str, _Item]) -> list[str]:
        """Producers of derived facts before their consumers; a cycle is an error (E025)."""
        active = [r for r in rules.values() if r.value.status == "active"]
        produces = {r.value.id: r.value.then.derive.name for r in active if r.value.then.derive}
        consumes: dict[str, set[str]] = {}
        for r in active:
            names = set()
            for p in r.value.when:
                if p.derived is not None and isinstance(p.derived.get("name"), str):
                    names.add(p.derived["name"])
            consumes[r.value.id] = names
        order: list[str] = []
        placed: set[str] = set()
        remaining = [r.value.id for r in active]
        while remaining:
            ready_names = {produces[r] for r in remaining if r in produces}
            progress = [r for r in remaining if not (consumes[r] & {produces[x] for x in remaining if x in produces})]
            if not progress:
                for r in remaining:
                    self.out.add(
                        rules[r].at("when"), "E025", f"derived facts form a cycle among {sorted(ready_names)}", r
                    )
                break
            for r in progress:
                order.append(r)
                placed.add(r)
            remaining = [r for r in remaining if r not in placed]
        return order

    def _check_unused_valuesets(self) -> None:
        if self.valuesets is None:
            return
        for vs in sorted(set(self.valuesets) - self.used_valuesets):
            where = self.valuesets[vs].where or (str(Path(self.rules_dir.name) / "valuesets"), 0, 0)
            used_by = self.valuesets[vs].used_by
            if used_by:
                self.out.add(where, "N202", f"value set {vs!r} is used by no rule; kept because: {used_by.strip()}")
            else:
                self.out.add(where, "W101", f"value set {vs!r} is used by no rule (say why it exists with `used_by:`)")

    def _check_untested(self, rules: dict[str, _Item], tests: dict[str, _Item]) -> None:
        fired = {rid for t in tests.values() for rid in t.value.expect.fired}
        for item in rules.values():
            if item.value.status == "active" and item.value.id not in fired:
                self.out.add(item.at("id"), "W103", "no rule test expects this rule to fire", item.value.id)
        check_tests_beside(self.rules_dir, rules, tests, self.out)
