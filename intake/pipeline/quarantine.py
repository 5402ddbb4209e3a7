"""Dismissing a quarantined item: a person dealt with it without processing it (a spam
run, a test mail, a message answered by phone). The item keeps its bytes and history;
its status becomes "dismissed" with who and why. Used by `intake quarantine dismiss`
and the console's dismiss button (retrying is Pipeline.retry_quarantined)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from intake.store.models import QuarantineItem


def dismiss_quarantined(session: Session, item_id: int, *, by: str, reason: str, now: datetime) -> QuarantineItem:
    """Mark held item `item_id` dismissed by `by` for `reason` (mandatory), in the caller's
    transaction (so an audit row can share it). LookupError when there is no such held item,
    ValueError when the reason is empty."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a reason is required to dismiss a quarantined item")
    item = session.get(QuarantineItem, item_id, with_for_update=True)
    if item is None or item.status != "held":
        raise LookupError(f"no held quarantine item #{item_id}")
    item.status, item.dismissed_by, item.dismissed_reason, item.retried_at = "dismissed", by[:100], reason[:2000], now
    return item
