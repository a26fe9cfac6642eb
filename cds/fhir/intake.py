"""Resource intake: flatten the prefetch, index it for references, validate what becomes a fact.

Validation strategy (docs/adr/0002-fact-extraction.md):

* resource types no extraction reads are indexed (they can be reference targets)
  and never validated;
* a resource of a handled type is first pre-filtered on plain dicts: a code that
  maps to no value set or analyte means it can never become a fact, so it is
  skipped without validation;
* every resource that is the ``source`` of a fact is validated with the
  ``fhir.resources`` R4B model of its type (``validate_full``);
* Observations (and Procedures) that only feed a fact's aggregates (count, min,
  max, trend, first date) pass a lean pydantic schema of exactly the elements the
  extraction reads, with the R4 datatype rules for them (``validate_*_lean``):
  ~3 µs instead of ~125 µs for the full model, which is what keeps 10,000
  Observations within the performance budget.

An invalid resource is skipped with a ``FactWarning`` naming its type, id and
the failing element paths and error types, never the values.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import TypeAdapter, ValidationError

from cds.facts import FactWarning
from cds.fhir.lean_schemas import LEAN_OBSERVATION, LEAN_PROCEDURE

# Resource types some extraction reads. Everything else is only indexed.
HANDLED_TYPES = frozenset(
    {
        "Patient",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationAdministration",
        "Procedure",
        "DiagnosticReport",
        "ServiceRequest",
    }
)
MAX_BUNDLE_DEPTH = 3  # a Bundle inside a Bundle inside a prefetch key is already unusual

# The elements the extraction reads, per resource type. A resource whose full R4 validation
# fails only on *other* elements is still read (leniently, with a warning naming the elements):
# real clients send such resources, e.g. the CDS Hooks sandbox's draft MedicationRequest with a
# single object as ``category``. A failure on an element listed here, or at the resource level,
# makes the resource unreadable: it is named in a notice of the response, never silently dropped.
_COMMON = ("resourceType", "id", "subject", "patient", "meta")
_MEDICATION = ("medicationCodeableConcept", "medicationReference", "status", "contained")
READ_ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset({*_COMMON, "birthDate", "gender"}),
    "Condition": frozenset(
        {
            *_COMMON,
            "code",
            "clinicalStatus",
            "verificationStatus",
            "onsetDateTime",
            "onsetPeriod",
            "abatementDateTime",
            "abatementPeriod",
            "recordedDate",
            "bodySite",
        }
    ),
    "MedicationRequest": frozenset({*_COMMON, *_MEDICATION, "authoredOn", "dosageInstruction", "dispenseRequest"}),
    "MedicationStatement": frozenset(
        {
            *_COMMON,
            *_MEDICATION,
            "effectiveDateTime",
            "effectivePeriod",
            "dateAsserted",
            "dosage",
        }
    ),
    "MedicationAdministration": frozenset({*_COMMON, *_MEDICATION, "effectiveDateTime", "effectivePeriod", "dosage"}),
    "Medication": frozenset({*_COMMON, "code", "ingredient"}),
    "Procedure": frozenset({*_COMMON, "code", "status", "performedDateTime", "performedPeriod", "bodySite", "outcome"}),
    "ServiceRequest": frozenset({*_COMMON, "code", "status", "bodySite"}),
    "Observation": frozenset(
        {
            *_COMMON,
            "code",
            "status",
            "effectiveDateTime",
            "effectivePeriod",
            "effectiveInstant",
            "issued",
            "valueQuantity",
            "valueString",
            "valueCodeableConcept",
            "dataAbsentReason",
            "component",
            "interpretation",
            "referenceRange",
        }
    ),
}


@dataclass(slots=True)
class Intake:
    """The resources of one request, grouped by type, plus a reference index."""

    by_type: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    index: dict[str, dict[str, Any]] = field(default_factory=dict)  # "Type/id", fullUrl -> resource
    warnings: list[FactWarning] = field(default_factory=list)
    skipped_types: dict[str, int] = field(default_factory=dict)
    # Resources read although full validation failed on elements the extraction does not read.
    lenient: list[FactWarning] = field(default_factory=list)
    # Resources that would have given a fact but could not be read: the response names them.
    unreadable: list[FactWarning] = field(default_factory=list)
    # Codings no value set recognised: (system, code, resource type) -> text-layer match ("" none).
    gaps: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # Resources about another patient than context.patientId, dropped: resource type -> count.
    foreign: dict[str, int] = field(default_factory=dict)
    _validated: dict[int, str | None] = field(default_factory=dict)  # id(resource) -> error summary
    _patient_keys: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # index keys of Patients

    # ------------------------------------------------------------ collection

    def add_prefetch(self, prefetch: Mapping[str, Any]) -> None:
        seen: set[str] = set()
        for key, value in prefetch.items():
            if value is None:
                continue
            if not isinstance(value, Mapping) or not isinstance(value.get("resourceType"), str):
                self.warnings.append(FactWarning("prefetch", str(key), "not a FHIR resource or Bundle; ignored"))
                continue
            self._add(value, None, seen, 0)

    def add_resource(self, resource: Mapping[str, Any]) -> None:
        """One resource or Bundle (e.g. context.draftOrders)."""
        self._add(resource, None, set(), 0)

    def _add(self, resource: Mapping[str, Any], full_url: str | None, seen: set[str], depth: int) -> None:
        rtype = resource.get("resourceType")
        if rtype != "Bundle":
            if isinstance(rtype, str):
                self._add_one(resource, rtype, full_url, seen)
            return
        if depth >= MAX_BUNDLE_DEPTH:
            self.warnings.append(FactWarning("Bundle", _rid(resource), "nested too deeply; ignored"))
            return
        entries = resource.get("entry")
        if not isinstance(entries, list):
            return
        for entry in entries:
            # dict, not Mapping: parsed JSON is dicts, and the ABC check costs ~0.5 µs per call here.
            if not isinstance(entry, dict):
                continue
            inner = entry.get("resource")
            if not isinstance(inner, dict):
                continue
            inner_type = inner.get("resourceType")
            if not isinstance(inner_type, str):
                continue
            url = entry.get("fullUrl")
            if inner_type == "Bundle":
                self._add(inner, url if isinstance(url, str) else None, seen, depth + 1)
            else:  # the leaf inline: a Synthea record is ~1,250 entries of one Bundle
                self._add_one(inner, inner_type, url if isinstance(url, str) else None, seen)

    def _add_one(self, resource: Mapping[str, Any], rtype: str, full_url: str | None, seen: set[str]) -> None:
        if rtype == "OperationOutcome":
            return
        rid = resource.get("id")
        key = f"{rtype}/{rid}" if isinstance(rid, str) else None
        if key is not None:
            if key in seen:  # the same resource in two prefetch keys counts once
                return
            seen.add(key)
            self.index[key] = resource  # type: ignore[assignment]
        if full_url:
            self.index[full_url] = resource  # type: ignore[assignment]
        if rtype in HANDLED_TYPES:
            self.by_type.setdefault(rtype, []).append(resource)  # type: ignore[arg-type]
            if rtype == "Patient":
                self._patient_keys.extend((k, resource) for k in (key, full_url) if k)  # type: ignore[misc]
        else:
            self.skipped_types[rtype] = self.skipped_types.get(rtype, 0) + 1

    # ------------------------------------------------------------ one patient per request

    def bind_patient(self, patient_id: Any, also_accept: frozenset[str] = frozenset()) -> frozenset[str]:
        """Drop every resource whose subject/patient is not ``patient_id``; count them in ``foreign``.

        A resource is about the patient when its ``subject`` or ``patient`` reference names
        ``Patient/<id>`` (relative, absolute or versioned), the ``urn:uuid:<id>`` or fullUrl of that
        Patient in the request (Synthea), and a Patient resource is kept only with that id. Resources
        that name no patient (Medication, Organization, ...) stay: they are reference targets.
        Returns the accepted references, for draft orders checked later.
        """
        if not isinstance(patient_id, str) or not patient_id:
            return frozenset()
        accepted = {f"Patient/{patient_id}", f"urn:uuid:{patient_id}", *also_accept}
        # The index keys naming this patient's Patient: recorded as Patients were added, not found by scanning
        # the index (2,500 keys for a Synthea record); a key since taken by another resource does not count.
        accepted.update(url for url, r in self._patient_keys if self.index.get(url) is r and r.get("id") == patient_id)
        frozen = frozenset(accepted)
        for rtype, resources in list(self.by_type.items()):
            if rtype == "Patient":
                kept = [r for r in resources if _about(r, patient_id, frozen)]
            else:  # _about's first test inline (a subject naming the patient): ~1,300 resources in a Synthea record
                kept = [r for r in resources if _subject_accepted(r, frozen) or _about(r, patient_id, frozen)]
            if len(kept) != len(resources):
                self.foreign[rtype] = self.foreign.get(rtype, 0) + len(resources) - len(kept)
                self.by_type[rtype] = kept
        if self.foreign:
            for key in [k for k, r in self.index.items() if not _about(r, patient_id, frozen)]:
                del self.index[key]
        return frozen

    def resources(self, rtype: str) -> list[dict[str, Any]]:
        return self.by_type.get(rtype, [])

    # ------------------------------------------------------------ references

    def resolve(self, reference: Any, container: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The resource a Reference (or reference string) points to within this request.

        Handles ``#id`` (contained in ``container``), relative ``Type/id``,
        ``Type/id/_history/n``, absolute URLs ending in ``Type/id``, and
        ``urn:uuid:`` full URLs (Synthea).
        """
        if isinstance(reference, Mapping):
            reference = reference.get("reference")
        if not isinstance(reference, str) or not reference:
            return None
        if reference.startswith("#"):
            if container is None:
                return None
            contained_list = container.get("contained")
            for contained in contained_list if isinstance(contained_list, list) else ():
                if isinstance(contained, Mapping) and contained.get("id") == reference[1:]:
                    return contained  # type: ignore[return-value]
            return None
        found = self.index.get(reference)
        if found is not None:
            return found
        if "/_history/" in reference:
            reference = reference.split("/_history/", 1)[0]
        parts = reference.rstrip("/").split("/")
        if len(parts) >= 2:
            return self.index.get(f"{parts[-2]}/{parts[-1]}")
        return None

    # ------------------------------------------------------------ validation

    def validate_full(self, resource: Mapping[str, Any]) -> bool:
        """Validate with the R4B model (once per resource): True when the extraction can read it.

        Invalid only on elements the extraction does not read (``READ_ELEMENTS``): read anyway,
        with a warning and a count in ``lenient``. Invalid on an element it reads: False, with a
        warning and an entry in ``unreadable`` (the response's notice).
        """
        key = id(resource)
        if key not in self._validated:
            outcome = _full_errors(resource)
            if outcome is None:
                self._validated[key] = None
            else:
                summary, elements = outcome
                rtype = str(resource.get("resourceType"))
                read = READ_ELEMENTS.get(rtype)
                if read is not None and elements and "" not in elements and not (elements & read):
                    self._validated[key] = None
                    warning = FactWarning(rtype, _rid(resource), f"read leniently: {summary} (elements not used)")
                    self.lenient.append(warning)
                else:
                    self._validated[key] = summary
                    warning = FactWarning(rtype, _rid(resource), summary)
                    self.unreadable.append(warning)
                self.warnings.append(warning)
        return self._validated[key] is None

    def validate_observation_lean(self, resource: Mapping[str, Any]) -> bool:
        return self._validate_lean(resource, LEAN_OBSERVATION)

    def validate_procedure_lean(self, resource: Mapping[str, Any]) -> bool:
        return self._validate_lean(resource, LEAN_PROCEDURE)

    def _validate_lean(self, resource: Mapping[str, Any], schema: TypeAdapter[Any]) -> bool:
        key = id(resource)
        if key in self._validated:  # already seen (full or lean): do not warn twice
            return self._validated[key] is None
        try:
            # The core validator itself: TypeAdapter.validate_python only forwards its defaults to it, at ~0.3 us
            # a call on ~8,700 Observations of a 10,000-resource record.
            schema.validator.validate_python(resource)
        except ValidationError as exc:
            self._validated[key] = summarise(exc)
            # The lean schema holds only elements the extraction reads: this result cannot be read.
            warning = FactWarning(str(resource.get("resourceType")), _rid(resource), summarise(exc))
            self.warnings.append(warning)
            self.unreadable.append(warning)
            return False
        return True

    def warn(self, resource: Mapping[str, Any], message: str) -> None:
        self.warnings.append(FactWarning(str(resource.get("resourceType")), _rid(resource), message))


