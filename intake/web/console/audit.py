"""The console's audit log: one row for every sign-in (and failed one) and every action.

`record` writes into the caller's session, so the row commits or rolls back with what it
records (a retry and its audit row are one transaction where the caller can make them so)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.store.models import utcnow
from intake.web.console.models import ConsoleAudit


def record(
    session: Session, user: str, action: str, target: str = "", detail: dict | None = None, *, ip: str = "", at: datetime | None = None
) -> ConsoleAudit:
    """Add an audit row: `user` (a name), `action` (a short verb: "quarantine_retry"), `target`
    ("quarantine:12"), `detail` (JSON: the reason given, the outcome)."""
    row = ConsoleAudit(at=at or utcnow(), user=user[:100], action=action[:40], target=target[:300], detail=detail or {}, ip=ip[:64])
    session.add(row)
    session.flush()
    return row


def recent(session: Session, *, actions: tuple[str, ...] = (), user: str = "", limit: int = 200) -> list[ConsoleAudit]:
    """The newest rows first, optionally only some actions or one user."""
    query = select(ConsoleAudit).order_by(ConsoleAudit.id.desc()).limit(limit)
    if actions:
        query = query.where(ConsoleAudit.action.in_(actions))
    if user:
        query = query.where(ConsoleAudit.user == user)
    return list(session.scalars(query))
