"""Queueing staff-loop mail, and logging on the context's clock.

Mail to staff (notifications, reminders, errors) goes to the outbox only: it is
internal, not part of the case's correspondence. Mail to the customer (a relayed
reply, a survey) is also recorded on the ticket as an outbound message, like the
acknowledgement (intake.stages.queue_mail).
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from intake.compose import compose, new_message_id
from intake.context import Context
from intake.models import Attachment, Event, Message, OutboxMail, Ticket
from intake.render import RenderedMail
from intake.tickets import log_event, set_status


def event(session: Session, ctx: Context, ticket: Ticket, actor: str, kind: str, **detail) -> Event:
    """log_event, stamped with the context's clock (tests move it)."""
    ev = log_event(session, ticket, actor, kind, **detail)
    ev.at = ctx.now()
    return ev


def change_status(session: Session, ctx: Context, ticket: Ticket, status: str, actor: str, reason: str = "") -> bool:
    """set_status, with its timestamps and event on the context's clock; False when unchanged."""
    if ticket.status == status:
        return False
    set_status(session, ticket, status, actor, reason)
    now = ctx.now()
    ticket.updated_at = now
    if status == "resolved":
        ticket.resolved_at = now
    elif status == "closed":
        ticket.closed_at = now
    for obj in session.new:
        if isinstance(obj, Event) and obj.ticket is ticket and obj.kind == "status" and obj.detail.get("new") == status:
            obj.at = now
    return True


def queue(
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
) -> OutboxMail:
    """One rendered mail into the outbox, in the caller's transaction. `attachments`
    (intake.message.Attachment) go with it, and with its copy in the ticket's thread."""
    support = ctx.config.support
    message_id = new_message_id(kind, ticket.ref if ticket is not None else "none", ctx.config.message_domain)
    headers = {"X-Intake-Ticket": ticket.ref} if ticket is not None else {}
    if reply_to:
        headers["Reply-To"] = reply_to
    raw = compose(
        mail, message_id=message_id, from_name=from_name or support.name, from_addr=support.address, to_addr=to_addr, to_name=to_name,
        in_reply_to=in_reply_to, references=references, auto_submitted=auto_submitted, extra_headers=headers,
    )
    if attachments:
        raw = _with_attachments(raw, attachments)
    now = ctx.now()
    row = OutboxMail(ticket=ticket, kind=kind, message_id=message_id, mail_from=support.address, rcpt_to=to_addr, raw=raw, created_at=now, next_attempt_at=now)
    session.add(row)
    if to_customer and ticket is not None:
        stored = Message(
            ticket=ticket, direction="out", channel="email", kind=kind, message_id=message_id, from_addr=support.address,
            from_name=from_name or support.name, to_addrs=[to_addr], subject=mail.subject, sent_at=now, received_at=now,
            text=mail.text, html=mail.html, raw=raw, source="outbox",
        )
        for a in attachments or []:
            stored.attachments.append(Attachment(filename=a.filename, content_type=a.content_type, size=a.size, truncated=False, data=a.data))
        session.add(stored)
    if ticket is not None:
        event(session, ctx, ticket, "system", f"{kind}_queued", to=to_addr, message_id=message_id)
    return row


def _with_attachments(raw: bytes, attachments: list) -> bytes:
    """The composed mail with files added (multipart/mixed), headers and Message-ID unchanged."""
    from email import message_from_bytes
    from email.policy import SMTP

    msg = message_from_bytes(raw, policy=SMTP)
    for a in attachments:
        maintype, _, subtype = (a.content_type or "application/octet-stream").partition("/")
        msg.add_attachment(a.data, maintype=maintype or "application", subtype=subtype or "octet-stream", filename=a.filename)
    return msg.as_bytes()


def customer_actor(ticket: Ticket) -> str:
    """How the customer appears in the event log."""
    return f"customer:{ticket.customer.email or ticket.customer.phone or ticket.customer.number}"
