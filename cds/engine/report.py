"""The clinical-content report: the knowledge base as Markdown, for clinicians who do not read YAML."""

from __future__ import annotations

from cds.engine.loader import RuleSet


def _ref(rs: RuleSet, ref_id: str | None) -> str:
    if not ref_id:
        return "no reference"
    ref = rs.references.get(ref_id)
    return f"{ref_id} [{ref.confidence}]" if ref else ref_id


def markdown_report(rs: RuleSet) -> str:
    out = [f"# {rs.info.title}", "", f"Version `{rs.version}`. Confidence tags: V verified, S sourced, "
           "R recalled (unchecked), D derived arithmetic.", ""]
    out += ["## Populations", ""]
    for p in rs.populations:
        how = "default" if p.default else f"when `{p.derived}` is derived"
        out.append(f"- **{p.title}** (`{p.id}`, {how})")
    out += ["", "## Hypotheses and priors", ""]
    for h in rs.hypotheses.values():
        out += [f"### {h.title} (`{h.id}`)", "", "| Population | Prior | Confidence | Reference | Reason |", "|---|---|---|---|---|"]
        for prior in h.priors:
            out.append(f"| {prior.population} | {prior.probability:g} | {prior.confidence} | {_ref(rs, prior.reference)} | {prior.reason.strip()} |")
        for t in h.tests:
            out.append(f"\nTest **{t.title}**: LR+ {t.lr_positive:g}, LR- {t.lr_negative:g} [{t.confidence}], {_ref(rs, t.reference)}")
        out.append("")
    out += ["## Rules", "", "| Rule | Status | Effect | Likelihood ratio | Confidence | Reference |", "|---|---|---|---|---|---|"]
    for r in rs.rules.values():
        effects = [(f"evidence for `{e.hypothesis}`" if e.likelihood_ratio > 1 else f"evidence against `{e.hypothesis}`",
                    f"{e.likelihood_ratio:g}", e.confidence, _ref(rs, e.reference)) for e in r.then.evidence]
        if r.then.derive:
            effects.append((f"derives `{r.then.derive.name}`", "", "", ", ".join(_ref(rs, x) for x in r.references)))
        for card in r.then.cards:
            effects.append((f"raises card `{card}`", "", "", ", ".join(_ref(rs, x) for x in r.references)))
        for effect, lr, conf, ref in effects:
            out.append(f"| {r.title} (`{r.id}` v{r.version}) | {r.status} | {effect} | {lr} | {conf} | {ref} |")
    out += ["", "## Cards", ""]
    for c in rs.cards.values():
        cond = c.when.differential
        trigger = []
        if c.when.intent:
            trigger.append("raised by a rule")
        if cond:
            bounds = " and ".join(x for x in (f">= {cond.at_least:g}" if cond.at_least else "", f"< {cond.below:g}" if cond.below else "") if x)
            trigger.append(f"posterior of `{cond.hypothesis}` {bounds}")
        out.append(f"- **{c.summary}** (`{c.id}`, {c.indicator}; services {', '.join(c.services)}; {'; '.join(trigger)})")
    out += ["", "## References", ""]
    for ref in rs.references.values():
        link = ref.doi or ref.pmid or ref.url or ""
        out.append(f"- `{ref.id}` [{ref.confidence}] {ref.citation.strip()} {link}".rstrip())
    return "\n".join(out) + "\n"
