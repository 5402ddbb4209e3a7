"""The mailer: sends what the pipeline queued, exactly as it was queued.

Rows are claimed in order; a mail is marked sent only after the server took it,
so a crash in between resends it with the same Message-ID (the receiver can tell).
A claim belongs to a live mailer (ClaimOwner): a dead daemon's claimed mail is sent
by the next daemon to look, at once, not after the claim's lease; the lease stays
for a mailer that lives but is stuck.
While the server is down, attempts back off exponentially up to a cap; after
`give_up_after_hours` a mail is marked failed and shows in `intake status`.
"""

from __future__ import annotations

import logging
import secrets
import select as io_select
import threading
import time
from datetime import timedelta

from sqlalchemy import BindParameter, bindparam, select, text, update
from sqlalchemy.engine import Connection, Engine

from intake.context import Context
from intake.outgoing.transport import Transport, TransportError, make_transport
from intake.store.db import transaction
from intake.store.models import OutboxMail

log = logging.getLogger("intake.outgoing.mailer")

# Mail is claimed, sent and marked sent in groups of this many: fewer commits, after a
# crash at most this many resends, and a claim's lease covers every send of its group.
GROUP = 10


def transport_for(config) -> Transport:
    """The mailer's way out: the [[graph]] account with send = true (Graph's sendMail), else
    [smtp] (a local Maildir when it has no host). Graph's client is imported only when a
    Graph account sends (it needs requests)."""
    sender = next((account for account in config.graph if account.send), None)
    if sender is not None:
        from intake.msgraph.sender import graph_transport

        return graph_transport(sender, config.var)
    return make_transport(config.smtp, config.outgoing_maildir)


