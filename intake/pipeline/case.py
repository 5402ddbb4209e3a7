"""The one object that travels through the pipeline, and its deliberate early exits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from intake.sources.base import SourceRef


class Stop(Exception):
    """A deliberate end of the pipeline: an outcome, not an error (duplicate, auto-reply)."""

    def __init__(self, outcome: str, reason: str, ticket: str | None = None):
        super().__init__(reason)
        self.outcome, self.reason, self.ticket = outcome, reason, ticket


class Quarantine(Exception):
    """The item cannot be processed as it is; keep its bytes and say why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Case:
    """Raw bytes in; each stage reads what earlier stages learned and adds to it."""

    raw: bytes
    ref: SourceRef
    parsed: Any = None  # intake.inbound.message.ParsedMessage
    unready: Exception | None = None  # what parsing raised before the transaction (stages.prepare)
    form: dict = field(default_factory=dict)  # the submission's fields, for web forms
    fingerprint: str | None = None
    content_hash: str | None = None
    group: Any = None  # stages.GroupLookups: lookups made once for the item's group, if any
    autoreply: str | None = None  # why no acknowledgement may be sent
    ticket: Any = None  # intake.store.models.Ticket, once threaded or opened
    opened: bool = False
    reopened: bool = False
    classification: Any = None  # classify.Classification; a stage replaces it, never changes it
    prepared: Any = None  # the classification as prepare made it, carried to another try by `again`
    department: str = ""
    assignee: str | None = None
    message: Any = None  # the stored intake.store.models.Message
    acknowledged: bool = False
    notes: list[str] = field(default_factory=list)  # what stages decided, for the log

    @property
    def channel(self) -> str:
        return self.ref.channel

    def again(self) -> Case:
        """The same item for another try after a rollback: what prepare learned before the
        transaction (the parse, the rules' verdict) carried over, so the bytes are parsed
        once however many tries it takes; nothing a stage of the rolled-back try added."""
        return Case(
            raw=self.raw,
            ref=self.ref,
            parsed=self.parsed,
            unready=self.unready,
            form=dict(self.form),
            classification=self.prepared,
            prepared=self.prepared,
        )
