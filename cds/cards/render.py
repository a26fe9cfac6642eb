"""Card templates + differential -> CDS Hooks cards (``cds.hooks.models.Card``).

Every placeholder was checked when the rules loaded (``cds.engine.loader``),
so rendering cannot meet an unknown one; a value that is missing in this
evaluation renders as "not recorded".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from cds.cards.recognition import has_note, order_note, rule_note
from cds.cards.wording import DISCLAIMER, NUMBER_NOTE, band, fit_summary, percent, short_name
from cds.engine.differential import Differential, EvidenceItem, HypothesisResult
from cds.engine.loader import PLACEHOLDER, RuleSet
from cds.engine.model import CardTemplate, SuggestionTemplate
from cds.engine.runner import Outcome, RaisedCard
from cds.hooks.models import Action, Card, Coding, Link, OverrideReason, Source, Suggestion

TEMPLATE_SYSTEM = "https://calciphylaxis-cds.org/fhir/CodeSystem/card-template"
DIFFERENTIAL_PLACEHOLDERS = {
    "posterior",
    "prior",
    "evidence_for",
    "evidence_against",
    "next_test",
    "differential",
    "differential_evidence",
    "differential_top",
    "differential_runner_up",
    "post_test",
    "band",
    "alternative",
    "time_critical",
    "time_critical_names",
    "explainers",
}
# The card budget (issue 15): a card is read in ten seconds; everything else is on its page.
FINDINGS_FOR_LIMIT = 3
FINDINGS_AGAINST_LIMIT = 2
FINDING_TITLE_LIMIT = 64  # one short line per finding on the card
NOTED_TITLE_LIMIT = 50  # a finding that also says how it was recognised (text) is cut shorter
DETAIL_BUDGET = 600  # issue 15: a card's detail is about 600 characters; recognition notes never push it past
# {differential_evidence} lists the hypotheses with evidence, highest posterior first, at most this many.
EVIDENCE_LIST_LIMIT = 3
DIFFERENTIAL_LINE_LIMIT = 90
# Where offline tools (cds evaluate, rule tests) point the page links; the app uses its own address.
DEFAULT_PAGES_BASE_URL = "http://localhost:8080"
PAGE_LINK_LABEL = "Evidence, sources and how to read this card"
# A placeholder with nothing to say about this patient removes its whole line (no generic advice).
_DROP_LINE = "\x00drop\x00"
# The drugs the treatment advice says to review, by value set: shown only when the patient takes one.
MODIFIABLE_DRUGS = {
    "vitamin-k-antagonist": "vitamin K antagonist (warfarin)",
    "calcium-based-binder": "calcium-based phosphate binder",
    "active-vitamin-d": "active vitamin D",
}


def page_url(base_url: str, version: str, kind: str, page_id: str) -> str:
    """The page behind a card or a cause, versioned with the rule set (cds.pages serves it)."""
    return f"{base_url.rstrip('/')}/pages/{quote(version, safe='')}/{kind}/{page_id}.html"


def strength(likelihood_ratio: float) -> str:
    """A likelihood ratio in words (for or against), so that a card needs no numbers per finding."""
    size = likelihood_ratio if likelihood_ratio >= 1 else 1 / likelihood_ratio
    return "strong" if size >= 10 else "moderate" if size >= 3 else "weak"


def plain_title(title: str, limit: int = FINDING_TITLE_LIMIT) -> str:
    """A rule title without its closing parenthetical (time anchors, qualifiers): the full title is on the page."""
    if title.endswith(")") and " (" in title:
        title = title[: title.rindex(" (")]
    if len(title) <= limit:
        return title
    return title[: limit - 1].rsplit(" ", 1)[0] + "…"  # whole words only


def top_findings(items: tuple[EvidenceItem, ...], limit: int) -> list[EvidenceItem]:
    """The findings that move the estimate most, largest likelihood ratio (either way) first."""
    return sorted(items, key=lambda e: (-abs(math.log(e.likelihood_ratio)), e.rule_title))[:limit]


FINDING_BULLET = re.compile(r"^- .+ \((?:strong|moderate|weak)(?:; .*)?\)$")
WEAKER_BULLET = re.compile(r"^- (\d+) weaker \(on the page\)$")


def collapse_weakest_finding(detail: str) -> str | None:
    """The detail with the last finding bullet of its longest finding list moved to the page ("- N weaker (on
    the page)"), or None when every list already shows a single finding. Only the renderer's own finding lists
    (``_Context._finding_block``) are touched: never advice, never the closing."""
    lines = detail.split("\n")
    lists: list[list[int]] = []  # runs of consecutive finding bullets, by line index
    for i, line in enumerate(lines):
        if FINDING_BULLET.match(line):
            if lists and lists[-1][-1] == i - 1:
                lists[-1].append(i)
            else:
                lists.append([i])
    candidates = [run for run in lists if len(run) > 1]
    if not candidates:
        return None
    run = max(candidates, key=len)
    last = run[-1]
    after = lines[last + 1] if last + 1 < len(lines) else ""
    weaker = WEAKER_BULLET.match(after)
    if weaker:
        lines[last + 1] = f"- {int(weaker.group(1)) + 1} weaker (on the page)"
        del lines[last]
    else:
        lines[last] = "- 1 weaker (on the page)"
    return "\n".join(lines)


class _Context:
    def __init__(
        self, rs: RuleSet, outcome: Outcome, raised: RaisedCard, patient_id: str | None, allowance: int | None = None
    ) -> None:
        self.rs, self.outcome, self.raised, self.patient_id = rs, outcome, raised, patient_id
        # Characters the recognition notes may add to the detail (None: no notes); spent as they are shown.
        self.allowance = allowance
        self.diff: Differential = outcome.differential

    def name(self, result: HypothesisResult) -> str:
        declared = self.rs.hypotheses.get(result.id)
        return short_name(result.title, getattr(declared, "short_title", None))

    @staticmethod
    def band_of(result: HypothesisResult) -> str:
        # The differential may give an interval (low, high) beside the point; shown when it does.
        return str(band(result.posterior, getattr(result, "low", None), getattr(result, "high", None)))

    def finding_lines(self, items: tuple[EvidenceItem, ...], limit: int) -> str:
        if not items:
            return "- none recorded"
        plain = self._finding_block(items, top_findings(items, limit), notes=False)
        if self.allowance is None:
            return plain
        # How a finding was recognised (text, not code) shows on its line within the card budget:
        # the weakest findings move to the page to make room.
        for shown in range(min(limit, len(items)), 0, -1):
            block = self._finding_block(items, top_findings(items, shown), notes=True)
            if len(block) - len(plain) <= self.allowance or shown == 1:
                self.allowance -= len(block) - len(plain)
                return block
        return plain

    def _finding_block(self, items: tuple[EvidenceItem, ...], shown: list[EvidenceItem], notes: bool) -> str:
        lines = []
        for e in shown:
            note = rule_note(self.outcome, e.rule_id) if notes else None
            if note is None:
                lines.append(f"- {plain_title(e.rule_title)} ({strength(e.likelihood_ratio)})")
            else:
                lines.append(
                    f"- {plain_title(e.rule_title, NOTED_TITLE_LIMIT)} ({strength(e.likelihood_ratio)}; {note})"
                )
        if len(items) > len(shown):
            lines.append(f"- {len(items) - len(shown)} weaker (on the page)")
        return "\n".join(lines)

    def subject(self) -> str | None:
        """The hypothesis a card is about: its differential condition's, else the leading cause."""
        condition = self.rs.cards[self.raised.template].when.differential
        if condition is not None:
            return condition.hypothesis
        top = self.diff.top
        return top.id if top else None

    def estimate(self, h: HypothesisResult) -> str:
        """Band word, point and interval, from the one wording function (cds.cards.wording)."""
        return self.band_of(h)

    def named_estimate(self, h: HypothesisResult | None) -> str:
        return f"{self.name(h)}, {self.estimate(h)}" if h else "none"

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
        return "; ".join(f"{self.name(h)} ({self.estimate(h)})" for h in urgent)

    def explainers(self) -> str:
        """Explainers that took up findings: they explain part of the picture and are not rival causes."""
        lines = [
            f"{self.name(h)} ({self.estimate(h)}) explains: {', '.join(self.rs.rules[r].title for r in h.took)}"
            for h in self.diff.explainers
            if h.took
        ]
        return "; ".join(lines) if lines else "none"

    def hypothesis(self, hid: str) -> HypothesisResult:
        result = self.diff.get(hid)
        assert result is not None  # checked at load time
        return result

    def differential_evidence(self) -> str:
        """The leading causes that have evidence, one line each with the finding that weighs most."""
        ranked = [h for h in self.diff.hypotheses if h.evidence_for or h.evidence_against][:EVIDENCE_LIST_LIMIT]
        lines = []
        for rank, h in enumerate(ranked, start=1):
            line = f"{rank}. **{self.name(h)}**, {self.band_of(h)}"
            lead = top_findings(h.evidence_for, 1)
            if lead and len(line) + len(lead[0].rule_title) <= DIFFERENTIAL_LINE_LIMIT:
                line = f"{line}: {lead[0].rule_title}"  # the finding that weighs most, when it fits one line
            lines.append(line)
        # Explainers (renal-failure clearance, ...) account for findings without competing with the causes.
        explaining = [self.name(h) for h in self.diff.explainers if h.took]
        if explaining:
            lines.append(f"Explain part of the picture, not rivals: {'; '.join(explaining)}")
        return "\n".join(lines) if lines else "- no imaging or clinical evidence recorded"

    def modifiable_drugs(self) -> str:
        """The patient's own active drugs that the advice names; the line goes when there are none."""
        present = {
            fact.attrs.get("drug_class")
            for fact in self.outcome.facts
            if fact.kind == "medication" and fact.attrs.get("status") in ("active", "on-hold")
        }
        names = [text for drug, text in MODIFIABLE_DRUGS.items() if drug in present]
        if not names:
            return _DROP_LINE
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

    def post_test(self, hid: str) -> str:
        """What the next test could change: the probability after a positive and after a negative result."""
        result = self.hypothesis(hid)
        test = result.next_test
        if test is None:
            return "no further test declared"
        odds = result.posterior / (1 - result.posterior) if result.posterior < 1 else float("inf")

        def after(lr: float) -> str:
            return percent(1.0) if odds == float("inf") else percent(odds * lr / (1 + odds * lr))

        # The likelihood ratios behind these figures are on the cause's page (card budget).
        text = (
            f"{plain_title(test.title)}: {after(test.lr_positive)} if positive, {after(test.lr_negative)} if negative"
        )
        # A negative result that leaves the cause at or above the card's own threshold cannot rule it out.
        condition = self.rs.cards[self.raised.template].when.differential
        threshold = condition.at_least if condition is not None and condition.hypothesis == hid else None
        negative = 1.0 if odds == float("inf") else odds * test.lr_negative / (1 + odds * test.lr_negative)
        if threshold is not None and negative >= threshold:
            return f"{text} (cannot rule it out)"
        return text

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
        """The text of one placeholder; the loader rejects unknown names and a missing hypothesis."""
        about_cause = self._cause_values(arg or "")
        if name in about_cause:
            return about_cause[name]()
        return self._card_values(arg)[name]()

    def _cause_values(self, hid: str) -> dict[str, Callable[[], str]]:
        """Placeholders about one hypothesis, ``{name:<hypothesis>}``."""
        return {
            "posterior": lambda: self.band_of(self.hypothesis(hid)),
            "band": lambda: band(self.hypothesis(hid).posterior).word,
            "prior": lambda: percent(self.hypothesis(hid).prior),
            "hypothesis": lambda: short_name(
                self.rs.hypotheses[hid].title, getattr(self.rs.hypotheses[hid], "short_title", None)
            ),
            "evidence_for": lambda: self.finding_lines(self.hypothesis(hid).evidence_for, FINDINGS_FOR_LIMIT),
            "evidence_against": lambda: self.finding_lines(
                self.hypothesis(hid).evidence_against, FINDINGS_AGAINST_LIMIT
            ),
            "next_test": lambda: self.next_test_title(hid),
            "post_test": lambda: self.post_test(hid),
        }

    def _card_values(self, arg: str | None) -> dict[str, Callable[[], str]]:
        """Placeholders about the card, the differential as a whole or the patient."""
        return {
            "alternative": lambda: self.named_estimate(self.diff.best_other_than(arg)),
            "time_critical": self.time_critical,
            "time_critical_names": lambda: "; ".join(self.name(h) for h in self.diff.time_critical) or "none",
            "explainers": self.explainers,
            "differential": lambda: _DROP_LINE,  # the full table is on the page behind the card
            "population": lambda: self.diff.population_title,
            "patient_id": lambda: self.patient_id or "unknown",
            "ruleset_version": lambda: self.rs.version,
            "matched": lambda: self.matched(arg or ""),
            "matched_id": lambda: self.matched(arg or "").rsplit("/", 1)[-1],
            "differential_evidence": self.differential_evidence,
            "differential_top": lambda: self.named_estimate(self.leading_account()),
            # "alternative" = the best cause other than the card's subject
            "differential_runner_up": lambda: self.named_estimate(self.diff.best_other_than(self.subject())),
            "lesion_sites": self.lesion_sites,
            "modifiable_drugs": self.modifiable_drugs,
        }

    def next_test_title(self, hid: str) -> str:
        test = self.hypothesis(hid).next_test
        return test.title if test is not None else "no further test declared"

    def fill(self, text: str) -> str:
        filled = PLACEHOLDER.sub(lambda m: self.value(m.group(1), m.group(2)), text)
        if _DROP_LINE in filled:
            filled = "\n".join(line for line in filled.split("\n") if _DROP_LINE not in line)
        return filled

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


