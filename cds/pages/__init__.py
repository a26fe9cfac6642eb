"""The pages behind the cards: one per card family and one per cause, generated from ``rules/``.

A card carries only what a clinician reads in ten seconds; its ``source.url`` and its
``links`` entry (type ``absolute``) open the page that explains it: what the card means,
the evidence table (finding, likelihood ratio with its interval, source, confidence in
words), populations and priors, how to read the band, known limits and full citations.

Pages are built from the rule set alone, never from a request, so they carry no patient
data, need no authentication and can be cached for as long as the rule-set version in
their URL is served (``cds.app`` sets the cache headers). Plain HTML and CSS (Jinja2
templates in ``templates/``), readable on a phone and in an EHR's embedded browser; the
evidence plot is inline SVG drawn here, so a page needs nothing but itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from cds.cards.wording import BANDS, DISCLAIMER, DISPLAY_CEILING, JUDGEMENT_LABEL, NUMBER_NOTE, is_internal, percent
from cds.engine.differential import judgement_range
from cds.engine.loader import PLACEHOLDER, RuleSet, evidence_interval
from cds.engine.model import CardTemplate, Evidence, EvidenceGroup, Reference, SuggestionTemplate

TEMPLATES = Path(__file__).resolve().parent / "templates"
CONFIDENCE_WORDS = {
    "V": "checked against the source",
    "S": "taken from a secondary summary of the source",
    "R": "recalled, not yet checked against a source",
    "D": "calculated from figures in the source",
}
# Phrases of the rule files that point at the project's own notes; pages drop them (never cite them).
_INTERNAL_PARENTHESES = re.compile(r"\s*\((?:[^()]*?(?:sheet\s*§|knowledge sheet|\[[DRVS]\])[^()]*)\)", re.IGNORECASE)
_TAGS = re.compile(r"\s*\[(?:D|R|V|S|brief)\]")


def plain(text: str | None) -> str | None:
    """Rule-file prose for a clinician: without pointers to internal notes or confidence tags.
    None when what is left still names an internal document."""
    if not text:
        return None
    cleaned = _TAGS.sub("", _INTERNAL_PARENTHESES.sub("", " ".join(text.split())))
    return None if is_internal(cleaned) else cleaned


@dataclass(frozen=True)
class Citation:
    label: str
    links: tuple[tuple[str, str], ...]  # (text, url)
    confidence: str


@dataclass(frozen=True)
class EvidenceRow:
    finding: str
    likelihood_ratio: float
    low: float | None
    high: float | None
    direction: str  # "for" | "against"
    citation: Citation
    note: str | None
    rule_id: str = ""
    interval_source: str = ""


# How an evidence group's members make its one ratio (rules/hypotheses.yaml, ``combine``), in words.
COMBINE_WORDS = {
    "independent": "each finding counts: their ratios multiply",
    "max": "counts once: the strongest finding for and the strongest against",
    "capped-product": "the ratios multiply, but together count at most the ceiling (and at least its inverse)",
    "fallback": "counts only when no other group weighs evidence for this cause",
}


@dataclass(frozen=True)
class GroupSection:
    """One evidence group as it bears on one cause: its members' rows and the most it can weigh."""

    title: str
    combine: str  # in words
    ceiling: str
    reason: str | None
    rows: tuple[EvidenceRow, ...]


def group_ceiling(group: EvidenceGroup | None, rows: list[EvidenceRow]) -> str:
    """The most (and least) the group can contribute to this cause's odds, in words."""
    strongest = max((r.likelihood_ratio for r in rows), default=1.0)
    weakest = min((r.likelihood_ratio for r in rows), default=1.0)
    if group is None or group.combine == "independent":
        return "none: each finding multiplies"
    if group.combine == "capped-product" and group.max_likelihood_ratio is not None:
        cap = group.max_likelihood_ratio
        return f"{cap:g} for, 1/{cap:g} against"
    parts = []
    if strongest > 1:
        parts.append(f"{strongest:g} for")
    if weakest < 1:
        parts.append(f"{weakest:g} against")
    return ", ".join(parts) or "1"


