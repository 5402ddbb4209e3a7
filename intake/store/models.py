"""Tables of the ticket system: customers, tickets, messages, events, the exactly-once
record of source items, the outbox, the quarantine and per-source status.

The schema is owned by Alembic (intake/migrations); change a model, add a revision.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from intake.store.db import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # C000042: shown to staff and in the archive
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str] = mapped_column(String(300), default="")
    industry: Mapped[str] = mapped_column(String(100), default="")
    language: Mapped[str] = mapped_column(String(5), default="zh")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tickets: Mapped[list[Ticket]] = relationship(back_populates="customer")

    # Not a column: True on the object of a customer created in this transaction, who
    # has no earlier tickets to look up (most senders in a backlog are new).
    new_here = False


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_assignee_status", "assignee", "status"),)  # least-open assignment

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str] = mapped_column(String(20))  # email, form, phone, meeting
    type: Mapped[str] = mapped_column(String(20))
    urgency: Mapped[str] = mapped_column(String(20))
    department: Mapped[str] = mapped_column(String(50), default="")
    assignee: Mapped[str | None] = mapped_column(String(100), index=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)  # 加急
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    language: Mapped[str] = mapped_column(String(5), default="zh")
    classification: Mapped[dict] = mapped_column(JSON, default=dict)  # why this type and urgency
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expected_completion: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text, default="")
    follow_up_plan: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")

    customer: Mapped[Customer] = relationship(back_populates="tickets")
    messages: Mapped[list[Message]] = relationship(back_populates="ticket", order_by="Message.id")
    events: Mapped[list[Event]] = relationship(back_populates="ticket", order_by="Event.id")


class Counter(Base):
    """Named sequences, row-locked while used: ticket numbers per day ("t:261123"),
    customer numbers ("customer")."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Message(Base):
    """Every inbound and outbound message, with its raw bytes. An inbound message
    that belongs to no ticket (an ignored auto-reply) is kept with ticket_id NULL."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_message_id", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # in, out
    channel: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(30), default="customer")  # customer, ack, autoreply, staff_reply, ...
    message_id: Mapped[str | None] = mapped_column(String(998))
    # one fingerprint per distinct inbound message: the same message arriving twice
    # (two mailboxes, a re-delivery, a second ingest) hits this unique key
    fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True)
    # what the message says (sender, subject, text, attachments), for the
    # double-submit window of web forms, which carry no Message-ID
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(300), default="")
    to_addrs: Mapped[list] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    defects: Mapped[list] = mapped_column(JSON, default=list)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(String(200), default="")

    ticket: Mapped[Ticket | None] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message", order_by="Attachment.id")


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """The ticket's log: who changed what, when."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))  # "system", "customer:<addr>", "staff:<id>"
    kind: Mapped[str] = mapped_column(String(40))  # opened, message, status, assigned, classified, ack_queued, ...
    detail: Mapped[dict] = mapped_column(JSON, default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class SourceItem(Base):
    """The exactly-once record: an item of a source, stored in the same transaction
    as what became of it. Seen again (a crash before the source let go) → duplicate."""

    __tablename__ = "source_items"
    __table_args__ = (UniqueConstraint("source", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(30))
    ticket_ref: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)  # the console's hourly chart


class SourceState(Base):
    """Per source: last successful fetch, backlog and the last error, for `intake status`."""

    __tablename__ = "source_state"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    backlog: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    errors: Mapped[int] = mapped_column(Integer, default=0)


class OutboxMail(Base):
    """A mail to send, fully rendered when the transaction that decided to send it
    committed: a resend after a crash carries the very same bytes and Message-ID."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending_kind", "status", "kind", "id"),  # the mailer's next group: acks first,
        Index("ix_outbox_pending", "status", "id"),  # then the rest in the order queued
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))  # ack, notify, relay, survey, ...
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[str] = mapped_column(String(320), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)  # the console's hourly chart
    # the owner number of the mailer sending it now (NULL: not in flight); a dead owner's
    # rows are taken over at once (intake/outgoing/mailer.py)
    claimed_by: Mapped[int | None] = mapped_column(BigInteger, index=True)

    ticket: Mapped[Ticket | None] = relationship()


class QuarantineItem(Base):
    """What could not be processed: the original bytes and the reason, never dropped."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(300))
    channel: Mapped[str] = mapped_column(String(20))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="held", index=True)  # held, released, dismissed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    ticket_ref: Mapped[str | None] = mapped_column(String(32))
    # dismissed: a person dealt with it without processing it (intake/pipeline/quarantine.py); the bytes stay
    dismissed_by: Mapped[str | None] = mapped_column(String(100))
    dismissed_reason: Mapped[str | None] = mapped_column(Text)


class Correction(Base):
    """A staff member's `#type` / `#urgency` change of a ticket, kept as a labelled example
    for `intake rules suggest` (intake/tickets/corrections.py): the case's text as the rules read
    it, what the rules decided and why (their matches), the correction, who and when."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    axis: Mapped[str] = mapped_column(String(10))  # type, urgency
    old_value: Mapped[str] = mapped_column(String(20))  # the ticket's value before this change
    new_value: Mapped[str] = mapped_column(String(20))  # the staff member's label
    rule_type: Mapped[str] = mapped_column(String(20), default="")  # the classification stored on the ticket
    rule_urgency: Mapped[str] = mapped_column(String(20), default="")
    matches: Mapped[list] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")  # the customer's first message, quotes stripped
    language: Mapped[str] = mapped_column(String(5), default="zh")
    actor: Mapped[str] = mapped_column(String(320))  # "staff:<id>"
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    ticket: Mapped[Ticket] = relationship()
