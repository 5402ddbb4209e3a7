"""Benchmark: kill -9 during a backlog, and how soon the killed daemon's claimed
acknowledgements reach the customer afterwards (issue 16, item 5).

    .venv/bin/python bench/crash_acks.py [--messages 8000] [--kills 20] [--smtp-delay 0.02] [--db sqlite postgres]

A private Dovecot holds the backlog (customer mails in Chinese and English); the daemon
sends through an aiosmtpd server that takes --smtp-delay seconds over each DATA (a relay
on a network; with none, a group of 10 is sent in a few ms and a kill rarely finds one
in flight). Each round waits until the daemon is at work, sleeps a random 0-1 s, freezes it
(SIGSTOP), notes the acknowledgements it had claimed and not yet recorded as sent
(outbox.claimed_by) and which of them the server already had, and kills it (SIGKILL).

- SQLite: one daemon, restarted at once; the time is from the restart to every claimed
  acknowledgement received by the SMTP server.
- PostgreSQL: two daemons on one database, the killed one alternating; the time is from
  the kill to the survivor having sent every claimed acknowledgement of the killed one
  (which is then restarted).

At the end: every message one ticket, every acknowledgement received, a repeat only of
one the server had got before a kill, with the same Message-ID and bytes. Before this
change the claimed ones waited for their lease, GROUP x (smtp.timeout + 1) + 5 s: 315 s
with the default 30 s SMTP timeout (used here). Figures in bench/crash_acks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from intake.outgoing.mailer import GROUP  # noqa: E402
from tests.daemonproc import DaemonProcess, Db, wait_until, write_config  # noqa: E402
from tests.integration.test_daemon_email import customer_mail  # noqa: E402
from tests.servers import DovecotServer, SmtpServer  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SMTP_TIMEOUT = 30  # the default: a claim's lease is 10 x 31 + 5 = 315 s
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<(ack\.[^>]+)>", re.IGNORECASE | re.MULTILINE)


class Arrivals:
    """The acknowledgements the SMTP server kept: Message-ID -> copies (bytes), read incrementally
    (parsing every mail on every poll would eat the core the daemons need)."""

    def __init__(self, smtp: SmtpServer):
        self.smtp, self.seen = smtp, 0
        self.copies: dict[str, list[bytes]] = defaultdict(list)

    def __call__(self) -> dict[str, list[bytes]]:
        new = self.smtp.messages[self.seen :]
        self.seen += len(new)
        for m in new:
            found = _MESSAGE_ID.search(m.raw.split(b"\r\n\r\n", 1)[0])
            if found:
                self.copies[found.group(1).decode()].append(m.raw)
        return self.copies


def claimed_acks(db: Db, owner: int | None = None) -> set[str]:
    where = f"claimed_by = {owner}" if owner is not None else "claimed_by is not null"
    return {r[0] for r in db.rows(f"select message_id from outbox where kind = 'ack' and status = 'pending' and {where}")}


def owner_of(daemon: DaemonProcess, after: int) -> int | None:
    """The owner number the daemon's mailer logged ("mailer claims as owner N") past byte
    `after` of its log (where its latest start began), or None if not yet."""
    found = re.findall(r"mailer claims as owner (\d+)", daemon.log.read_bytes()[after:].decode(errors="replace"))
    return int(found[-1]) if found else None


def start(daemon: DaemonProcess, offsets: dict) -> None:
    offsets[daemon] = daemon.log.stat().st_size if daemon.log.exists() else 0
    daemon.start()


def acks_sent(db: Db) -> int:
    return db.scalar("select count(*) from outbox where kind = 'ack' and status = 'sent'")


def run(db_url: str, n: int, kills: int, daemons: int, dovecot: DovecotServer, smtp: SmtpServer, work: Path, rng: random.Random) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    dovecot.reset()
    smtp.clear()
    dovecot.append_many("support", "INBOX", [customer_mail(i, lang="zh" if i % 3 else "en") for i in range(n)])
    extra = f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\ntimeout = {SMTP_TIMEOUT}\n[archive]\nenabled = false\n[log]\nlevel = "INFO"\n'
    config = write_config(work / "intake.toml", db_url=db_url, var=work / "var", dovecot=dovecot, extra=extra, lease_retry_seconds=1.0)
    procs = [DaemonProcess(config, work, log=work / f"daemon-{i}.log") for i in range(daemons)]
    procs[0].cli("init")
    db, arrivals = Db(db_url), Arrivals(smtp)
    times: list[float] = []
    claimed_total = unsent_total = killed = 0
    arrived_before_kills: set[str] = set()
    offsets: dict[DaemonProcess, int] = {}
    try:
        for p in procs:
            start(p, offsets)
        for k in range(kills):
            victim = procs[k % daemons]
            progress = acks_sent(db)
            if progress >= n - 4 * GROUP:  # the backlog is all but gone: no kill would find one
                print(f"backlog done after {k} kills", flush=True)
                break
            wait_until(lambda progress=progress: acks_sent(db) > progress, 120, interval=0.02, what="the daemon at work")
            # whose claims are whose: the victim's owner number, from its log
            owner = wait_until(lambda victim=victim: owner_of(victim, offsets[victim]), 60, what="the victim mailing") if daemons > 1 else None
            time.sleep(rng.uniform(0.0, 1.0))
            # frozen first, so that what it claimed and what the server got are read exactly (a
            # DATA the server has is kept within its delay; the frozen daemon's lock still holds)
            os.kill(victim.proc.pid, signal.SIGSTOP)
            time.sleep(smtp.delay + 0.1)
            arrived, claimed = set(arrivals()), claimed_acks(db, owner)
            victim.kill9()
            killed += 1
            killed_at = time.monotonic()
            arrived_before_kills |= arrived
            claimed_total += len(claimed)
            unsent_total += len(claimed - arrived)
            if daemons == 1:
                start(victim, offsets)
                since = time.monotonic()
            else:
                since = killed_at
            wait_until(lambda claimed=claimed: claimed <= set(arrivals()), 600, interval=0.02, what="the claimed acknowledgements")
            took = time.monotonic() - since
            if claimed - arrived:  # a kill that found claimed mail not yet sent
                times.append(took)
            if daemons > 1:  # back beside the survivor, and running, before the next kill
                start(victim, offsets)
                wait_until(
                    lambda victim=victim: b"intake running" in victim.log.read_bytes()[offsets[victim] :], 60, what="the restarted daemon running"
                )
            print(
                f"kill {k + 1}: {len(claimed)} claimed, {len(claimed - arrived)} not yet sent, all delivered after {took:.2f} s",
                flush=True,
            )
        wait_until(lambda: db.tickets() == n and acks_sent(db) == n, 1800, interval=0.5, what=f"{n} tickets and acknowledgements")
        copies = arrivals()
        for p in procs:
            p.terminate()
        subjects = [r[0] for r in db.rows("select subject from tickets")]
        queued = {r[0] for r in db.rows("select message_id from outbox where kind = 'ack'")}
        assert len(subjects) == len(set(subjects)) == n, "a message became two tickets, or none"
        assert set(copies) == queued and len(queued) == n, f"lost {len(queued - set(copies))}, invented {len(set(copies) - queued)}"
        repeats = {mid: raws for mid, raws in copies.items() if len(raws) > 1}
        assert set(repeats) <= arrived_before_kills, "resent though not sent before a kill"
        assert all(len(set(raws)) == 1 for raws in repeats.values()), "a resend with other bytes"
    finally:
        for p in procs:
            p.close()
        db.close()
    return {
        "kills": killed,
        "times": times,
        "claimed": claimed_total,
        "unsent": unsent_total,
        "repeats": sum(len(r) - 1 for r in repeats.values()),
    }


def report(name: str, n: int, r: dict) -> None:
    t = r["times"]
    print(
        f"| {name} | {n} | {r['kills']} | {len(t)} | {r['claimed']} | {r['unsent']} | "
        + (f"{statistics.median(t):.2f} | {max(t):.2f}" if t else "- | -")
        + f" | {n} | {r['repeats']} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=8000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--smtp-delay", type=float, default=0.02)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = []
    with DovecotServer() as dovecot, SmtpServer(delay=args.smtp_delay) as smtp:
        work = Path(tempfile.mkdtemp(prefix="intake-crash-acks-"))
        if "sqlite" in args.db:
            r = run(f"sqlite:///{work / 'sqlite' / 'intake.db'}", args.messages, args.kills, 1, dovecot, smtp, work / "sqlite", rng)
            results.append(("SQLite, 1 daemon, restarted", r))
        if "postgres" in args.db:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                name = f"intake_bench_{uuid.uuid4().hex[:8]}"
                admin.execute(f'CREATE DATABASE "{name}"')
                try:
                    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                    results.append(("PostgreSQL, 2 daemons, survivor", run(url, args.messages, args.kills, 2, dovecot, smtp, work / "pg", rng)))
                finally:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(
        f"\nbacklog {args.messages} messages, SMTP {args.smtp_delay * 1000:.0f} ms a mail, lease before this change {10 * (SMTP_TIMEOUT + 1) + 5} s"
    )
    print(
        "| setup | messages | kills | kills with claimed mail unsent | claimed | of them unsent | median s | max s | tickets | resent (same Message-ID, bytes) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results:
        report(name, args.messages, r)


if __name__ == "__main__":
    main()
