"""Several daemons on one PostgreSQL: each mailbox read by one daemon at a time, a
standby taking over within seconds of a kill -9, and the work shared without doubling."""

from __future__ import annotations

import email
import random
import time
from collections import Counter

import pytest

from tests.daemonproc import DaemonProcess, Db, wait_until, write_config
from tests.integration.test_daemon_email import acks, customer_mail
from tests.servers import AckCounter

pytestmark = pytest.mark.postgres

SHARED = '[archive]\nenabled = false\n[log]\nlevel = "INFO"\n'


@pytest.fixture
def cluster(tmp_path, dovecot, smtp_server, pg_url):
    """make(n) → n daemon processes with one config: one PostgreSQL, two mailboxes."""
    config = write_config(
        tmp_path / "intake.toml",
        db_url=pg_url,
        var=tmp_path / "var",
        dovecot=dovecot,
        smtp=smtp_server,
        users=("support", "support2"),
        extra=SHARED,
        lease_retry_seconds=1.0,
    )
    daemons: list[DaemonProcess] = []

    def make(n: int) -> list[DaemonProcess]:
        for i in range(n):
            daemon = DaemonProcess(config, tmp_path, log=tmp_path / f"daemon-{i}.log")
            if i == 0:
                daemon.cli("init")
            daemons.append(daemon)
        return daemons

    yield make, Db(pg_url)
    for daemon in daemons:
        daemon.close()


def lease_holders(daemons: list[DaemonProcess], mailbox: str) -> list[int]:
    """Which daemons took the lease of `mailbox` (from their logs)."""
    return [i for i, d in enumerate(daemons) if d.log.exists() and f"{mailbox}: lease taken" in d.log.read_text(errors="replace")]


def test_one_reader_per_mailbox_and_a_standby_takes_over_after_kill_9(cluster, dovecot, smtp_server):
    make, db = cluster
    a, b = make(2)
    a.start()
    wait_until(lambda: lease_holders([a, b], "imap:support/INBOX") == [0], 20, what="daemon a reading")
    wait_until(
        lambda: db.scalar("select count(*) from source_state where source = 'imap:support/INBOX' and last_success_at is not null"),
        20,
        what="daemon a's first pass of the mailbox",
    )
    b.start()
    dovecot.append("support", "INBOX", customer_mail(1))
    wait_until(lambda: len(acks(smtp_server)) == 1, 20, what="first acknowledgement")
    time.sleep(3)  # b has tried the lease at least once by now
    assert lease_holders([a, b], "imap:support/INBOX") == [0]
    assert "another daemon holds the mailbox; standing by" in b.log.read_text()

    a.kill9()
    killed_at = time.monotonic()
    dovecot.append("support", "INBOX", customer_mail(2))
    wait_until(lambda: len(acks(smtp_server)) == 2, 30, what="acknowledgement after the takeover")
    # the configured 1 s to take the lease over, then connect, fetch, ticket, send
    assert time.monotonic() - killed_at < 8
    assert 1 in lease_holders([a, b], "imap:support/INBOX")
    assert db.tickets() == 2
    b.terminate()