def _about(resource: Mapping[str, Any], patient_id: str, accepted: frozenset[str]) -> bool:
    """False when the resource is about another patient (see ``Intake.bind_patient``)."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    named = False
    for element in ("subject", "patient"):
        ref = resource.get(element)
        if isinstance(ref, (dict, Mapping)):  # dict first: the ABC check is slow
            target = ref.get("reference")
            if not isinstance(target, str):
                continue
            named = True
            if target in accepted:
                return True
            path = target.split("/_history/", 1)[0].rstrip("/").split("/")
            if len(path) >= 2 and path[-2] == "Patient" and path[-1] == patient_id:
                return True
    return not named


def _subject_accepted(resource: Mapping[str, Any], accepted: frozenset[str]) -> bool:
    """The common case of ``_about`` for a resource that is not a Patient: its subject is an accepted reference."""
    subject = resource.get("subject")
    if type(subject) is not dict:
        return False
    target = subject.get("reference")
    return type(target) is str and target in accepted


def _rid(resource: Mapping[str, Any]) -> str:
    # A Patient's id identifies a person: it stays out of warnings (they reach the trace and logs).
    if resource.get("resourceType") == "Patient":
        return "(patient)"
    rid = resource.get("id")
    return rid if isinstance(rid, str) else "(no id)"


def reference_key(resource: Mapping[str, Any], fallback: str) -> str:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid}" if isinstance(rid, str) else fallback


class _ValidationMemo:
    """Full-validation outcomes of resources seen before, by content digest, bounded (LRU).

    Long-term dialysis patients send the same history with every hook call; validating an
    unchanged Condition or Observation again costs ~150 µs each in fhir.resources, hashing
    its JSON ~3 µs. Only the outcome is kept (None, or failing field paths without values),
    never resource content, so nothing of one request can reach another's answer.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._outcomes: OrderedDict[bytes, _Outcome] = OrderedDict()
        self._lock = threading.Lock()

    def errors(self, resource: Mapping[str, Any]) -> _Outcome:
        try:
            digest = hashlib.blake2b(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
        except TypeError:  # not plain JSON data: validate without memo
            return _validate_model(resource)
        with self._lock:
            if digest in self._outcomes:
                self._outcomes.move_to_end(digest)
                return self._outcomes[digest]
        outcome = _validate_model(resource)
        with self._lock:
            self._outcomes[digest] = outcome
            if len(self._outcomes) > self.size:
                self._outcomes.popitem(last=False)
        return outcome


_MEMO = _ValidationMemo(size=50_000)


def _full_errors(resource: Mapping[str, Any]) -> _Outcome:
    return _MEMO.errors(resource)


# None (valid), or (summary without values, the top-level elements that failed; "" = the resource itself).
_Outcome = tuple[str, frozenset[str]] | None


def _validate_model(resource: Mapping[str, Any]) -> _Outcome:
    rtype = resource.get("resourceType")
    try:
        model = get_fhir_model_class(str(rtype))
    except (KeyError, ValueError, AttributeError):
        return f"unknown resource type {rtype!r}", frozenset({""})
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        elements = frozenset(
            str(e["loc"][0]) if e.get("loc") else "" for e in exc.errors(include_input=False, include_url=False)
        )
        return summarise(exc), elements
    except (TypeError, ValueError, AttributeError, RecursionError) as exc:  # model code raising outside pydantic
        return f"invalid: {type(exc).__name__}", frozenset({""})
    return None


# pydantic messages for these types never contain the input value.
_SAFE_MESSAGE_TYPES = frozenset({"missing", "extra_forbidden", "literal_error", "enum", "list_type", "dict_type"})


def summarise(exc: ValidationError, limit: int = 3) -> str:
    """Failing element paths and error types, never the offending values."""
    parts = []
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    for error in errors[:limit]:
        loc = ".".join(str(p) for p in error.get("loc", ())) or "(resource)"
        detail = error["msg"] if error.get("type") in _SAFE_MESSAGE_TYPES else error.get("type", "invalid")
        parts.append(f"{loc}: {detail}")
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return "invalid R4 resource: " + "; ".join(parts) + more


def iter_codings(concept: Any) -> Iterator[Mapping[str, Any]]:
    # dict before the Mapping ABC: parsed JSON is dicts, and this runs for every coded element.
    if isinstance(concept, (dict, Mapping)):
        codings = concept.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, (dict, Mapping)):
                    yield coding
