"""`intake status` (intake/ops/status.py collect) counts what was taken and sent in the
last 24 hours, through the indexes on source_items.at and outbox.sent_at, not the whole
history (kept two years for compliance, a count over it grew with it): older rows are not
counted, pending and failed mail are counted whatever their age."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from intake.ops.status import collect
from intake.store.db import transaction
from intake.store.models import OutboxMail, SourceItem, SourceState
from tests.integration.conftest import Clock


def test_the_counts_cover_a_day_and_pending_and_failed_mail_any_age(make_ctx, db_url):
    clock = Clock()
    ctx = make_ctx(db_url, clock)
    now = clock()
    with transaction(ctx.sessions) as session:
        session.add(SourceState(source="imap:support/INBOX", errors=0, last_success_at=now))
        session.execute(
            insert(SourceItem),
            [
                {"source": "imap:support/INBOX", "key": f"k{n}", "outcome": "opened", "at": now - timedelta(hours=hours)}
                for n, hours in enumerate((1, 5, 23, 25, 24 * 400))
            ],
        )
        mail = {"kind": "ack", "mail_from": "support@example.com", "rcpt_to": "a@example.org", "raw": b"x", "attempts": 1}
        session.execute(
            insert(OutboxMail),
            [
                {**mail, "message_id": "m1@x", "status": "sent", "created_at": now, "next_attempt_at": now, "sent_at": now - timedelta(hours=2)},
                {**mail, "message_id": "m2@x", "status": "sent", "created_at": now, "next_attempt_at": now, "sent_at": now - timedelta(days=30)},
                {**mail, "message_id": "m3@x", "status": "pending", "created_at": now - timedelta(days=3), "next_attempt_at": now},
                {**mail, "message_id": "m4@x", "status": "failed", "created_at": now - timedelta(days=90), "next_attempt_at": now},
            ],
        )
    status = collect(ctx)
    [source] = status["sources"]
    assert source["source"] == "imap:support/INBOX" and source["taken_24h"] == 3
    assert status["outbox"]["sent_24h"] == 1
    assert status["outbox"]["pending"] == 1 and status["outbox"]["failed"] == 1
    assert status["outbox"]["oldest_pending"] is not None
