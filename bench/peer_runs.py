"""The runs of bench/peer_bench.py besides the peer's: intake's daemon draining the
mailbox (SQLite or PostgreSQL), and the machine's serial floor. Each run starts with the
same messages in the private Dovecot's INBOX (`load_mailbox`)."""

from __future__ import annotations

import email
import email.policy
import imaplib
import os
import shutil
import sqlite3
import statistics
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text

from intake.files import write_atomic
from tests.daemonproc import DaemonProcess, wait_until, write_config
from tests.fixtures.mail.build import corpus
from tests.servers import DovecotServer

ROOT = Path(__file__).resolve().parents[1]
USER = "support"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def mixed_backlog(n: int) -> list[bytes]:
    """The parser's fixture corpus (Chinese in GB18030, Big5-HKSCS, GBK; Japanese; English
    in cp1252, ASCII, HTML-only, alternatives, attachments, winmail.dat), each message with
    its own Message-ID and sender, as bench/imap_backlog.py builds it."""
    return [raw.replace(b"li.wei@example.cn", f"customer{i}@example.cn".encode()) for i, raw in enumerate(corpus(n))]


def load_mailbox(dovecot: DovecotServer, backlog: list[bytes]) -> None:
    """Empty every folder of the user, then APPEND the same messages to INBOX again."""
    dovecot.reset()
    dovecot.append_many(USER, "INBOX", backlog)


def inbox_count(dovecot: DovecotServer) -> int:
    return len(dovecot.list_uids(USER, "INBOX"))


@dataclass
class IntakeRun:
    from_first_ticket: float  # seconds from the first ticket to the last acknowledgement sent
    from_start: float  # from the daemon's start
    tickets: int
    acks: int
    peak_rss_mb: float  # the most the daemon and its workers held at once (sampled sum of RSS)
    tickets_seconds: float  # first ticket to last ticket, from the rows' own timestamps
    ack_lag: float  # the last acknowledgement's sending after the last ticket's creation, seconds


def tree(pid: int) -> list[int]:
    """The process and all its descendants (the pipeline worker, the forkserver, ...)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        found.append(parent)
        try:
            for task in Path(f"/proc/{parent}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue  # gone meanwhile
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def run_intake(db_url: str, dovecot: DovecotServer, expected: int, work: Path, code: Path | None = None) -> IntakeRun:
    """`intake run` as its own process on a fresh database, acknowledgements into the local
    Maildir var/outgoing (no SMTP server configured); stopped once every ack is sent.
    `code`: a directory holding the intake package to run instead of the checkout's."""
    work.mkdir(parents=True)
    config = write_config(
        work / "intake.toml", db_url=db_url, var=work / "var", dovecot=dovecot, extra='[archive]\nenabled = false\n[log]\nlevel = "WARNING"\n'
    )
    daemon = DaemonProcess(config, work)
    if code is not None:
        daemon.env["PYTHONPATH"] = str(code)  # before the checkout's editable install
    daemon.cli("init")
    engine = create_engine(db_url)
    acks_sent = "SELECT count(*) FROM outbox WHERE kind = 'ack' AND status = 'sent'"
    peak = 0.0

    def poll(query: str) -> int:
        nonlocal peak
        if not daemon.alive():
            raise RuntimeError(f"the daemon exited ({daemon.proc.returncode}): {daemon.log.read_text()[-1500:]}")
        peak = max(peak, rss_mb(tree(daemon.proc.pid)))
        with engine.connect() as c:
            return c.scalar(text(query))

    try:
        started = time.monotonic()
        daemon.start()
        wait_until(lambda: poll("SELECT count(*) FROM tickets") > 0, 120, interval=0.01, what="first ticket")
        first = time.monotonic()
        wait_until(lambda: poll(acks_sent) >= expected, 1800, interval=0.05, what="all acknowledgements")
        done = time.monotonic()
        with engine.connect() as c:
            tickets, acks = c.scalar(text("SELECT count(*) FROM tickets")), c.scalar(text(acks_sent))
            first_ticket, last_ticket = c.execute(text("SELECT min(created_at), max(created_at) FROM tickets")).one()
            last_ack = c.scalar(text("SELECT max(sent_at) FROM outbox WHERE kind = 'ack'"))
        daemon.terminate()
    finally:
        daemon.close()  # killed if a wait above failed
        engine.dispose()
    first_ticket, last_ticket, last_ack = (as_datetime(t) for t in (first_ticket, last_ticket, last_ack))
    return IntakeRun(
        done - first, done - started, tickets, acks, peak, (last_ticket - first_ticket).total_seconds(), (last_ack - last_ticket).total_seconds()
    )


