"""Checks of card templates (placeholders, suggested FHIR resources) and rule tests."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from cds.engine.check_base import _CheckerBase
from cds.engine.files import _Item
from cds.engine.model import CardTemplate, Rule, RuleTest
from cds.engine.paths import resolve as resolve_case
from cds.facts import FACT_FIELDS

PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([A-Za-z0-9_.\-]+))?\}")


HYPOTHESIS_PLACEHOLDERS = {
    "posterior",
    "prior",
    "evidence_for",
    "evidence_against",
    "next_test",
    "hypothesis",
    "band",
    "alternative",
    "post_test",  # the probability after a positive and after a negative next test
}


# differential_evidence: the leading hypotheses with their evidence; differential_top / differential_runner_up:
# the first / second; lesion_sites: sites of the recorded skin lesions (conditions whose concepts the rules
# deriving `skin-lesion` name). band:<h>: the band word of the posterior; alternative:<h>: the best cause other
# than <h>; time_critical: the time-critical hypotheses past their threshold; explainers: explainers of findings.
PLAIN_PLACEHOLDERS = {
    "differential",
    "differential_evidence",
    "differential_top",
    "differential_runner_up",
    "time_critical",
    "time_critical_names",
    "explainers",
    "population",
    "patient_id",
    "ruleset_version",
    "lesion_sites",
}


# modifiable_drugs: the patient's own active drugs that the treatment advice says to review (a line whose
# placeholder has nothing to say is left out of the card, cds.cards.render).
PLAIN_PLACEHOLDERS |= {"modifiable_drugs"}


MATCHED_PLACEHOLDERS = {"matched", "matched_id"}  # matched_id: the id part of a `Type/id` reference


def _strings(value: Any, path: tuple[str | int, ...] = ()) -> Iterable[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _fill_dummy(value: Any) -> Any:
    """The resource with every placeholder replaced by a plausible value, for load-time validation."""
    if isinstance(value, str):
        return PLACEHOLDER.sub("example", value)
    if isinstance(value, dict):
        return {k: _fill_dummy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_dummy(v) for v in value]
    return value


def validate_fhir_resource(resource: Mapping[str, Any]) -> str | None:
    """None when ``resource`` is a valid FHIR R4 resource (fhir.resources R4B), else the problem."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return "the resource has no resourceType"
    try:
        from fhir.resources.R4B import get_fhir_model_class

        model = get_fhir_model_class(resource_type)
    except (ImportError, KeyError, ValueError):
        return f"unknown FHIR resource type {resource_type!r}"
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"invalid {resource_type}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    except Exception as exc:  # fhir.resources raises its own errors on some shapes
        return f"invalid {resource_type}: {exc}"
    return None


