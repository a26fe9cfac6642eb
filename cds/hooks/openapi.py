"""The HTTP contract (OpenAPI 3.1), generated from the wire models.

``openapi.yaml`` at the repository root is this document, checked in so that
EHR integrators can read it without running the service; a test keeps the two
identical (``cds openapi > openapi.yaml`` regenerates it) and a schemathesis
run holds the live service to it.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from cds import __version__
from cds.hooks.models import CDSRequest, CDSResponse, DiscoveryResponse, FeedbackRequest, FeedbackResponse

_REF = "#/components/schemas/{model}"

OPERATION_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "FHIR R4 OperationOutcome; `id` is the request id, also sent in the X-Request-ID header.",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "id": {"type": "string"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                },
            },
        },
    },
}

HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "version", "ruleset", "store"],
    "properties": {
        "status": {"enum": ["ok"]},
        "version": {"type": "string"},
        "ruleset": {
            "type": "object",
            "required": ["version", "engine"],
            "properties": {
                "version": {"type": "string"},
                "engine": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "string"}},
            },
        },
        "store": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    },
}

READY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "ruleset", "engine"],
    "properties": {"status": {"const": "ready"}, "ruleset": {"type": "string"}, "engine": {"type": "string"}},
}

_ERROR_TEXT = {
    "400": "Malformed JSON, or a request for a hook this service does not answer",
    "401": "Missing or invalid JWT (when authentication is required)",
    "403": "Data must be fetched, and fhirServer is not one this caller may name (trusted client's fhir_servers)",
    "404": "Unknown service",
    "405": "Method not allowed",
    "412": "Required prefetch data neither sent nor fetchable from fhirServer",
    "413": "Request body over the configured limit",
    "415": "Content-Type is not application/json",
    "422": "Valid JSON that is not a valid CDS Hooks request",
    "500": "Internal error; the OperationOutcome carries a request id to quote",
    "503": "Temporarily unavailable (saturated, or the feedback store is down); see Retry-After",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {
        code: {
            "description": _ERROR_TEXT[code],
            "content": {"application/fhir+json": {"schema": {"$ref": _REF.format(model="OperationOutcome")}}},
        }
        for code in codes
    }


def _json(model: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}}


def _body(model: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}}


SERVICE_ID = {
    "name": "service_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-_.]+$"},
    "description": "Service id from discovery",
}


def contract() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (CDSRequest, "validation"),
            (FeedbackRequest, "validation"),
            (CDSResponse, "serialization"),
            (DiscoveryResponse, "serialization"),
            (FeedbackResponse, "serialization"),
        ],
        ref_template=_REF,
    )
    components = dict(schemas["$defs"])
    components["OperationOutcome"] = OPERATION_OUTCOME_SCHEMA
    components["Health"] = HEALTH_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Calciphylaxis CDS Hooks service",
            "version": __version__,
            "description": (
                "CDS Hooks 2.0.1 service that helps recognise calciphylaxis in kidney failure and weighs "
                "its differential. Every error is a FHIR OperationOutcome. When authentication is "
                "required, every CDS Hooks route expects `Authorization: Bearer <JWT>` signed by a trusted EHR."
            ),
        },
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"cdsHooksJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "paths": {
            "/cds-services": {
                "get": {
                    "operationId": "discovery",
                    "summary": "CDS Hooks discovery",
                    "security": [{"cdsHooksJwt": []}, {}],
                    "responses": {
                        "200": _json("DiscoveryResponse", "The services this endpoint offers"),
                        **_errors("401", "500", "503"),
                    },
                }
            },
            "/cds-services/{service_id}": {
                "post": {
                    "operationId": "callService",
                    "summary": "Invoke a CDS service with a hook request",
                    "security": [{"cdsHooksJwt": []}, {}],
                    "parameters": [SERVICE_ID],
                    "requestBody": _body("CDSRequest"),
                    "responses": {
                        "200": _json("CDSResponse", "Cards (possibly none)"),
                        **_errors("400", "401", "403", "404", "412", "413", "415", "422", "500", "503"),
                    },
                }
            },
            "/cds-services/{service_id}/feedback": {
                "post": {
                    "operationId": "feedback",
                    "summary": "Report what the user did with cards",
                    "security": [{"cdsHooksJwt": []}, {}],
                    "parameters": [SERVICE_ID],
                    "requestBody": _body("FeedbackRequest"),
                    "responses": {
                        "200": _json("FeedbackResponse", "Feedback stored (duplicates counted, stored once)"),
                        **_errors("400", "401", "404", "413", "415", "422", "500", "503"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness, rule set version, engine backend, store status",
                    "responses": {
                        "200": {
                            "description": "The process answers",
                            "content": {"application/json": {"schema": {"$ref": _REF.format(model="Health")}}},
                        },
                        **_errors("500"),
                    },
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "ready",
                    "summary": "Readiness: a valid rule set is loaded and the last reload succeeded",
                    "responses": {
                        "200": {
                            "description": "Ready to answer hooks",
                            "content": {"application/json": {"schema": READY_SCHEMA}},
                        },
                        **_errors("500"),
                        "503": {
                            "description": "Not ready; the OperationOutcome names the rule errors",
                            "content": {
                                "application/fhir+json": {"schema": {"$ref": _REF.format(model="OperationOutcome")}}
                            },
                        },
                    },
                }
            },
            # The pages behind the cards (cds.pages, ADR 0007): generated from the rules, no patient data, no auth.
            "/pages/{version}/index.html": {
                "get": {
                    "operationId": "pageIndex",
                    "summary": "Index of the pages behind the cards (cards and causes) of a rule-set version",
                    "parameters": [PAGE_VERSION],
                    "responses": PAGE_RESPONSES,
                }
            },
            "/pages/{version}/{kind}/{name}": {
                "get": {
                    "operationId": "page",
                    "summary": "The page behind a card family or a cause: evidence, sources, how to read the band",
                    "parameters": [
                        PAGE_VERSION,
                        {
                            "name": "kind",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": ["cards", "causes"]},
                        },
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*\\.html$"},
                        },
                    ],
                    "responses": PAGE_RESPONSES,
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus exposition (aggregated across worker processes)",
                    "responses": {
                        "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **_errors("500"),
                    },
                }
            },
        },
    }


PAGE_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "description": "rule-set version as on the card's link; an earlier one redirects to the current page",
    "schema": {"type": "string"},
}
PAGE_RESPONSES = {
    "200": {"description": "The page (HTML, cacheable)", "content": {"text/html": {"schema": {"type": "string"}}}},
    "307": {"description": "An earlier rule-set version: the Location is the current version's page"},
    **_errors("404", "500"),
}


def contract_yaml() -> str:
    header = "# Generated by `cds openapi` from cds/hooks/models.py; do not edit by hand.\n"
    return header + yaml.safe_dump(contract(), sort_keys=False, allow_unicode=True, width=100)
