"""What we sent on a ticket, as intake.quote.KnownText: the primary rule for finding
where a staff member's own text ends in their reply.

Every mail we send is kept in the outbox with its bytes and Message-ID; those also
recorded on the ticket's thread (acknowledgement, relayed answers, surveys) are what
the customer saw. The rest (notifications, reminders, error replies) went to staff
only: a line of theirs in text about to be relayed means a quote was not stripped.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.message import UnparseableMessage, parse_message
from intake.models import Message, OutboxMail, Ticket
from intake.quote import KnownText


def known_text(session: Session, ticket: Ticket) -> KnownText:
    thread = session.execute(select(Message.direction, Message.kind, Message.message_id, Message.text).where(Message.ticket_id == ticket.id)).all()
    public_ids = {message_id for direction, _, message_id, _ in thread if direction == "out"}
    public = [text or "" for direction, kind, _, text in thread if direction == "in" and kind == "customer"]
    internal: list[str] = []
    for message_id, raw in session.execute(select(OutboxMail.message_id, OutboxMail.raw).where(OutboxMail.ticket_id == ticket.id)):
        text = _text(raw)
        (public if message_id in public_ids else internal).append(text)
    return KnownText(internal=internal, public=public)


def _text(raw: bytes) -> str:
    try:
        return parse_message(raw).text
    except UnparseableMessage:  # our own composed mail; cannot happen unless the row was damaged
        return ""
