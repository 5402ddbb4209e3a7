"""End to end through the real daemon process: a private Dovecot in front, an aiosmtpd
server behind, SQLite or PostgreSQL in between. Mail in, ticket, acknowledgement out,
whatever crashes or drops on the way."""

from __future__ import annotations

import email
import random
import time
from collections import Counter
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from tests.daemonproc import DaemonProcess, Db, wait_until, write_config
from tests.fixtures.mail.build import EXPECTED

EML = Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "eml"


def customer_mail(i: int, *, lang: str = "zh", sender: str | None = None, subject: str | None = None, **headers) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender or f"客户{i} <customer{i}@kehu.example.cn>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject or (f"订单 {i} 无法付款" if lang == "zh" else f"Order {i}: payment fails")
    msg["Message-ID"] = f"<order-{i}-{random.getrandbits(32)}@kehu.example.cn>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    body = f"您好，订单 {i} 付款时一直提示错误，请帮忙看看。" if lang == "zh" else f"Hello, paying order {i} keeps failing. Could you check?"
    msg.set_content(body)
    return bytes(msg)


def acks_sent(db) -> int:
    return db.scalar("select count(*) from outbox where kind='ack' and status='sent'")


@pytest.fixture
def daemon_env(tmp_path, dovecot, smtp_server):
    """(make_daemon(db_url, **kw), db) with a config pointing at the test servers."""
    made: list[DaemonProcess] = []

    def make(db_url: str, **kw) -> tuple[DaemonProcess, Db]:
        config = write_config(tmp_path / "intake.toml", db_url=db_url, var=tmp_path / "var", dovecot=dovecot, smtp=smtp_server, **kw)
        daemon = DaemonProcess(config, tmp_path)
        daemon.cli("init")
        made.append(daemon)
        return daemon, Db(db_url)

    yield make
    for daemon in made:
        daemon.close()


def acks(smtp_server) -> list:
    """Acknowledgements only: staff notifications travel through the same server."""
    return [m for m in smtp_server.messages if email.message_from_bytes(m.raw)["Message-ID"].startswith("<ack.")]


def wait_acks(smtp_server, n: int, timeout: float) -> list:
    return wait_until(lambda: (found := acks(smtp_server)) and len(found) >= n and found, timeout, what=f"{n} acknowledgements")


def acks_by_message_id(smtp_server) -> Counter:
    return Counter(email.message_from_bytes(m.raw)["Message-ID"] for m in acks(smtp_server))


def test_every_charset_arrives_by_imap_as_correct_text_and_is_acknowledged(daemon_env, db_url, dovecot, smtp_server):
    daemon, db = daemon_env(db_url)
    raws = [(EML / name).read_bytes() for name in EXPECTED]
    dovecot.append_many("support", "INBOX", raws)
    daemon.start()
    wait_until(
        lambda: db.tickets() + db.scalar("select count(*) from messages where kind='autoreply'") >= 1 and not dovecot.list_uids("support", "INBOX"),
        30,
        what="inbox drained",
    )
    daemon.terminate()
    stored = db.rows("select subject, text from messages where direction='in'")
    for name, (subject, body) in EXPECTED.items():
        assert any(s == subject and body.strip() in t for s, t in stored), f"{name}: no message {subject!r} with the expected text"
    assert len(dovecot.list_uids("support", "Processed")) == len(raws)  # moved, never deleted


def test_email_to_ticket_to_ack_under_idle_and_clean_sigterm(daemon_env, db_url, dovecot, smtp_server):
    daemon, db = daemon_env(db_url)
    daemon.start()
    wait_until(lambda: db.scalar("select count(*) from source_state where last_success_at is not null"), 20, what="first IMAP pass")
    sent_at = time.monotonic()
    dovecot.append("support", "INBOX", customer_mail(1))
    [ack] = wait_acks(smtp_server, 1, timeout=20)
    latency = time.monotonic() - sent_at
    parsed = email.message_from_bytes(ack.raw, policy=default)
    ref = db.scalar("select ref from tickets")
    assert f"[#{ref}]" in parsed["Subject"] and ack.rcpt_tos == ("customer1@kehu.example.cn",)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert latency < 10, f"acknowledgement took {latency:.1f} s"
    assert dovecot.list_uids("support", "INBOX") == [] and len(dovecot.list_uids("support", "Processed")) == 1
    assert daemon.terminate(timeout=20) == 0


