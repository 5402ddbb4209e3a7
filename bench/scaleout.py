"""Benchmark: the same backlog taken by 1, 2 and 3 daemons on one PostgreSQL, and by
one daemon on SQLite. Three mailboxes (support, support2, staff) of a private Dovecot
hold the backlog; each mailbox is read by one daemon at a time (its lease), so up to
three daemons share the reading, and all of them share the mailer.

    .venv/bin/python bench/scaleout.py [--per-mailbox 400] [--daemons 1 2 3]

Case PDFs are off here (the archive has its own benchmark). Prints messages/second
from the first ticket to the last acknowledgement received; figures in bench/scaleout.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from tests.daemonproc import DaemonProcess, Db, wait_until, write_config  # noqa: E402
from tests.fixtures.mail.build import corpus  # noqa: E402
from tests.servers import AckCounter, DovecotServer, SmtpServer  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
USERS = ("support", "support2", "staff")


def backlog(user: str, n: int) -> list[bytes]:
    return [raw.replace(b"li.wei@example.cn", f"{user}-c{i}@example.cn".encode()) for i, raw in enumerate(corpus(n, seed=hash(user) % 1000))]


def run(db_url: str, daemons: int, per_mailbox: int, dovecot: DovecotServer, smtp: SmtpServer, work: Path) -> float:
    work.mkdir(parents=True, exist_ok=True)
    dovecot.reset()
    smtp.clear()
    for user in USERS:
        dovecot.append_many(user, "INBOX", backlog(user, per_mailbox))
    config = write_config(
        work / "intake.toml",
        db_url=db_url,
        var=work / "var",
        dovecot=dovecot,
        smtp=smtp,
        users=USERS,
        extra='[archive]\nenabled = false\n[log]\nlevel = "WARNING"\n',
    )
    procs = [DaemonProcess(config, work, log=work / f"daemon-{i}.log") for i in range(daemons)]
    procs[0].cli("init")
    db = Db(db_url)
    total = per_mailbox * len(USERS)
    try:
        for p in procs:
            p.start()
        wait_until(lambda: db.tickets() > 0, 60, interval=0.01, what="first ticket")
        first = time.monotonic()
        acks = AckCounter(smtp)
        wait_until(lambda: acks() >= total, 1800, interval=0.05, what="all acknowledgements")
        rate = total / (time.monotonic() - first)
        assert db.tickets() == total, f"{db.tickets()} tickets for {total} messages"
    finally:
        for p in procs:
            p.terminate() if p.alive() else None
        db.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-mailbox", type=int, default=400)
    parser.add_argument("--daemons", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    results = []
    with DovecotServer() as dovecot, SmtpServer() as smtp:
        work = Path(tempfile.mkdtemp(prefix="intake-scaleout-"))
        results.append(("SQLite", 1, run(f"sqlite:///{work / 'sqlite' / 'intake.db'}", 1, args.per_mailbox, dovecot, smtp, work / "sqlite")))
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            for n in args.daemons:
                name = f"intake_bench_{uuid.uuid4().hex[:8]}"
                admin.execute(f'CREATE DATABASE "{name}"')
                try:
                    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                    results.append(("PostgreSQL", n, run(url, n, args.per_mailbox, dovecot, smtp, work / f"pg{n}")))
                finally:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    total = args.per_mailbox * len(USERS)
    print(f"backlog: {total} messages in {len(USERS)} mailboxes")
    print("| database | daemons | messages/s |\n|---|---|---|")
    for db, n, rate in results:
        print(f"| {db} | {n} | {rate:.0f} |")


if __name__ == "__main__":
    main()
