"""GET /healthz: is the daemon up and its database answering, and when did each
source last succeed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("intake.ops.health")


def intake_version() -> str:
    from intake import __version__

    return __version__


def health(sessions: sessionmaker[Session], now: Callable[[], datetime], var: Path | None = None) -> tuple[int, dict]:
    """(HTTP status, body): 200 when the database answers, 503 when it does not. A failing
    source is named in "failing" and marked up: false (the daemon itself is fine, and a
    restart would not mend a mailbox); with `var`, each OAuth2 login's token expiry."""
    from intake.oauth.store import token_states
    from intake.ops.alerts import is_failing
    from intake.store.models import SourceState

    body: dict = {"ok": True, "version": intake_version(), "database": True, "sources": {}}
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
            rows = list(session.scalars(select(SourceState)))
    except Exception as exc:
        log.warning("healthz: database unreachable: %s", exc)
        body.update(ok=False, database=False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return 503, body
    at = now()
    body["sources"] = {
        s.source: {
            "last_success_age_seconds": round((at - s.last_success_at).total_seconds(), 3) if s.last_success_at else None,
            "up": not is_failing(s),
            **({"last_error": s.last_error} if is_failing(s) else {}),
        }
        for s in rows
    }
    body["failing"] = sorted(s.source for s in rows if is_failing(s))
    if var is not None:
        body["tokens"] = {label: {"expires_in_seconds": round((t["expires_at"] - at).total_seconds())} for label, t in token_states(var).items()}
    return 200, body
