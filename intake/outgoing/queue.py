"""Queueing a mail: composed once, written to the outbox in the caller's transaction.

Every mail the system sends (acknowledgements, staff notifications, relayed replies,
surveys, reminders) goes through `queue_mail`; the mailer (intake/outgoing/mailer.py) sends
the stored bytes. Mail to the customer is also recorded on the ticket's thread.
The rows are only ever appended here, so they are written as plain inserts: the ORM's
unit of work would cost several times as much on the acknowledgement path.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from intake.context import Context
from intake.outgoing.compose import compose, new_message_id
from intake.outgoing.templates import RenderedMail
from intake.store.fastsql import add_row, row_id
from intake.store.models import OutboxMail, Ticket
from intake.tickets.records import log_event, store_message


def queue_mail(
    session: Session,
    ctx: Context,
    ticket: Ticket | None,
    *,
    kind: str,
    mail: RenderedMail,
    to_addr: str,
    to_name: str = "",
    from_name: str | None = None,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    to_customer: bool = False,
    auto_submitted: str | None = "auto-generated",
    attachments: list | None = None,
) -> str:
    """One rendered mail into the outbox; returns its Message-ID (stable: every resend
    carries it). `to_customer` also records it on the ticket's thread; `attachments`
    (intake.inbound.message.Attachment) go with the mail and with that record."""
    support = ctx.config.support
    message_id = new_message_id(kind, ticket.ref if ticket is not None else "none", ctx.config.message_domain)
    headers = {"X-Intake-Ticket": ticket.ref} if ticket is not None else {}
    if reply_to:
        headers["Reply-To"] = reply_to
    raw = compose(
        mail,
        message_id=message_id,
        from_name=from_name or support.name,
        from_addr=support.address,
        to_addr=to_addr,
        to_name=to_name,
        in_reply_to=in_reply_to,
        references=references,
        auto_submitted=auto_submitted,
        extra_headers=headers,
    )
    if attachments:
        raw = _with_attachments(raw, attachments)
    now = ctx.now()
    ticket_id = row_id(session, ticket) if ticket is not None else None
    add_row(
        session,
        OutboxMail.__table__,
        {
            "ticket_id": ticket_id,
            "kind": kind,
            "message_id": message_id,
            "mail_from": support.address,
            "rcpt_to": to_addr,
            "raw": raw,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        },
    )
    if to_customer and ticket is not None:
        record = {
            "ticket_id": ticket_id,
            "direction": "out",
            "channel": "email",
            "kind": kind,
            "message_id": message_id,
            # the columns an inbound message fills too: rows with the same columns go
            # into one executemany (intake/store/fastsql.py write_rows)
            "fingerprint": None,
            "content_hash": None,
            "from_addr": support.address,
            "from_name": from_name or support.name,
            "to_addrs": [to_addr],
            "subject": mail.subject,
            "sent_at": now,
            "received_at": now,
            "text": mail.text,
            "html": mail.html,
            "defects": [],
            "raw": raw,
            "source": "outbox",
        }
        store_message(
            session,
            record,
            [{"filename": a.filename, "content_type": a.content_type, "size": a.size, "truncated": False, "data": a.data} for a in attachments or ()],
        )
    if ticket is not None:
        log_event(session, ticket, "system", f"{kind}_queued", at=now, to=to_addr, message_id=message_id)
    return message_id


def _with_attachments(raw: bytes, attachments: list) -> bytes:
    """The composed mail with files added (multipart/mixed), headers and Message-ID unchanged."""
    from email import message_from_bytes
    from email.policy import SMTP

    msg = message_from_bytes(raw, policy=SMTP)
    for a in attachments:
        maintype, _, subtype = (a.content_type or "application/octet-stream").partition("/")
        msg.add_attachment(a.data, maintype=maintype or "application", subtype=subtype or "octet-stream", filename=a.filename)
    return msg.as_bytes()