def grouped(rows: list[EvidenceRow], groups: Mapping[str, EvidenceGroup]) -> list[GroupSection]:
    """A cause's evidence rows by evidence group, the group with the strongest finding first."""
    group_of = {member: group for group in groups.values() for member in group.members}
    by_group: dict[str, list[EvidenceRow]] = {}
    for row in rows:
        group = group_of.get(row.rule_id)
        by_group.setdefault(group.id if group else "", []).append(row)
    sections = []
    for gid, members in by_group.items():
        group = groups.get(gid)
        sections.append(
            GroupSection(
                title=group.title if group else "Findings outside every group",
                combine=COMBINE_WORDS[group.combine if group else "independent"],
                ceiling=group_ceiling(group, members),
                reason=plain(group.reason) if group else None,
                rows=tuple(members),
            )
        )
    sections.sort(key=lambda g: (-max(abs(math.log(r.likelihood_ratio)) for r in g.rows), g.title))
    return sections


def citation(ref: Reference | None) -> Citation:
    """A full citation with its DOI, PMID and web links; the project's own notes become 'expert judgement'."""
    if ref is None or is_internal(ref.citation):
        return Citation(JUDGEMENT_LABEL, (), CONFIDENCE_WORDS["R"])
    links = []
    if ref.doi:
        links.append((f"doi:{ref.doi}", f"https://doi.org/{ref.doi}"))
    if ref.pmid:
        links.append((f"PMID {ref.pmid}", f"https://pubmed.ncbi.nlm.nih.gov/{ref.pmid}/"))
    if ref.url:
        links.append(("web page", ref.url))
    return Citation(" ".join(ref.citation.split()), tuple(links), CONFIDENCE_WORDS[ref.confidence])


def interval_of(evidence: Evidence) -> tuple[float, float, str]:
    """The likelihood ratio's interval and where it comes from: the source's 2x2 counts (95% interval),
    a range the rule states, or else the model's judgement range (ADR 0004), as the differential uses it."""
    low, high = evidence_interval(evidence)
    if low is not None and high is not None:
        return low, high, ("95% interval from the source's counts" if evidence.counts is not None else "stated range")
    low, high = judgement_range(float(evidence.likelihood_ratio))
    return low, high, "judgement range (no interval in the source)"


# --------------------------------------------------------------------------- the plot

PLOT_MIN, PLOT_MAX = 0.05, 100.0
PLOT_WIDTH, LABEL_WIDTH, ROW_HEIGHT = 640, 0, 22


def evidence_plot(rows: list[EvidenceRow]) -> Markup:
    """Likelihood ratios (dots) with their intervals (bars) on a log scale, as inline SVG.

    Drawn here rather than by a plotting library so that a page is one small self-contained
    file that an EHR's embedded browser shows without scripts (ADR 0007)."""
    if not rows:
        return Markup("")
    left, right, top = 20, PLOT_WIDTH - 20, 30
    height = top + ROW_HEIGHT * len(rows) + 20

    def x(value: float) -> float:
        clamped = min(max(value, PLOT_MIN), PLOT_MAX)
        share = (math.log10(clamped) - math.log10(PLOT_MIN)) / (math.log10(PLOT_MAX) - math.log10(PLOT_MIN))
        return round(left + share * (right - left), 1)

    parts = [
        (
            f'<svg class="plot" role="img" viewBox="0 0 {PLOT_WIDTH} {height}" preserveAspectRatio="xMinYMin meet" '
            'aria-label="Likelihood ratio of each finding on a log scale; 1 means no effect">'
        ),
        f'<line class="axis" x1="{x(1)}" y1="{top - 8}" x2="{x(1)}" y2="{height - 16}"/>',
    ]
    for tick in (0.1, 0.5, 1, 2, 5, 10, 50):
        parts.append(f'<text class="tick" x="{x(tick)}" y="{top - 12}" text-anchor="middle">{tick:g}</text>')
        parts.append(f'<line class="grid" x1="{x(tick)}" y1="{top - 6}" x2="{x(tick)}" y2="{height - 16}"/>')
    for i, row in enumerate(rows):
        y = top + ROW_HEIGHT * i + ROW_HEIGHT / 2
        css = "for" if row.direction == "for" else "against"
        if row.low is not None and row.high is not None:
            parts.append(f'<line class="ci {css}" x1="{x(row.low)}" y1="{y}" x2="{x(row.high)}" y2="{y}"/>')
        parts.append(
            f'<circle class="lr {css}" cx="{x(row.likelihood_ratio)}" cy="{y}" r="5">'
            f"<title>{Markup.escape(row.finding)}: {row.likelihood_ratio:g}</title></circle>"
        )
        parts.append(f'<text class="num" x="{right}" y="{y + 4}" text-anchor="end">{i + 1}</text>')
    parts.append(
        f'<text class="tick" x="{left}" y="{height - 2}">against</text>'
        f'<text class="tick" x="{right}" y="{height - 2}" text-anchor="end">for</text></svg>'
    )
    return Markup("".join(parts))


