"""SQLite as the embedded database: WAL, full durability, and writers taking turns.

SQLite allows one writer at a time. Left to its busy handler, a waiting writer
sleeps and polls, and a thread that commits and begins again at once (the IMAP
source working through a backlog) keeps the lock while the mailer starves. Inside
the daemon (its threads, and its pipeline in a worker process) writers therefore
queue first-come first-served on a ticket lock (intake/store/turns.py), and the busy
timeout only matters against other programs (a CLI command beside the daemon). Every transaction is BEGIN IMMEDIATE: taking the write lock up front means
a transaction never fails half-way when it turns from reading to writing. Sessions
that only read (status, searches, exports, verify) take a plain BEGIN instead: a
snapshot that neither waits for the writers nor holds them up while it reads files.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from intake.store import READ_ONLY
from intake.store.turns import TurnLock, lock_for

BUSY_TIMEOUT_MS = 30_000


class TurnTakingConnection(sqlite3.Connection):
    """Holds the database's TurnLock from BEGIN until COMMIT or ROLLBACK is done."""

    turns: TurnLock

    def begin_immediate(self) -> None:
        self.turns.acquire()
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.turns.release()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self.turns.release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.turns.release()


def database_path(url: str) -> str:
    """The file of a sqlite:/// URL (":memory:" for none)."""
    return url.split("///", 1)[-1] or ":memory:"


def make_sqlite_engine(url: str) -> Engine:
    path = database_path(url)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    turns = lock_for(path)
    # a subclass per database, so every connection to it shares that database's lock
    factory = type("TurnTakingConnection", (TurnTakingConnection,), {"turns": turns})
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False, "factory": factory})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", f"busy_timeout={BUSY_TIMEOUT_MS}"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")  # a WAL snapshot: neither waits for nor blocks writers
        else:
            conn.connection.dbapi_connection.begin_immediate()

    return engine
