"""``cds rules diff``: what an edit to the rules does to every case, before it ships.

Two rule sets (``before`` and ``after``) evaluate the same inputs; for each input we compare
the cards (added, removed, changed in indicator or text) and the differential (causes whose
rank or band changed), and name the rules responsible: rules that fired on one side only,
and rules whose evidence for the cause differs. The report is Markdown (for a pull request)
or JSON (for tools).

Inputs come from an ``InputSource``: the shipped cases (every rule test of either set, with
its service and reference date) or a population directory of requests / FHIR Bundles
(``population_inputs``; the population screening package can supply its own source with the
same shape). Each side extracts facts with its own terminology, so an edited value set shows
up too.
"""

from __future__ import annotations

import math
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson

from cds.engine.loader import RuleSet, load_ruleset
from cds.engine.paths import case_path
from cds.engine.prepare import facts_from_dicts
from cds.engine.ruletests import DEFAULT_NOW, default_extractor
from cds.engine.runner import LoadedEngine, Outcome
from cds.facts import FactSet

Extractor = Callable[[dict[str, Any], dict[str, Any], datetime], FactSet]


class DiffError(ValueError):
    """A rule set that cannot be compared (it does not load), or a revision git cannot give."""


@dataclass(frozen=True)
class Input:
    """One thing to evaluate: a request (context + prefetch) or inline facts, for one service at one time."""

    id: str
    service: str
    now: datetime
    context: dict[str, Any] = field(default_factory=dict)
    prefetch: dict[str, Any] = field(default_factory=dict)
    facts: tuple[dict[str, Any], ...] | None = None

    def factset(self, extractor: Extractor | None) -> FactSet:
        if self.facts is not None:
            return facts_from_dicts(self.facts)
        if extractor is None:
            raise DiffError("the FHIR fact layer (cds.fhir) is not installed: requests cannot be evaluated")
        return extractor(self.context, self.prefetch, self.now)


InputSource = Callable[[], Iterable[Input]]


def test_inputs(*rulesets: RuleSet) -> list[Input]:
    """Every rule test of the given sets as an input (the later set wins for a shared test id)."""
    inputs: dict[str, Input] = {}
    for ruleset in rulesets:
        for test in ruleset.tests:
            now = datetime.fromisoformat(test.now) if test.now else DEFAULT_NOW
            if test.facts is not None:
                inputs[test.id] = Input(test.id, test.service, now, facts=tuple(test.facts))
                continue
            declaring = ruleset.test_files.get(test.id, ruleset.rules_dir / "tests" / "cases.yaml")
            path = case_path(ruleset.rules_dir, declaring, str(test.case))
            if path is None:
                continue  # reported by the loader (E028)
            request = orjson.loads(path.read_bytes())
            inputs[test.id] = Input(
                test.id, test.service, now, request.get("context") or {}, request.get("prefetch") or {}
            )
    return [inputs[k] for k in sorted(inputs)]


def population_inputs(
    directory: Path, services: list[Any], default_service: str, now: datetime, skipped: list[str] | None = None
) -> Iterator[Input]:
    """CDS Hooks requests or FHIR Bundles under ``directory`` (``*.json``; ``*.ndjson``, one per line).

    A request goes to the service of its hook; a Bundle becomes a request for ``default_service``.
    What is neither is named in ``skipped`` (never dropped silently)."""
    skipped = skipped if skipped is not None else []
    from cds.cli import request_from_bundle  # the CLI's Bundle -> request (one definition)

    by_id = {s.id: s for s in services}
    by_hook: dict[str, str] = {}
    for service in services:
        by_hook.setdefault(service.hook, service.id)
    if default_service not in by_id:
        raise DiffError(f"no service {default_service!r}; known: {', '.join(by_id)}")

    def documents() -> Iterator[tuple[str, Any]]:
        for path in sorted(directory.rglob("*.json")):
            yield str(path.relative_to(directory)), orjson.loads(path.read_bytes())
        for path in sorted(directory.rglob("*.ndjson")):
            for number, line in enumerate(path.read_bytes().splitlines(), 1):
                if line.strip():
                    yield f"{path.relative_to(directory)}:{number}", orjson.loads(line)

    for ident, document in documents():
        if not isinstance(document, dict):
            skipped.append(f"{ident}: not a JSON object")
        elif document.get("resourceType") == "Bundle":
            try:
                request = request_from_bundle(document, by_id[default_service])
            except LookupError as exc:
                skipped.append(f"{ident}: {exc}")
                continue
            yield Input(ident, default_service, now, request["context"], request["prefetch"])
        elif isinstance(document.get("hook"), str) and document["hook"] in by_hook:
            yield Input(
                ident, by_hook[document["hook"]], now, document.get("context") or {}, document.get("prefetch") or {}
            )
        else:
            skipped.append(f"{ident}: neither a CDS Hooks request for a known hook nor a FHIR Bundle")


