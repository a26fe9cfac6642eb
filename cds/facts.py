"""The facts that flow from the FHIR layer into the rules engine.

This module is the contract between the stages ``fhir`` / ``findings`` (which
produce facts) and ``engine`` (which matches rules against them). A fact is a
small, flat record: a ``kind``, an ``id`` unique within one evaluation, and
scalar attributes. Flat and small because the durable-rules backend flattens
nested objects and crashes above ~250 properties (knowledge/durable-rules.md
B5), and because the rule linter must know, per kind, which attributes exist.

Every attribute a producer may set is declared in ``FACT_FIELDS``; rule files
are linted against it, so a rule that tests an attribute no producer sets is
reported at load time rather than silently never firing.

Dates are ISO 8601 strings (``YYYY-MM-DD``), which compare correctly as text.
Absent attributes are simply missing from ``attrs`` (never ``None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Scalar = str | int | float | bool

FactKind = Literal[
    "patient",
    "condition",
    "lab",
    "medication",
    "procedure",
    "finding",
    "draft-order",
    "derived",
]

FACT_KINDS: tuple[str, ...] = (
    "patient",
    "condition",
    "lab",
    "medication",
    "procedure",
    "finding",
    "draft-order",
    "derived",
)

# kind -> attribute -> python type ("str", "number", "bool"). ``kind`` and
# ``id`` are implicit on every fact.
FACT_FIELDS: dict[str, dict[str, str]] = {
    "patient": {
        "age_years": "number",  # age at the time of the hook
        "sex": "str",  # administrative gender: male | female | other | unknown
        "bmi": "number",  # kg/m2, latest (LOINC 39156-5, or weight / height^2)
        "bmi_date": "str",
        "weight_change_percent_90d": "number",  # signed; negative = loss
    },
    "condition": {
        # One fact per (Condition resource, concept it belongs to).
        "concept": "str",  # value-set id from rules/valuesets, e.g. "esrd"
        "status": "str",  # active | history   (refuted / entered-in-error never become facts)
        "code": "str",
        "system": "str",
        "onset": "str",  # date
        "days_since_onset": "number",
        "chronic": "bool",  # coded as chronic or open longer than the configured weeks
        "site": "str",  # body-site concept, e.g. "lower-leg", "thigh", "abdomen"
        "site_class": "str",  # central | distal (fatty central areas vs acral)
        "laterality": "str",  # left | right | bilateral
        "source": "str",  # "Condition/123"
        "code_confidence": "str",  # V | S | R: confidence of the value-set code that matched
        "verification": "str",  # confirmed | provisional | differential | unconfirmed
        "abated": "str",  # date the condition resolved (abatement)
        "severity": "str",  # ulcer depth from the ICD-10-CM 6th character, e.g. "fat-exposed"
        "recognised_by": "str",  # code | hierarchy | text (RECOGNITION_FIELDS)
        "recognised_text": "str",  # text layer: the lexicon term that matched
    },
    "lab": {
        # One fact per analyte: the latest value within the lookback window
        # plus summaries over the window. Derived analytes (Ca x P product,
        # albumin-corrected calcium) are labs too.
        "analyte": "str",  # id from rules/analytes.yaml, e.g. "phosphate"
        "value": "number",  # latest value, canonical unit
        "unit": "str",  # canonical UCUM unit
        "comparator": "str",  # "<", "<=", ">", ">=" when the value was censored
        # A censored result has ``comparator`` and ``limit`` and *no* ``value``, so a rule
        # threshold on ``value`` is never met by a number the result may not reach.
        "limit": "number",  # the censoring limit, canonical unit
        # What the latest result establishes: both equal ``value`` for a point value; for a censored
        # result only the side its comparator states (">2000" -> value_at_least 2000; "<10" ->
        # value_at_most 10). A rule "above X" that may count censored results tests value_at_least.
        "value_at_least": "number",
        "value_at_most": "number",
        "code": "str",  # LOINC code of the latest result (absent for computed analytes)
        "previous_value": "number",  # the point value before the latest one in the window
        "previous_date": "str",
        "censored_count": "number",  # censored results in the window (not in min/max)
        "date": "str",
        "days_ago": "number",
        "trend": "str",  # rising | falling | stable (needs >= 2 values)
        "count": "number",  # values in the window
        "count_above_high": "number",  # values above the analyte's declared high limit
        "count_below_low": "number",
        "max": "number",
        "min": "number",
        "source": "str",
    },
    "medication": {
        # One fact per (medication order/statement, drug class).
        "drug_class": "str",  # value-set id, e.g. "vitamin-k-antagonist"
        "status": "str",  # active | on-hold | completed
        "code": "str",
        "system": "str",
        "start": "str",
        "days_since_start": "number",  # exposure so far (or total, when completed)
        "route": "str",
        "source": "str",
        "resource_type": "str",  # MedicationRequest | MedicationStatement | MedicationAdministration
        "end": "str",  # end of the recorded period, when given
        "first_start": "str",  # earliest start among counted orders/statements of this class
        "days_since_first_start": "number",  # exposure to the class so far
        # days from the first start to the earliest recorded lesion onset (to today when no onset is recorded);
        # computed in cds/engine/prepare.py so that drug-timing windows are anchored on the lesion (ADR 0004)
        "days_from_first_start_to_lesion_onset": "number",
        "code_confidence": "str",
        "recognised_by": "str",
        "recognised_text": "str",
    },
    "procedure": {
        "concept": "str",  # e.g. "hemodialysis", "skin-biopsy", "bone-scan"
        "status": "str",  # completed | in-progress
        "code": "str",
        "system": "str",
        "date": "str",
        "days_ago": "number",
        "days_before_lesion_onset": "number",  # as days_ago, counted back from the earliest lesion onset (ADR 0004)
        "first_date": "str",  # earliest procedure of this concept
        "years_since_first": "number",  # e.g. dialysis vintage
        "outcome": "str",  # e.g. biopsy: "positive" | "negative" | "nondiagnostic"
        "outcome_source": "str",  # the pathology report the outcome was read from ("DiagnosticReport/7")
        "outcome_text": "str",  # the result term that decided it ("calciphylaxis", "non-diagnostic", ...)
        "count": "number",  # procedures of this concept on record (one fact per concept)
        "code_confidence": "str",
        "site": "str",
        "laterality": "str",
        "source": "str",
        "recognised_by": "str",
        "recognised_text": "str",
    },
    "finding": {
        # Imaging findings, coded or extracted from report text.
        "concept": "str",  # soft-tissue-uptake, subcutaneous-calcification, ...
        "modality": "str",  # NM | SPECT | CT | XR | MG | US
        "site": "str",
        "laterality": "str",
        "distribution": "str",  # diffuse | symmetric | focal | heterogeneous | asymmetric
        "at_lesion_site": "bool",  # corresponds to a clinical lesion site
        "negated": "bool",
        "certainty": "str",  # definite | probable | possible
        "change": "str",  # new | increased | decreased | stable (serial comparison)
        "report": "str",  # "DiagnosticReport/123"
        "date": "str",
        "days_ago": "number",
        # Added by the findings worker (cds/findings); values in rules/findings/*.yaml.
        # concept "impression-<hypothesis>" facts are the radiologist's stated interpretation:
        "hypothesis": "str",  # impressions: hypothesis id, e.g. "calciphylaxis"
        # the report attributes this finding to a hypothesis ("... consistent with renal failure"):
        "attributed_to": "str",
        "site_class": "str",  # central | distal | visceral | joint | bone | region (rules/findings/sites.yaml)
        "symmetry": "str",  # symmetric | asymmetric (also reflected in distribution)
        "intensity": "str",  # faint | mild | moderate | intense
        "layer": "str",  # subcutaneous | cutaneous | soft-tissue | muscular | fascial | vascular | periarticular
        "pattern": "str",  # vascular calcification: net-like (small vessels) | medial-arterial (tram-track)
        "section": "str",  # report section: findings | impression | comparison | addendum | none
        "historical": "bool",  # "history of ...": present only when true
        "extraction": "str",  # coded | text
        # certainty may also be "unlikely"; change may also be "resolved" (then negated is true)
    },
    "draft-order": {
        "concept": "str",  # order concept, e.g. "bone-scan", "skin-biopsy"
        "drug_class": "str",  # for MedicationRequest drafts
        "resource_type": "str",  # ServiceRequest | MedicationRequest | ...
        "code": "str",
        "system": "str",
        "selected": "bool",  # in order-select `selections`; always true for order-sign
        "code_confidence": "str",
        "source": "str",  # "ServiceRequest/abc" as in draftOrders
        "recognised_by": "str",
        "recognised_text": "str",
        "site": "str",  # ServiceRequest.bodySite, as condition site (e.g. "thigh")
        "laterality": "str",
        "daily_dose_ug": "number",  # MedicationRequest: dose x frequency / period, in micrograms per day
        # A condition value set named by reasonCode / reasonReference. The fact without `reason` always
        # exists; each reason adds a copy that has it, so a rule can require or exclude an order for X.
        "reason": "str",
    },
    "derived": {
        # Facts that rules derive (``then: derive``) or the Python layer
        # computes (absence, aggregates). ``name`` identifies the derived fact.
        "name": "str",
        "value": "number",
        "text": "str",
        "flag": "bool",
        "source": "str",  # the resource a computed fact comes from, e.g. "DiagnosticReport/123"
        "date": "str",
    },
}


# How a condition, medication, procedure or draft-order fact's concept was recognised
# (docs/adr/0005-concept-recognition.md): ``recognised_by`` is code | hierarchy | text;
# ``recognised_text`` is the lexicon term that matched (text layer only), never the patient's text.
RECOGNITION_FIELDS = ("recognised_by", "recognised_text")


@dataclass(frozen=True, slots=True)
class Fact:
    """One flat fact. ``id`` must be unique within an evaluation."""

    kind: str
    id: str
    attrs: Mapping[str, Scalar] = field(default_factory=dict)

    def get(self, name: str, default: Scalar | None = None) -> Scalar | None:
        if name == "kind":
            return self.kind
        if name == "id":
            return self.id
        return self.attrs.get(name, default)

    def as_dict(self) -> dict[str, Scalar]:
        return {"kind": self.kind, "id": self.id, **self.attrs}


@dataclass(frozen=True, slots=True)
class FactWarning:
    """A problem met while turning resources into facts (goes into the trace).

    Carries the resource type and id and the reason, never resource content.
    """

    resource_type: str
    resource_id: str
    message: str


@dataclass(frozen=True, slots=True)
class FactSet:
    """What the FHIR layer hands to the engine for one evaluation."""

    facts: tuple[Fact, ...]
    warnings: tuple[FactWarning, ...] = ()
    # Resources that could have changed the advice but could not be read (a subset of the
    # warnings): the response names them in a notice, so nothing is dropped silently.
    notices: tuple[FactWarning, ...] = ()
