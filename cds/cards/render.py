"""Card templates + differential -> CDS Hooks cards (``cds.hooks.models.Card``).

Every placeholder was checked when the rules loaded (``cds.engine.loader``),
so rendering cannot meet an unknown one; a value that is missing in this
evaluation renders as "not recorded".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds.engine.differential import INDEPENDENCE_NOTE, Differential, EvidenceItem, HypothesisResult
from cds.engine.loader import PLACEHOLDER, RuleSet
from cds.engine.model import CardTemplate
from cds.engine.runner import Outcome, RaisedCard
from cds.hooks.models import Action, Card, Coding, Link, OverrideReason, Source, Suggestion

TEMPLATE_SYSTEM = "https://calciphylaxis-cds.org/fhir/CodeSystem/card-template"
DIFFERENTIAL_PLACEHOLDERS = {
    "posterior", "prior", "evidence_for", "evidence_against", "next_test", "differential", "differential_evidence",
    "differential_top", "differential_runner_up", "post_test",
}
# {differential_evidence} lists the hypotheses with evidence, highest posterior first, at most this many.
EVIDENCE_LIST_LIMIT = 6


def percent(p: float) -> str:
    if p < 0.01:
        return "<1%"
    if p > 0.99:
        return ">99%"
    return f"{p * 100:.0f}%"


class _Context:
    def __init__(self, rs: RuleSet, outcome: Outcome, raised: RaisedCard, patient_id: str | None) -> None:
        self.rs, self.outcome, self.raised, self.patient_id = rs, outcome, raised, patient_id
        self.diff: Differential = outcome.differential

    def citation(self, ref_id: str) -> str:
        ref = self.rs.references.get(ref_id)
        return ref.citation.split(".")[0] if ref else ref_id

    def evidence_list(self, items: tuple[EvidenceItem, ...]) -> str:
        if not items:
            return "- none recorded"
        return "\n".join(
            f"- {e.rule_title}: likelihood ratio {e.likelihood_ratio:g} ({self.citation(e.reference)} [{e.confidence}])"
            for e in items
        )

    def hypothesis(self, hid: str) -> HypothesisResult:
        result = self.diff.get(hid)
        assert result is not None  # checked at load time
        return result

    def table(self) -> str:
        rows = ["| Hypothesis | Prior | Posterior | For | Against |", "|---|---|---|---|---|"]
        for h in self.diff.hypotheses:
            rows.append(f"| {h.title} | {percent(h.prior)} | {percent(h.posterior)} | {len(h.evidence_for)} | {len(h.evidence_against)} |")
        return "\n".join(rows)

    def differential_evidence(self) -> str:
        """The leading hypotheses that have evidence, each with what speaks for and against it."""
        blocks = []
        ranked = [h for h in self.diff.hypotheses if h.evidence_for or h.evidence_against][:EVIDENCE_LIST_LIMIT]
        for rank, h in enumerate(ranked, start=1):
            blocks.append(
                f"{rank}. **{h.title}**: {percent(h.posterior)} (prior {percent(h.prior)})\n"
                f"   - for: {self.short_list(h.evidence_for)}"
                f"{'; '.join(f' (risk factors `{c}` capped at LR {m:g})' for c, _, m in h.caps_applied)}\n"
                f"   - against: {self.short_list(h.evidence_against)}"
            )
        return "\n".join(blocks) if blocks else "- no imaging or clinical evidence recorded"

    @staticmethod
    def caps_note(result: HypothesisResult) -> str:
        """One line per cap that lowered the posterior: related findings are not multiplied without limit."""
        return "".join(
            f"\n- (combined, the related findings `{cap}` count as likelihood ratio {limit:g}, not {product:.3g})"
            for cap, product, limit in result.caps_applied
        )

    @staticmethod
    def short_list(items: tuple[EvidenceItem, ...]) -> str:
        if not items:
            return "none recorded"
        return "; ".join(f"{e.rule_title} (LR {e.likelihood_ratio:g} [{e.confidence}])" for e in items)

    def post_test(self, hid: str) -> str:
        """What the next test could change: the probability after a positive and after a negative result."""
        result = self.hypothesis(hid)
        test = result.next_test
        if test is None:
            return "no further test declared"
        odds = result.posterior / (1 - result.posterior) if result.posterior < 1 else float("inf")

        def after(lr: float) -> str:
            return percent(1.0) if odds == float("inf") else percent(odds * lr / (1 + odds * lr))

        return (
            f"{test.title}: {after(test.lr_positive)} if positive, {after(test.lr_negative)} if negative "
            f"(from {percent(result.posterior)}; LR+ {test.lr_positive:g}, LR- {test.lr_negative:g})"
        )

    def lesion_sites(self) -> str:
        """Sites of recorded skin lesions: conditions whose concept a `skin-lesion` rule names."""
        concepts = self.rs.lesion_concepts
        sites = []
        for fact in self.outcome.facts:
            if fact.kind != "condition" or fact.attrs.get("concept") not in concepts:
                continue
            site = fact.attrs.get("site")
            if not isinstance(site, str):
                continue
            side = fact.attrs.get("laterality")
            sites.append(f"{side} {site}" if isinstance(side, str) else site)
        return ", ".join(sorted(set(sites))) if sites else "not recorded"

    def matched(self, arg: str) -> str:
        alias, _, attr = arg.partition(".")
        rule_id = self.raised.raising_rule
        if rule_id is None:
            return "not recorded"
        index, _kind = self.rs.aliases[rule_id][alias]
        if index >= len(self.raised.first_match):
            return "not recorded"
        fact = self.outcome.facts_by_source.get(self.raised.first_match[index])
        value = fact.attrs.get(attr) if fact else None
        return "not recorded" if value is None else str(value)

    def value(self, name: str, arg: str | None) -> str:
        if name == "posterior":
            return percent(self.hypothesis(arg).posterior)
        if name == "prior":
            return percent(self.hypothesis(arg).prior)
        if name == "hypothesis":
            return self.rs.hypotheses[arg].title
        if name == "evidence_for":
            result = self.hypothesis(arg)
            return self.evidence_list(result.evidence_for) + self.caps_note(result)
        if name == "evidence_against":
            return self.evidence_list(self.hypothesis(arg).evidence_against)
        if name == "next_test":
            test = self.hypothesis(arg).next_test
            if test is None:
                return "no further test declared"
            return f"{test.title} (LR+ {test.lr_positive:g}, LR- {test.lr_negative:g}; {self.citation(test.reference)} [{test.confidence}])"
        if name == "post_test":
            return self.post_test(arg)
        if name == "differential":
            return self.table()
        if name == "population":
            return self.diff.population_title
        if name == "patient_id":
            return self.patient_id or "unknown"
        if name == "ruleset_version":
            return self.rs.version
        if name == "matched":
            return self.matched(arg or "")
        if name == "matched_id":
            value = self.matched(arg or "")
            return value.rsplit("/", 1)[-1]
        if name == "differential_evidence":
            return self.differential_evidence()
        if name in ("differential_top", "differential_runner_up"):
            ranked = self.diff.hypotheses[0 if name == "differential_top" else 1 :]
            return f"{ranked[0].title} ({percent(ranked[0].posterior)})" if ranked else "none"
        if name == "lesion_sites":
            return self.lesion_sites()
        raise KeyError(name)  # unreachable: the loader rejects unknown placeholders

    def fill(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self.value(m.group(1), m.group(2)), text)

    def fill_resource(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.fill(value)
        if isinstance(value, dict):
            return {k: self.fill_resource(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill_resource(v) for v in value]
        return value


def _uses_differential(template: CardTemplate) -> bool:
    text = (template.detail or "") + template.summary
    return template.when.differential is not None or any(
        m.group(1) in DIFFERENTIAL_PLACEHOLDERS for m in PLACEHOLDER.finditer(text)
    )


def render_card(
    rs: RuleSet, outcome: Outcome, raised: RaisedCard, patient_id: str | None, extension_key: str
) -> Card:
    template = rs.cards[raised.template]
    ctx = _Context(rs, outcome, raised, patient_id)
    detail = ctx.fill(template.detail) if template.detail else None
    if _uses_differential(template):
        detail = f"{detail}\n\n_{INDEPENDENCE_NOTE}_" if detail else f"_{INDEPENDENCE_NOTE}_"
    references = [rs.references[r] for r in template.references]
    if references:
        lines = "\n".join(f"- {r.citation} [{r.confidence}]" for r in references)
        detail = f"{detail}\n\n**Sources**\n{lines}" if detail else f"**Sources**\n{lines}"
    suggestions = [
        Suggestion(
            label=ctx.fill(s.label),
            isRecommended=True if s.recommended else None,
            actions=[
                Action(
                    type=a.type,
                    description=ctx.fill(a.description),
                    resource=ctx.fill_resource(a.resource) if a.resource is not None else None,
                    resourceId=ctx.fill(a.resource_id) if a.resource_id else None,
                )
                for a in s.actions
            ],
        )
        for s in template.suggestions
    ]
    return Card(
        summary=ctx.fill(template.summary)[:139],
        detail=detail,
        indicator=template.indicator,
        source=Source(
            label=template.source.label,
            url=template.source.url,
            topic=Coding(system=TEMPLATE_SYSTEM, code=template.id, display=template.source.label),
        ),
        suggestions=suggestions or None,
        selectionBehavior=template.selection_behavior if suggestions else None,
        overrideReasons=[OverrideReason(system=o.system, code=o.code, display=o.display) for o in template.override_reasons]
        or None,
        links=[Link(label=link.label, url=ctx.fill(link.url), type=link.type) for link in template.links] or None,
        extension={extension_key: {"version": rs.version, "template": template.id, "rules": list(raised.rule_ids)}},
    )


def render_cards(
    rs: RuleSet, outcome: Outcome, context: Mapping[str, Any], extension_key: str
) -> list[tuple[Card, tuple[str, ...]]]:
    patient_id = context.get("patientId") if isinstance(context.get("patientId"), str) else None
    return [(render_card(rs, outcome, raised, patient_id, extension_key), raised.rule_ids) for raised in outcome.cards]
