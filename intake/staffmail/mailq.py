"""The staff loop's event log and status changes, on the context's clock (tests move it).

Its mail goes through intake.outgoing.queue.queue_mail: mail to staff (notifications,
reminders, errors) to the outbox only, as it is internal; mail to the customer (a
relayed reply, a survey) also onto the ticket's thread, like the acknowledgement.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from intake.context import Context
from intake.store.models import Ticket
from intake.tickets.records import log_event, set_status


def event(session: Session, ctx: Context, ticket: Ticket, actor: str, kind: str, **detail) -> None:
    """log_event, stamped with the context's clock."""
    log_event(session, ticket, actor, kind, at=ctx.now(), **detail)


def change_status(session: Session, ctx: Context, ticket: Ticket, status: str, actor: str, reason: str = "") -> bool:
    """set_status on the context's clock; False when unchanged."""
    if ticket.status == status:
        return False
    set_status(session, ticket, status, actor, reason, now=ctx.now())
    return True


def customer_actor(ticket: Ticket) -> str:
    """How the customer appears in the event log."""
    return f"customer:{ticket.customer.email or ticket.customer.phone or ticket.customer.number}"
