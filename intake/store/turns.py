"""Writers taking turns at SQLite's one write lock, first come first served.

SQLite's own busy handler lets a waiting writer sleep and poll, so a thread that
commits and begins again at once (the pipeline working through a backlog) keeps the
lock while the mailer starves. The daemon's threads therefore queue on a ticket lock
per database. One process writes (the pipeline's worker processes only parse and
classify, intake/pipeline/pool.py), so a lock for its threads is all it takes; other
programs (a command beside the daemon) meet SQLite's busy timeout.
"""

from __future__ import annotations

import threading
from pathlib import Path


class TurnLock:
    """First come first served, re-entrant for the thread that holds it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._owner: int | None = None
        self._depth = 0

    def held(self) -> bool:
        return self._owner is not None

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()
            self._owner, self._depth = me, 1

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                return  # not ours (already released by a failed BEGIN)
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._serving += 1
                self._cond.notify_all()


_locks: dict[str, TurnLock] = {}
_locks_guard = threading.Lock()


def lock_for(path: str) -> TurnLock:
    """The one lock of the database file at `path`, in this process."""
    with _locks_guard:
        key = str(Path(path).resolve())
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = TurnLock()
        return lock
