"""Writers taking turns at SQLite's one write lock, first come first served.

SQLite's own busy handler lets a waiting writer sleep and poll, so a thread that
commits and begins again at once (the pipeline working through a backlog) keeps the
lock while the mailer starves. The daemon's writers therefore queue on a ticket lock
per database: its threads, and (once `share()`d, when the daemon starts its pipeline
worker) its worker processes, which get the lock handed over at their start.

A shared lock must survive a worker killed at any moment: its state is changed under
an flock, which the kernel lets go of with a dead process; each waiter sleeps on a
semaphore of its own ticket's slot (a release wakes exactly the next in line, and
needs nothing from the others), and a waiter that sees no progress for a second
checks whether the holder, or the process whose ticket is up, is still alive, and
passes over it if not. The flock is on a file next to the database (`<db>-turns`).
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import threading
import time
from pathlib import Path

from intake.ops.processes import alive

log = logging.getLogger("intake.store.sqlite")

STALL_CHECK_SECONDS = 1.0


class TurnLock:
    """First come first served, re-entrant for the thread that holds it."""

    def __init__(self) -> None:
        self._turns: _ThreadTurns | _ProcessTurns = _ThreadTurns()

    def acquire(self) -> None:
        self._turns.acquire()

    def release(self) -> None:
        self._turns.release()

    def share(self, guard_file: str) -> TurnLock:
        """From now on queue the threads of every process this lock is handed to (at
        the process's start). Called before the daemon's threads start: nobody holds it."""
        if isinstance(self._turns, _ThreadTurns):
            if self._turns.held():
                raise RuntimeError("a turn lock can only be shared while nobody holds it")
            self._turns = _ProcessTurns(guard_file)
        return self


class _ThreadTurns:
    """The threads of one process."""

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


_NEXT, _SERVING, _OWNER_PID, _OWNER_THREAD = range(4)


class _FileGuard:
    """Mutual exclusion for a few microseconds across the daemon's processes and their
    threads, let go of by a process killed while holding it: an flock (the kernel drops
    it with the process) behind a lock for this process's threads (an flock belongs to
    an open file, which the threads of a process share)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None  # opened in each process, on first use

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        _FileGuard.__init__(self, state["path"])

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc) -> None:
        try:
            assert self._fd is not None, "opened by __enter__"
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


class _ProcessTurns:
    """The threads of the daemon and of its worker processes."""

    SLOTS = 32  # tickets waiting at once, at most; more writers wait for a free slot

    def __init__(self, guard_file: str) -> None:
        mp = multiprocessing.get_context("spawn")
        self._guard = _FileGuard(guard_file)
        # next ticket, ticket served, owner pid, owner thread; then the pid waiting in each slot
        self._state = mp.RawArray("q", 4 + self.SLOTS)
        self._wake = [mp.Semaphore(0) for _ in range(self.SLOTS)]
        self._depth = 0  # touched only by the owning thread (each process has its own copy)

    def acquire(self) -> None:
        while not self._acquired():
            log.error("a waiter for the database's write turn was passed over though alive; it queues again")

    def _acquired(self) -> bool:
        """The turn taken (True), or passed over (False), which only a waiter wrongly
        thought dead would be."""
        me, thread, state = os.getpid(), threading.get_ident(), self._state
        while True:
            with self._guard:
                if state[_OWNER_PID] == me and state[_OWNER_THREAD] == thread:
                    self._depth += 1
                    return True
                if state[_NEXT] - state[_SERVING] < self.SLOTS:
                    ticket = self._take_ticket(me, thread)
                    if ticket is None:
                        return True  # our turn at once
                    break
            time.sleep(0.001)  # every slot has a waiter (more than SLOTS writers at once): rare
        slot = ticket % self.SLOTS
        while True:
            woken = self._wake[slot].acquire(timeout=STALL_CHECK_SECONDS)
            with self._guard:
                if not woken:
                    self._pass_over_the_dead()
                if ticket == state[_SERVING]:
                    state[_OWNER_PID], state[_OWNER_THREAD] = me, thread
                    self._depth = 1
                    return True
                if ticket < state[_SERVING]:
                    return False
                # else: a wake left over from a dead waiter of this slot; wait on

    def _take_ticket(self, me: int, thread: int) -> int | None:
        """With the guard held: a ticket in the queue, or None if it is served at once."""
        state = self._state
        ticket = state[_NEXT]
        # the slot first: killed between the two writes, the ticket was never taken
        state[4 + ticket % self.SLOTS] = me
        state[_NEXT] = ticket + 1
        if ticket == state[_SERVING]:
            state[_OWNER_PID], state[_OWNER_THREAD] = me, thread
            self._depth = 1
            return None
        return ticket

    def release(self) -> None:
        state = self._state
        with self._guard:
            if state[_OWNER_PID] != os.getpid() or state[_OWNER_THREAD] != threading.get_ident():
                return  # not ours (already released by a failed BEGIN)
            self._depth -= 1
            if self._depth == 0:
                self._serve_next()

    def _serve_next(self) -> None:
        """With the guard held: the next ticket's turn, its waiter woken."""
        state = self._state
        state[_OWNER_PID] = state[_OWNER_THREAD] = 0
        state[4 + state[_SERVING] % self.SLOTS] = 0  # that ticket is done with its slot
        state[_SERVING] += 1
        if state[_SERVING] < state[_NEXT]:
            self._wake[state[_SERVING] % self.SLOTS].release()

    def _pass_over_the_dead(self) -> None:
        """With the guard held, after a wait without progress."""
        state = self._state
        owner = state[_OWNER_PID]
        if owner and not alive(owner):
            log.error("process %d died holding the database's write turn; passing over it", owner)
            self._serve_next()
        elif not owner and state[_SERVING] < state[_NEXT]:
            up = state[4 + state[_SERVING] % self.SLOTS]
            if not up or not alive(up):  # 0: nobody wrote the slot (cannot happen; never wait for it)
                log.error("process %d died waiting for the database's write turn; passing over it", up)
                self._serve_next()


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


def share_turns(path: str) -> dict[str, TurnLock]:
    """The lock of the database at `path`, made shareable, to hand to a worker process
    at its start (`adopt_turns` there). An in-memory database has nothing to share."""
    if path == ":memory:":
        return {}
    lock = lock_for(path).share(str(Path(path).resolve()) + "-turns")
    with _locks_guard:
        return {key: held for key, held in _locks.items() if held is lock}


def adopt_turns(locks: dict[str, TurnLock]) -> None:
    """In a worker process, before its first engine: queue with the daemon's writers."""
    with _locks_guard:
        _locks.update(locks)
