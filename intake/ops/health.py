"""GET /healthz: is the daemon up and its database answering, and when did each
source last succeed."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("intake.ops.health")


def intake_version() -> str:
    from intake import __version__

    return __version__


def health(sessions: sessionmaker[Session], now: Callable[[], datetime]) -> tuple[int, dict]:
    """(HTTP status, body): 200 when the database answers, 503 when it does not."""
    from intake.models import SourceState

    body: dict = {"ok": True, "version": intake_version(), "database": True, "sources": {}}
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
            rows = list(session.execute(select(SourceState.source, SourceState.last_success_at)))
    except Exception as exc:
        log.warning("healthz: database unreachable: %s", exc)
        body.update(ok=False, database=False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return 503, body
    at = now()
    body["sources"] = {
        source: {"last_success_age_seconds": round((at - last).total_seconds(), 3) if last else None}
        for source, last in rows
    }
    return 200, body