def test_reply_threads_and_auto_reply_gets_no_ack(daemon_env, db_url, dovecot, smtp_server):
    daemon, db = daemon_env(db_url)
    daemon.start()
    dovecot.append("support", "INBOX", customer_mail(2))
    [ack] = wait_acks(smtp_server, 1, timeout=20)
    ack_id = email.message_from_bytes(ack.raw)["Message-ID"]
    dovecot.append("support", "INBOX", customer_mail(2, subject="Re: 订单 2 无法付款", In_Reply_To=ack_id))
    dovecot.append("support", "INBOX", customer_mail(2, subject="自动回复：我在休假", Auto_Submitted="auto-replied"))
    wait_until(lambda: db.scalar("select count(*) from messages where direction='in'") == 3, 20, what="three inbound messages")
    time.sleep(1.0)  # give a wrong acknowledgement the time to show up
    assert db.tickets() == 1 and len(acks(smtp_server)) == 1
    daemon.terminate()


def test_smtp_down_then_up_delivers_every_acknowledgement(daemon_env, db_url, dovecot, smtp_server):
    daemon, db = daemon_env(db_url)
    smtp_server.stop()
    daemon.start()
    dovecot.append_many("support", "INBOX", [customer_mail(i) for i in range(5)])
    wait_until(lambda: db.tickets() == 5, 20, what="five tickets")
    wait_until(
        lambda: db.scalar("select count(*) from outbox where kind='ack' and attempts > 0 and last_error is not null") == 5, 20, what="failed sends"
    )
    assert acks_sent(db) == 0
    smtp_server.start()
    wait_acks(smtp_server, 5, timeout=30)
    wait_until(lambda: db.scalar("select count(*) from outbox where kind='ack' and status='sent'") == 5, 10, what="all sent")
    assert len(acks_by_message_id(smtp_server)) == 5
    daemon.terminate()


def test_imap_connection_dropped_during_idle_reconnects_and_loses_nothing(daemon_env, db_url, dovecot, smtp_server):
    daemon, db = daemon_env(db_url)
    daemon.start()
    dovecot.append("support", "INBOX", customer_mail(10))
    wait_acks(smtp_server, 1, timeout=20)
    for round_ in range(3):
        dovecot.kick("support")  # the daemon's IDLE connection is cut
        dovecot.append("support", "INBOX", customer_mail(11 + round_))
    wait_acks(smtp_server, 4, timeout=60)
    assert db.tickets() == 4
    daemon.terminate()


@pytest.mark.slow
def test_kill_9_during_a_backlog_loses_and_doubles_nothing(daemon_env, db_url, dovecot, smtp_server):
    """kill -9 at random moments while several hundred messages are taken; after a
    restart every message is exactly one ticket, every acknowledgement was delivered,
    and any acknowledgement delivered twice carries the same Message-ID."""
    n = 600
    daemon, db = daemon_env(db_url)
    dovecot.append_many("support", "INBOX", [customer_mail(i, lang="zh" if i % 3 else "en") for i in range(n)])
    rng = random.Random(20261123)
    kills, at_kill = 0, []
    while kills < 6 and acks_sent(db) < n:
        progress = (db.tickets(), acks_sent(db))
        daemon.start()
        if kills % 3 == 2:  # now and then while it starts: its worker process may be half made
            time.sleep(rng.uniform(0.1, 1.0))
        else:  # otherwise once it is at work, at a random point of the backlog (it takes ~300 a second)
            wait_until(lambda progress=progress: (db.tickets(), acks_sent(db)) != progress, 60, interval=0.05, what="the daemon at work")
            time.sleep(rng.uniform(0.0, 0.6))
        daemon.kill9()
        kills += 1
        at_kill.append((db.tickets(), acks_sent(db)))
    assert any(0 < tickets < n or 0 < sent < n for tickets, sent in at_kill), f"no kill hit the backlog: {at_kill}"
    daemon.start()
    wait_until(lambda: db.tickets() == n and acks_sent(db) == n, 120, interval=0.5, what=f"{n} tickets and {n} sent acknowledgements")
    daemon.terminate()

    assert dovecot.list_uids("support", "INBOX") == []
    assert len(dovecot.list_uids("support", "Processed")) == n  # nothing deleted, nothing left behind
    subjects = [row[0] for row in db.rows("select subject from tickets")]
    assert len(subjects) == len(set(subjects)) == n  # every message exactly one ticket
    queued = {f"<{row[0]}>" for row in db.rows("select message_id from outbox where kind='ack'")}
    delivered = acks_by_message_id(smtp_server)
    assert set(delivered) == queued and len(queued) == n  # every acknowledgement arrived, none invented
    rcpts = Counter(m.rcpt_tos for m in acks(smtp_server))
    repeats = {rcpt: c for rcpt, c in rcpts.items() if c > 1}
    # a repeat is a resend after a crash: same bytes, same Message-ID
    assert sum(repeats.values()) - len(repeats) == sum(delivered.values()) - len(delivered)