# ------------------------------------------------------------------------------------------ evaluation
@dataclass
class Result:
    """The outcome of one input under one rule set, reduced to what the diff compares."""

    cards: dict[str, dict[str, Any]] = field(default_factory=dict)  # template -> indicator, summary, detail, rules
    ranking: list[dict[str, Any]] = field(default_factory=list)  # hypothesis, posterior, rank, band
    fired: tuple[str, ...] = ()
    evidence: dict[str, dict[str, float]] = field(default_factory=dict)  # hypothesis -> rule -> likelihood ratio
    error: str | None = None


class Side:
    """One rule set ready to evaluate inputs."""

    def __init__(self, label: str, rules_dir: Path, engine: str = "reference") -> None:
        result = load_ruleset(rules_dir)
        if result.ruleset is None:
            shown = "\n".join(str(d) for d in result.errors[:10])
            raise DiffError(f"{label} rule set ({rules_dir}) does not load:\n{shown}")
        self.label = label
        self.ruleset = result.ruleset
        self.engine = LoadedEngine(self.ruleset, engine)  # type: ignore[arg-type]
        self.extractor = default_extractor(rules_dir, warm=False)

    def close(self) -> None:
        self.engine.close()

    def evaluate(self, item: Input) -> Result:
        from cds.cards.render import render_cards

        try:
            outcome = self.engine.evaluate(item.factset(self.extractor), item.service)
            rendered = render_cards(self.ruleset, outcome, item.context, "org.calciphylaxis-cds.ruleset")
        except Exception as exc:
            return Result(error=f"{type(exc).__name__}: {exc}")
        return _reduce(self.ruleset, outcome, [card for card, _ in rendered])


def _reduce(ruleset: RuleSet, outcome: Outcome, cards: list[Any]) -> Result:
    result = Result(fired=tuple(sorted(set(outcome.rules_fired))))
    version = ruleset.version
    for card in cards:
        topic = getattr(card.source, "topic", None)
        template = topic.code if topic is not None else card.summary
        raised = next((c for c in outcome.cards if c.template == template), None)
        result.cards[template] = {
            "indicator": card.indicator,
            # the served version is in some texts; it differs between the sides by definition
            "summary": card.summary.replace(version, "<ruleset version>"),
            "detail": (card.detail or "").replace(version, "<ruleset version>"),
            "rules": list(raised.rule_ids) if raised else [],
        }
    for rank, hypothesis in enumerate(outcome.differential.hypotheses, 1):
        result.ranking.append(
            {
                "hypothesis": hypothesis.id,
                "posterior": round(hypothesis.posterior, 6),
                "rank": rank,
                "band": getattr(hypothesis, "band", None) or band_of(hypothesis.posterior),
            }
        )
    for item in outcome.evidence:
        result.evidence.setdefault(item.hypothesis, {})[item.rule_id] = item.likelihood_ratio
    return result


# Coarse probability bands for the diff when the differential model gives none of its own.
BANDS = ((0.05, "unlikely"), (0.25, "possible"), (0.75, "likely"), (1.01, "very likely"))


def band_of(posterior: float) -> str:
    if not math.isfinite(posterior):
        return "invalid"
    return next(name for upper, name in BANDS if posterior < upper)


