"""What the hook layer needs from the pipeline, without importing it.

``cds.hooks.handler.answer_hook`` validates a call, completes its prefetch and hands it to an
``Evaluator`` (in the service, ``cds.pipeline.Pipeline``; the composition root passes it in). The
pipeline imports the hook layer's models, never the other way round (docs/adr/0012).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cds.hooks.models import CDSRequest, CDSResponse
from cds.hooks.services import ServiceDefinition


@dataclass(frozen=True)
class Evaluation:
    """The answer to one hook call, before it goes on the wire."""

    response: CDSResponse
    trace: dict[str, Any] | None = None
    rules_fired: tuple[str, ...] = ()
    # card uuid (str) -> ids of the rules that raised it, for the audit record.
    card_rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Seconds per stage: facts, engine, differential, cards (the web layer turns them into metrics).
    timings: Mapping[str, float] = field(default_factory=dict)


class FactLimitExceeded(Exception):
    """The request gives more facts than the limit: refused, because evaluating part of them could hide a card."""

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__(f"{count} facts; the limit is {limit}")


class Evaluator(Protocol):
    """Evaluates a validated request with its completed prefetch (``cds.pipeline.Pipeline``)."""

    def evaluate(
        self,
        service: ServiceDefinition,
        request: CDSRequest,
        prefetch: Mapping[str, Any],
        now: datetime,
        want_trace: bool = False,
        max_facts: int | None = None,
        pages_base_url: str | None = None,
    ) -> Evaluation: ...