# --------------------------------------------------------------------------- the pages


class Pages:
    """The pages of one rule-set version, rendered on first use and kept (they never change)."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.rs = ruleset
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html", "j2"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._cache: dict[tuple[str, str], str] = {}

    @property
    def version(self) -> str:
        return self.rs.version

    @cached_property
    def evidence_by_cause(self) -> dict[str, list[EvidenceRow]]:
        rows: dict[str, list[EvidenceRow]] = {h: [] for h in self.rs.hypotheses}
        for rule in self.rs.active_rules:
            for item in rule.then.evidence:
                low, high, interval_source = interval_of(item)
                rows.setdefault(item.hypothesis, []).append(
                    EvidenceRow(
                        finding=rule.title,
                        likelihood_ratio=item.likelihood_ratio,
                        low=low,
                        high=high,
                        direction="for" if item.likelihood_ratio > 1 else "against",
                        citation=citation(self.rs.references.get(item.reference or "")),
                        note=plain(item.note),
                        rule_id=rule.id,
                        interval_source=interval_source,
                    )
                )
        for items in rows.values():
            items.sort(key=lambda r: (-r.likelihood_ratio, r.finding))
        return rows

    def kinds(self) -> dict[str, list[str]]:
        return {"cards": sorted(self.rs.cards), "causes": sorted(self.rs.hypotheses)}

    def render(self, kind: str, page_id: str) -> str | None:
        """The page's HTML, or None when there is no such page."""
        key = (kind, page_id)
        if key not in self._cache:
            if kind == "cards" and page_id in self.rs.cards:
                html = self._card_page(self.rs.cards[page_id])
            elif kind == "causes" and page_id in self.rs.hypotheses:
                html = self._cause_page(page_id)
            elif kind == "" and page_id == "index":
                html = self._render("index.html.j2", title="Calciphylaxis CDS: what the cards mean", pages=self.index())
            else:
                return None
            self._cache[key] = html
        return self._cache[key]

    def index(self) -> dict[str, list[tuple[str, str]]]:
        return {
            "cards": [(cid, card_title(self.rs.cards[cid])) for cid in sorted(self.rs.cards)],
            "causes": [(hid, self.rs.hypotheses[hid].title) for hid in sorted(self.rs.hypotheses)],
        }

    def _render(self, template: str, **values: Any) -> str:
        return self.env.get_template(template).render(
            version=self.version,
            bands=band_table(),
            number_note=NUMBER_NOTE,
            disclaimer=DISCLAIMER,
            **values,
        )

    def _cause_section(self, hid: str) -> dict[str, Any]:
        hyp = self.rs.hypotheses[hid]
        # The table and the plot show the evidence by group (how related findings combine, ADR 0004), the
        # group with the strongest finding first; the plot's row numbers are the table's.
        groups = grouped(self.evidence_by_cause.get(hid, []), self.rs.evidence_groups)
        rows = [row for group in groups for row in group.rows]
        populations = {p.id: p.title for p in self.rs.populations}
        return {
            "id": hid,
            "title": hyp.title,
            "description": plain(hyp.description),
            "priors": [
                {
                    "population": populations.get(p.population, p.population),
                    "probability": percent(p.probability),
                    "reason": plain(p.reason),
                    "citation": citation(self.rs.references.get(p.reference or "")),
                }
                for p in hyp.priors
            ],
            "rows": rows,
            "groups": groups,
            "plot": evidence_plot(rows),
            "tests": [
                {
                    "title": t.title,
                    "lr_positive": t.lr_positive,
                    "lr_negative": t.lr_negative,
                    "note": plain(t.note),
                    "citation": citation(self.rs.references.get(t.reference or "")),
                }
                for t in hyp.tests
            ],
        }

    def _cause_page(self, hid: str) -> str:
        cards = [(cid, card_title(card)) for cid, card in sorted(self.rs.cards.items()) if card_subject(card) == hid]
        return self._render(
            "cause.html.j2", title=self.rs.hypotheses[hid].title, cause=self._cause_section(hid), cards=cards
        )

    def _card_page(self, card: CardTemplate) -> str:
        subject = card_subject(card)
        condition = card.when.differential
        threshold = None
        if condition is not None:
            words = []
            if condition.at_least is not None:
                words.append(f"at least {percent(condition.at_least)}")
            if condition.below is not None:
                words.append(f"below {percent(condition.below)}")
            threshold = {
                "cause": self.rs.hypotheses[condition.hypothesis].title,
                "words": " and ".join(words),
                "reason": plain(condition.reason),
            }
        return self._render(
            "card.html.j2",
            title=card_title(card),
            card=card,
            about=plain(card.about),
            page_detail=page_markdown(card.page_detail),
            threshold=threshold,
            cause=self._cause_section(subject) if subject else None,
            references=[citation(self.rs.references.get(r)) for r in card.references],
            suggestions=[suggestion_words(s) for s in card.suggestions if "{" not in s.label],
            override_reasons=card.override_reasons,
        )


