"""The staff mail loop's pipeline stages (placed in PIPELINE by intake/pipeline/builtin.py).

… thread → staff_reply → ignore_autoreply → survey_answer → classify → route
  → store → schedule → acknowledge → notify
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from intake.context import Context
from intake.pipeline.case import Case
from intake.staffmail import notify as notices
from intake.staffmail import relay, survey
from intake.staffmail.models import SlaState
from intake.store.fastsql import add_row, row_id


def staff_reply(case: Case, session: Session, ctx: Context) -> None:
    """Mail to a ticket's signed reply address (or a staff member's mail threading to a
    ticket) is a staff reply: checked, relayed or refused, and the pipeline ends here."""
    if case.channel == "email":
        relay.handle(case, session, ctx)


def survey_answer(case: Case, session: Session, ctx: Context) -> None:
    """A customer's reply while a satisfaction survey is pending: a score closes or reopens."""
    survey.handle_reply(case, session, ctx)


def schedule(case: Case, session: Session, ctx: Context) -> None:
    """A new ticket's SLA timer state (its due time was set by store: sla.due_time)."""
    if case.opened:
        add_row(session, SlaState.__table__, {"ticket_id": row_id(session, case.ticket)})


def notify(case: Case, session: Session, ctx: Context) -> None:
    """The assignee hears of a new ticket or a new customer message; a 加急 case also
    goes to the department head."""
    ticket = case.ticket
    if ticket is None:
        return
    if case.opened:
        if ticket.assignee:
            notices.notify_assignee(session, ctx, ticket, reason="assigned", message=case.message)
        if ticket.flagged:
            notices.notify_head(session, ctx, ticket, kind="flagged", message=case.message)
    elif case.message is not None and case.message.kind == "customer" and ticket.assignee:
        reason = "survey_reply" if "survey_reply" in case.notes else "customer_wrote"
        notices.notify_assignee(session, ctx, ticket, reason=reason, message=case.message)
