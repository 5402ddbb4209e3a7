"""The inbound message as a row: written once by the stage that decides where it belongs
(the customer's store stage, a staff reply, a survey answer) and never changed."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from intake.context import Context
from intake.pipeline.case import Case
from intake.store.fastsql import row_id
from intake.store.models import Attachment, Message, Ticket
from intake.tickets.records import clip, store_message


@dataclass(frozen=True)
class StoredMessage:
    """What later stages read of an inbound message once it is written."""

    kind: str
    text: str


def write_inbound(
    case: Case, session: Session, ctx: Context, ticket: Ticket | None, *, kind: str, to_addrs: list[str] | None = None
) -> StoredMessage:
    """The inbound message with its raw bytes and attachments, on its ticket (if any).
    Written once and never changed: plain inserts, not the ORM's unit of work."""
    msg = case.parsed
    row = {
        "ticket_id": row_id(session, ticket) if ticket is not None else None,
        "direction": "in",
        "channel": case.channel,
        "kind": kind,
        "message_id": clip(msg.message_id, Message.message_id) or None,
        "fingerprint": case.fingerprint,
        "content_hash": case.content_hash,
        "from_addr": clip(msg.from_addr, Message.from_addr),
        "from_name": clip(msg.from_name, Message.from_name),
        "to_addrs": list(msg.to_addrs) if to_addrs is None else to_addrs,
        "subject": msg.subject,
        "sent_at": msg.date,
        "received_at": ctx.now(),
        "text": msg.text,
        "html": msg.html,
        "defects": list(msg.defects),
        "raw": case.raw,
        "source": f"{case.ref.source}#{case.ref.key}",
    }
    store_message(
        session,
        row,
        [
            {
                "filename": clip(a.filename, Attachment.filename),
                "content_type": clip(a.content_type, Attachment.content_type),
                "size": a.size,
                "truncated": a.truncated,
                "data": a.data,
            }
            for a in msg.attachments
        ],
    )
    return StoredMessage(kind=kind, text=msg.text)
