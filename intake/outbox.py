"""The mailer: sends what the pipeline queued, exactly as it was queued.

Rows are claimed in order; a mail is marked sent only after the server took it,
so a crash in between resends it with the same Message-ID (the receiver can tell).
While the server is down, attempts back off exponentially up to a cap; after
`give_up_after_hours` a mail is marked failed and shows in `intake status`.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import select, update

from intake.context import Context
from intake.db import transaction
from intake.models import OutboxMail
from intake.transport import Transport, TransportError, make_transport

log = logging.getLogger("intake.outbox")


class OutboxWorker:
    def __init__(self, ctx: Context, transport: Transport | None = None):
        self.ctx = ctx
        self.transport = transport or make_transport(ctx.config.smtp, ctx.config.outgoing_maildir)

    def _due(self) -> list[int]:
        with self.ctx.sessions() as session:
            query = (
                select(OutboxMail.id)
                .where(OutboxMail.status == "pending", OutboxMail.next_attempt_at <= self.ctx.now())
                .order_by(OutboxMail.id)
                .limit(self.ctx.config.outbox.batch_size)
            )
            return list(session.scalars(query))

    def run_once(self) -> tuple[int, int]:
        """Send everything that is due; returns (sent, failed attempts)."""
        sent = failed = 0
        try:
            while ids := self._due():
                batch_failed = 0
                for row_id in ids:
                    if self._send_one(row_id):
                        sent += 1
                    else:
                        failed += 1
                        batch_failed += 1
                if batch_failed == len(ids):
                    break  # the server is down: the rows wait for their next attempt
        finally:
            self.transport.close()
        return sent, failed

    def _claim(self, row_id: int) -> OutboxMail | None:
        """Take the row for one attempt: its next attempt moves past the send's
        time-out, so no other worker takes it meanwhile, and a crash mid-send only
        delays the resend (same bytes, same Message-ID). No lock is held while sending."""
        lease = timedelta(seconds=2 * self.ctx.config.smtp.timeout + 5)
        with transaction(self.ctx.sessions) as session:
            now = self.ctx.now()
            claimed = session.execute(
                update(OutboxMail)
                .where(OutboxMail.id == row_id, OutboxMail.status == "pending", OutboxMail.next_attempt_at <= now)
                .values(attempts=OutboxMail.attempts + 1, next_attempt_at=now + lease)
            ).rowcount
            return session.get(OutboxMail, row_id) if claimed == 1 else None

    def _send_one(self, row_id: int) -> bool:
        row = self._claim(row_id)
        if row is None:
            return True  # another worker has it
        try:
            self.transport.send(row.mail_from, row.rcpt_to, row.raw)
        except TransportError as exc:
            self._failed(row, exc)
            return False
        with transaction(self.ctx.sessions) as session:
            session.execute(update(OutboxMail).where(OutboxMail.id == row.id).values(status="sent", sent_at=self.ctx.now(), last_error=None))
        log.info("sent %s %s to %s", row.kind, row.message_id, row.rcpt_to)
        return True

    def _failed(self, row: OutboxMail, exc: TransportError) -> None:
        cfg, now = self.ctx.config.outbox, self.ctx.now()
        values: dict = {"last_error": str(exc)}
        if exc.permanent or now - row.created_at > timedelta(hours=cfg.give_up_after_hours):
            values["status"] = "failed"
            log.error("giving up on %s to %s: %s", row.message_id, row.rcpt_to, exc)
        else:
            delay = min(cfg.retry_initial_seconds * 2 ** (row.attempts - 1), cfg.retry_max_seconds)
            values["next_attempt_at"] = now + timedelta(seconds=delay)
            log.warning("%s to %s: %s; next try in %.0f s", row.kind, row.rcpt_to, exc, delay)
        with transaction(self.ctx.sessions) as session:
            session.execute(update(OutboxMail).where(OutboxMail.id == row.id).values(**values))

    def next_due_in(self) -> float | None:
        """Seconds until the earliest pending retry, or None when nothing waits."""
        with self.ctx.sessions() as session:
            due = session.scalar(select(OutboxMail.next_attempt_at).where(OutboxMail.status == "pending").order_by(OutboxMail.next_attempt_at).limit(1))
        return None if due is None else max(0.0, (due - self.ctx.now()).total_seconds())

    def run_forever(self, stop: threading.Event, idle_wait: float = 5.0) -> None:
        while not stop.is_set():
            try:
                self.run_once()
                wait = self.next_due_in()
            except Exception:
                log.exception("outbox pass failed")
                wait = idle_wait
            wait = idle_wait if wait is None else min(wait, idle_wait)
            self.ctx.wake_outbox.wait(wait)
            self.ctx.wake_outbox.clear()
