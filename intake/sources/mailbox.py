"""What a mailbox source (an IMAP mailbox, a Graph folder) does the same way whatever its
protocol: whether this daemon reads the mailbox now (several daemons on PostgreSQL share
one mailbox's lease, intake/sources/lease.py), and telling the pipeline how a fetch went
without a database write for every unchanged look."""

from __future__ import annotations

import logging
import time

from intake.sources.base import Sink
from intake.sources.lease import Lease

REPORT_EVERY = 10.0  # an unchanged backlog is recorded at most this often


class MailboxSource:
    name: str
    sink: Sink
    log: logging.Logger
    lease: Lease | None

    _standing_by = False
    _last_report: tuple[int | None, str | None] | None = None
    _last_report_at = 0.0

    def _leased(self) -> bool:
        """Whether this daemon reads the mailbox now (another daemon may hold its lease)."""
        if self.lease is None or self.lease.acquire():
            self._standing_by = False
            return True
        if not self._standing_by:
            self.log.info("%s: another daemon holds the mailbox; standing by", self.name)
            self._standing_by = True
            self._stand_by()
        return False

    def _stand_by(self) -> None:
        """What to let go of while another daemon reads the mailbox (a connection, say)."""

    def _report(self, backlog: int | None = None, error: str | None = None, throttle: bool = False) -> None:
        """Tell the pipeline how the fetch went. Unchanged news is sent at most every
        REPORT_EVERY seconds, so a quiet IDLE or a long backlog adds few writes."""
        now = time.monotonic()
        state = (backlog, error)
        if (throttle or state == self._last_report) and now - self._last_report_at < REPORT_EVERY and error is None:
            return
        try:
            self.sink.report(self.name, backlog=backlog, error=error)
            self._last_report, self._last_report_at = state, now
        except Exception:  # reporting is best effort; the messages matter
            self.log.exception("%s: could not record the fetch", self.name)
