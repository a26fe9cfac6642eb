"""What the routes are given: the ``WebContext`` built once by ``create_app``, and the current pipeline.

Routes receive them as FastAPI dependencies (``ContextDep``, ``PipelineDep``); the pipeline is read
from ``app.state`` on every request because a reload or a test may replace it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from cds.hooks.prefetch import Fetcher
from cds.pipeline import Pipeline
from cds.settings import Settings
from cds.store import Store
from cds.web.snooze import SnoozeGate

# authenticate(request, audience_url) raises a cds.auth.AuthError when the caller is not trusted.
Authenticator = Callable[[Request, str], Awaitable[None]]


@dataclass
class WebContext:
    settings: Settings
    store: Store
    fetch: Fetcher | None
    authenticate: Authenticator | None
    clock: Callable[[], datetime]
    snooze: SnoozeGate

    def audience(self, request: Request, path: str) -> str:
        """The URL the caller invoked (the JWT ``aud``; the base of the pages' links)."""
        base = (self.settings.external_base_url or str(request.base_url)).rstrip("/")
        return f"{base}{path}"

    async def check_caller(self, request: Request, path: str) -> None:
        if self.authenticate is not None:
            await self.authenticate(request, self.audience(request, path))


def web_context(request: Request) -> WebContext:
    context: WebContext = request.app.state.context
    return context


def current_pipeline(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


ContextDep = Annotated[WebContext, Depends(web_context)]
PipelineDep = Annotated[Pipeline, Depends(current_pipeline)]
