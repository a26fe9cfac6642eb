"""A small FHIR R4 server for tests, run as a real HTTP process on loopback.

    python tests/fhir_server.py BUNDLE.json [BUNDLE.json ...]

It prints ``PORT <n>`` on stdout once it listens (port chosen by the OS) and
serves the resources of the given Bundles (e.g. Synthea patients, read in place
from ../shared/data) under ``http://127.0.0.1:<n>/<mode>/fhir``:

* read ``Type/id`` and type-level search by ``patient``/``subject``, ``code``,
  ``category`` (tokens, ``system|code``, comma = OR), ``date`` (``eq lt gt ge
  le`` prefixes, repeatable), ``_count``, ``_sort`` (``date``/``-date``), with
  ``next`` links for paging;
* ``<mode>`` is how the server misbehaves: ``ok``; ``slow-<seconds>``;
  ``fail`` (HTTP 500); ``outcome`` (200 with an OperationOutcome); ``garbage``
  (200 with bytes that are not JSON); ``loop`` (every ``next`` link points back
  at the same page); ``foreign`` (``next`` links point at another origin,
  ``localhost`` instead of ``127.0.0.1``); ``redirect`` (302 to that other
  origin); ``endless`` (every page has a new ``next`` link); ``dotdot``
  (``next`` links leave the base path by ``%2e%2e`` segments); ``token-<value>`` (401 unless the
  request carries ``Authorization: Bearer <value>``).
  A mode may carry a tag after a dot (``ok.t1``) so a test can pick its own
  requests out of the log.
* ``GET /_requests`` returns every request received so far (method, path with
  query, Host header, Authorization header), so tests can check where a token went.

Written with the standard library on purpose: the test server must not share
code (or bugs) with the httpx client under test.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

DATE_FIELDS = ("effectiveDateTime", "onsetDateTime", "authoredOn", "performedDateTime", "recordedDate", "issued")
DEFAULT_PAGE_SIZE = 50


class Store:
    def __init__(self, bundles: list[dict[str, Any]]) -> None:
        self.by_type: dict[str, list[dict[str, Any]]] = {}
        self.by_ref: dict[str, dict[str, Any]] = {}
        for bundle in bundles:
            for entry in bundle.get("entry", []):
                resource = entry.get("resource")
                if isinstance(resource, dict) and "resourceType" in resource and "id" in resource:
                    self.by_type.setdefault(resource["resourceType"], []).append(resource)
                    self.by_ref[f"{resource['resourceType']}/{resource['id']}"] = resource


def _reference_id(reference: str) -> str:
    return reference.rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _patient_of(resource: dict[str, Any]) -> str | None:
    for field in ("subject", "patient"):
        value = resource.get(field)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return _reference_id(value["reference"])
    if resource.get("resourceType") == "Patient":
        return resource.get("id")
    return None


def _codings(value: Any) -> list[dict[str, Any]]:
    concepts = value if isinstance(value, list) else [value]
    return [
        c for concept in concepts if isinstance(concept, dict) for c in concept.get("coding", []) if isinstance(c, dict)
    ]


def _token_matches(codings: list[dict[str, Any]], tokens: str) -> bool:
    for token in tokens.split(","):
        system, _, code = token.rpartition("|") if "|" in token else ("", "", token)
        for coding in codings:
            if coding.get("code") == code and (not system or coding.get("system") == system):
                return True
    return False


def _date_of(resource: dict[str, Any]) -> str | None:
    for field in DATE_FIELDS:
        if isinstance(resource.get(field), str):
            return resource[field]
    period = resource.get("performedPeriod") or resource.get("effectivePeriod")
    if isinstance(period, dict) and isinstance(period.get("start"), str):
        return period["start"]
    return None


def _date_matches(value: str | None, criterion: str) -> bool:
    if value is None:
        return False
    prefix, text = (
        (criterion[:2], criterion[2:]) if criterion[:2] in {"eq", "lt", "gt", "ge", "le"} else ("eq", criterion)
    )
    day = date.fromisoformat(value[:10])
    bound = date.fromisoformat(text[:10])
    return {
        "eq": day == bound,
        "lt": day < bound,
        "gt": day > bound,
        "ge": day >= bound,
        "le": day <= bound,
    }[prefix]


def search(store: Store, resource_type: str, params: dict[str, list[str]]) -> list[dict[str, Any]]:
    found = list(store.by_type.get(resource_type, []))
    for name, values in params.items():
        for value in values:
            if name in {"patient", "subject"}:
                wanted = _reference_id(value)
                found = [r for r in found if _patient_of(r) == wanted]
            elif name == "code":
                found = [
                    r
                    for r in found
                    if _token_matches(_codings(r.get("code")) + _codings(r.get("medicationCodeableConcept")), value)
                ]
            elif name == "category":
                found = [r for r in found if _token_matches(_codings(r.get("category")), value)]
            elif name == "date":
                found = [r for r in found if _date_matches(_date_of(r), value)]
    sort = (params.get("_sort") or [""])[0]
    if sort.lstrip("-") == "date":
        found.sort(key=lambda r: _date_of(r) or "", reverse=sort.startswith("-"))
    return found


class Handler(BaseHTTPRequestHandler):
    server: FhirTestServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read /_requests instead
        return

    def _send(self, status: int, body: bytes, content_type: str = "application/fhir+json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _outcome(self, status: int, code: str, text: str) -> None:
        self._json(
            status,
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]},
        )

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append(
                {
                    "method": "GET",
                    "path": self.path,
                    "host": self.headers.get("Host"),
                    "authorization": self.headers.get("Authorization"),
                }
            )
            if self.path == "/_requests":
                log = list(self.server.requests)
        if self.path == "/_requests":
            self._send(200, json.dumps(log).encode(), "application/json")
            return
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 3 or segments[1] != "fhir":
            self._outcome(404, "not-found", "unknown path")
            return
        mode = segments[0].split(".", 1)[0]
        rest = segments[2:]
        if mode.startswith("slow-"):
            time.sleep(float(mode.removeprefix("slow-")))
        elif mode == "fail":
            self._outcome(500, "exception", "the test server was asked to fail")
            return
        elif mode == "outcome":
            self._outcome(200, "processing", "the test server answers with an OperationOutcome")
            return
        elif mode == "garbage":
            self._send(200, b"<html>\x00\xff this is not FHIR", "application/fhir+json")
            return
        elif mode == "redirect":
            # To another origin (localhost instead of 127.0.0.1), same path in ok mode.
            target = f"http://localhost:{self.server.server_address[1]}/ok/fhir/{'/'.join(rest)}"
            self.send_response(302)
            self.send_header("Location", target + (f"?{parts.query}" if parts.query else ""))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        elif mode.startswith("token-") and self.headers.get("Authorization") != f"Bearer {mode.removeprefix('token-')}":
            self._outcome(401, "login", "bearer token required")
            return
        if len(rest) == 2:
            resource = self.server.store.by_ref.get(f"{rest[0]}/{rest[1]}")
            if resource is None:
                self._outcome(404, "not-found", "no such resource")
            else:
                self._json(200, resource)
            return
        params = parse_qs(parts.query, keep_blank_values=False)
        self._json(200, self._page(segments, rest[0], params, mode))

    def _page(self, segments: list[str], resource_type: str, params: dict[str, list[str]], mode: str) -> dict[str, Any]:
        matches = search(self.server.store, resource_type, params)
        count = int((params.get("_count") or [DEFAULT_PAGE_SIZE])[0])
        offset = int((params.get("_offset") or [0])[0])
        page = matches[offset : offset + count]
        host = self.headers.get("Host", "127.0.0.1")
        base = f"http://{host}/{'/'.join(segments[:2])}"
        self_url = f"{base}/{resource_type}?{urlencode(params, doseq=True)}"
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "id": f"search-{int(time.time() * 1000)}",
            "type": "searchset",
            "total": len(matches),
            "link": [{"relation": "self", "url": self_url}],
            "entry": [
                {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                for r in page
            ],
        }
        if offset + count < len(matches) or mode in {"loop", "endless", "dotdot"}:
            next_params = {**params, "_offset": [str(offset if mode == "loop" else offset + count)]}
            next_base = base
            if mode == "foreign":
                next_base = base.replace("127.0.0.1", "localhost", 1)
            elif mode == "dotdot":
                # Same origin, percent-encoded dot segments out of the fhirServer path.
                next_base = f"{base}/%2e%2e/%2E%2E/admin/fhir"
            bundle["link"].append(
                {"relation": "next", "url": f"{next_base}/{resource_type}?{urlencode(next_params, doseq=True)}"}
            )
        if not bundle["entry"]:
            del bundle["entry"]
        return bundle


class FhirTestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: Store) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.store = store
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []


def main(argv: list[str]) -> int:
    bundles = []
    for path in argv:
        with open(path, encoding="utf-8") as handle:
            bundles.append(json.load(handle))
    server = FhirTestServer(Store(bundles))
    print(f"PORT {server.server_address[1]}", flush=True)
    started = datetime.now()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        print(f"stopped after {datetime.now() - started}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# --------------------------------------------------------------------------- for the tests


class RunningFhirServer:
    """A started test server process, as the tests see it."""

    def __init__(self, process: Any, port: int) -> None:
        self.process = process
        self.port = port

    def base(self, mode: str = "ok", tag: str | None = None) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}{'.' + tag if tag else ''}/fhir"

    def requests(self, tag: str | None = None) -> list[dict[str, Any]]:
        """Requests received so far (only those of ``tag`` when given)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_requests", timeout=5) as response:
            log = json.loads(response.read())
        log = [r for r in log if r["path"] != "/_requests"]
        if tag is not None:
            log = [r for r in log if r["path"].split("/")[1].partition(".")[2] == tag]
        return log


def start(bundle_paths: list[str]) -> RunningFhirServer:
    """Start the server in its own process; the caller stops it with ``stop``."""
    import subprocess

    process = subprocess.Popen(
        [sys.executable, __file__, *bundle_paths],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the FHIR test server did not start: {line!r}")
    return RunningFhirServer(process, int(line.split()[1]))


def stop(server: RunningFhirServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except Exception:
        server.process.kill()
        server.process.wait(timeout=5)
    if server.process.stdout:
        server.process.stdout.close()
