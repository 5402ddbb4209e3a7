"""The mailer (intake/outgoing/mailer.py) against the real aiosmtpd server on loopback and real
databases (SQLite file and PostgreSQL): acknowledgements first, every mail exactly once
with its stored bytes and Message-ID, groups of GROUP recorded as they go, back-off while
the server is down, stop between groups, permanent and temporary refusals of one
recipient, and two workers on one PostgreSQL database."""

from __future__ import annotations

import email
import threading
import time
from collections import Counter
from datetime import timedelta
from email.policy import default

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event, func, select, update

from intake.outgoing.mailer import GROUP, OutboxWorker
from intake.outgoing.queue import queue_mail
from intake.outgoing.templates import RenderedMail
from intake.outgoing.transport import make_transport
from intake.pipeline.runner import Pipeline
from intake.store.db import transaction
from intake.store.models import OutboxMail
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import MONDAY_10, complaint, ref, staff_config
from tests.servers.smtp import SmtpServer, _Collector

_n = iter(range(1_000_000))


# ---------------------------------------------------------------- helpers


def mailer_ctx(make_ctx, db_url, smtp_server, clock=None):
    """A context on a fresh database whose [smtp] points at the test server; the default
    staff file assigns complaints (so `Pipeline.take` queues an ack and a notify)."""
    return make_ctx(db_url, clock or Clock(MONDAY_10), **staff_config(smtp_server))


def queue(ctx, kinds: list[str], rcpt: str | list[str] | None = None) -> list[str]:
    """Queue one mail per kind through `queue_mail` (no ticket), in one transaction."""
    ids = []
    with transaction(ctx.sessions) as session:
        for i, kind in enumerate(kinds):
            n = next(_n)
            to = rcpt[i] if isinstance(rcpt, list) else (rcpt or f"person{n}@example.net")
            mail = RenderedMail(subject=f"{kind} {n} 通知", text=f"第 {n} 封邮件（{kind}）。\n", html=None)
            ids.append(queue_mail(session, ctx, None, kind=kind, mail=mail, to_addr=to))
    return ids


def take_customers(ctx, n: int) -> list[str]:
    """n real customer complaints through the pipeline (each: an ack and a staff notify)."""
    pipeline = Pipeline(ctx)
    refs = []
    for _ in range(n):
        i = next(_n)
        result = pipeline.take(complaint(sender=f"客户{i} <customer{i}@kehu.example.cn>"), ref())
        assert result.outcome == "opened"
        refs.append(result.ticket)
    return refs


def rows(ctx) -> list[OutboxMail]:
    with ctx.sessions() as s:
        return list(s.scalars(select(OutboxMail).order_by(OutboxMail.id)))


def count_status(ctx, status: str) -> int:
    with ctx.sessions() as s:
        return s.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.status == status))


def message_id(received) -> str:
    return email.message_from_bytes(received.raw, policy=default)["Message-ID"].strip().strip("<>")


def ids_at(server) -> list[str]:
    return [message_id(m) for m in server.messages]


