"""One daemon per SQLite database: an exclusive flock on `<database>.lock`, held for
the daemon's life.

SQLite takes one writer at a time and our sources, mailer and timers assume nobody
else works the same mailboxes and queues; two daemons on one file would compete
rather than share. The kernel drops a flock when its process dies, kill -9
included, so there is no stale lock to clean up. `intake run --once` takes the
same lock (it would work the same mailboxes); one-shot commands (`ingest`,
`status`, `tickets`, ...) do not. PostgreSQL has no guard: several daemons share
the work there.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url


class AlreadyRunning(Exception):
    """Another daemon holds the database; the message names it and the other pid."""

    def __init__(self, database: Path, pid: int | None):
        self.database, self.pid = database, pid
        who = f"pid {pid}" if pid else "a process whose pid is not yet written"
        super().__init__(
            f"another intake daemon ({who}) is running on the SQLite database {database}; "
            "SQLite allows one daemon per database (use PostgreSQL to run several). "
            f"Lock file: {lock_path(database)}"
        )


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL, made absolute; None for other databases and :memory:."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).resolve()


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


class DaemonLock:
    """Held from acquire() until release() or the process ends."""

    def __init__(self, database: Path):
        self.database = database
        self.path = lock_path(database)
        self._fd: int | None = None

    def acquire(self) -> DaemonLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # no O_TRUNC: the holder's pid must survive a refused opener; O_CLOEXEC: programs
        # the daemon starts (the archive's forkserver) must not inherit and outlive the lock
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(self.database, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        # the file stays: removing it would let a third process lock a new inode
        # while a second one still waits on the old
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DaemonLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def daemon_lock(database_url: str) -> DaemonLock | None:
    """The lock `intake run` must hold for this database, or None when it needs none."""
    database = sqlite_file(database_url)
    return DaemonLock(database) if database is not None else None
