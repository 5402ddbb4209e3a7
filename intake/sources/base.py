"""What every source hands the pipeline, and what it gets back.

A source (IMAP mailbox, Maildir drop folder, form spool) reads raw bytes, calls
`Sink.take(raw, ref)` (or `Sink.take_many` for a batch), and only after that call returned (the pipeline's
transaction has committed, the ref stored with it) lets go of the item on its side:
moves the IMAP message, moves the file to done/. A crash anywhere in between makes
the source offer the item again, and the pipeline answers `duplicate` for a ref or
a message it already holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

OUTCOMES = ("opened", "appended", "duplicate", "autoreply_ignored", "quarantined")
# Mail a source holds at once, fetched and not yet taken by the pipeline (IMAP: at most
# this, a larger message alone; Graph: about this, plus the fetches of one window of
# its parallel requests, where the bound is looked at). A fetch of
# 16 MB of 56 KB mails took the daemon's peak from 98 to 135 MB (its fetch buffers, the
# groups on their way to the worker); 4 MB, 100; 1 MB, 92 and no slower on loopback, but
# each fetch is a round trip to the server, which on a network costs its latency.
# (bench/imap_backlog.md, --attachment-kb)
HELD_AT_ONCE = 4_000_000


@dataclass(frozen=True)
class SourceRef:
    """Where an item came from: unique per item within its source."""

    source: str  # stable name: "imap:<account>/<mailbox>", "maildir:<name>", "spool"
    key: str  # "<uidvalidity>:<uid>" for IMAP, the file name for folders
    channel: str = "email"  # "email" or "form"


@dataclass(frozen=True)
class Result:
    """What became of one item. `outcome` is one of OUTCOMES."""

    outcome: str
    ticket: str | None = None
    reason: str | None = None


class Sink(Protocol):
    """The pipeline as a source sees it."""

    def take(self, raw: bytes, ref: SourceRef) -> Result:
        """Process one item; returns after the durable commit (or raises on a
        failure of the database itself, in which case the item must be offered again)."""

    def take_many(self, items: Sequence[tuple[bytes, SourceRef]], committed=None) -> list[Result]:
        """Process a batch of (raw, ref) in groups, one transaction each. After each
        group's durable commit `committed(group, results)` is called (the source lets go
        of those items there); if it returns False the rest of the batch is left
        untaken (a group already handed to a worker is finished and reported all the
        same), and the results returned are those of the groups taken. If it raises,
        the source keeps every item not yet let go of and offers them again; items
        committed before the failure then come back as `duplicate`."""

    def quarantine(self, raw: bytes, ref: SourceRef, reason: str) -> Result:
        """Hold an item the source cannot hand over whole (a message its server will not give:
        `raw` is what the source has of it), with the reason, so it is kept and seen; a ref
        held or taken before is answered with its earlier outcome."""

    def report(self, source: str, *, backlog: int | None = None, error: str | None = None) -> None:
        """Record a fetch of `source`: success (error None) with its backlog, or the error."""