# ------------------------------------------------------------------------------------------ the diff
def compare(before: Result, after: Result) -> dict[str, Any] | None:
    """What changed for one input, or None when nothing did."""
    change: dict[str, Any] = {}
    if before.error or after.error:
        if before.error != after.error:
            change["errors"] = {"before": before.error, "after": after.error}
        return change or None
    added = sorted(set(after.cards) - set(before.cards))
    removed = sorted(set(before.cards) - set(after.cards))
    if added:
        change["cards_added"] = [{"template": t, **_card_brief(after.cards[t])} for t in added]
    if removed:
        change["cards_removed"] = [{"template": t, **_card_brief(before.cards[t])} for t in removed]
    changed = []
    for template in sorted(set(before.cards) & set(after.cards)):
        a, b = before.cards[template], after.cards[template]
        fields = [name for name in ("indicator", "summary", "detail") if a[name] != b[name]]
        if fields:
            changed.append(
                {
                    "template": template,
                    "fields": fields,
                    **{name: {"before": a[name], "after": b[name]} for name in fields if name != "detail"},
                    "rules": sorted(set(a["rules"]) | set(b["rules"])),
                }
            )
    if changed:
        change["cards_changed"] = changed
    fired_added = sorted(set(after.fired) - set(before.fired))
    fired_removed = sorted(set(before.fired) - set(after.fired))
    if fired_added or fired_removed:
        change["rules_fired"] = {"added": fired_added, "removed": fired_removed}
    causes = _causes(before, after)
    if causes:
        change["causes"] = causes
    return change or None


def _card_brief(card: dict[str, Any]) -> dict[str, Any]:
    return {"indicator": card["indicator"], "summary": card["summary"], "rules": card["rules"]}


def _causes(before: Result, after: Result) -> list[dict[str, Any]]:
    rank_before = {h["hypothesis"]: h for h in before.ranking}
    rank_after = {h["hypothesis"]: h for h in after.ranking}
    causes = []
    for hypothesis in sorted(set(rank_before) | set(rank_after)):
        a, b = rank_before.get(hypothesis), rank_after.get(hypothesis)
        if a and b and a["rank"] == b["rank"] and a["band"] == b["band"]:
            continue
        ev_a, ev_b = before.evidence.get(hypothesis, {}), after.evidence.get(hypothesis, {})
        responsible = sorted(r for r in set(ev_a) | set(ev_b) if ev_a.get(r) != ev_b.get(r))
        causes.append(
            {
                "hypothesis": hypothesis,
                "before": {k: a[k] for k in ("rank", "posterior", "band")} if a else None,
                "after": {k: b[k] for k in ("rank", "posterior", "band")} if b else None,
                "rules": responsible,
            }
        )
    return causes


def changed_rules(before: RuleSet, after: RuleSet) -> dict[str, list[str]]:
    """Rule ids added, removed or edited between the two sets (what the author touched)."""
    ids_a, ids_b = set(before.rules), set(after.rules)
    edited = sorted(r for r in ids_a & ids_b if before.rules[r] != after.rules[r])
    return {"added": sorted(ids_b - ids_a), "removed": sorted(ids_a - ids_b), "edited": edited}


@dataclass
class Report:
    before: str
    after: str
    inputs: int
    rules: dict[str, list[str]]
    cases: dict[str, dict[str, Any]]  # input id -> change

    @property
    def changed(self) -> bool:
        return bool(self.cases)

    def as_json(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "inputs": self.inputs,
            "rules": self.rules,
            "changed_inputs": len(self.cases),
            "cases": self.cases,
        }


def diff(before_dir: Path, after_dir: Path, source: InputSource | None = None, engine: str = "reference") -> Report:
    """Evaluate every input under both rule sets and compare (``source`` defaults to both sets' rule tests)."""
    before = Side("before", before_dir, engine)
    try:
        after = Side("after", after_dir, engine)
    except DiffError:
        before.close()
        raise
    try:
        inputs = list(source()) if source else test_inputs(before.ruleset, after.ruleset)
        cases = {}
        for item in inputs:
            change = compare(before.evaluate(item), after.evaluate(item))
            if change:
                cases[item.id] = change
        return Report(
            before.ruleset.version,
            after.ruleset.version,
            len(inputs),
            changed_rules(before.ruleset, after.ruleset),
            cases,
        )
    finally:
        before.close()
        after.close()