class Wrapped:
    """A transport around the real one that calls `before(n)` / `after(n)` around the n-th send (1-based)."""

    def __init__(self, inner, before=None, after=None):
        self.inner, self.before, self.after, self.sends = inner, before, after, 0
        self.send_seconds = inner.send_seconds

    def send(self, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        self.sends += 1
        if self.before:
            self.before(self.sends)
        self.inner.send(mail_from, rcpt_to, raw)
        if self.after:
            self.after(self.sends)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


def real_transport(ctx):
    return make_transport(ctx.config.smtp, ctx.config.outgoing_maildir)


# -------------------------------------------- a server that refuses some recipients


class _Refusing(_Collector):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.server.refuse.get(address.lower())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"


class RefusingSmtpServer(SmtpServer):
    """The test SMTP server, except that RCPT TO an address in `refuse` gets that answer."""

    def __init__(self, refuse: dict[str, str]):
        super().__init__()
        self.refuse = refuse

    def start(self) -> None:
        if self._controller is not None:
            return
        self._controller = Controller(_Refusing(self), hostname=self.host, port=self.port, decode_data=False, enable_SMTPUTF8=True, ready_timeout=10)
        self._controller.start()


@pytest.fixture
def refusing_server():
    server = RefusingSmtpServer(
        {
            "bounce@nowhere.example": "550 5.1.1 <bounce@nowhere.example>: no such user",
            "busy@later.example": "451 4.3.0 try again later",
        }
    )
    server.start()
    yield server
    server.stop()


# ---------------------------------------------------------------- 1. acks first


def test_acknowledgements_are_sent_before_other_mail_queued_earlier(make_ctx, db_url, smtp_server):
    ctx = mailer_ctx(make_ctx, db_url, smtp_server)
    earlier = queue(ctx, ["notify", "reminder", "escalation", "survey"] * 3)  # 12 non-acks, lowest ids
    take_customers(ctx, 6)  # ack, notify, ack, notify, ... after them
    queue(ctx, ["ack"] * 6, rcpt=[f"late{i}@kehu.example.cn" for i in range(6)])  # 6 more acks, highest ids
    queued = rows(ctx)
    acks = [r.message_id for r in queued if r.kind == "ack"]
    assert len(queued) == 30 and len(acks) == 12
    assert min(r.id for r in queued if r.message_id in earlier) < min(r.id for r in queued if r.kind == "ack")

    assert OutboxWorker(ctx).run_once() == (30, 0)
    arrived = ids_at(smtp_server)
    assert sorted(arrived) == sorted(r.message_id for r in queued)  # everything, in one pass
    kinds = ["ack" if m.startswith("ack.") else "other" for m in arrived]
    assert kinds == ["ack"] * 12 + ["other"] * 18, kinds


# --------------------------------------------- 2. exactly once, stored bytes


def test_every_mail_sent_once_as_stored_and_marked_sent(make_ctx, db_url, smtp_server):
    clock = Clock(MONDAY_10)
    ctx = mailer_ctx(make_ctx, db_url, smtp_server, clock)
    take_customers(ctx, 4)
    queue(ctx, ["survey", "relay"], rcpt=["客户@例子.中国", "ann@example.org"])  # one internationalised address
    queued = {r.message_id: r for r in rows(ctx)}
    assert len(queued) == 10 and Counter(r.kind for r in queued.values()) == {"ack": 4, "notify": 4, "survey": 1, "relay": 1}

    clock.advance(seconds=7)
    assert OutboxWorker(ctx).run_once() == (10, 0)
    received = smtp_server.messages
    assert Counter(message_id(m) for m in received) == Counter(list(queued))  # each exactly once
    for m in received:
        row = queued[message_id(m)]
        assert m.raw == row.raw, row.message_id  # the stored bytes, unchanged
        assert m.mail_from == row.mail_from == "support@example.com"
        assert m.rcpt_tos == (row.rcpt_to,)
    for row in rows(ctx):
        assert (row.status, row.sent_at, row.last_error, row.attempts) == ("sent", clock(), None, 1), row.message_id

    clock.advance(hours=1)
    assert OutboxWorker(ctx).run_once() == (0, 0)  # nothing left
    assert len(smtp_server.messages) == 10
    assert all(r.status == "sent" and r.attempts == 1 for r in rows(ctx))


# ---------------------------------------------- 3. more than one group


def test_more_mail_than_one_group_all_sent_and_each_group_recorded_by_the_next_claim(make_ctx, db_url, smtp_server):
    ctx = mailer_ctx(make_ctx, db_url, smtp_server)
    queue(ctx, ["notify", "ack", "reminder", "ack", "survey"] * 7)  # 35 mails
    seen_sent: list[int] = []  # rows marked 'sent' in the database just before each send

    def before(n: int) -> None:
        seen_sent.append(count_status(ctx, "sent"))

    worker = OutboxWorker(ctx, Wrapped(real_transport(ctx), before=before))
    assert worker.run_once() == (35, 0)
    assert len(smtp_server.messages) == 35
    assert Counter(ids_at(smtp_server)) == Counter(r.message_id for r in rows(ctx))
    # while a group is being sent, every earlier group is already recorded (at most GROUP resends after a crash)
    assert seen_sent == [(i // GROUP) * GROUP for i in range(35)], seen_sent
    # ... and the last group by the final transaction: nothing left pending
    assert count_status(ctx, "pending") == 0 and count_status(ctx, "sent") == 35
    assert all(r.sent_at is not None and r.attempts == 1 for r in rows(ctx))
    assert OutboxWorker(ctx).run_once() == (0, 0) and len(smtp_server.messages) == 35


# ------------------------------------------------ 4. server down, back-off


def test_server_down_backs_off_then_delivers_each_mail_once(make_ctx, db_url, smtp_server):
    clock = Clock(MONDAY_10)
    ctx = mailer_ctx(make_ctx, db_url, smtp_server, clock)
    take_customers(ctx, 3)  # 6 mails
    smtp_server.stop()

    assert OutboxWorker(ctx).run_once() == (0, 6)
    first = clock()
    for row in rows(ctx):
        assert row.status == "pending" and row.attempts == 1 and row.sent_at is None
        assert "unavailable" in row.last_error
        assert row.next_attempt_at == first + timedelta(seconds=5)  # retry_initial_seconds

    clock.advance(seconds=6)
    assert OutboxWorker(ctx).run_once() == (0, 6)  # still down: exponential back-off
    for row in rows(ctx):
        assert row.status == "pending" and row.attempts == 2
        assert row.next_attempt_at == clock() + timedelta(seconds=10)

    smtp_server.start()
    assert OutboxWorker(ctx).run_once() == (0, 0)  # up again, but nothing is due yet
    assert smtp_server.messages == []

    clock.advance(seconds=11)
    assert OutboxWorker(ctx).run_once() == (6, 0)
    assert Counter(ids_at(smtp_server)) == Counter(r.message_id for r in rows(ctx))
    assert len(smtp_server.messages) == 6
    for row in rows(ctx):
        assert (row.status, row.attempts, row.last_error, row.sent_at) == ("sent", 3, None, clock())
    assert OutboxWorker(ctx).run_once() == (0, 0) and len(smtp_server.messages) == 6


def test_rows_made_due_by_sql_are_sent_after_the_server_returns(make_ctx, db_url, smtp_server):
    ctx = make_ctx(db_url, None, **staff_config(smtp_server))  # the real clock
    queue(ctx, ["ack", "notify", "ack"])
    smtp_server.stop()
    started = ctx.now()
    assert OutboxWorker(ctx).run_once() == (0, 3)
    assert all(r.status == "pending" and r.next_attempt_at > started for r in rows(ctx))
    smtp_server.start()
    assert OutboxWorker(ctx).run_once() == (0, 0)
    with transaction(ctx.sessions) as s:
        s.execute(update(OutboxMail).values(next_attempt_at=started - timedelta(minutes=1)))
    assert OutboxWorker(ctx).run_once() == (3, 0)
    assert sorted(ids_at(smtp_server)) == sorted(r.message_id for r in rows(ctx))
    assert all(r.status == "sent" and r.last_error is None for r in rows(ctx))


def test_gives_up_after_the_configured_hours(make_ctx, db_url, smtp_server):
    clock = Clock(MONDAY_10)
    ctx = mailer_ctx(make_ctx, db_url, smtp_server, clock)
    queue(ctx, ["ack", "notify"])
    smtp_server.stop()
    assert OutboxWorker(ctx).run_once() == (0, 2)
    clock.advance(hours=72, minutes=1)  # give_up_after_hours = 72
    assert OutboxWorker(ctx).run_once() == (0, 2)
    assert [(r.status, r.attempts) for r in rows(ctx)] == [("failed", 2), ("failed", 2)]
    smtp_server.start()
    clock.advance(hours=1)
    assert OutboxWorker(ctx).run_once() == (0, 0) and smtp_server.messages == []


# ------------------------------------------------------- 5. stop mid-run


def test_stop_during_run_records_what_went_out_and_next_run_sends_the_rest(make_ctx, db_url, smtp_server):
    ctx = mailer_ctx(make_ctx, db_url, smtp_server)
    take_customers(ctx, 5)
    queue(ctx, ["notify", "reminder"] * 8)  # 26 mails: three groups
    total = 26
    stop = threading.Event()

    def after(n: int) -> None:
        if n == 3:
            stop.set()

    worker = OutboxWorker(ctx, Wrapped(real_transport(ctx), after=after))
    sent, failed = worker.run_once(stop)
    delivered = ids_at(smtp_server)
    assert failed == 0 and 3 <= sent == len(delivered) <= GROUP  # stopped at the latest after the group in hand
    assert sent < total
    by_status = {r.message_id: r.status for r in rows(ctx)}
    assert {m for m, s in by_status.items() if s == "sent"} == set(delivered)  # what went out is recorded
    assert Counter(by_status.values()) == {"sent": sent, "pending": total - sent}

    assert OutboxWorker(ctx).run_once() == (total - sent, 0)  # the rest, at once (no lease left on them)
    assert Counter(ids_at(smtp_server)) == Counter(list(by_status))  # each exactly once
    assert count_status(ctx, "sent") == total


# ------------------------------------ 6. one recipient refused in a group


def test_permanent_refusal_fails_that_row_only_and_temporary_one_is_retried(make_ctx, db_url, refusing_server):
    clock = Clock(MONDAY_10)
    ctx = mailer_ctx(make_ctx, db_url, refusing_server, clock)
    rcpts = ["a@example.net", "b@example.net", "bounce@nowhere.example", "c@example.net", "busy@later.example", "d@example.net", "e@example.net"]
    ids = queue(ctx, ["notify"] * 7, rcpt=rcpts)

    assert OutboxWorker(ctx).run_once() == (5, 2)
    by_id = {r.message_id: r for r in rows(ctx)}
    bounced, busy = by_id[ids[2]], by_id[ids[4]]
    assert bounced.status == "failed" and "550" in bounced.last_error and bounced.sent_at is None
    assert busy.status == "pending" and "451" in busy.last_error and busy.next_attempt_at == clock() + timedelta(seconds=5)
    ok = [by_id[i] for i in ids if i not in (ids[2], ids[4])]
    assert all(r.status == "sent" and r.sent_at == clock() and r.last_error is None for r in ok)
    assert sorted(ids_at(refusing_server)) == sorted(r.message_id for r in ok)

    refusing_server.refuse.pop("busy@later.example")
    assert OutboxWorker(ctx).run_once() == (0, 0)  # not due yet
    clock.advance(seconds=6)
    assert OutboxWorker(ctx).run_once() == (1, 0)  # the temporary one; the failed one never again
    assert ids_at(refusing_server)[-1] == busy.message_id and len(refusing_server.messages) == 6
    assert [r.status for r in rows(ctx)] == ["sent", "sent", "failed", "sent", "sent", "sent", "sent"]


def test_a_group_refused_entirely_does_not_stop_later_groups_from_going_out(make_ctx, db_url, refusing_server):
    """A whole group of permanently refused recipients is not a 'server down': run_once sends what is due."""
    ctx = mailer_ctx(make_ctx, db_url, refusing_server)
    queue(ctx, ["notify"] * GROUP, rcpt="bounce@nowhere.example")
    good = queue(ctx, ["notify"] * 3)
    assert OutboxWorker(ctx).run_once() == (3, GROUP)
    assert sorted(ids_at(refusing_server)) == sorted(good)
    assert count_status(ctx, "failed") == GROUP and count_status(ctx, "sent") == 3


# ------------------------------------------- 7. two workers, PostgreSQL


@pytest.mark.postgres
def test_two_workers_on_one_postgres_database_send_each_mail_once(make_ctx, pg_url, smtp_server):
    clock = Clock(MONDAY_10)
    ctx_a = mailer_ctx(make_ctx, pg_url, smtp_server, clock)
    ctx_b = mailer_ctx(make_ctx, pg_url, smtp_server, clock)  # its own engine on the same database
    assert ctx_a.sessions.kw["bind"] is not ctx_b.sessions.kw["bind"]
    take_customers(ctx_a, 10)
    queue(ctx_a, ["reminder", "ack", "survey", "notify"] * 10)  # 60 mails
    queued = [r.message_id for r in rows(ctx_b)]
    assert len(queued) == 60

    def slow_claim(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT outbox.id"):
            time.sleep(0.03)  # widen the window in which the other worker claims too (row locks held)

    for c in (ctx_a, ctx_b):
        event.listen(c.sessions.kw["bind"], "after_cursor_execute", slow_claim)

    def slow(n):
        time.sleep(0.005)

    workers = [OutboxWorker(c, Wrapped(real_transport(c), after=slow)) for c in (ctx_a, ctx_b)]
    start = threading.Barrier(2)
    results: list = [None, None]

    def run(i: int) -> None:
        start.wait()
        results[i] = workers[i].run_once()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    (sent_a, failed_a), (sent_b, failed_b) = results
    assert failed_a == failed_b == 0 and sent_a + sent_b == 60
    assert sent_a > 0 and sent_b > 0, results  # both took part
    assert Counter(ids_at(smtp_server)) == Counter(queued)  # each Message-ID exactly once
    assert count_status(ctx_a, "sent") == 60
    assert all(r.attempts == 1 for r in rows(ctx_a))


def test_a_claim_reads_only_the_rows_it_takes_however_much_mail_is_pending(make_ctx, db_url, smtp_server):
    """A backlog of staff notifications must not make every claim (a turn at the write
    lock) read and sort all pending mail: the claim's statements walk an index and stop."""
    ctx = mailer_ctx(make_ctx, db_url, smtp_server)
    queue(ctx, ["notify"] * 300 + ["ack"] * 5 + ["notify"] * 300)
    rows_read = []
    engine = ctx.sessions.kw["bind"]
    from intake.outgoing import mailer

    with engine.connect() as conn:
        for statement in (mailer._DUE_ACKS, mailer._DUE_OTHERS):
            compiled = statement.compile(dialect=engine.dialect)
            params = {**compiled.params, "now": ctx.now(), "n": GROUP}
            if engine.dialect.name == "sqlite":
                plan = " / ".join(
                    r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", tuple(params[k] for k in compiled.positiontup))
                )
                assert "ix_outbox_pending" in plan and "TEMP B-TREE" not in plan, plan
            rows_read.append(len(conn.execute(statement, params).all()))
    assert rows_read == [5, GROUP]
    claimed = OutboxWorker(ctx)._claim([])
    assert [row.kind for row in claimed] == ["ack"] * 5 + ["notify"] * (GROUP - 5)  # acks first, then in order


def test_the_local_maildir_is_synced_once_a_group_and_before_the_group_is_recorded(make_ctx, tmp_path, monkeypatch):
    """Each mail is a whole file in outgoing/new (written, fsynced, renamed); the folder itself
    is fsynced once for a group, before the group is recorded as sent. If that sync fails, the
    group is not recorded and goes out again (same Message-IDs), never lost."""
    import intake.outgoing.transport as transport_module

    ctx = make_ctx(f"sqlite:///{tmp_path / 'md.db'}")  # no [smtp] host: the local Maildir
    queue(ctx, ["ack"] * (GROUP + 3))
    folder_syncs: list = []
    real_fsync_dir = transport_module.fsync_dir
    monkeypatch.setattr(transport_module, "fsync_dir", lambda folder: (folder_syncs.append(folder), real_fsync_dir(folder)))
    assert OutboxWorker(ctx).run_once() == (GROUP + 3, 0)
    new = ctx.config.outgoing_maildir / "new"
    assert len(list(new.iterdir())) == GROUP + 3 and folder_syncs == [new, new]  # two groups, one sync each
    assert all(row.status == "sent" for row in rows(ctx))

    queue(ctx, ["ack"] * 2)

    def broken_sync(folder):
        raise OSError("I/O error (simulated)")

    monkeypatch.setattr(transport_module, "fsync_dir", broken_sync)
    with pytest.raises(OSError):
        OutboxWorker(ctx).run_once()
    assert sum(row.status == "pending" for row in rows(ctx)) == 2  # written, but not recorded as sent


def test_ehlo_names_this_host_without_asking_dns_or_the_configured_name(make_ctx, db_url, smtp_server, monkeypatch):
    """smtplib's default EHLO name is socket.getfqdn(), a DNS lookup at every connection
    (seconds when DNS is slow, and traffic off the machine); the mailer gives the host name
    (our address literal when it has no dot: strict relays refuse a bare name), or [smtp] helo."""
    import smtplib
    import socket

    class NoFqdn:  # smtplib's socket module, without getfqdn (the test server needs the real one)
        def __getattr__(self, name):
            if name == "getfqdn":
                raise AssertionError("smtplib called socket.getfqdn(): a DNS lookup")
            return getattr(socket, name)

    monkeypatch.setattr(smtplib, "socket", NoFqdn())
    ctx = mailer_ctx(make_ctx, db_url, smtp_server)
    queue(ctx, ["notify"])
    assert OutboxWorker(ctx).run_once() == (1, 0)
    host = socket.gethostname()  # with a dot it is given; a bare name gives way to the address literal
    assert smtp_server.messages[-1].helo == (host if "." in host else "[127.0.0.1]")

    cfg = staff_config(smtp_server)
    cfg["smtp"]["helo"] = "intake.example.test"
    named = make_ctx(db_url, Clock(MONDAY_10), **cfg)
    queue(named, ["notify"])
    assert OutboxWorker(named).run_once() == (1, 0)
    assert smtp_server.messages[-1].helo == "intake.example.test"


# ---------------------------------------------------------------- one connection while mail keeps coming


def test_the_mailer_keeps_its_connection_while_mail_keeps_coming_and_lets_it_go_when_idle(make_ctx, db_url, smtp_server):
    """During a backlog every committed group wakes the mailer: the mails of many passes go
    over one connection (a connection a pass was 194 connections for 2,000 messages: a
    greeting, EHLO, login and TLS each on a real relay); once nothing wakes it for its
    idle wait, the connection is let go."""
    ctx = mailer_ctx(make_ctx, db_url, smtp_server)
    transport = real_transport(ctx)
    worker = OutboxWorker(ctx, transport)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), kwargs={"idle_wait": 1.0})
    thread.start()
    try:
        for i in range(5):  # five passes, each woken by its own group
            queue(ctx, ["ack", "notify"])
            ctx.wake_outbox.set()
            smtp_server.wait_for(2 * (i + 1))
        assert {m.connection for m in smtp_server.messages} == {1}
        deadline = time.monotonic() + 10
        while transport.conn is not None and time.monotonic() < deadline:  # the idle wait ends unwoken
            time.sleep(0.05)
        assert transport.conn is None
        queue(ctx, ["ack"])
        ctx.wake_outbox.set()
        assert smtp_server.wait_for(11)[-1].connection == 2
    finally:
        stop.set()
        ctx.wake_outbox.set()
        thread.join(timeout=10)
    assert not thread.is_alive() and transport.conn is None


def test_a_kept_connection_the_server_let_go_costs_a_new_connection_not_a_failed_mail(make_ctx, db_url, smtp_server):
    """A connection unused for a while is asked NOOP before the next mail: the server
    restarted meanwhile, so the mail goes over a new connection, on its first attempt."""
    ctx = mailer_ctx(make_ctx, db_url, smtp_server)
    transport = real_transport(ctx)
    worker = OutboxWorker(ctx, transport)
    queue(ctx, ["ack"])
    assert worker.run_once(keep_open=True) == (1, 0)
    assert transport.conn is not None
    smtp_server.stop()  # the server goes away and comes back: the kept connection is dead
    smtp_server.start()
    transport._last_used -= transport.CHECK_AFTER_SECONDS + 1
    queue(ctx, ["ack"])
    assert worker.run_once() == (1, 0)
    assert [m.connection for m in smtp_server.messages] == [1, 2]
    assert transport.conn is None  # run_once alone closes it
    assert count_status(ctx, "sent") == 2 and {r.attempts for r in rows(ctx)} == {1}


class _LimitedPerConnection(_Collector):
    """Answers 421 to the MAIL after `limit` mails on one connection, as Exim's
    smtp_accept_max_per_connection does."""

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        session.mails = getattr(session, "mails", 0) + 1
        if session.mails > self.server.limit:
            return "421 4.7.0 too many messages on this connection"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


class LimitedSmtpServer(SmtpServer):
    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def start(self) -> None:
        if self._controller is None:
            self._controller = Controller(
                _LimitedPerConnection(self), hostname=self.host, port=self.port, decode_data=False, enable_SMTPUTF8=True, ready_timeout=10
            )
            self._controller.start()


def test_a_server_limiting_mails_a_connection_costs_new_connections_not_failed_attempts(make_ctx, db_url):
    """A kept connection meets the relay's limit of mails a connection (421 before it takes
    the next one): the mail goes over a new connection on the same attempt; nothing waits
    for a retry and the mailer's health stays green."""
    server = LimitedSmtpServer(limit=4)
    server.start()
    try:
        ctx = mailer_ctx(make_ctx, db_url, server)
        queue(ctx, ["ack"] * GROUP + ["notify"] * 3)
        assert OutboxWorker(ctx).run_once() == (GROUP + 3, 0)
        assert [m.connection for m in server.messages] == [1] * 4 + [2] * 4 + [3] * 4 + [4]
        assert count_status(ctx, "sent") == GROUP + 3 and {r.attempts for r in rows(ctx)} == {1}
    finally:
        server.stop()
