"""Carrying out a checked staff command on its ticket, each with its event in the log."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from intake.context import Context
from intake.staffmail import commands, mailq, notify, sla, survey
from intake.staffmail.models import FollowUp, SlaState
from intake.store.fastsql import insert_new, row_id, update_row
from intake.store.models import Ticket
from intake.tickets import corrections
from intake.tickets.records import set_assignee


def apply(command: commands.Command, session: Session, ctx: Context, ticket: Ticket, member, parsed: commands.Parsed) -> None:
    """Carry out one checked command (commands.parse checked it) for staff `member`."""
    actor = f"staff:{member.id}"
    tz = ZoneInfo(ctx.config.tickets.timezone)
    name = command.name
    if name == "note":
        text = "\n".join(t for t in (command.text, parsed.body) if t)
        stamp = sla.local(ctx.config, ctx.now())
        update_row(session, ticket, notes=(ticket.notes + "\n" if ticket.notes else "") + f"[{stamp} {member.name}] {text}")
        mailq.event(session, ctx, ticket, actor, "note", text=text)
    elif name == "status":
        if mailq.change_status(session, ctx, ticket, command.value, actor, reason="#status"):
            if command.value == "resolved":
                survey.start(session, ctx, ticket)
            else:
                survey.withdraw(session, ctx, ticket)  # taken up again: a late score must not close it
    elif name == "assign":
        previous = ticket.assignee
        if previous != command.value:
            set_assignee(session, ticket, command.value)
            mailq.event(session, ctx, ticket, actor, "assigned", department=ticket.department, assignee=command.value, previous=previous)
            notify.notify_assignee(session, ctx, ticket, reason="reassigned", by=member.name)
    elif name == "eta":
        update_row(session, ticket, expected_completion=datetime.combine(date.fromisoformat(command.value), time(0), tzinfo=tz))
        mailq.event(session, ctx, ticket, actor, "eta", date=command.value)
    elif name == "type":
        if ticket.type != command.value:
            old = ticket.type
            update_row(session, ticket, type=command.value)
            mailq.event(session, ctx, ticket, actor, "type", old=old, new=command.value)
            corrections.record(session, ticket, axis="type", old=old, new=command.value, actor=actor, at=ctx.now())
    elif name == "urgency":
        if ticket.urgency != command.value:
            old, due = ticket.urgency, sla.due_time(ctx.config, ticket.created_at, ticket.type, command.value)
            update_row(session, ticket, urgency=command.value, due_at=due)
            corrections.record(session, ticket, axis="urgency", old=old, new=command.value, actor=actor, at=ctx.now())
            state = session.get(SlaState, ticket.id)
            if state is not None:  # a new due time: its reminder and escalation may come again
                update_row(session, state, reminder_sent_at=None, escalated_at=None)
            mailq.event(session, ctx, ticket, actor, "urgency", old=old, new=command.value, due_at=due.isoformat())
            if command.value == "urgent" and not ticket.flagged:
                update_row(session, ticket, flagged=True)
                notify.notify_head(session, ctx, ticket, kind="flagged")
    elif name == "followup":
        insert_new(
            session,
            FollowUp(
                ticket_id=row_id(session, ticket),
                due_on=date.fromisoformat(command.value),
                what=command.text,
                created_by=member.id,
                created_at=ctx.now(),
            ),
        )
        update_row(
            session, ticket, follow_up_plan=(ticket.follow_up_plan + "\n" if ticket.follow_up_plan else "") + f"{command.value} {command.text}"
        )
        mailq.event(session, ctx, ticket, actor, "followup", date=command.value, what=command.text)
        if ticket.status in ("new", "in_progress"):
            mailq.change_status(session, ctx, ticket, "follow_up", actor, reason="#followup")
