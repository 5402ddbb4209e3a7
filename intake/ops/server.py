"""The operations listener ([metrics] listen): /metrics and /healthz as a small
Starlette app, served by uvicorn in a daemon thread like the web form."""

from __future__ import annotations

import logging
import threading

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from intake.context import Context
from intake.ops.health import health
from intake.ops.metrics import registry

log = logging.getLogger("intake.ops")


def create_app(ctx: Context) -> Starlette:
    from intake.oauth import credential_expiries

    reg = registry(ctx.sessions, ctx.now, ctx.config.var, credential_expiries(ctx.config))

    # plain `def`: Starlette runs them in its thread pool, the blocking queries stay off the event loop
    def metrics(_request: Request) -> Response:
        return Response(generate_latest(reg), media_type=CONTENT_TYPE_LATEST)

    def healthz(_request: Request) -> Response:
        status, body = health(ctx.sessions, ctx.now, ctx.config.var)
        return JSONResponse(body, status_code=status)

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])


def ops_thread(ctx: Context, listen: str, stop: threading.Event, ready: threading.Event | None = None) -> threading.Thread:
    """A thread serving create_app(ctx) on HOST:PORT until `stop` is set."""
    from intake.config import parse_listen
    from intake.web.server import serve

    host, port = parse_listen(listen)
    app = create_app(ctx)

    def run() -> None:
        try:
            serve(app, host, port, stop, ready=ready)
        except OSError as exc:  # the daemon goes on without its metrics; say so loudly
            log.error("metrics listener: %s", exc)

    return threading.Thread(target=run, name=f"metrics:{host}:{port}", daemon=True)
