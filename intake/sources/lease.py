"""Which daemon reads a mailbox: a lease, so that several daemons sharing one
PostgreSQL never read the same mailbox at once, and a standby takes over within
seconds when the holder dies.

The lease is a PostgreSQL session-level advisory lock, held on a connection of its
own for as long as the daemon reads the mailbox. A daemon that dies (kill -9
included) loses its connection and with it the lock; the others try every
`[database] lease_retry_seconds`. Exactly once does not depend on the lease (the pipeline knows every
message by its content and source key); the lease keeps daemons from fetching the
same mail twice and from moving it under each other's feet.
SQLite serves one daemon only (intake/ops/guard.py), so there the lease is always held.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("intake.sources.lease")

RETRY_SECONDS = 2.0

# source name → whether this daemon holds its lease now: the `intake_lease_held` gauge
held: dict[str, bool] = {}


class Lease(Protocol):
    name: str
    retry_seconds: float  # how often a standby tries to take the lease over

    def acquire(self) -> bool:
        """True while this daemon holds the lease (taking it if free); cheap to call often."""

    def release(self) -> None: ...


class SoleReader:
    """The one daemon of a SQLite database reads everything."""

    def __init__(self, name: str, retry_seconds: float = RETRY_SECONDS):
        self.name, self.retry_seconds = name, retry_seconds

    def acquire(self) -> bool:
        held[self.name] = True
        return True

    def release(self) -> None:
        held.pop(self.name, None)


class AdvisoryLease:
    """A PostgreSQL advisory lock named after the source, on its own connection."""

    def __init__(self, engine: Engine, name: str, retry_seconds: float = RETRY_SECONDS):
        self.engine, self.name, self.retry_seconds = engine, name, retry_seconds
        self.key = int(hashlib.sha256(f"intake-source:{name}".encode()).hexdigest()[:15], 16)
        self.conn: Connection | None = None

    def acquire(self) -> bool:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT 1"))
                return True
            except Exception:  # the database went away: so did the lock
                log.warning("%s: lost the lease with its database connection", self.name)
                self._drop()
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception as exc:
            log.warning("%s: cannot reach the database for the lease: %s", self.name, exc)
            held[self.name] = False
            return False
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
        except Exception:
            conn.close()
            raise
        held[self.name] = bool(got)
        if not got:
            conn.close()
            return False
        self.conn = conn
        log.info("%s: lease taken", self.name)
        return True

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except Exception:
                pass
            self._drop()

    def _drop(self) -> None:
        held[self.name] = False
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.close()
        except Exception:
            pass


def lease_for(engine: Engine, name: str, retry_seconds: float = RETRY_SECONDS) -> Lease:
    if engine.dialect.name == "postgresql":
        return AdvisoryLease(engine, name, retry_seconds)
    return SoleReader(name, retry_seconds)
