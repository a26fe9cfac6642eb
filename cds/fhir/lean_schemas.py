"""The lean schemas of cds.fhir.intake: the R4 rules for exactly the elements the extraction reads of an
Observation (lab values) or Procedure (counted sessions) that only feeds a fact's aggregates
(docs/adr/0002-fact-extraction.md): ~3 us instead of ~125 us for the full R4B model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, StrictFloat, StrictInt, StringConstraints, TypeAdapter
from typing_extensions import TypedDict

# The R4 rules for the Observation elements the lab extraction reads (FHIR R4
# datatypes: dateTime/instant regexes, code, decimal, Quantity.comparator and
# Observation.status value sets). Elements it does not read are not checked
# here; see cds.fhir.intake for when the full model runs.

_DATE_TIME = (
    r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?)?)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)?)?)?$"
)
_DateTime = Annotated[str, StringConstraints(pattern=_DATE_TIME)]
_String = Annotated[str, StringConstraints(min_length=1, pattern=r"[\S]")]
_Code = Annotated[str, StringConstraints(pattern=r"^[^\s]+( [^\s]+)*$")]
_Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-\.]{1,64}$")]


def lean_schemas(extra: Literal["ignore", "allow"] = "ignore") -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
    """The lean Observation and Procedure schemas. Elements they do not declare are ignored, not copied into
    the validated output that nobody reads (a third of the time per Observation; what they reject is the same
    with ``"allow"``: tests/fhir/test_lean_schemas.py).."""

    class _Coding(TypedDict, total=False):
        __pydantic_config__ = ConfigDict(extra=extra)  # type: ignore[misc]
        system: _String
        code: _Code
        display: _String

    class _CodeableConcept(TypedDict, total=False):
        __pydantic_config__ = ConfigDict(extra=extra)  # type: ignore[misc]
        coding: list[_Coding]
        text: _String

    class _Quantity(TypedDict, total=False):
        __pydantic_config__ = ConfigDict(extra=extra)  # type: ignore[misc]
        value: StrictInt | StrictFloat
        comparator: Literal["<", "<=", ">=", ">"]
        unit: _String
        system: _String
        code: _Code

    class _Period(TypedDict, total=False):
        __pydantic_config__ = ConfigDict(extra=extra)  # type: ignore[misc]
        start: _DateTime
        end: _DateTime

    class _LeanObservation(TypedDict):
        __pydantic_config__ = ConfigDict(extra=extra)  # type: ignore[misc]
        resourceType: Literal["Observation"]
        id: NotRequired[_Id]
        status: Literal[
            "registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"
        ]
        code: _CodeableConcept
        effectiveDateTime: NotRequired[_DateTime]
        effectivePeriod: NotRequired[_Period]
        effectiveInstant: NotRequired[_DateTime]
        issued: NotRequired[_DateTime]
        valueQuantity: NotRequired[_Quantity]
        dataAbsentReason: NotRequired[_CodeableConcept]

    class _LeanProcedure(TypedDict):
        __pydantic_config__ = ConfigDict(extra=extra)  # type: ignore[misc]
        resourceType: Literal["Procedure"]
        id: NotRequired[_Id]
        status: Literal[
            "preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "entered-in-error", "unknown"
        ]
        code: NotRequired[_CodeableConcept]
        performedDateTime: NotRequired[_DateTime]
        performedPeriod: NotRequired[_Period]

    return TypeAdapter(_LeanObservation), TypeAdapter(_LeanProcedure)


LEAN_OBSERVATION, LEAN_PROCEDURE = lean_schemas()
