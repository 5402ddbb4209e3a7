"""A claim on outbox rows belongs to a live mailer (intake/outgoing/mailer.py): after a
kill -9, the restarted daemon (SQLite) or a surviving one (PostgreSQL) sends what the
dead one had claimed at once, with the stored bytes and Message-ID, instead of after the
claim's lease (GROUP x (smtp.timeout + 1) + 5 s: 315 s with the 30 s timeout used here);
a live mailer's claims are never taken from it.

Real daemons (tests/daemonproc.py) read a private Dovecot and send through an aiosmtpd
server that takes its time over each DATA (a slow relay), so that a kill finds a group
of acknowledgements claimed and half sent."""

from __future__ import annotations

import email
import os
import signal
import time
from collections import Counter, defaultdict

import pytest
from sqlalchemy import select

from intake.outgoing.mailer import GROUP, OutboxWorker
from intake.store.models import OutboxMail
from tests.daemonproc import DaemonProcess, Db, wait_until, write_config
from tests.integration.conftest import NOBODY_ON_DUTY
from tests.integration.test_daemon_email import customer_mail
from tests.integration.test_outbox import queue
from tests.servers.smtp import SmtpServer

SMTP_TIMEOUT = 30  # the lease of a group: 10 x 31 + 5 = 315 s, far past the 30 s promised here
PROMISE = 30.0  # seconds from the restart (or the kill) to every claimed acknowledgement delivered


@pytest.fixture
def slow_smtp():
    server = SmtpServer(delay=0.25)
    server.start()
    yield server
    server.stop()


def daemon_config(tmp_path, db_url: str, dovecot, smtp: SmtpServer):
    extra = f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\ntimeout = {SMTP_TIMEOUT}\n[archive]\nenabled = false\n[log]\nlevel = "INFO"\n'
    return write_config(tmp_path / "intake.toml", db_url=db_url, var=tmp_path / "var", dovecot=dovecot, extra=extra, lease_retry_seconds=1.0)


def ack_arrivals(smtp: SmtpServer) -> list[tuple[str, bytes]]:
    """(Message-ID without brackets, bytes) of each acknowledgement the server kept, in order."""
    out = []
    for m in smtp.messages:
        mid = email.message_from_bytes(m.raw)["Message-ID"].strip("<>")
        if mid.startswith("ack."):
            out.append((mid, m.raw))
    return out


def claimed_acks(db: Db, owner: int | None = None) -> set[str]:
    """Acknowledgements claimed and not yet recorded as sent (by `owner`, or by anyone)."""
    where = f"claimed_by = {owner}" if owner is not None else "claimed_by is not null"
    return {r[0] for r in db.rows(f"select message_id from outbox where kind = 'ack' and status = 'pending' and {where}")}


def kill_while_claiming(daemon: DaemonProcess, db: Db, smtp: SmtpServer, owner: int | None = None) -> tuple[set[str], set[str]]:
    """kill -9 the daemon while it holds a claimed group with some of it sent and some not;
    returns (the acknowledgements it had claimed, those the server had got by then)."""

    def mid_group() -> bool:
        claimed, arrived = claimed_acks(db, owner), {mid for mid, _ in ack_arrivals(smtp)}
        return len(claimed & arrived) >= 1 and len(claimed - arrived) >= 3

    wait_until(mid_group, 60, interval=0.02, what="a group half sent")
    # frozen first, so that what it claimed and what the server got can be read exactly:
    # a DATA the server already has is kept within its delay; the frozen daemon's lock
    # still holds, so no other daemon takes its claims before the kill
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    time.sleep(smtp.delay + 0.2)
    arrived = {mid for mid, _ in ack_arrivals(smtp)}
    claimed = claimed_acks(db, owner)
    daemon.kill9()
    assert claimed - arrived, "the kill found no claimed acknowledgement still unsent: the test proves nothing"
    return claimed, arrived


