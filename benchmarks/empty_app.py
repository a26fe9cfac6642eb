"""The empty-route baseline: a FastAPI app that reads the body and answers ``{"cards": []}``.

Served by uvicorn exactly as ``cds serve`` serves the real app (same uvicorn.run
arguments, one or more workers), so the difference between the two is the
service's own work: ``python -m benchmarks.empty_app --port P --workers W``.
"""

from __future__ import annotations

import argparse
import sys

from fastapi import FastAPI, Request
from starlette.responses import Response

from cds.serving import BOUNDED_HTTPTOOLS, reuseport_supported, run_workers

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/cds-services/{service_id}")
async def empty_route(service_id: str, request: Request) -> Response:
    await request.body()  # receive the whole body, as the real route must, and do nothing with it
    return Response(b'{"cards":[]}', media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m benchmarks.empty_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    options = dict(
        host="127.0.0.1",  # loopback only
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        http=BOUNDED_HTTPTOOLS,  # the HTTP parser `cds serve` uses by default
        h11_max_incomplete_event_size=64 * 1024,
    )
    if args.workers == 1:
        uvicorn.run(app, **options)
    elif reuseport_supported():  # as `cds serve --workers N`: one SO_REUSEPORT socket per worker (ADR 0013)
        run_workers(uvicorn.Config("benchmarks.empty_app:app", **options))
    else:
        uvicorn.run("benchmarks.empty_app:app", **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