# ------------------------------------------------------------------------------------------ git revisions
def checkout_revision(revision: str, rules_dir: Path, into: Path) -> Path:
    """The rules directory (and the case files beside it) as of git ``revision``, extracted under ``into``."""
    rules_dir = rules_dir.resolve()
    try:
        top = subprocess.run(
            ["git", "-C", str(rules_dir), "rev-parse", "--show-toplevel"], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DiffError(f"{rules_dir} is not in a git repository: cannot read revision {revision!r}") from exc
    relative = rules_dir.relative_to(Path(top).resolve())
    paths = [str(relative)]
    # rule tests written before cases moved beside them name them from the repository root
    listed = subprocess.run(
        ["git", "-C", top, "ls-tree", "--name-only", revision], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        raise DiffError(f"git does not know revision {revision!r}: {listed.stderr.strip()}")
    if "fhir_examples" in listed.stdout.split():
        paths.append("fhir_examples")
    archive = subprocess.run(
        ["git", "-C", top, "archive", "--format=tar", revision, "--", *paths], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise DiffError(f"git archive {revision} failed: {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / relative


def temporary_directory() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="cds-rules-diff-")


# ------------------------------------------------------------------------------------------ Markdown
def markdown(report: Report) -> str:
    lines = [f"## Rule outcome diff: {report.before} → {report.after}", ""]
    rules = report.rules
    touched = [
        f"{label}: {', '.join(f'`{r}`' for r in rules[key])}"
        for key, label in (("added", "added"), ("removed", "removed"), ("edited", "edited"))
        if rules[key]
    ]
    lines.append("Rules " + ("; ".join(touched) if touched else "unchanged") + ".")
    lines.append("")
    if not report.cases:
        lines.append(f"No change in the outcome of any of the {report.inputs} case(s).")
        return "\n".join(lines) + "\n"
    lines.append(f"**{len(report.cases)} of {report.inputs} case(s) change.**")
    lines.append("")
    lines.append("| case | cards added | cards removed | cards changed | causes re-ranked or re-banded |")
    lines.append("|---|---|---|---|---|")
    for ident, change in report.cases.items():
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{ident}`",
                    ", ".join(f"{c['template']} ({c['indicator']})" for c in change.get("cards_added", [])) or "",
                    ", ".join(c["template"] for c in change.get("cards_removed", [])) or "",
                    ", ".join(f"{c['template']} ({'/'.join(c['fields'])})" for c in change.get("cards_changed", []))
                    or "",
                    ", ".join(c["hypothesis"] for c in change.get("causes", [])) or "",
                ]
            )
            + " |"
        )
    for ident, change in report.cases.items():
        lines += ["", f"### `{ident}`", ""]
        for card in change.get("cards_added", []):
            lines.append(
                f"- card **added** `{card['template']}` ({card['indicator']}): {card['summary']}"
                f" — rules: {_ids(card['rules'])}"
            )
        for card in change.get("cards_removed", []):
            lines.append(
                f"- card **removed** `{card['template']}` ({card['indicator']}): {card['summary']}"
                f" — rules: {_ids(card['rules'])}"
            )
        for card in change.get("cards_changed", []):
            parts = [
                f"{name}: {card[name]['before']!r} → {card[name]['after']!r}"
                for name in ("indicator", "summary")
                if name in card
            ]
            if "detail" in card["fields"]:
                parts.append("detail text changed")
            lines.append(f"- card **changed** `{card['template']}`: {'; '.join(parts)} — rules: {_ids(card['rules'])}")
        for cause in change.get("causes", []):
            responsible = _ids(cause["rules"]) if cause["rules"] else "none of its own (others moved past it)"
            lines.append(
                f"- cause `{cause['hypothesis']}`: {_rank(cause['before'])} → {_rank(cause['after'])}"
                f" — rules: {responsible}"
            )
        fired = change.get("rules_fired")
        if fired:
            lines.append(f"- rules now firing: {_ids(fired['added'])}; no longer firing: {_ids(fired['removed'])}")
        if "errors" in change:
            lines.append(
                f"- evaluation error: before {change['errors']['before']!r}, after {change['errors']['after']!r}"
            )
    return "\n".join(lines) + "\n"


def _ids(ids: list[str]) -> str:
    return ", ".join(f"`{i}`" for i in ids) or "none"


def _rank(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "absent"
    return f"#{entry['rank']} {entry['band']} ({entry['posterior']:.1%})"


def now_utc() -> datetime:
    return datetime.now(UTC)