class OutboxWorker:
    def __init__(self, ctx: Context, transport: Transport | None = None):
        self.ctx = ctx
        self.transport = transport or transport_for(ctx.config)
        from intake.ops.alerts import MailerHealth

        name = getattr(self.transport, "health_name", None)
        self.health = MailerHealth(ctx, name) if name else None  # red while the server or the login fails
        self.owner = ClaimOwner(ctx.sessions.kw["bind"])
        self._next_look = 0.0  # monotonic time of the next look for dead mailers' claims (PostgreSQL)
        self._claimed_as: int | None = None  # the owner number the group in hand was claimed under
        self._last_sent_at = 0.0  # monotonic time of the last mail sent (an idle connection is let go)

    def take_over_at_start(self) -> int:
        """Called by the daemon as it starts, before anything is sent: a dead mailer's
        claims go out first, now. On SQLite the daemon is the only one (intake/ops/guard.py),
        so every claim it finds is a dead process's; on PostgreSQL only those whose owner's
        lock is gone (other daemons may be at work). Returns the number of mails taken over."""
        with transaction(self.ctx.sessions) as session:
            return self._take_over(session, everyone_else_dead=not self.owner.shared)

    def _take_over(self, session, everyone_else_dead: bool = False, now=None) -> int:
        """Make the claims of dead mailers due now (same rows: same bytes, same Message-ID);
        `now` is the claim's own, so the claim that follows finds them due."""
        me, now = self.owner.number(), now or self.ctx.now()
        orphans = _ORPHANS_EVERY_OTHER if everyone_else_dead else _ORPHANS_OF_THE_DEAD
        taken = session.execute(orphans, {"me": me, "now": now}).rowcount
        if taken:
            log.warning("took over %d mail(s) claimed by a mailer that is gone; sending them now", taken)
        return taken

    def _claim(self, sent: list[int]) -> list:
        """Record the last group as sent and take the next group for one attempt each,
        in one short transaction (one turn at the database's write lock, which the
        pipeline holds most of the time during a backlog): the group's next attempt
        moves past the time all its sends may take, so no other worker takes it
        meanwhile, and the rows name us (claimed_by): if we die mid-send, the next
        daemon to look resends them at once (same bytes, same Message-ID); the lease
        only frees the rows of a mailer that lives but is stuck. The claiming UPDATE
        returns the mails themselves (a read of its own after the commit cost four
        round trips a group on PostgreSQL), and no lock is held while sending.
        Acknowledgements go first: they are the customer's promise; staff
        notifications may trail by seconds."""
        cfg = self.ctx.config
        # the most one send may take on this way out (SMTP, Graph with its retries, a file)
        lease = timedelta(seconds=GROUP * self.transport.send_seconds + 5)
        owner = self.owner.number()  # first: our claims must never be written under a lock we lost
        self._claimed_as = owner
        with transaction(self.ctx.sessions) as session:
            now = self.ctx.now()
            if sent:
                _record_sent(session, sent, now)
            postgres = self.owner.shared  # several daemons: each row to one
            if postgres and time.monotonic() >= self._next_look:
                self._take_over(session, now=now)
                self._next_look = time.monotonic() + cfg.database.lease_retry_seconds
            ids = list(session.scalars(_DUE_ACKS_SKIP_LOCKED if postgres else _DUE_ACKS, {"now": now}))
            if len(ids) < GROUP:
                others = _DUE_OTHERS_SKIP_LOCKED if postgres else _DUE_OTHERS
                ids += session.scalars(others, {"now": now, "n": GROUP - len(ids)})
            if not ids:
                return []
            claimed = session.execute(_TAKE, {"ids": ids, "until": now + lease, "owner": owner}).all()
        place = {id_: i for i, id_ in enumerate(ids)}  # RETURNING keeps no order: the claim's own (acks first)
        return sorted(claimed, key=lambda row: place[row.id])

    def run_once(self, stop: threading.Event | None = None, keep_open: bool = False) -> tuple[int, int]:
        """Send everything that is due (until `stop` is set); returns (sent, failed attempts).
        `keep_open`: the connection to the server stays open for the next pass (run_forever)."""
        sent = failed = 0
        done: list[int] = []  # sent, not yet recorded: the next claim records them
        try:
            while not (stop is not None and stop.is_set()):
                rows = self._claim(done)
                done = []
                if not rows:
                    break
                retry_later = 0
                for row in rows:
                    if not self.owner.still_holds(self._claimed_as):
                        break  # our lock was lost: these rows are another daemon's to send now, not ours too
                    try:
                        self.transport.send(row.mail_from, row.rcpt_to, row.raw)
                    except Exception as exc:  # a surprise must not cost the group's marks either
                        if not isinstance(exc, TransportError):
                            log.exception("sending %s failed unexpectedly", row.message_id)
                            exc = TransportError(f"{type(exc).__name__}: {exc}")
                            self.transport.close()  # a session left half-way is not one to send more over
                        failed += 1
                        retry_later += not exc.permanent
                        self._failed(row, exc)
                        if exc.server and self.health is not None:
                            self.health.failed(str(exc))
                        continue
                    done.append(row.id)
                    self._last_sent_at = time.monotonic()
                    if self.health is not None:
                        self.health.sent()
                self.transport.flush()  # what went out is durable before the next claim records it
                sent += len(done)
                if not done and retry_later:
                    break  # the server is down: the rows wait for their next attempt
        finally:
            try:
                self.transport.flush()
                self._mark_sent(done)  # whatever went out is recorded, whatever happened next
            finally:
                if not keep_open:
                    self.transport.close()
        return sent, failed

    def close(self) -> None:
        """Give up the owner lock (the process's end does the same)."""
        self.owner.close()

    def _mark_sent(self, ids: list[int]) -> None:
        if not ids:
            return
        with transaction(self.ctx.sessions) as session:
            _record_sent(session, ids, self.ctx.now())

    def _failed(self, row, exc: TransportError) -> None:
        cfg, now = self.ctx.config.outbox, self.ctx.now()
        values: dict = {"last_error": str(exc), "claimed_by": None}  # no longer in flight
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
        with self.ctx.read_sessions() as session:
            due = session.scalar(
                select(OutboxMail.next_attempt_at).where(OutboxMail.status == "pending").order_by(OutboxMail.next_attempt_at).limit(1)
            )
        return None if due is None else max(0.0, (due - self.ctx.now()).total_seconds())

    def run_forever(self, stop: threading.Event, idle_wait: float = 5.0) -> None:
        if self.owner.shared:  # with nothing of its own to send, still look for a dead daemon's claims this often
            idle_wait = min(idle_wait, self.ctx.config.database.lease_retry_seconds)
        while not stop.is_set():
            try:
                self.run_once(stop, keep_open=True)
                wait = self.next_due_in()
            except Exception:
                log.exception("outbox pass failed")
                wait = idle_wait
            wait = idle_wait if wait is None else min(wait, idle_wait)
            self.ctx.wake_outbox.wait(wait)
            self.ctx.wake_outbox.clear()
            # The connection to the server stays open while mail keeps coming (during a
            # backlog each committed group wakes the mailer: a connection a pass was 194
            # connections for 2,000 messages, each a greeting, EHLO, login and TLS on a
            # real relay); once nothing was sent for the idle wait, it is let go.
            if time.monotonic() - self._last_sent_at >= idle_wait:
                self.transport.close()
        self.transport.close()
        self.close()


