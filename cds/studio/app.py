"""The studio's HTTP app: one HTML page and a small JSON API over the engine's own functions.

Every answer is computed by the code the service and the CLI use (``load_ruleset``,
``LoadedEngine``, ``render_cards``, ``cds.engine.explain``, ``cds.engine.outcomediff``); the
studio adds no rule semantics of its own. Edits are applied to a scratch copy of the rules
directory, never to the served one.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from cds.engine import explain, outcomediff
from cds.engine.loader import load_ruleset

PAGE = Path(__file__).with_name("page.html")
MAX_BODY = 5 * 1024 * 1024
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


class StudioError(ValueError):
    """Bad input from the page: answered 400 with the message."""


@dataclass
class Served:
    """The rule set the studio compares with (what the service would serve from this directory)."""

    rules_dir: Path
    side: outcomediff.Side
    loaded_at: str


class Studio:
    def __init__(self, rules_dir: Path) -> None:
        self.rules_dir = Path(rules_dir).resolve()
        self._lock = threading.Lock()
        self.served = self._load_served()

    def _load_served(self) -> Served:
        side = outcomediff.Side("served", self.rules_dir)
        return Served(self.rules_dir, side, datetime.now(UTC).isoformat(timespec="seconds"))

    def reload(self) -> dict[str, Any]:
        with self._lock:
            old = self.served
            self.served = self._load_served()
            old.side.close()
        return {"version": self.served.side.ruleset.version, "loaded_at": self.served.loaded_at}

    # ------------------------------------------------------------------ inputs
    def cases(self) -> list[dict[str, Any]]:
        items = outcomediff.test_inputs(self.served.side.ruleset)
        return [
            {
                "id": i.id,
                "service": i.service,
                "now": i.now.isoformat(),
                "kind": "facts" if i.facts is not None else "request",
            }
            for i in items
        ]

    def _input(self, body: dict[str, Any]) -> outcomediff.Input:
        case_id = body.get("case")
        if case_id:
            for item in outcomediff.test_inputs(self.served.side.ruleset):
                if item.id == case_id:
                    return item
            raise StudioError(f"no shipped case {case_id!r}")
        request = body.get("request")
        if isinstance(request, str):
            try:
                request = orjson.loads(request)
            except orjson.JSONDecodeError as exc:
                raise StudioError(f"the pasted request is not JSON: {exc.msg} (position {exc.pos})") from None
        if not isinstance(request, dict) or not isinstance(request.get("hook"), str):
            raise StudioError("paste a CDS Hooks request (a JSON object with `hook`, `context` and `prefetch`)")
        from cds.hooks.services import load_services

        services = load_services(self.rules_dir / "services.yaml")
        service = body.get("service") or next((s.id for s in services if s.hook == request["hook"]), None)
        if service is None:
            raise StudioError(f"no service answers hook {request['hook']!r}")
        now = _time(body.get("now")) or datetime.now(UTC)
        return outcomediff.Input(
            "pasted request", service, now, request.get("context") or {}, request.get("prefetch") or {}
        )

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, body: dict[str, Any]) -> dict[str, Any]:
        item = self._input(body)
        if body.get("now"):
            item = outcomediff.Input(
                item.id, item.service, _time(body["now"]) or item.now, item.context, item.prefetch, item.facts
            )
        side = self.served.side
        return {
            "input": {"id": item.id, "service": item.service, "now": item.now.isoformat()},
            "version": side.ruleset.version,
            **describe(side, item),
        }

    def try_edit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply edited files to a scratch copy; validate as a reload does; diff the chosen case (or all)."""
        edits = body.get("files") or {}
        if not isinstance(edits, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in edits.items()):
            raise StudioError("`files` maps a path inside the rules directory to its new text")
        with tempfile.TemporaryDirectory(prefix="cds-studio-") as scratch:
            candidate = Path(scratch) / "rules"
            shutil.copytree(self.rules_dir, candidate)
            examples = self.rules_dir.parent / "fhir_examples"  # cases named from the repository root (N203)
            if examples.is_dir():
                (Path(scratch) / "fhir_examples").symlink_to(examples, target_is_directory=True)
            for relative, text in edits.items():
                target = _inside(candidate, relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            return self._compare(candidate, body)

    def compare_disk(self, body: dict[str, Any]) -> dict[str, Any]:
        """The files on disk now against the served set (edits made in an editor)."""
        return self._compare(self.rules_dir, body)

    def _compare(self, candidate: Path, body: dict[str, Any]) -> dict[str, Any]:
        result = load_ruleset(candidate)
        diagnostics = [
            {
                "file": _display(d.file),
                "line": d.line,
                "column": d.column,
                "code": d.code,
                "message": d.message,
                "rule": d.rule_id,
                "severity": d.severity,
                "link": d.link,
                "text": _display(str(d)),
            }
            for d in result.diagnostics
            if d.severity != "note"
        ]
        answer: dict[str, Any] = {
            "valid": result.ruleset is not None and not result.errors,
            "diagnostics": diagnostics,
            "folded": len(result.consequences),
        }
        if not answer["valid"]:
            answer["reload"] = "refused: the service would keep serving " + self.served.side.ruleset.version
            return answer
        side = outcomediff.Side("edited", candidate)
        try:
            from cds.engine.ruletests import run_rule_tests

            failing = [
                f"{r.id}: {'; '.join(r.failures)}"
                for r in run_rule_tests(side.engine, side.extractor)
                if not r.passed and not r.skipped
            ]
            answer["test_failures"] = failing
            answer["reload"] = (
                "refused: rule tests fail (the service would keep serving the old set)"
                if failing
                else f"would load: {side.ruleset.version}"
            )
            answer["rules"] = outcomediff.changed_rules(self.served.side.ruleset, side.ruleset)
            if body.get("all_cases"):
                inputs = outcomediff.test_inputs(self.served.side.ruleset, side.ruleset)
            else:
                inputs = [self._input(body)]
            cases = {}
            for item in inputs:
                change = outcomediff.compare(self.served.side.evaluate(item), side.evaluate(item))
                if change:
                    cases[item.id] = change
            answer["diff"] = {"inputs": len(inputs), "cases": cases}
            if not body.get("all_cases"):
                answer["after"] = describe(side, inputs[0])
        finally:
            side.close()
        return answer

    # ------------------------------------------------------------------ files
    def files(self) -> list[str]:
        return [str(p.relative_to(self.rules_dir)) for p in sorted(self.rules_dir.rglob("*.yaml"))]

    def file(self, relative: str) -> str:
        path = _inside(self.rules_dir, relative)
        if not path.is_file():
            raise StudioError(f"no file {relative!r} in the rules directory")
        return path.read_text(encoding="utf-8")


def describe(side: outcomediff.Side, item: outcomediff.Input) -> dict[str, Any]:
    """Facts, rules fired and not (with why), the differential and the rendered cards for one input."""
    from cds.cards.render import render_cards
    from cds.cards.wording import band as card_band  # the band words the cards use

    factset = item.factset(side.extractor)
    outcome = side.engine.evaluate(factset, item.service)
    rendered = render_cards(side.ruleset, outcome, item.context, "org.calciphylaxis-cds.ruleset")
    fired = set(outcome.rules_fired)
    rules = []
    for rule in side.ruleset.active_rules:
        answer = explain.why_rule(side.ruleset, outcome, rule.id)
        rules.append(
            {
                "id": rule.id,
                "title": rule.title,
                "fired": rule.id in fired,
                "why": answer.summary,
                "patterns": answer.patterns,
            }
        )
    templates = [t for t, card in side.ruleset.cards.items() if item.service in card.services]
    return {
        "facts": [
            {"id": f.source_id, "kind": f.kind, "attrs": {k: v for k, v in f.attrs.items() if not k.startswith("_")}}
            for f in outcome.facts
            if not f.kind.startswith("$")
        ],
        "fact_warnings": list(outcome.fact_warnings),
        "rules": sorted(rules, key=lambda r: (not r["fired"], r["id"])),
        "differential": [
            {
                "hypothesis": h.id,
                "title": h.title,
                "posterior": h.posterior,
                "band": str(card_band(h.posterior, h.low, h.high)),
            }
            for h in outcome.differential.hypotheses
        ],
        "cards": [card.model_dump(mode="json", exclude_none=True) for card, _ in rendered],
        "card_checks": [explain.why_card(side.ruleset, outcome, t).as_dict() for t in templates],
    }


def _inside(root: Path, relative: str) -> Path:
    target = (root / relative).resolve()
    if root.resolve() not in target.parents or target.suffix != ".yaml":
        raise StudioError(f"{relative!r} is not a YAML file inside the rules directory")
    return target


def _display(text: str) -> str:
    # scratch copies are named rules/... like the served set, so messages read the same
    return text


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise StudioError(f"not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def loopback_only(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    # The studio has no authentication: refuse other hosts (DNS rebinding) and big bodies.
    host = (request.headers.get("host") or "").rsplit(":", 1)[0]
    if host not in LOOPBACK_HOSTS:
        return JSONResponse({"error": "the studio answers only on loopback"}, status_code=403)
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        return JSONResponse({"error": "request body too large"}, status_code=413)
    return await call_next(request)


async def body_of(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise StudioError(f"the request body is not JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise StudioError("the request body must be a JSON object")
    return body


def create_studio_app(rules_dir: Path) -> FastAPI:
    studio = Studio(rules_dir)
    app = FastAPI(title="cds studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.studio = studio

    app.middleware("http")(loopback_only)

    @app.exception_handler(StudioError)
    async def bad_input(request: Request, exc: StudioError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/docs/docs/rule-errors.md")
    def rule_errors() -> Response:
        page = Path(__file__).resolve().parent.parent.parent / "docs" / "rule-errors.md"
        body = page.read_text(encoding="utf-8") if page.is_file() else "docs/rule-errors.md is not installed here"
        return Response(body, media_type="text/plain; charset=utf-8")

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        served = studio.served
        return {
            "version": served.side.ruleset.version,
            "loaded_at": served.loaded_at,
            "cases": studio.cases(),
            "files": studio.files(),
        }

    @app.get("/api/file")
    def file(path: str) -> dict[str, Any]:
        return {"path": path, "text": studio.file(path)}

    @app.post("/api/evaluate")
    async def evaluate(request: Request) -> Response:
        body = await body_of(request)
        return Response(orjson.dumps(studio.evaluate(body), default=str), media_type="application/json")

    @app.post("/api/try")
    async def try_edit(request: Request) -> Response:
        body = await body_of(request)
        return Response(orjson.dumps(studio.try_edit(body), default=str), media_type="application/json")

    @app.post("/api/compare-disk")
    async def compare_disk(request: Request) -> Response:
        body = await body_of(request)
        return Response(orjson.dumps(studio.compare_disk(body), default=str), media_type="application/json")

    @app.post("/api/reload")
    def reload() -> dict[str, Any]:
        return studio.reload()

    return app