def subject_hypothesis(template: CardTemplate) -> str | None:
    """The cause a card is about: the one its condition or its {posterior:...} names."""
    if template.when.differential is not None:
        return template.when.differential.hypothesis
    for m in PLACEHOLDER.finditer(template.summary + (template.detail or "")):
        if m.group(1) == "posterior":
            return m.group(2)
    return None


def snooze_state(outcome: Outcome, raised: RaisedCard, template: CardTemplate) -> dict[str, Any]:
    """What a later override is compared with: the band of the card's cause and the findings behind it."""
    subject = subject_hypothesis(template)
    result = outcome.differential.get(subject) if subject else None
    if result is None:
        return {"band": None, "findings": sorted(set(raised.rule_ids))}
    return {
        "band": band(result.posterior).word,
        "findings": sorted({e.rule_id for e in result.evidence_for}),
    }


def _detail(
    rs: RuleSet, outcome: Outcome, raised: RaisedCard, patient_id: str | None, template: CardTemplate
) -> tuple[str, _Context]:
    """The filled detail and its closing, with how text-recognised findings and orders were recognised
    (ADR 0005) as far as the card budget allows."""
    ctx = _Context(rs, outcome, raised, patient_id)
    detail = _closed(ctx.fill(template.detail).strip() if template.detail else "", template)
    if not any(has_note(f) for f in outcome.facts):
        return detail, ctx
    note = order_note(outcome, raised)
    added = len(note) + 2 if note else 0
    ctx = _Context(rs, outcome, raised, patient_id, allowance=max(0, DETAIL_BUDGET - len(detail) - added))
    body = ctx.fill(template.detail).strip() if template.detail else ""
    if note is not None:
        body = f"{body}\n\n{note}" if body else note
    return _closed(body, template), ctx