class _CardChecks(_CheckerBase):
    # ------------------------------------------------------------------ cards
    def _check_card(
        self, item: _Item, rules: dict[str, _Item], aliases: Mapping[str, Mapping[str, tuple[int, str]]]
    ) -> None:
        card: CardTemplate = item.value
        cid = card.id
        self._check_card_references(item)
        raisers = [r.value for r in rules.values() if cid in r.value.then.cards and r.value.status == "active"]
        if card.when.intent and not raisers:
            self.out.add(item.at("when", "intent"), "E021", "no active rule raises this card (`then.cards`)", cid)
        texts = self._card_texts(item)
        if card.page_detail:
            # The page behind a card is built from the rules alone (no patient), so it has nothing to fill in.
            for match in PLACEHOLDER.finditer(card.page_detail):
                self.out.add(
                    item.at("page_detail"),
                    "E022",
                    f"{{{match.group(0)[1:-1]}}}: page_detail is shown on the card's page, which has no patient data; "
                    "no placeholders",
                    cid,
                )
        recommended = sum(1 for s in card.suggestions if s.recommended)
        if card.selection_behavior == "at-most-one" and recommended > 1:
            self.out.add(
                item.at("suggestions"), "E003", "at most one suggestion may be recommended under at-most-one", cid
            )
        for path, text in texts:
            for match in PLACEHOLDER.finditer(text):
                self._check_placeholder(item, path, match.group(1), match.group(2), card, raisers, aliases)

    def _check_card_references(self, item: _Item) -> None:
        """Services, references and the differential condition a card template names."""
        card: CardTemplate = item.value
        cid = card.id
        for index, service in enumerate(card.services):
            if self.services and service not in self.services:
                self.out.add(
                    item.at("services", index), "E024", f"undefined service {service!r} (rules/services.yaml)", cid
                )
        for index, ref in enumerate(card.references):
            if ref not in self.references:
                self.out.add(item.at("references", index), "E013", f"undefined reference {ref!r}", cid)
        condition = card.when.differential
        if condition is not None and condition.hypothesis not in self.hypotheses:
            self.out.add(
                item.at("when", "differential", "hypothesis"),
                "E012",
                f"undefined hypothesis {condition.hypothesis!r}",
                cid,
            )
        if condition is not None and (condition.at_least is not None or condition.below is not None):
            if condition.reference is None:
                self.out.add(item.at("when", "differential"), "E017", "a posterior threshold names no reference", cid)
            elif condition.reference not in self.references:
                self.out.add(
                    item.at("when", "differential", "reference"),
                    "E013",
                    f"undefined reference {condition.reference!r}",
                    cid,
                )

    def _card_texts(self, item: _Item) -> list[tuple[tuple[str | int, ...], str]]:
        """Every text of a card template that may hold placeholders, with its path; checks the actions."""
        card: CardTemplate = item.value
        texts: list[tuple[tuple[str | int, ...], str]] = [(("summary",), card.summary)]
        if card.detail:
            texts.append((("detail",), card.detail))
        for s_index, suggestion in enumerate(card.suggestions):
            texts.append((("suggestions", s_index, "label"), suggestion.label))
            for a_index, action in enumerate(suggestion.actions):
                base = ("suggestions", s_index, "actions", a_index)
                texts.append(((*base, "description"), action.description))
                if action.resource_id:
                    texts.append(((*base, "resource_id"), action.resource_id))
                for sub_path, text in _strings(action.resource):
                    texts.append(((*base, "resource", *sub_path), text))
                self._check_action(item, base, action)
        for l_index, link in enumerate(card.links):
            texts.append((("links", l_index, "url"), link.url))
        return texts

    def _check_placeholder(
        self,
        item: _Item,
        path: tuple[str | int, ...],
        name: str,
        arg: str | None,
        card: CardTemplate,
        raisers: list[Rule],
        aliases: Mapping[str, Mapping[str, tuple[int, str]]],
    ) -> None:
        where, cid = item.at(*path), card.id
        if name in HYPOTHESIS_PLACEHOLDERS:
            if arg not in self.hypotheses:
                self.out.add(where, "E022", f"{{{name}:{arg}}}: undefined hypothesis {arg!r}", cid)
        elif name in PLAIN_PLACEHOLDERS:
            if arg is not None:
                self.out.add(where, "E022", f"{{{name}}} takes no argument", cid)
        elif name in MATCHED_PLACEHOLDERS:
            alias, _, attr = (arg or "").partition(".")
            if not card.when.intent or not raisers:
                self.out.add(
                    where, "E022", f"{{matched:{arg}}} needs `when: {{intent: true}}` and a rule raising the card", cid
                )
            for rule in raisers:
                found = aliases.get(rule.id, {}).get(alias)
                if found is None:
                    self.out.add(
                        where, "E022", f"{{matched:{arg}}}: rule {rule.id!r} has no pattern `as: {alias}`", cid
                    )
                elif attr not in FACT_FIELDS.get(found[1], {}):
                    self.out.add(where, "E022", f"{{matched:{arg}}}: {found[1]} facts have no attribute {attr!r}", cid)
        else:
            known = sorted(HYPOTHESIS_PLACEHOLDERS | PLAIN_PLACEHOLDERS | MATCHED_PLACEHOLDERS)
            self.out.add(where, "E022", f"unknown placeholder {{{name}}} (known: {', '.join(known)})", cid)

    def _check_action(self, item: _Item, base: tuple[str | int, ...], action: Any) -> None:
        cid = item.value.id
        if action.type == "delete":
            if not action.resource_id or action.resource is not None:
                self.out.add(item.at(*base), "E027", "a delete action names `resource_id` and carries no resource", cid)
            return
        if action.resource is None:
            self.out.add(item.at(*base), "E027", f"a {action.type} action carries a `resource`", cid)
            return
        problem = validate_fhir_resource(_fill_dummy(action.resource))
        if problem:
            self.out.add(item.at(*base, "resource"), "E027", problem, cid)

    # ------------------------------------------------------------------ tests and coverage
    def _check_test(self, item: _Item) -> None:
        test: RuleTest = item.value
        tid = test.id
        if self.services and test.service not in self.services:
            self.out.add(item.at("service"), "E028", f"undefined service {test.service!r}", tid)
        self._check_test_case(item)
        self._check_test_facts(item)
        expect = test.expect
        for field_name in ("fired", "not_fired"):
            for index, rid in enumerate(getattr(expect, field_name)):
                if rid not in self.rules:
                    self.out.add(item.at("expect", field_name, index), "E028", f"undefined rule {rid!r}", tid)
        for field_name in ("cards", "not_cards"):
            for index, cid in enumerate(getattr(expect, field_name)):
                if cid not in self.cards:
                    self.out.add(item.at("expect", field_name, index), "E028", f"undefined card template {cid!r}", tid)
        hyps = ([expect.top] if expect.top else []) + list(expect.posterior)
        for hid in hyps:
            if hid not in self.hypotheses:
                self.out.add(item.at("expect"), "E028", f"undefined hypothesis {hid!r}", tid)

    def _check_test_case(self, item: _Item) -> None:
        """The case file a rule test names exists, written relative to the file naming it."""
        test: RuleTest = item.value
        tid = test.id
        if test.case is not None:
            found, legacy = resolve_case(self.rules_dir, self.rules_dir.parent / item.file, test.case)
            if found is None:
                self.out.add(
                    item.at("case"),
                    "E028",
                    f"case file {test.case!r} not found (paths are relative to the file naming them)",
                    tid,
                )
            elif legacy:
                self.out.add(
                    item.at("case"),
                    "N203",
                    f"case path {test.case!r} is relative to the repository root; "
                    "write it relative to this file (`python -m cds.engine.migrate_tests` does it)",
                    tid,
                )

    def _check_test_facts(self, item: _Item) -> None:
        """A rule test's inline facts have a known kind, an id and known attributes."""
        test: RuleTest = item.value
        tid = test.id
        if test.facts is not None:
            for index, fact in enumerate(test.facts):
                kind = fact.get("kind")
                if kind not in FACT_FIELDS or not isinstance(fact.get("id"), str):
                    self.out.add(
                        item.at("facts", index), "E028", "an inline fact needs `kind` (a fact kind) and `id`", tid
                    )
                    continue
                for attr in fact:
                    if attr not in ("kind", "id") and attr not in FACT_FIELDS[kind]:
                        self.out.add(
                            item.at("facts", index, attr, key=True),
                            "E015",
                            f"{kind} facts have no attribute {attr!r}",
                            tid,
                        )
