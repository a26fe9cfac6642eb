"""CDS Hooks 2.0.1 wire models (pydantic v2).

Output models enforce the spec's response invariants at construction time, so
a card that would break one is rejected here and never reaches an EHR:

* no ``null``, ``""``, ``[]`` or ``{}`` for an absent optional field: optional
  strings have ``min_length=1``, optional lists ``min_length=1``, optional
  objects must be non-empty, and serialisation drops ``None``
  (``cards: []`` and ``services: []`` are the spec's two exceptions);
* ``summary`` under 140 characters; ``indicator`` in the enum;
* ``selectionBehavior`` whenever there are suggestions (cds-resp-6), at most one
  recommended suggestion under ``at-most-one`` (cds-resp-1);
* ``display`` on every override reason (cds-resp-4), ``description`` on every
  action (cds-resp-5), ``appContext`` only on smart links (cds-resp-3),
  delete actions by ``resourceId`` without ``resource`` (cds-resp-2);
* UUIDs on cards and suggestions (feedback refers to them).

Input models are lenient where the spec asks for it (unknown ``extension``
content, unknown members) and strict on its request invariants (cds-r-1,
cds-fb-1..3, ``Type/id`` references per the hook library's ord-1).
"""

from __future__ import annotations

import re
import uuid as uuid_lib
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
SUMMARY_MAX_CHARS = 139  # the spec says "<140-character"
_REFERENCE = re.compile(r"^[A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
_ABSOLUTE_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://\S+$")


def _non_empty_object(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and not value:
        raise ValueError("must be omitted rather than sent as an empty object")
    return value


def _absolute_url(value: str) -> str:
    if not _ABSOLUTE_URL.match(value):
        raise ValueError("must be an absolute URL")
    return value


def _fhir_reference(value: str) -> str:
    if not _REFERENCE.match(value):
        raise ValueError("must be a relative FHIR reference of the form Type/id")
    return value


AbsoluteUrl = Annotated[str, AfterValidator(_absolute_url)]
FhirReference = Annotated[str, AfterValidator(_fhir_reference)]
Extension = Annotated[dict[str, Any] | None, AfterValidator(_non_empty_object)]


class WireModel(BaseModel):
    """Base for every output model: strict fields, serialisation without nulls."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


# --------------------------------------------------------------------------- output


class Coding(WireModel):
    system: NonEmptyStr
    code: NonEmptyStr
    display: NonEmptyStr | None = None


class OverrideReason(Coding):
    """An override reason offered on a card: ``display`` is required (cds-resp-4)."""

    display: NonEmptyStr


class Source(WireModel):
    label: NonEmptyStr
    url: AbsoluteUrl | None = None
    icon: AbsoluteUrl | None = None
    topic: Coding | None = None


class Action(WireModel):
    type: Literal["create", "update", "delete"]
    description: NonEmptyStr
    resource: Extension = None  # a FHIR resource: non-empty object when present
    resourceId: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _resource_matches_type(self) -> Action:
        if self.type == "delete":
            if self.resourceId is None or self.resource is not None:
                raise ValueError("a delete action names resourceId and carries no resource (cds-resp-2)")
        elif self.resource is None:
            raise ValueError(f"a {self.type} action carries the resource")
        elif not isinstance(self.resource.get("resourceType"), str):
            raise ValueError("action.resource must be a FHIR resource with a resourceType")
        return self


class Suggestion(WireModel):
    label: NonEmptyStr
    uuid: uuid_lib.UUID = Field(default_factory=uuid_lib.uuid4)
    isRecommended: bool | None = None
    actions: list[Action] | None = Field(default=None, min_length=1)


class Link(WireModel):
    label: NonEmptyStr
    url: AbsoluteUrl
    type: Literal["absolute", "smart"]
    appContext: NonEmptyStr | None = None
    autolaunchable: bool | None = None

    @model_validator(mode="after")
    def _app_context_only_on_smart(self) -> Link:
        if self.appContext is not None and self.type != "smart":
            raise ValueError("appContext is only allowed on smart links (cds-resp-3)")
        return self


class Card(WireModel):
    uuid: uuid_lib.UUID = Field(default_factory=uuid_lib.uuid4)
    summary: Annotated[str, StringConstraints(min_length=1, max_length=SUMMARY_MAX_CHARS)]
    detail: NonEmptyStr | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = Field(default=None, min_length=1)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[OverrideReason] | None = Field(default=None, min_length=1)
    links: list[Link] | None = Field(default=None, min_length=1)
    extension: Extension = None

    @model_validator(mode="after")
    def _selection_invariants(self) -> Card:
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("selectionBehavior is required when a card has suggestions (cds-resp-6)")
        if self.selectionBehavior == "at-most-one" and self.suggestions:
            recommended = sum(1 for s in self.suggestions if s.isRecommended)
            if recommended > 1:
                raise ValueError("at most one suggestion may be recommended under at-most-one (cds-resp-1)")
        if self.suggestions:
            ids = [s.uuid for s in self.suggestions]
            if len(set(ids)) != len(ids):
                raise ValueError("suggestion uuids must be unique within a card")
        return self


class CDSResponse(WireModel):
    cards: list[Card] = Field(default_factory=list)  # present even when empty
    systemActions: list[Action] | None = Field(default=None, min_length=1)
    extension: Extension = None

    @model_validator(mode="after")
    def _unique_card_ids(self) -> CDSResponse:
        ids = [c.uuid for c in self.cards]
        if len(set(ids)) != len(ids):
            raise ValueError("card uuids must be unique within a response")
        return self


class ServiceDescriptor(WireModel):
    """One entry of the discovery response."""

    hook: NonEmptyStr
    title: NonEmptyStr | None = None
    description: NonEmptyStr
    id: Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9\-_.]+$")]
    prefetch: Annotated[dict[str, str] | None, AfterValidator(_non_empty_object)] = None
    usageRequirements: NonEmptyStr | None = None
    extension: Extension = None


class DiscoveryResponse(WireModel):
    services: list[ServiceDescriptor] = Field(default_factory=list)  # present even when empty


# --------------------------------------------------------------------------- input


class InputModel(BaseModel):
    """Base for request models: unknown members are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class FhirAuthorization(InputModel):
    # SecretStr: the token never appears in a repr, a log line or an error message.
    access_token: SecretStr
    token_type: Literal["Bearer", "bearer"]
    expires_in: Annotated[int, Field(ge=0)]
    scope: NonEmptyStr
    subject: NonEmptyStr
    patient: NonEmptyStr | None = None


class CDSRequest(InputModel):
    hook: NonEmptyStr
    hookInstance: uuid_lib.UUID
    fhirServer: AbsoluteUrl | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None  # unknown extension content is accepted and ignored

    @field_validator("fhirServer")
    @classmethod
    def _http_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError("fhirServer must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _authorization_needs_server(self) -> CDSRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirServer is required when fhirAuthorization is present (cds-r-1)")
        return self


# Hook contexts (HL7/cds-hooks-library). Validated after the envelope so the
# error can name the hook; unknown context members are ignored.


class PatientViewContext(InputModel):
    userId: FhirReference
    patientId: NonEmptyStr
    encounterId: NonEmptyStr | None = None


class EncounterStartContext(PatientViewContext):
    encounterId: NonEmptyStr


class OrderSignContext(PatientViewContext):
    # The sandbox omits Bundle.type, so only resourceType is required here.
    draftOrders: dict[str, Any]

    @field_validator("draftOrders")
    @classmethod
    def _is_bundle(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("resourceType") != "Bundle":
            raise ValueError("draftOrders must be a FHIR Bundle")
        entries = value.get("entry", [])
        if not isinstance(entries, list):
            raise ValueError("draftOrders.entry must be an array")
        return value


class OrderSelectContext(OrderSignContext):
    selections: list[FhirReference] = Field(min_length=1)

    @model_validator(mode="after")
    def _selections_name_draft_orders(self) -> OrderSelectContext:
        # order-select: "selections ... references to the FHIR resources in draftOrders". A selection
        # that names none would silently get no advice at all; an error says what went wrong.
        drafts = {
            f"{r.get('resourceType')}/{r.get('id')}"
            for entry in self.draftOrders.get("entry") or []
            if isinstance(entry, dict) and isinstance(r := entry.get("resource"), dict)
        }
        missing = [i for i, ref in enumerate(self.selections) if ref not in drafts]
        if missing:
            raise ValueError(
                "selections[" + "], selections[".join(map(str, missing)) + "] name no resource of draftOrders"
            )
        return self


class ReportReviewContext(PatientViewContext):
    """Context of the reverse-domain radiology report-review hook."""

    diagnosticReportId: NonEmptyStr
    diagnosticReport: dict[str, Any] | None = None  # the draft report, when sent


HOOK_CONTEXTS: dict[str, type[InputModel]] = {
    "patient-view": PatientViewContext,
    "encounter-start": EncounterStartContext,
    "order-select": OrderSelectContext,
    "order-sign": OrderSignContext,
}
REPORT_REVIEW_HOOK_SUFFIX = ".diagnosticreport-review"


def context_model_for(hook: str) -> type[InputModel]:
    """The context model of a hook; org-specific report-review hooks share one."""
    if hook.endswith(REPORT_REVIEW_HOOK_SUFFIX):
        return ReportReviewContext
    return HOOK_CONTEXTS.get(hook, PatientViewContext)


class FeedbackSuggestion(InputModel):
    id: uuid_lib.UUID


class FeedbackOverrideReason(InputModel):
    # The sandbox sends reason with code and system only, so display is optional here.
    reason: Coding | None = None
    userComment: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _reason_or_comment(self) -> FeedbackOverrideReason:
        if self.reason is None and self.userComment is None:
            raise ValueError("overrideReason needs a reason or a userComment (cds-fb-3)")
        return self


class Feedback(InputModel):
    card: uuid_lib.UUID
    outcome: Literal["accepted", "overridden"]  # cds-fb-1
    acceptedSuggestions: list[FeedbackSuggestion] | None = Field(default=None, min_length=1)
    overrideReason: FeedbackOverrideReason | None = None
    outcomeTimestamp: AwareDatetime

    @model_validator(mode="after")
    def _outcome_consistency(self) -> Feedback:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when the outcome is accepted (cds-fb-2)")
        if self.outcome == "accepted" and self.overrideReason is not None:
            raise ValueError("an accepted card carries no overrideReason")
        return self


class FeedbackRequest(InputModel):
    feedback: list[Feedback] = Field(min_length=1)


class FeedbackItemResult(WireModel):
    """What became of one feedback item, in the order posted."""

    status: Literal["accepted", "duplicate", "unknown-card", "unknown-suggestion", "over-limit"]
    diagnostics: NonEmptyStr | None = None


class FeedbackResponse(WireModel):
    accepted: int
    duplicates: int = 0
    # One result per item: a batch is not refused whole for one item the service cannot take.
    items: list[FeedbackItemResult] | None = None