def check_each_once(db: Db, smtp: SmtpServer, n: int, arrived_before_kill: set[str]) -> int:
    """Every queued acknowledgement arrived; a repeat only of one the server had got before
    the kill, with the very same bytes. Returns the number of repeats."""
    queued = {r[0] for r in db.rows("select message_id from outbox where kind = 'ack'")}
    copies: dict[str, list[bytes]] = defaultdict(list)
    for mid, raw in ack_arrivals(smtp):
        copies[mid].append(raw)
    assert len(queued) == n and set(copies) == queued, f"lost {len(queued - set(copies))}, invented {len(set(copies) - queued)}"
    repeats = {mid: raws for mid, raws in copies.items() if len(raws) > 1}
    assert set(repeats) <= arrived_before_kill, f"sent twice though not sent before the kill: {set(repeats) - arrived_before_kill}"
    assert all(len(raws) == 2 and raws[0] == raws[1] for raws in repeats.values())
    assert db.scalar("select count(*) from outbox where claimed_by is not null") == 0  # sent rows keep no claim
    return len(repeats)


def owner_of(daemon: DaemonProcess) -> int:
    """The mailer's owner number, from its log ("mailer claims as owner N")."""
    for line in daemon.log.read_text(errors="replace").splitlines():
        if "mailer claims as owner" in line:
            return int(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no owner number in {daemon.log}")


# --------------------------------------------------------- SQLite: the restarted daemon


def test_sqlite_the_restarted_daemon_sends_the_killed_ones_claims_at_once(tmp_path, dovecot, slow_smtp):
    n = 40
    db_url = f"sqlite:///{tmp_path / 'intake.db'}"
    daemon = DaemonProcess(daemon_config(tmp_path, db_url, dovecot, slow_smtp), tmp_path)
    daemon.cli("init")
    db = Db(db_url)
    try:
        dovecot.append_many("support", "INBOX", [customer_mail(i) for i in range(n)])
        daemon.start()
        claimed, arrived = kill_while_claiming(daemon, db, slow_smtp)

        restarted = time.monotonic()
        daemon.start()
        wait_until(lambda: claimed <= {mid for mid, _ in ack_arrivals(slow_smtp)}, PROMISE + 5, interval=0.05, what="the killed daemon's claims sent")
        took = time.monotonic() - restarted
        assert took < PROMISE, f"the killed daemon's claimed acknowledgements took {took:.1f} s after the restart"
        assert "took over" in daemon.log.read_text()
        # a second daemon is refused while the first lives (intake/ops/guard.py), before it takes anything
        refused = daemon.cli("run", "--once", check=False)
        assert refused.returncode == 1 and b"another intake daemon" in refused.stderr

        wait_until(lambda: db.scalar("select count(*) from outbox where kind = 'ack' and status = 'sent'") == n, 60, interval=0.2, what="every ack")
        daemon.terminate()
        repeats = check_each_once(db, slow_smtp, n, arrived)
        assert repeats == len(claimed & arrived)  # exactly the claimed ones the server had got: resent once
    finally:
        daemon.close()
        db.close()


# ------------------------------------------------------ PostgreSQL: the surviving daemon


@pytest.mark.postgres
def test_postgres_a_surviving_daemon_sends_a_killed_ones_claims_at_once(tmp_path, dovecot, slow_smtp, pg_url):
    n = 80
    config = daemon_config(tmp_path, pg_url, dovecot, slow_smtp)
    a = DaemonProcess(config, tmp_path, log=tmp_path / "daemon-a.log")
    b = DaemonProcess(config, tmp_path, log=tmp_path / "daemon-b.log")
    a.cli("init")
    db = Db(pg_url)
    try:
        dovecot.append_many("support", "INBOX", [customer_mail(i) for i in range(n)])
        a.start()
        b.start()
        wait_until(lambda: "mailer claims as owner" in a.log.read_text(errors="replace"), 30, what="daemon a mailing")
        claimed, arrived = kill_while_claiming(a, db, slow_smtp, owner=owner_of(a))
        killed = time.monotonic()
        wait_until(lambda: claimed <= {mid for mid, _ in ack_arrivals(slow_smtp)}, PROMISE + 5, interval=0.05, what="the killed daemon's claims sent")
        took = time.monotonic() - killed
        assert took < PROMISE, f"the killed daemon's claimed acknowledgements took {took:.1f} s after the kill"
        assert "took over" in b.log.read_text()

        a.start()  # back again beside b: neither takes the other's live claims
        wait_until(lambda: db.scalar("select count(*) from outbox where kind = 'ack' and status = 'sent'") == n, 90, interval=0.2, what="every ack")
        a.terminate()
        b.terminate()
        repeats = check_each_once(db, slow_smtp, n, arrived)
        assert repeats == len(claimed & arrived)
    finally:
        a.close()
        b.close()
        db.close()


# ------------------------------------------- the claim itself, in process (real databases)


def smtp_section(smtp: SmtpServer) -> dict:
    return {"smtp": {"host": smtp.host, "port": smtp.port, "timeout": SMTP_TIMEOUT}}


def message_ids(ctx, where) -> set[str]:
    with ctx.read_sessions() as s:
        return set(s.scalars(select(OutboxMail.message_id).where(where)))


def arrived_ids(smtp: SmtpServer) -> Counter:
    return Counter(email.message_from_bytes(m.raw)["Message-ID"].strip("<>") for m in smtp.messages)


@pytest.mark.postgres
def test_postgres_a_live_mailers_claims_stay_its_own_and_a_dead_ones_go_out_at_once(make_ctx, pg_url, smtp_server):
    ctx_a, ctx_b = make_ctx(pg_url, **smtp_section(smtp_server)), make_ctx(pg_url, **smtp_section(smtp_server))
    queue(ctx_a, ["ack"] * (GROUP + 5))
    a, b = OutboxWorker(ctx_a), OutboxWorker(ctx_b)
    held = {row.message_id for row in a._claim([])}  # a has claimed a group and is "sending" it
    assert len(held) == GROUP and message_ids(ctx_b, OutboxMail.claimed_by == a.owner.number()) == held

    assert b.take_over_at_start() == 0  # a lives: its claims are its own
    b._next_look = 0.0  # and b's periodic look agrees
    assert b.run_once() == (5, 0)
    assert set(arrived_ids(smtp_server)) & held == set()

    a.owner._conn.invalidate()  # a dies: its socket closes, as the kernel closes it on kill -9
    a.owner._conn = None
    died = time.monotonic()

    def b_sent_them() -> bool:
        b._next_look = 0.0
        b.run_once()
        return held <= set(arrived_ids(smtp_server))

    wait_until(b_sent_them, 10, interval=0.05, what="b sending a's claims")
    assert time.monotonic() - died < 2  # the server ends a's session at once, not after the lease
    assert all(c == 1 for c in arrived_ids(smtp_server).values())
    assert message_ids(ctx_b, OutboxMail.status != "sent") == set() and message_ids(ctx_b, OutboxMail.claimed_by.is_not(None)) == set()
    b.close()


def test_sqlite_the_daemons_start_takes_over_every_claim_not_its_own(make_ctx, tmp_path, smtp_server):
    db_url = f"sqlite:///{tmp_path / 'claims.db'}"
    ctx = make_ctx(db_url, **smtp_section(smtp_server))
    queue(ctx, ["ack"] * 3 + ["notify"] * 2)
    dead = OutboxWorker(ctx)
    held = {row.message_id for row in dead._claim([])}  # claimed, then the process died
    assert len(held) == 5
    assert OutboxWorker(ctx).run_once() == (0, 0)  # without the take-over: the lease holds them

    restarted = OutboxWorker(ctx)
    assert restarted.take_over_at_start() == 5
    assert restarted.run_once() == (5, 0)
    assert set(arrived_ids(smtp_server)) == held and all(c == 1 for c in arrived_ids(smtp_server).values())


@pytest.mark.postgres
def test_postgres_a_mailer_that_loses_its_lock_stops_sending_its_group(make_ctx, pg_url, smtp_server):
    """The lock's connection dies after the first send of a group (the server restarted, the
    connection was cut): from then on another daemon may take the group, so this mailer stops
    sending it, and the rest goes out once, under the dead number's take-over."""
    from sqlalchemy import text

    from tests.integration.test_outbox import Wrapped, real_transport

    ctx = make_ctx(pg_url, **smtp_section(smtp_server))
    queue(ctx, ["ack"] * GROUP)
    cut: list[int] = []

    def cut_the_lock_connection(n: int) -> None:
        if n == 1:
            pid = worker.owner._conn.execute(text("SELECT pg_backend_pid()")).scalar()
            with ctx.sessions() as s:
                # with a timeout it returns once the session has ended (the server has
                # written its last message to the lock connection's socket)
                s.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            cut.append(pid)

    worker = OutboxWorker(ctx, Wrapped(real_transport(ctx), after=cut_the_lock_connection))
    first_owner = worker.owner.number()
    assert worker.run_once() == (1, 0)  # one sent, then the lock was gone: the other nine left alone
    assert cut and worker.owner.number() != first_owner
    other = OutboxWorker(ctx)
    other._next_look = 0.0
    assert other.run_once() == (GROUP - 1, 0)  # the dead number's claims, at once
    assert len(arrived_ids(smtp_server)) == GROUP and all(c == 1 for c in arrived_ids(smtp_server).values())
    worker.close()
    other.close()


@pytest.mark.postgres
def test_postgres_the_look_before_each_send_costs_no_round_trip(make_ctx, pg_url):
    """Before each send the mailer looks whether its lock is held still: while the lock's
    session is alive that look asks the server nothing (it was a round trip a mail, a third
    of the server's statements in a backlog); once the server has ended the session it
    says so, and the next claim is made under a new number."""
    from sqlalchemy import event, text

    ctx = make_ctx(pg_url)
    owner = OutboxWorker(ctx).owner
    number = owner.number()
    asked: list[str] = []
    engine = ctx.sessions.kw["bind"]

    def count(conn, cursor, statement, *rest) -> None:
        asked.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert all(owner.still_holds(number) for _ in range(50))
        assert asked == []
        assert not owner.still_holds(number + 1)  # another number's claims are not ours
        pid = owner._conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with ctx.sessions() as s:
            s.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        assert not owner.still_holds(number)
        assert owner.number() != number
    finally:
        event.remove(engine, "before_cursor_execute", count)
        owner.close()


def test_the_claims_lease_covers_a_group_on_the_slowest_way_out(make_ctx, tmp_path):
    """A claim's lease is GROUP sends of the transport in use: Graph's sends (retries, throttling
    waits) take far longer than an SMTP timeout, and a lease sized for SMTP let another daemon
    take a group a live mailer was still sending through Graph."""
    from datetime import timedelta

    from intake.msgraph.client import GraphClient
    from intake.msgraph.sender import GraphTransport

    ctx = make_ctx(f"sqlite:///{tmp_path / 'lease.db'}")
    queue(ctx, ["ack"] * 2)
    graph = GraphTransport(
        GraphClient("https://graph.example.test/v1.0", None, timeout=30.0, max_retries=2, max_wait=10.0), "support@example.com", "support"
    )
    worker = OutboxWorker(ctx, graph)
    now = ctx.now()
    worker._claim([])
    with ctx.read_sessions() as s:
        next_attempts = set(s.scalars(select(OutboxMail.next_attempt_at)))
    assert graph.send_seconds >= 5 * 30 + 2 * 10
    assert all(at >= now + timedelta(seconds=GROUP * graph.send_seconds) for at in next_attempts)


def test_ingest_send_leaves_the_sending_to_a_running_daemon(tmp_path, monkeypatch, capsys):
    """`intake ingest --send` beside a running daemon on the same SQLite database queues, and
    leaves the sending to the daemon's mailer: the daemon's start would otherwise take over the
    command's claims and send them a second time."""
    from intake.cli.main import main
    from intake.ops.guard import daemon_lock

    db = tmp_path / "var" / "intake.db"
    (tmp_path / "intake.toml").write_text(
        f'[database]\nurl = "sqlite:///{db}"\n[paths]\nvar = "{tmp_path / "var"}"\nstaff = "{NOBODY_ON_DUTY}"\n', encoding="utf-8"
    )
    mail = tmp_path / "m.eml"
    mail.write_bytes(customer_mail(1))
    config = str(tmp_path / "intake.toml")
    assert main(["--config", config, "init"]) == 0
    with daemon_lock(f"sqlite:///{db}"):  # as `intake run` holds it
        assert main(["--config", config, "ingest", "--send", str(mail)]) == 0
        assert "not sending" in capsys.readouterr().err
    assert not list((tmp_path / "var" / "outgoing" / "new").glob("*"))  # queued, not sent
    assert main(["--config", config, "ingest", "--send", str(mail)]) == 0  # no daemon: it sends
    assert len(list((tmp_path / "var" / "outgoing" / "new").glob("*"))) == 1