class ClaimOwner:
    """Whose claims these are: a random number per mailer, written into every row it
    claims (outbox.claimed_by) and cleared when the row is marked sent or failed.

    On PostgreSQL the mailer holds a session-level advisory lock of that number on a
    connection of its own for its whole life. The server drops the lock when the
    session ends, and the session ends when the process dies (kill -9 included: the
    kernel closes the socket), so a claim whose number is no longer locked belongs to
    a dead mailer and any other may send it at once. The lock is looked at before each
    send: if our connection was lost, our lock may be gone and others may take our
    claims, so we stop sending that group and claim under a new number (the one mail
    in flight at that moment may go out twice, with one Message-ID). Before a claim the
    look is a round trip; before each send of the group it is a look at the lock
    connection's socket, which the server writes to when it ends the session
    (terminated, shut down): a round trip per send was 2.5 of the 27.6 statements a
    message in a PostgreSQL backlog (bench/imap_backlog.md). A session lost without a
    word reaching us (a firewall dropping the connection) shows at the next claim's
    round trip: the rest of that group may still go out after the lock is gone.
    On SQLite there is no lock: one daemon runs at a time (intake/ops/guard.py) and
    takes over every claim it finds at its start; `intake ingest --send` sends only
    while it holds that same guard."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.shared = engine.dialect.name == "postgresql"  # several daemons may share the outbox
        self._number: int | None = None
        self._conn: Connection | None = None

    def number(self) -> int:
        """This mailer's owner number, its lock held (PostgreSQL): checked with one round trip."""
        if not self.shared:
            if self._number is None:
                self._number = _random_owner()
            return self._number
        if self._conn is not None:
            try:
                self._conn.execute(_ALIVE)
                return self._number  # type: ignore[return-value]
            except Exception:
                log.warning("lost the database connection holding the mailer's claims; claiming under a new number")
                self._drop()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            number = _random_owner()
            while not conn.execute(_LOCK, {"key": number}).scalar():  # taken: one chance in 2**62
                number = _random_owner()
        except BaseException:
            conn.invalidate()
            raise
        self._conn, self._number = conn, number
        log.info("mailer claims as owner %d", number)
        return number

    def still_holds(self, number: int | None) -> bool:
        """Whether the lock of `number` is held still, as far as can be seen without a round
        trip: an idle session that the server ended has something to read (its last
        message, or the socket's end); only then is the lock looked at with a round trip."""
        if not self.shared:
            return True
        if self._conn is None or number != self._number:
            return False
        if not _has_something_to_read(self._conn):
            return True
        return self.number() == number

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(_UNLOCK, {"key": self._number})
            except Exception:
                pass
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # never back to the pool with a lock on it
            except Exception:
                pass


