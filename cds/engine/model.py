"""The rule language: pydantic models of the YAML files under ``rules/``.

Every rule-language file has the same top-level shape (``RuleFile``): any of
``ruleset``, ``references``, ``populations``, ``hypotheses``, ``rules``,
``cards`` and ``tests``. The layout is a convention, not a requirement:
``rules/references.yaml``, ``rules/hypotheses.yaml``, ``rules/rules/*.yaml``,
``rules/cards.yaml`` and ``rules/tests/*.yaml``. The JSON Schema exported from
``RuleFile`` is checked in as ``rules/schema.json`` for editors.

The models check shape only. Everything that needs the whole rule set (ids
defined elsewhere, fact attributes, placeholders) is checked by
``cds.engine.loader`` so the message can name the file, line and rule.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]*$", min_length=1, max_length=80)]
Text = Annotated[str, Field(min_length=1)]
Number = Annotated[float, Field(strict=True)]
Literal_ = StrictBool | StrictInt | StrictFloat | StrictStr
# The confidence tag of the knowledge sheet: verified, sourced, recalled, derived arithmetic.
Confidence = Literal["V", "S", "R", "D"]
Probability = Annotated[float, Field(strict=True, gt=0, lt=1)]

PATTERN_KINDS: dict[str, str] = {  # YAML key -> fact kind of cds/facts.py
    "patient": "patient",
    "condition": "condition",
    "lab": "lab",
    "medication": "medication",
    "procedure": "procedure",
    "finding": "finding",
    "draft-order": "draft-order",
    "derived": "derived",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RulesetInfo(Strict):
    """Declared once, in ``rules/ruleset.yaml``."""

    version: Text = Field(description="Version declared by the authors; the served version adds a content hash.")
    title: Text


class Reference(Strict):
    id: Id
    citation: Text
    doi: Text | None = None
    pmid: Text | None = None
    url: Text | None = None
    confidence: Confidence = Field(description="V verified, S sourced, R recalled (unchecked), D derived arithmetic")
    note: Text | None = None


class Population(Strict):
    """A population whose priors apply. The first listed whose ``derived`` fact exists wins;
    the one marked ``default`` applies when none does."""

    id: Id
    title: Text
    derived: Id | None = Field(default=None, description="name of a derived fact that selects this population")
    default: bool = False

    @model_validator(mode="after")
    def _selector(self) -> Population:
        if self.default == (self.derived is not None):
            raise ValueError("a population has either `derived: <fact name>` or `default: true`")
        return self


class Prior(Strict):
    population: Id
    probability: Probability
    reference: Id | None = None
    confidence: Confidence
    reason: Text


class DiagnosticTest(Strict):
    """A test that could separate this hypothesis from the others (the 'next test')."""

    id: Id
    title: Text
    lr_positive: Number = Field(json_schema_extra={"exclusiveMinimum": 0, "maximum": 1000})
    lr_negative: Number = Field(json_schema_extra={"exclusiveMinimum": 0, "maximum": 1000})
    counts: Counts | None = Field(
        default=None, description="the source's 2x2 table; both intervals are derived from it"
    )
    reference: Id | None = None
    confidence: Confidence
    note: Text | None = None


class Counts(Strict):
    """The 2x2 table a source reports for a finding: the interval of its likelihood ratio is derived from it
    (log method, 95%; see ``cds.engine.differential.lr_interval_from_counts``)."""

    true_positive: Annotated[int, Field(strict=True, ge=0)]
    false_negative: Annotated[int, Field(strict=True, ge=0)]
    false_positive: Annotated[int, Field(strict=True, ge=0)]
    true_negative: Annotated[int, Field(strict=True, ge=0)]


LRInterval = Annotated[list[Annotated[float, Field(strict=True, gt=0)]], Field(min_length=2, max_length=2)]


class EvidenceGroup(Strict):
    """Evidence rules whose findings are not independent, and the rule that combines them into one ratio.

    Every rule that weighs evidence belongs to exactly one group (the linter refuses one outside every group).
    ``combine``: ``independent`` multiplies the ratios (the members are declared independent of each other);
    ``max`` takes the strongest ratio for and the strongest against (one deposit seen three ways counts once);
    ``capped-product`` multiplies and keeps the product within [1 / max, max]; ``fallback`` counts only when no
    other group weighs evidence for that hypothesis (a recorded suspicion stands in for the features it rests on).
    """

    id: Id
    title: Text
    combine: Literal["independent", "max", "capped-product", "fallback"]
    max_likelihood_ratio: Annotated[float, Field(strict=True, gt=1, json_schema_extra={"maximum": 1000})] | None = None
    members: list[Id] = Field(min_length=1, description="rule ids whose evidence this group combines")
    reference: Id | None = None
    confidence: Confidence
    reason: Text

    @model_validator(mode="after")
    def _cap(self) -> EvidenceGroup:
        if (self.combine == "capped-product") != (self.max_likelihood_ratio is not None):
            raise ValueError("`max_likelihood_ratio` is given exactly when `combine: capped-product`")
        return self


class Hypothesis(Strict):
    id: Id
    title: Text
    short_title: Annotated[str, Field(min_length=1, max_length=40)] | None = Field(
        default=None, description="name on a card summary when the title is long (at most 40 characters)"
    )
    description: Text | None = None
    priors: list[Prior] = Field(min_length=1)
    tests: list[DiagnosticTest] = Field(default_factory=list)
    kind: Literal["cause", "explainer", "coexisting"] = Field(
        default="cause",
        description="cause: one of the mutually exclusive causes of the lesion (normalised with 'other'); "
        "explainer: explains findings without competing with a cause; coexisting: a condition that can be "
        "present together with the leading cause, weighed as its own yes/no question",
    )
    explains: list[Id] = Field(
        default_factory=list,
        description=(
            "explainers only: evidence rules whose findings this explainer takes up when it is more likely than not"
        ),
    )
    time_critical: Probability | None = Field(
        default=None,
        description="safety threshold: at or above this posterior the hypothesis is surfaced on a card whatever its "
        "rank, and elective suggestions are withheld",
    )
    time_critical_reason: Text | None = None


class Operators(Strict):
    """Comparisons of one attribute; several in one mapping must all hold."""

    eq: Literal_ | None = Field(default=None, alias="==")
    ne: Literal_ | None = Field(default=None, alias="!=")
    lt: StrictInt | StrictFloat | None = Field(default=None, alias="<")
    le: StrictInt | StrictFloat | None = Field(default=None, alias="<=")
    gt: StrictInt | StrictFloat | None = Field(default=None, alias=">")
    ge: StrictInt | StrictFloat | None = Field(default=None, alias=">=")
    in_: StrictStr | list[StrictStr] | None = Field(
        default=None,
        alias="in",
        description="value-set id(s) on a concept/drug_class/code attribute, analyte id(s) on lab.analyte, "
        "otherwise a list of literal values",
    )
    same_as: StrictStr | None = Field(
        default=None, description="equality join: `alias.attribute` of an earlier pattern"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Operators:
        if not self.model_fields_set:
            raise ValueError("give at least one of ==, !=, <, <=, >, >=, in, same_as")
        return self


Test = Literal_ | Operators
Tests = dict[StrictStr, Test]


class AbsentPattern(Strict):
    """``absent: {procedure: {concept: kidney-transplant}}``: no such fact exists.
    Evaluated in Python before the engine runs (no joins)."""

    patient: Tests | None = None
    condition: Tests | None = None
    lab: Tests | None = None
    medication: Tests | None = None
    procedure: Tests | None = None
    finding: Tests | None = None
    draft_order: Tests | None = Field(default=None, alias="draft-order")

    @model_validator(mode="after")
    def _one_kind(self) -> AbsentPattern:
        if len(self.model_fields_set) != 1:
            raise ValueError("an absent pattern names exactly one fact kind")
        return self


class Pattern(Strict):
    """One fact that must exist, e.g. ``lab: {analyte: ca-x-p, value: {">": 70}}``."""

    as_: Id | None = Field(default=None, alias="as", description="alias for joins and card placeholders")
    patient: Tests | None = None
    condition: Tests | None = None
    lab: Tests | None = None
    medication: Tests | None = None
    procedure: Tests | None = None
    finding: Tests | None = None
    draft_order: Tests | None = Field(default=None, alias="draft-order")
    derived: Tests | None = None
    absent: AbsentPattern | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Pattern:
        kinds = self.model_fields_set - {"as_"}
        if len(kinds) != 1:
            raise ValueError("a pattern names exactly one fact kind (or `absent`)")
        if self.absent is not None and self.as_ is not None:
            raise ValueError("an absent pattern has no alias")
        return self


class Derive(Strict):
    name: Id
    value: Number | None = None
    text: Text | None = None
    flag: StrictBool | None = None


class Evidence(Strict):
    hypothesis: Id
    likelihood_ratio: Number = Field(
        description="> 1 speaks for the hypothesis, < 1 against",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": 1000},
    )
    interval: LRInterval | None = Field(
        default=None,
        description="[low, high] of the ratio: a stated range; without it and without `counts` the "
        "judgement range LR^0.5..LR^1.5 applies (docs/adr/0004-differential-model.md)",
    )
    counts: Counts | None = Field(default=None, description="the source's 2x2 table; the interval is derived from it")
    reference: Id | None = None
    confidence: Confidence
    test: Id | None = Field(default=None, description="id of the hypothesis test whose result this is")
    note: Text | None = None


class Then(Strict):
    derive: Derive | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    cards: list[Id] = Field(default_factory=list, description="card templates to raise (card intents)")


class Rule(Strict):
    id: Id
    title: Text
    version: Annotated[int, Field(strict=True, ge=1)]
    status: Literal["active", "draft", "retired"]
    description: Text | None = None
    references: list[Id] = Field(default_factory=list)
    when: list[Pattern] = Field(min_length=1)
    then: Then


class DifferentialCondition(Strict):
    hypothesis: Id
    at_least: Probability | None = None
    below: Probability | None = None
    # A threshold is a clinical number like a likelihood ratio: it names its reference (E017) and why.
    reference: Id | None = None
    confidence: Confidence | None = None
    reason: Text | None = None


class CardWhen(Strict):
    intent: bool = Field(default=False, description="raised only when a rule names this card in `then.cards`")
    differential: DifferentialCondition | None = None
    time_critical: bool = Field(
        default=False,
        description="raised when a time-critical hypothesis passes its safety threshold, whatever its rank",
    )
    elective: bool = Field(
        default=False,
        description="an elective suggestion (e.g. a bone-scan order): withheld while a time-critical hypothesis passes "
        "its safety threshold",
    )

    @model_validator(mode="after")
    def _something(self) -> CardWhen:
        if not self.intent and self.differential is None and not self.time_critical:
            raise ValueError("a card is raised by a rule intent, a differential condition, or both")
        return self


class ActionTemplate(Strict):
    type: Literal["create", "update", "delete"]
    description: Text
    resource: dict[str, Any] | None = None
    resource_id: Text | None = None


class SuggestionTemplate(Strict):
    label: Text
    recommended: bool = False
    recommended_below: Probability | None = Field(
        default=None,
        description="recommended only while the card's cause is below this probability (a test whose result would "
        "no longer change the decision is offered, not recommended)",
    )
    actions: list[ActionTemplate] = Field(min_length=1)


class LinkTemplate(Strict):
    label: Text
    url: Text
    type: Literal["absolute", "smart"] = "absolute"


class OverrideReasonTemplate(Strict):
    code: Id
    display: Text
    system: Text = "https://calciphylaxis-cds.org/fhir/CodeSystem/override-reason"
    meaning: Literal["already-addressed", "not-relevant", "disagree", "other"] = Field(
        default="other",
        description="already-addressed and not-relevant snooze the card for the patient (the card's snooze_days)",
    )


class SourceTemplate(Strict):
    label: Text
    url: Text | None = None


class CardTemplate(Strict):
    id: Id
    services: list[Id] = Field(min_length=1)
    summary: Annotated[str, Field(min_length=1, max_length=139)]
    detail: Text | None = None
    indicator: Literal["info", "warning", "critical"]
    source: SourceTemplate
    when: CardWhen
    references: list[Id] = Field(default_factory=list)
    suggestions: list[SuggestionTemplate] = Field(default_factory=list)
    selection_behavior: Literal["at-most-one", "any"] = "at-most-one"
    links: list[LinkTemplate] = Field(default_factory=list)
    override_reasons: list[OverrideReasonTemplate] = Field(default_factory=list)
    about: Text | None = Field(default=None, description="what the card means, in plain words, for its page")
    page_detail: Text | None = Field(
        default=None,
        description="Markdown shown only on the card's page (advice and sources beyond the card's budget); "
        "no placeholders, since the page carries no patient data",
    )
    snooze_days: Annotated[int, Field(strict=True, ge=1, le=365)] | None = Field(
        default=None,
        description="days an 'already addressed' or 'not relevant' override hides this card for the patient, "
        "unless the evidence changes materially",
    )

    @model_validator(mode="after")
    def _critical_cards_never_snooze(self) -> CardTemplate:
        if self.snooze_days is not None and self.indicator == "critical":
            raise ValueError("a critical card is never snoozed: remove snooze_days")
        return self


class Range(Strict):
    at_least: Annotated[float, Field(ge=0, le=1)] | None = None
    at_most: Annotated[float, Field(ge=0, le=1)] | None = None


class Expect(Strict):
    fired: list[Id] = Field(default_factory=list)
    not_fired: list[Id] = Field(default_factory=list)
    cards: list[Id] = Field(default_factory=list)
    not_cards: list[Id] = Field(default_factory=list)
    no_cards: bool = False
    top: Id | None = Field(default=None, description="hypothesis expected first in the differential")
    posterior: dict[Id, Range] = Field(default_factory=dict)
    allow_other_firings: bool = Field(
        default=False,
        description="in a tests file beside a rule file (X.tests.yaml beside X.yaml): without this, a rule of X that "
        "fires but is not in `fired` fails the test",
    )


class RuleTest(Strict):
    id: Id
    description: Text | None = None
    service: Id
    case: Text | None = Field(default=None, description="CDS Hooks request JSON, relative to the repository root")
    facts: list[dict[StrictStr, Literal_]] | None = Field(
        default=None, description="inline facts: {kind, id, attribute: value, ...}"
    )
    now: Text | None = Field(default=None, description="evaluation time, ISO 8601 (default: 2026-01-01T12:00:00Z)")
    known_gap: Text | None = Field(
        default=None,
        description="why the expectation is not met yet: a failure is reported as GAP (not a failure); "
        "once the expectation is met the test fails until this key is removed",
    )
    expect: Expect

    @model_validator(mode="after")
    def _one_input(self) -> RuleTest:
        if (self.case is None) == (self.facts is None):
            raise ValueError("a rule test gives either `case` or `facts`")
        return self


class RuleFile(Strict):
    """Any rule-language file under rules/ (except services.yaml, valuesets/, analytes.yaml, findings/)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Calciphylaxis CDS rule file")

    ruleset: RulesetInfo | None = None
    references: list[Reference] = Field(default_factory=list)
    populations: list[Population] = Field(default_factory=list)
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    evidence_groups: list[EvidenceGroup] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    cards: list[CardTemplate] = Field(default_factory=list)
    tests: list[RuleTest] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    schema = RuleFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://calciphylaxis-cds.org/schema/rule-file.json"
    return schema
