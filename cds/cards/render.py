"""Card templates + differential -> CDS Hooks cards (``cds.hooks.models.Card``).

Every placeholder was checked when the rules loaded (``cds.engine.loader``),
so rendering cannot meet an unknown one; a value that is missing in this
evaluation renders as "not recorded".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds.engine.differential import INDEPENDENCE_NOTE, Differential, EvidenceItem, HypothesisResult, percent
from cds.engine.loader import PLACEHOLDER, RuleSet
from cds.engine.model import CardTemplate
from cds.engine.runner import Outcome, RaisedCard
from cds.hooks.models import Action, Card, Coding, Link, OverrideReason, Source, Suggestion

TEMPLATE_SYSTEM = "https://calciphylaxis-cds.org/fhir/CodeSystem/card-template"
DIFFERENTIAL_PLACEHOLDERS = {
    "posterior", "prior", "evidence_for", "evidence_against", "next_test", "differential", "differential_evidence",
    "differential_top", "differential_runner_up", "band", "alternative", "time_critical", "time_critical_names", "explainers",
}
# {differential_evidence} lists the hypotheses with evidence, highest posterior first, at most this many.
EVIDENCE_LIST_LIMIT = 6


class _Context:
    def __init__(self, rs: RuleSet, outcome: Outcome, raised: RaisedCard, patient_id: str | None) -> None:
        self.rs, self.outcome, self.raised, self.patient_id = rs, outcome, raised, patient_id
        self.diff: Differential = outcome.differential

    def citation(self, ref_id: str) -> str:
        ref = self.rs.references.get(ref_id)
        return ref.citation.split(".")[0] if ref else ref_id

    def subject(self) -> str | None:
        """The hypothesis a card is about: its differential condition's, else the leading cause."""
        condition = self.rs.cards[self.raised.template].when.differential
        if condition is not None:
            return condition.hypothesis
        top = self.diff.top
        return top.id if top else None

    @staticmethod
    def estimate(h: HypothesisResult) -> str:
        """Point and band, both clamped to 1-95%: '62% (range 45-78%)'."""
        band = h.band
        if percent(band.low) == percent(band.high):
            return percent(band.point)
        return f"{percent(band.point)} (range {percent(band.low)}-{percent(band.high)})"

    def named_estimate(self, h: HypothesisResult | None) -> str:
        return f"{h.title}: {h.band.word}, {self.estimate(h)}" if h else "none"

    def leading_account(self) -> HypothesisResult | None:
        """The leading account of the findings: the top cause, unless nothing speaks for any cause and an explainer
        has taken the findings up (a diffuse renal-failure pattern on a scan without a lesion)."""
        top = self.diff.top
        explainer = next((h for h in self.diff.explainers if h.took), None)
        if explainer is not None and (top is None or not top.evidence_for):
            return explainer
        return top

    def time_critical(self) -> str:
        urgent = self.diff.time_critical
        if not urgent:
            return "none"
        return "; ".join(f"{h.title} ({h.band.word}, {self.estimate(h)})" for h in urgent)

    def explainers(self) -> str:
        """Explainers that took up findings: they explain part of the picture and are not rival causes."""
        lines = [
            f"{h.title} ({self.estimate(h)}) explains: {', '.join(self.rs.rules[r].title for r in h.took)}"
            for h in self.diff.explainers if h.took
        ]
        return "; ".join(lines) if lines else "none"

    def evidence_list(self, items: tuple[EvidenceItem, ...]) -> str:
        if not items:
            return "- none recorded"
        return "\n".join(
            f"- {e.rule_title}: likelihood ratio {e.likelihood_ratio:g}, range {e.interval[0]:.2g}-{e.interval[1]:.3g} "
            f"({self.citation(e.reference)} [{e.confidence}])"
            for e in items
        )

    def hypothesis(self, hid: str) -> HypothesisResult:
        result = self.diff.get(hid)
        assert result is not None  # checked at load time
        return result

    def table(self) -> str:
        rows = ["| Cause of the lesion | Prior | Estimate | For | Against |", "|---|---|---|---|---|"]
        causes = [*self.diff.hypotheses, *([self.diff.other] if self.diff.other else [])]
        for h in causes:
            rows.append(f"| {h.title} | {percent(h.prior)} | {self.estimate(h)} | {len(h.evidence_for)} | {len(h.evidence_against)} |")
        for h in (*self.diff.coexisting, *self.diff.explainers):
            what = "can coexist" if h.kind == "coexisting" else "explains findings, not a rival"
            rows.append(f"| {h.title} ({what}) | {percent(h.prior)} | {self.estimate(h)} | {len(h.evidence_for)} | {len(h.evidence_against)} |")
        return "\n".join(rows)

    def differential_evidence(self) -> str:
        """The leading hypotheses that have evidence, each with what speaks for and against it."""
        blocks = []
        ranked = [h for h in self.diff.hypotheses if h.evidence_for or h.evidence_against][:EVIDENCE_LIST_LIMIT]
        for rank, h in enumerate(ranked, start=1):
            blocks.append(
                f"{rank}. **{h.title}**: {self.estimate(h)} (prior {percent(h.prior)})\n"
                f"   - for: {self.short_list(h.evidence_for)}{self.groups_note(h)}\n"
                f"   - against: {self.short_list(h.evidence_against)}"
            )
        explained = [f"- {h.title}: {self.estimate(h)}; explains {', '.join(h.took)} (not a rival cause)"
                     for h in self.diff.explainers if h.took]
        if explained:
            blocks.append("Explainers of findings:\n" + "\n".join(explained))
        return "\n".join(blocks) if blocks else "- no imaging or clinical evidence recorded"

    @staticmethod
    def groups_note(result: HypothesisResult) -> str:
        """One line per group whose related findings were combined into one ratio (or not counted)."""
        out = []
        for g in result.groups:
            if len(g.rules) < 2 and g.counted:
                continue
            if not g.counted:
                out.append(f"\n- (a recorded suspicion is not counted on top of the findings behind it: `{g.group}`)")
            else:
                out.append(f"\n- (related findings `{g.group}` count together as likelihood ratio {g.likelihood_ratio:.3g})")
        return "".join(out)

    @staticmethod
    def short_list(items: tuple[EvidenceItem, ...]) -> str:
        if not items:
            return "none recorded"
        return "; ".join(f"{e.rule_title} (LR {e.likelihood_ratio:g} [{e.confidence}])" for e in items)

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
            return self.estimate(self.hypothesis(arg))
        if name == "band":
            return self.hypothesis(arg).band.word
        if name == "alternative":
            return self.named_estimate(self.diff.best_other_than(arg))
        if name == "time_critical":
            return self.time_critical()
        if name == "time_critical_names":
            return "; ".join(h.title for h in self.diff.time_critical) or "none"
        if name == "explainers":
            return self.explainers()
        if name == "prior":
            return percent(self.hypothesis(arg).prior)
        if name == "hypothesis":
            return self.rs.hypotheses[arg].title
        if name == "evidence_for":
            result = self.hypothesis(arg)
            return self.evidence_list(result.evidence_for) + self.groups_note(result)
        if name == "evidence_against":
            return self.evidence_list(self.hypothesis(arg).evidence_against)
        if name == "next_test":
            test = self.hypothesis(arg).next_test
            if test is None:
                return "no further test declared"
            return f"{test.title} (LR+ {test.lr_positive:g}, LR- {test.lr_negative:g}; {self.citation(test.reference)} [{test.confidence}])"
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
        if name == "differential_top":
            return self.named_estimate(self.leading_account())
        if name == "differential_runner_up":  # "alternative" = the best cause other than the card's subject
            return self.named_estimate(self.diff.best_other_than(self.subject()))
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