def _has_something_to_read(conn: Connection) -> bool:
    """Whether the server wrote to this idle connection (nothing is asked of it between
    looks, so whatever arrived is news: the session's end, or a notice), or it is gone."""
    try:
        driver = conn.connection.driver_connection
        if driver is None or driver.closed:
            return True
        poll = io_select.poll()  # not select.select: it refuses descriptors past 1023
        poll.register(driver.fileno(), io_select.POLLIN)
        return bool(poll.poll(0))
    except Exception:  # invalidated, closed: the round trip will say what happened
        return True


def _random_owner() -> int:
    return secrets.randbits(62) + 1  # a positive bigint


def _record_sent(session, ids: list[int], now) -> None:
    session.execute(_SENT, {"ids": ids, "now": now})
    log.info("sent %d mail(s)", len(ids))


# The mailer's statements, built once: its turns at the write lock are kept short
# (the claim returns its group's bytes, at most GROUP mails, read inside the turn).
_OUTBOX = OutboxMail.__table__
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
# Due mail in id order, acks first: two statements that walk the indexes
# ix_outbox_pending_kind (status, kind, id) and ix_outbox_pending (status, id) and stop
# at the group's size. One statement ordered by "ack first" read and sorted every
# pending row, at every claim. (next_due_in, outside the write lock and once a pass,
# reads the pending rows' times: few, except while the relay is down.)
_DUE_ACKS = (
    select(_OUTBOX.c.id)
    .where(_OUTBOX.c.status == "pending", _OUTBOX.c.kind == "ack", _OUTBOX.c.next_attempt_at <= bindparam("now"))
    .order_by(_OUTBOX.c.id)
    .limit(GROUP)
)
_DUE_OTHERS = (
    select(_OUTBOX.c.id)
    .where(_OUTBOX.c.status == "pending", _OUTBOX.c.kind != "ack", _OUTBOX.c.next_attempt_at <= bindparam("now"))
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("n"))
)
_DUE_ACKS_SKIP_LOCKED = _DUE_ACKS.with_for_update(skip_locked=True)
_DUE_OTHERS_SKIP_LOCKED = _DUE_OTHERS.with_for_update(skip_locked=True)
_TAKE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(_IDS))
    .values(attempts=_OUTBOX.c.attempts + 1, next_attempt_at=bindparam("until"), claimed_by=bindparam("owner"))
    .returning(
        _OUTBOX.c.id,
        _OUTBOX.c.kind,
        _OUTBOX.c.message_id,
        _OUTBOX.c.mail_from,
        _OUTBOX.c.rcpt_to,
        _OUTBOX.c.raw,
        _OUTBOX.c.attempts,  # as claimed: this attempt's number
        _OUTBOX.c.created_at,
    )
)
_SENT = update(_OUTBOX).where(_OUTBOX.c.id.in_(_IDS)).values(status="sent", sent_at=bindparam("now"), last_error=None, claimed_by=None)
# Taking over claims, due now. SQLite, at the one daemon's start: every claim not ours.
_ORPHANS_EVERY_OTHER = (
    update(_OUTBOX)
    .where(_OUTBOX.c.status == "pending", _OUTBOX.c.claimed_by.is_not(None), _OUTBOX.c.claimed_by != bindparam("me"))
    .values(claimed_by=None, next_attempt_at=bindparam("now"))
)
# PostgreSQL: the claims whose owner holds no advisory lock of its number in this
# database any more (pg_locks shows a bigint key as its high half in classid, its low
# half in objid, objsubid 1). SKIP LOCKED: a row another daemon is claiming right now
# is left to it, and two daemons looking at once never wait on each other.
_ORPHANS_OF_THE_DEAD = text(
    """
    UPDATE outbox SET claimed_by = NULL, next_attempt_at = :now
    WHERE id IN (
        SELECT id FROM outbox
        WHERE status = 'pending' AND claimed_by IS NOT NULL AND claimed_by <> :me
          AND claimed_by NOT IN (
              SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks
              WHERE locktype = 'advisory' AND objsubid = 1 AND granted
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
        FOR UPDATE SKIP LOCKED)
    """
).bindparams(bindparam("now", type_=_OUTBOX.c.next_attempt_at.type))
_ALIVE = text("SELECT 1")
_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")
