"""Tables of the staff mail loop: SLA timer state, follow-ups and surveys.

Each "sent once" fact (a reminder, an escalation, a follow-up reminder, a survey
time-out) is a timestamp column claimed with a conditional UPDATE in the same
transaction that queues the mail, so two daemons on one database never both send it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from intake.store.db import Base
from intake.store.models import Ticket, UTCDateTime, utcnow


class SlaState(Base):
    """Per ticket: when the reminder before the due time and the escalation at
    breach were sent (NULL: not yet). Reset when the urgency (and so the due time) changes."""

    __tablename__ = "sla_state"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship()


class FollowUp(Base):
    """A `#followup DATE what` promise; the assignee is reminded on its date, once."""

    __tablename__ = "follow_ups"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    due_on: Mapped[date] = mapped_column(Date, index=True)
    what: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship()


class Survey(Base):
    """One satisfaction survey, sent when the ticket was resolved.

    outcome: pending → satisfied (closed), reopened (low score or not a score),
    no_objection (closed after the time-out) or superseded (resolved again later).
    """

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    message_id: Mapped[str | None] = mapped_column(String(998))  # the survey mail's, to recognise replies
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    score: Mapped[int | None] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(Text, default="")
    via: Mapped[str] = mapped_column(String(10), default="")  # email, web
    outcome: Mapped[str] = mapped_column(String(20), default="pending", index=True)

    ticket: Mapped[Ticket] = relationship()
