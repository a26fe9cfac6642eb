"""The pages behind the cards (cds.pages).

Built from the rules alone (no patient data), so no authentication; cacheable for as long as the
rule-set version in the URL exists. A link to an earlier version leads to the current page.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cds.hooks.errors import HookError
from cds.pages import Pages
from cds.pipeline import Pipeline
from cds.web.context import ContextDep, PipelineDep

# Pages are immutable under their versioned URL; the frame-ancestors default lets an EHR embed them.
PAGE_HEADERS = {
    "Cache-Control": "public, max-age=86400, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:",
}

router = APIRouter()
_pages_of: dict[tuple[int, str], Pages] = {}


def pages_for(current: Pipeline) -> Pages:
    """The pages of the serving rule set (built once per pipeline and version)."""
    key = (id(current), current.version)
    if key not in _pages_of:
        _pages_of.clear()
        _pages_of[key] = Pages(current.ruleset)
    return _pages_of[key]


async def page_response(
    request: Request, context: ContextDep, current: Pipeline, version: str, kind: str, name: str
) -> Response:
    if not name.endswith(".html"):
        raise HookError(404, "no such page")
    pages = pages_for(current)
    if version != pages.version:
        path = f"/pages/{quote(pages.version, safe='')}/{kind + '/' if kind else ''}{name}"
        return Response(
            status_code=307, headers={"Location": context.audience(request, path), "Cache-Control": "no-store"}
        )
    html = await run_in_threadpool(pages.render, kind, name.removesuffix(".html"))
    if html is None:
        raise HookError(404, "no such page")
    return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/pages/{version}/index.html")
async def page_index(version: str, request: Request, context: ContextDep, current: PipelineDep) -> Response:
    return await page_response(request, context, current, version, "", "index.html")


@router.get("/pages/{version}/{kind}/{name}")
async def page(
    version: str, kind: str, name: str, request: Request, context: ContextDep, current: PipelineDep
) -> Response:
    if kind not in ("cards", "causes"):
        raise HookError(404, "no such page")
    return await page_response(request, context, current, version, kind, name)