def suggestion_words(suggestion: SuggestionTemplate) -> str:
    """A suggestion's label and when the card recommends it."""
    if not suggestion.recommended:
        return suggestion.label
    if suggestion.recommended_below is None:
        return f"{suggestion.label} (recommended)"
    return (
        f"{suggestion.label} (recommended while the estimate is below {percent(suggestion.recommended_below)}; "
        "above it a negative result would not rule the cause out, so it is offered but not recommended)"
    )


def page_markdown(text: str | None) -> Markup | None:
    """A card's page-only Markdown (``page_detail``) as HTML; raw HTML in the rule file is not passed through."""
    if not text:
        return None
    from markdown_it import MarkdownIt

    return Markup(MarkdownIt("commonmark", {"html": False}).render(text))


def card_subject(card: CardTemplate) -> str | None:
    from cds.cards.render import subject_hypothesis

    return subject_hypothesis(card)


def card_title(card: CardTemplate) -> str:
    """The card's summary as a heading, its patient-specific parts left out."""
    return "About the card: " + PLACEHOLDER.sub("…", card.summary)


def band_table() -> list[tuple[str, str]]:
    """The band words with the ranges they stand for, as the pages explain them."""
    rows, lower = [], 0.0
    for upper, word in BANDS:
        if math.isinf(upper):
            rows.append((word, f"{lower * 100:.0f}% or more (never shown above {DISPLAY_CEILING * 100:.0f}%)"))
        else:
            rows.append((word, f"{lower * 100:.0f}% to under {upper * 100:.0f}%"))
        lower = upper
    return rows


def card_preview(pages: Pages, card: dict[str, Any], width: int) -> str:
    """A card as a client draws it (its Markdown rendered as CommonMark with tables, like the
    CDS Hooks sandbox's react-markdown), with the pages' stylesheet, at ``width`` CSS pixels.

    It contains the card's own text, so it is a check for tests and authors, never a served page."""
    from markdown_it import MarkdownIt

    markdown = MarkdownIt("commonmark").enable("table")
    return pages._render(
        "card_preview.html.j2",
        title=card["summary"],
        preview=True,
        indicator=card["indicator"],
        summary=card["summary"],
        detail_html=Markup(markdown.render(card.get("detail", ""))),
        source_url=card["source"].get("url", "#"),
        source_label=card["source"]["label"],
        width=width,
    )