def _closed(detail: str, template: CardTemplate) -> str:
    # One sentence on what the number means (cards that show one), then one disclaimer.
    closing = f"{NUMBER_NOTE} {DISCLAIMER}" if _uses_differential(template) else DISCLAIMER
    if DISCLAIMER not in " ".join(detail.split()):
        detail = f"{detail}\n\n_{closing}_" if detail else f"_{closing}_"
    return detail


def recommended(suggestion: SuggestionTemplate, outcome: Outcome, template: CardTemplate) -> bool:
    """Recommended as declared, and while the card's cause is below ``recommended_below`` when one is declared
    (at a high estimate a bone scan can no longer rule the cause out: it is offered, not recommended)."""
    if not suggestion.recommended:
        return False
    subject = subject_hypothesis(template)
    result = outcome.differential.get(subject) if subject else None
    return suggestion.recommended_below is None or result is None or result.posterior < suggestion.recommended_below


def render_card(
    rs: RuleSet,
    outcome: Outcome,
    raised: RaisedCard,
    patient_id: str | None,
    extension_key: str,
    pages_base_url: str = DEFAULT_PAGES_BASE_URL,
) -> Card:
    template = rs.cards[raised.template]
    detail, ctx = _detail(rs, outcome, raised, patient_id, template)
    suggestions = [
        Suggestion(
            label=ctx.fill(s.label),
            isRecommended=True if recommended(s, outcome, template) else None,
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
    page = page_url(pages_base_url, rs.version, "cards", template.id)
    links = [Link(label=link.label, url=ctx.fill(link.url), type=link.type) for link in template.links]
    links.append(Link(label=PAGE_LINK_LABEL, url=page, type="absolute"))
    return Card(
        summary=fit_summary(ctx.fill(template.summary)),
        detail=detail,
        indicator=template.indicator,
        source=Source(
            label=template.source.label,
            url=template.source.url or page,
            topic=Coding(system=TEMPLATE_SYSTEM, code=template.id, display=template.source.label),
        ),
        suggestions=suggestions or None,
        selectionBehavior=template.selection_behavior if suggestions else None,
        overrideReasons=[
            OverrideReason(system=o.system, code=o.code, display=o.display) for o in template.override_reasons
        ]
        or None,
        links=links,
        extension={
            extension_key: {
                "version": rs.version,
                "template": template.id,
                "rules": list(raised.rule_ids),
                **snooze_state(outcome, raised, template),
            }
        },
    )


def render_cards(
    rs: RuleSet,
    outcome: Outcome,
    context: Mapping[str, Any],
    extension_key: str,
    pages_base_url: str = DEFAULT_PAGES_BASE_URL,
) -> list[tuple[Card, tuple[str, ...]]]:
    patient_id = context.get("patientId") if isinstance(context.get("patientId"), str) else None
    return [
        (render_card(rs, outcome, raised, patient_id, extension_key, pages_base_url), raised.rule_ids)
        for raised in outcome.cards
    ]
