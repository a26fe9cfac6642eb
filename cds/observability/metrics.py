"""Prometheus metrics (prometheus-client).

With several worker processes, ``cds serve`` points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh directory before the workers start; every process then writes its
samples there and ``/metrics`` aggregates them (prometheus-client's
multiprocess mode), so a scrape that reaches any worker sees all of them.
That variable is read from the environment, not through ``Settings``, because
prometheus-client itself reads it there (it is not a setting of this service).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

# Buckets around the targets: a typical hook answers in a few ms, the spec asks for ~500 ms.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

REQUEST_LATENCY = Histogram(
    "cds_request_duration_seconds",
    "HTTP request latency by route, service and status",
    ["route", "service", "status"],
    buckets=_LATENCY_BUCKETS,
)
STAGE_LATENCY = Histogram(
    "cds_stage_duration_seconds",
    "Time per evaluation stage (prefetch, facts, engine, differential, cards)",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
# By service only: a per-rule count would tell a low-traffic scraper which findings the last patient had
# (issue 16). Per-rule figures come from the audit (`cds feedback report`).
CARDS_RAISED = Counter("cds_cards_raised_total", "Cards returned, by service", ["service"])
PREFETCH_UNAVAILABLE = Counter(
    "cds_prefetch_unavailable_total", "Hook calls answered 412 (required data not obtainable)", ["service"]
)
# No label for the failed check: that would undo the uniform 401; the log line names it.
AUTH_FAILURES = Counter("cds_auth_failures_total", "Rejected or unverifiable JWTs")
FHIR_FETCH_LATENCY = Histogram(
    "cds_fhir_fetch_duration_seconds", "fhirServer fetch latency (one HTTP GET)", buckets=_LATENCY_BUCKETS
)
FHIR_FETCH_ERRORS = Counter("cds_fhir_fetch_errors_total", "fhirServer fetch failures by kind", ["kind"])
FEEDBACK = Counter("cds_feedback_total", "Feedback items received by outcome", ["outcome"])
RULE_RELOADS = Counter("cds_rule_reloads_total", "Rule set reload attempts by result", ["result"])
STORE_ERRORS = Counter("cds_store_errors_total", "Feedback/audit store errors by operation", ["operation"])
SATURATED = Counter("cds_rejected_saturated_total", "Requests refused with 503 because the service was saturated")
DEADLINE_EXCEEDED = Counter("cds_deadline_exceeded_total", "Hook calls that missed the per-request deadline")
# Snooze after an override (cds.cards.snooze): the hook path's lookup (ok, timeout, error: the card is shown)
# and what it did to cards (hidden, or shown again because the evidence changed).
SNOOZE_LOOKUPS = Counter("cds_snooze_lookups_total", "Snooze lookups on the hook path by result", ["result"])
CARDS_SNOOZED = Counter("cds_cards_snoozed_total", "Cards hidden or shown again by a snooze", ["template", "action"])
IN_FLIGHT = Gauge("cds_requests_in_flight", "Hook and feedback requests being handled", multiprocess_mode="livesum")


def exposition() -> tuple[bytes, str]:
    """The metrics text, aggregated across worker processes when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in prometheus-client
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_worker_exit(pid: int) -> None:
    """Tell multiprocess mode a worker is gone, so its live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # untyped in prometheus-client


# Reading real EHR data (cds.fhir): counts only, no resource ids or codes of a patient.
LENIENT_READS = Counter(
    "cds_fhir_lenient_reads_total", "Resources read although invalid R4 on elements the rules do not read"
)
UNREADABLE_RESOURCES = Counter(
    "cds_fhir_unreadable_resources_total", "Resources that could not be read; named in the response notice"
)
FOREIGN_PATIENT_RESOURCES = Counter(
    "cds_fhir_foreign_patient_resources_total",
    "Resources about another patient than context.patientId, ignored (by resource type)",
    ["resource_type"],
)
UNMATCHED_CODES = Counter(
    "cds_terminology_unmatched_codes_total",
    "Codings of conditions, medications, procedures and orders that matched no value set, by code system",
    ["system"],
)
