"""SQLite as the embedded database: WAL, full durability, and writers taking turns.

SQLite allows one writer at a time. Left to its busy handler, a waiting writer
sleeps and polls, and a thread that commits and begins again at once (the IMAP
source working through a backlog) keeps the lock while the mailer starves. Inside
the daemon (its threads, and its pipeline in a worker process) writers therefore
queue first-come first-served on a ticket lock, and the busy timeout only matters
against other programs (a CLI command beside the daemon). Every transaction is BEGIN IMMEDIATE: taking the write lock up front means
a transaction never fails half-way when it turns from reading to writing. Sessions
that only read (status, searches, exports, verify) take a plain BEGIN instead: a
snapshot that neither waits for the writers nor holds them up while it reads files.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
import threading
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from intake.processes import alive

log = logging.getLogger("intake.sqlite")

BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "intake_read_only"  # execution option of sessions that only read (see db.make_read_sessions)


class TurnLock:
    """A first-come first-served lock, re-entrant for the thread that holds it, shared
    with the daemon's worker processes (handed to them when they start): the pipeline
    in its process and the mailer in the daemon queue on the same tickets.

    A process that dies holding the lock, or waiting in the queue, would stop every
    writer behind it: a waiter that sees no progress for a second checks whether the
    holder (or the process whose ticket is up) is still alive, and passes over it if not.
    """

    _WAITERS = 64  # ring of the pids that hold the next tickets (far more than our threads)

    def __init__(self) -> None:
        mp = multiprocessing.get_context("spawn")
        self._cond = mp.Condition(mp.Lock())
        # next ticket, ticket being served, owner pid, owner thread, then the waiters' pids
        self._state = mp.RawArray("q", 4 + self._WAITERS)
        self._depth = 0  # touched only by the owning thread (each process has its own copy)

    def acquire(self) -> None:
        me, thread = os.getpid(), threading.get_ident()
        state = self._state
        with self._cond:
            if state[_OWNER_PID] == me and state[_OWNER_THREAD] == thread:
                self._depth += 1
                return
            ticket = state[_NEXT]
            state[_NEXT] = ticket + 1
            state[4 + ticket % self._WAITERS] = me
            while ticket != state[_SERVING]:
                if not self._cond.wait(timeout=STALL_CHECK_SECONDS):
                    self._pass_over_the_dead()
            state[_OWNER_PID], state[_OWNER_THREAD] = me, thread
        self._depth = 1

    def release(self) -> None:
        state = self._state
        with self._cond:
            if state[_OWNER_PID] != os.getpid() or state[_OWNER_THREAD] != threading.get_ident():
                return  # not ours (already released by a failed BEGIN)
            self._depth -= 1
            if self._depth == 0:
                self._serve_next()

    def _serve_next(self) -> None:
        state = self._state
        state[_OWNER_PID] = state[_OWNER_THREAD] = 0
        state[_SERVING] += 1
        self._cond.notify_all()

    def _pass_over_the_dead(self) -> None:
        """Called with the condition held, after a wait without progress."""
        state = self._state
        owner = state[_OWNER_PID]
        if owner and not alive(owner):
            log.error("process %d died holding the database's write turn; passing over it", owner)
            self._serve_next()
        elif not owner and state[_SERVING] < state[_NEXT]:
            up = state[4 + state[_SERVING] % self._WAITERS]
            if up and not alive(up):
                log.error("process %d died waiting for the database's write turn; passing over it", up)
                self._serve_next()


_NEXT, _SERVING, _OWNER_PID, _OWNER_THREAD = range(4)
STALL_CHECK_SECONDS = 1.0


_locks: dict[str, TurnLock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: str) -> TurnLock:
    with _locks_guard:
        key = str(Path(path).resolve())
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = TurnLock()
        return lock


def shared_turns() -> dict[str, TurnLock]:
    """Every database's lock in this process, to hand to a worker process at its start."""
    with _locks_guard:
        return dict(_locks)


def adopt_turns(locks: dict[str, TurnLock]) -> None:
    """In a worker process, before its first engine: queue with the daemon's writers."""
    with _locks_guard:
        _locks.update(locks)


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


def make_sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    turns = _lock_for(path or ":memory:")
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