@pytest.mark.slow
def test_three_daemons_two_mailboxes_kill_9_of_one_every_message_exactly_once(tmp_path, dovecot, smtp_server, pg_url):
    """A backlog of 2,000 messages in two mailboxes, three daemons on one PostgreSQL, one
    killed with kill -9 mid-way and started again: every message one ticket, every
    acknowledgement delivered, a repeat only with the same Message-ID, every archive
    job done once."""
    n = 1000
    config = write_config(
        tmp_path / "intake.toml",
        db_url=pg_url,
        var=tmp_path / "var",
        dovecot=dovecot,
        smtp=smtp_server,
        users=("support", "support2"),
        extra='[log]\nlevel = "INFO"\n',
    )
    daemons = [DaemonProcess(config, tmp_path, log=tmp_path / f"daemon-{i}.log") for i in range(3)]
    daemons[0].cli("init")
    db = Db(pg_url)
    for box, user in ((0, "support"), (1, "support2")):
        dovecot.append_many(user, "INBOX", [customer_mail(box * n + i) for i in range(n)])
    for d in daemons:
        d.start()
    rng = random.Random(7)
    wait_until(lambda: db.tickets() > 50, 60, interval=0.2, what="work under way")
    victim = daemons[rng.randrange(3)]
    victim.kill9()
    at_kill = db.tickets()
    time.sleep(1.0)
    victim.start()
    total = 2 * n
    received = AckCounter(smtp_server)  # counts as mail arrives: parsing it all on every poll costs a core
    try:
        wait_until(lambda: db.tickets() == total and received() >= total, 300, interval=0.5, what=f"{total} tickets and acknowledgements")
        wait_until(lambda: db.scalar("select count(*) from archive_jobs where status <> 'done'") == 0, 600, interval=1, what="every archive job done")
        time.sleep(1.0)
        for d in daemons:
            d.terminate()
    finally:
        for d in daemons:
            d.close()

    assert 0 < at_kill < total, f"the kill did not hit the backlog ({at_kill} of {total})"
    subjects = [row[0] for row in db.rows("select subject from tickets")]
    assert len(subjects) == len(set(subjects)) == total
    queued = {f"<{row[0]}>" for row in db.rows("select message_id from outbox where kind='ack'")}
    delivered = Counter(email.message_from_bytes(m.raw)["Message-ID"] for m in acks(smtp_server))
    assert set(delivered) == queued and len(queued) == total
    for user in ("support", "support2"):
        assert dovecot.list_uids(user, "INBOX") == [] and len(dovecot.list_uids(user, "Processed")) == n
    # each job rendered once: one file per (ticket, version), every job pointing at its file
    assert db.rows("select ticket_id, version from archive_files group by ticket_id, version having count(*) > 1") == []
    assert db.scalar("select count(*) from archive_jobs where archive_file_id is null") == 0
    assert db.scalar("select count(distinct ticket_id) from archive_files") == total


def test_a_shared_spool_is_scanned_by_one_daemon_and_every_file_is_one_ticket(cluster, tmp_path):
    import json

    make, db = cluster
    daemons = make(2)
    for d in daemons:
        d.start()
    spool = tmp_path / "var" / "spool"
    wait_until(lambda: (spool / "tmp").is_dir(), 20, what="spool ready")
    for i in range(20):
        tmp = spool / "tmp" / f"sub-{i}.json"
        tmp.write_text(json.dumps({"name": f"客户{i}", "phone": f"1380000{i:04d}", "message": f"第 {i} 个问题：无法登录"}), encoding="utf-8")
        tmp.rename(spool / f"sub-{i}.json")
    wait_until(lambda: db.tickets() == 20 and len(list((spool / "done").glob("*.json"))) == 20, 60, what="20 spooled tickets")
    holders = [
        i for i, d in enumerate(daemons) if any("spool:" in line and line.endswith(": lease taken") for line in d.log.read_text().splitlines())
    ]
    assert len(holders) == 1
    for d in daemons:
        d.terminate()


def test_advisory_lease_is_exclusive_survives_checks_and_passes_on_release(pg_url):
    from sqlalchemy import create_engine

    from intake.sources import lease as lease_mod

    first_engine, second_engine = create_engine(pg_url), create_engine(pg_url)
    first = lease_mod.lease_for(first_engine, "imap:test/INBOX")
    second = lease_mod.lease_for(second_engine, "imap:test/INBOX")
    try:
        assert first.acquire() and first.acquire()  # held, and cheap to ask again
        assert not second.acquire() and lease_mod.held["imap:test/INBOX"] is False
        first.release()
        assert second.acquire() and lease_mod.held["imap:test/INBOX"] is True
        assert not first.acquire()
    finally:
        first.release()
        second.release()
        first_engine.dispose()
        second_engine.dispose()


def test_sqlite_has_a_sole_reader():
    from sqlalchemy import create_engine

    from intake.sources.lease import SoleReader, lease_for

    assert isinstance(lease_for(create_engine("sqlite://"), "spool"), SoleReader)