def as_datetime(value: datetime | str) -> datetime:
    """A timestamp column as read with a plain text query (SQLite gives the string)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value.replace(tzinfo=None)


def git(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), *args], input=stdin, check=True, capture_output=True).stdout


def export_commit(rev: str, into: Path) -> str:
    """The tree of commit `rev` written into `into` (git archive): the code to measure,
    untouched by edits in progress in the checkout. Returns what was measured."""
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=git("archive", "--format=tar", rev), check=True)
    return f"commit {git('rev-parse', '--short', rev).decode().strip()}"


def describe_checkout() -> str:
    edited = git("status", "--porcelain", "--", "intake").strip()
    return f"the working tree at {git('rev-parse', '--short', 'HEAD').decode().strip()}" + (" with uncommitted edits under intake/" if edited else "")


@contextmanager
def private_postgres_db():
    """A database of its own on the local PostgreSQL, dropped afterwards."""
    name = f"intake_peer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fsync_ms(folder: Path, count: int = 40) -> tuple[float, float]:
    """Median milliseconds of (a small append and fsync, as a SQLite WAL commit does; a new
    file written the Maildir way: temp file, fsync, rename, fsync the folder, as intake's
    local acknowledgements are). Every run here waits on these, and other work on this
    shared machine's disk moves them more than it moves the CPU's speed."""
    appends, files = [], []
    with open(folder / "fsync-probe", "ab") as f:
        for i in range(count):
            started = time.perf_counter()
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
            appends.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            write_atomic(folder / "probe" / f"{i}", b"x" * 2500)
            files.append((time.perf_counter() - started) * 1000)
    (folder / "fsync-probe").unlink()
    shutil.rmtree(folder / "probe")
    return statistics.median(appends), statistics.median(files)


def run_floor(dovecot: DovecotServer, work: Path) -> tuple[float, int]:
    """The machine's serial floor: for each message in turn, IMAP UID FETCH, the standard
    library's parse (modern policy: decoded subject, sender and text body), one INSERT and
    a durable COMMIT into SQLite (WAL, synchronous=FULL: intake's settings). One process,
    one connection each, nothing overlapped. Returns (seconds, messages stored)."""
    work.mkdir(parents=True)
    db = sqlite3.connect(work / "floor.db", isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL"):
        db.execute(f"PRAGMA {pragma}")
    db.execute("CREATE TABLE message (id INTEGER PRIMARY KEY, message_id TEXT UNIQUE, sender TEXT, subject TEXT, body TEXT)")
    started = time.monotonic()
    imap = imaplib.IMAP4(dovecot.host, dovecot.port)
    imap.login(USER, dovecot.users[USER])
    imap.select("INBOX")
    uids = imap.uid("SEARCH", "ALL")[1][0].split()
    for uid in uids:
        raw = imap.uid("FETCH", uid, "(BODY.PEEK[])")[1][0][1]
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = msg.get_body(("plain", "html"))
        body = part.get_content() if part is not None else ""
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO message (message_id, sender, subject, body) VALUES (?, ?, ?, ?)", (msg["Message-ID"], msg["From"], msg["Subject"], body)
        )
        db.execute("COMMIT")
    imap.logout()
    seconds = time.monotonic() - started
    stored = db.execute("SELECT count(*) FROM message").fetchone()[0]
    db.close()
    return seconds, stored
