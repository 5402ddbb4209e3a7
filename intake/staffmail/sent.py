"""What we sent on a ticket, as intake.inbound.quote.KnownText: the primary rule for finding
where a staff member's own text ends in their reply.

Every mail we send is kept in the outbox with its bytes and Message-ID; those also
recorded on the ticket's thread (acknowledgement, relayed answers, surveys) are what
the customer saw. A staff member's own relayed answers are left out: staff never get
them to quote, and their standing phrases must not read as our quoted text. The rest (notifications, reminders, error replies) went to staff
only: a line of theirs in text about to be relayed means a quote was not stripped.
Our error replies echo a staff member's text: the lines of their own earlier replies
count as theirs, not ours. Their earlier replies also give the signature their client
appends.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.inbound.message import UnparseableMessage, parse_message
from intake.inbound.quote import KnownText, learned_signature
from intake.store.models import Message, OutboxMail, Ticket

# Outbox kinds that echo what a staff member wrote back to them; every other mail we sent
# is our own writing.
ECHOING_KINDS = frozenset({"staff_error", "staff_refused"})


def known_text(session: Session, ticket: Ticket) -> KnownText:
    thread = session.execute(select(Message.direction, Message.kind, Message.message_id, Message.text).where(Message.ticket_id == ticket.id)).all()
    public_ids = {message_id for direction, _, message_id, _ in thread if direction == "out"}
    customer = [text or "" for direction, kind, _, text in thread if direction == "in" and kind == "customer"]
    public: list[str] = []
    theirs = [text or "" for direction, kind, _, text in thread if direction == "in" and kind == "staff"]
    internal: list[str] = []
    ours_alone: list[str] = []  # what we wrote ourselves: a line of it is never the staff member's own
    rows = session.execute(
        select(OutboxMail.kind, OutboxMail.message_id, OutboxMail.raw).where(OutboxMail.ticket_id == ticket.id, OutboxMail.kind != "staff_reply")
    )
    for kind, message_id, raw in rows:
        text = _text(raw)
        (public if message_id in public_ids else internal).append(text)
        if kind not in ECHOING_KINDS:
            ours_alone.append(text)
    return KnownText(internal=internal, public=public, theirs=theirs, customer=customer, ours_alone=ours_alone)


_RECENT = 20_000  # messages looked through for a member's earlier replies


def signatures(session: Session, member) -> list[str]:
    """The member's signature from staff.toml, and the one their last replies end with."""
    found = [member.signature] if getattr(member, "signature", "") else []
    if member.email:
        # from_addr has no index: look among the recent messages only, newest first
        newest = session.scalar(select(func.max(Message.id))) or 0
        earlier = session.scalars(
            select(Message.text)
            .where(
                Message.id > newest - _RECENT,
                Message.kind == "staff",
                Message.direction == "in",
                func.lower(Message.from_addr) == member.email.lower(),
            )
            .order_by(Message.id.desc())
            .limit(10)
        )
        learned = learned_signature(text or "" for text in earlier)
        if learned:
            found.append(learned)
    return found


def _text(raw: bytes) -> str:
    try:
        return parse_message(raw).text
    except UnparseableMessage:  # our own composed mail; cannot happen unless the row was damaged
        return ""
