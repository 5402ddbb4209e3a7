"""The timers worker: SLA reminders and escalations, follow-up reminders, survey time-outs.

Like the mailer (intake/outgoing/mailer.py): run_once() does everything due by ctx.now(),
run_forever(stop) repeats it. Each item is one transaction that first claims it
with a conditional UPDATE (… WHERE reminder_sent_at IS NULL) and then queues its
mail: two daemons on one database never both send it, and a crash before the
commit leaves it unclaimed for the next pass. So each reminder and escalation is
sent once.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Update, select, update
from sqlalchemy.orm import Session

from intake.context import Context
from intake.outgoing.queue import queue_mail
from intake.staffmail import mailq, notify, sla, survey
from intake.staffmail.models import FollowUp, SlaState, Survey
from intake.store.db import transaction
from intake.store.models import Ticket
from intake.tickets.records import OPEN_STATUSES

log = logging.getLogger("intake.timers")


class TimersWorker:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def run_once(self) -> dict[str, int]:
        """Carry out everything due now; returns how many of each."""
        done = {
            "reminders": self._reminders(),
            "escalations": self._escalations(),
            "follow_ups": self._follow_ups(),
            "surveys_closed": self._surveys(),
        }
        if any(done.values()):
            self.ctx.wake_outbox.set()
            log.info("timers: %s", ", ".join(f"{k} {v}" for k, v in done.items() if v))
        return done

    def run_forever(self, stop: threading.Event, interval: float = 30.0) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("timers pass failed")
            stop.wait(interval)

    # ---- SLA -------------------------------------------------------------------

    def _unanswered(self, session: Session, due_before):
        return session.execute(
            select(Ticket.id, Ticket.urgency, Ticket.due_at, SlaState.reminder_sent_at, SlaState.escalated_at)
            .join(SlaState, SlaState.ticket_id == Ticket.id)
            .where(Ticket.status.in_(OPEN_STATUSES), Ticket.first_response_at.is_(None), Ticket.due_at.is_not(None), Ticket.due_at <= due_before)
            .order_by(Ticket.due_at)
        ).all()

    def _reminders(self) -> int:
        cfg, now = self.ctx.config, self.ctx.now()
        horizon = now + timedelta(hours=max(cfg.sla.remind_before_hours.values(), default=0))
        with self.ctx.sessions() as session:
            due = [
                r.id
                for r in self._unanswered(session, horizon)
                if r.reminder_sent_at is None and sla.remind_at(cfg, r.due_at, r.urgency) <= now < r.due_at
            ]
        return sum(self._one(ticket_id, SlaState.reminder_sent_at, self._remind) for ticket_id in due)

    def _escalations(self) -> int:
        if not self.ctx.config.sla.escalate:
            return 0
        with self.ctx.sessions() as session:
            due = [r.id for r in self._unanswered(session, self.ctx.now()) if r.escalated_at is None]
        return sum(self._one(ticket_id, SlaState.escalated_at, self._escalate) for ticket_id in due)

    def _one(self, ticket_id: int, column, action) -> int:
        with transaction(self.ctx.sessions) as session:
            claimed = _rows_changed(
                session, update(SlaState).where(SlaState.ticket_id == ticket_id, column.is_(None)).values({column.key: self.ctx.now()})
            )
            if claimed != 1:
                return 0  # another daemon took it
            ticket = session.get(Ticket, ticket_id)
            assert ticket is not None, "its SLA row, just claimed, refers to it"
            if ticket.first_response_at is not None or ticket.status not in OPEN_STATUSES:
                return 0  # answered meanwhile; the claim stays so it is not retried
            action(session, ticket)
            return 1

    def _remind(self, session: Session, ticket: Ticket) -> None:
        assert ticket.due_at is not None, "only tickets with a due time are taken (_unanswered)"
        directory = self.ctx.staff()
        member = directory.member(ticket.assignee) if directory is not None and ticket.assignee else None
        if member is None or not member.email:
            mailq.event(
                session, self.ctx, ticket, "system", "sla_reminder_skipped", reason=f"no staff member with an address for {ticket.assignee!r}"
            )
            return
        self._mail_reminder(session, ticket, member, kind="sla")
        mailq.event(session, self.ctx, ticket, "system", "sla_reminder", to=member.id, due_at=ticket.due_at.isoformat())

    def _escalate(self, session: Session, ticket: Ticket) -> None:
        assert ticket.due_at is not None, "only tickets with a due time are taken (_unanswered)"
        mailq.event(session, self.ctx, ticket, "system", "sla_breached", due_at=ticket.due_at.isoformat())
        notify.notify_head(session, self.ctx, ticket, kind="escalation")

    def _mail_reminder(self, session: Session, ticket: Ticket, member, *, kind: str, follow_up: FollowUp | None = None) -> None:
        lang = notify.staff_language(member)
        mail = self.ctx.templates.mail(
            "reminder",
            lang,
            member=member,
            kind=kind,
            ticket=ticket,
            follow_up=follow_up,
            customer=ticket.customer,
            due_local=sla.local(self.ctx.config, ticket.due_at),
            tz=self.ctx.config.tickets.timezone,
            department=notify.department_label(self.ctx, ticket.department, lang),
        )
        queue_mail(
            session,
            self.ctx,
            ticket,
            kind="reminder",
            mail=mail,
            to_addr=member.email,
            to_name=member.name,
            reply_to=notify.reply_address(self.ctx, ticket),
        )

    # ---- follow-ups and surveys --------------------------------------------------

    def _follow_ups(self) -> int:
        cfg, now = self.ctx.config, self.ctx.now()
        with self.ctx.sessions() as session:
            rows = session.execute(select(FollowUp.id, FollowUp.due_on).where(FollowUp.reminded_at.is_(None)).order_by(FollowUp.due_on)).all()
        due = [r.id for r in rows if sla.follow_up_moment(cfg, r.due_on) <= now]
        sent = 0
        for follow_up_id in due:
            with transaction(self.ctx.sessions) as session:
                if (
                    _rows_changed(
                        session, update(FollowUp).where(FollowUp.id == follow_up_id, FollowUp.reminded_at.is_(None)).values(reminded_at=now)
                    )
                    != 1
                ):
                    continue
                follow_up = session.get(FollowUp, follow_up_id)
                assert follow_up is not None, "just claimed"
                ticket = follow_up.ticket
                directory = self.ctx.staff()
                member = directory.member(ticket.assignee) if directory is not None and ticket.assignee else None
                if member is None or not member.email:
                    mailq.event(
                        session,
                        self.ctx,
                        ticket,
                        "system",
                        "followup_reminder_skipped",
                        reason=f"no staff member with an address for {ticket.assignee!r}",
                    )
                    continue
                self._mail_reminder(session, ticket, member, kind="followup", follow_up=follow_up)
                mailq.event(
                    session, self.ctx, ticket, "system", "followup_reminder", to=member.id, date=follow_up.due_on.isoformat(), what=follow_up.what
                )
                sent += 1
        return sent

    def _surveys(self) -> int:
        now = self.ctx.now()
        with self.ctx.sessions() as session:
            due = list(session.scalars(select(Survey.id).where(Survey.outcome == "pending", Survey.expires_at <= now)))
        closed = 0
        for survey_id in due:
            with transaction(self.ctx.sessions) as session:
                if (
                    _rows_changed(session, update(Survey).where(Survey.id == survey_id, Survey.outcome == "pending").values(outcome="no_objection"))
                    != 1
                ):
                    continue
                item = session.get(Survey, survey_id)
                assert item is not None, "just claimed"
                if item.ticket.status != "resolved":
                    continue  # reopened by other means meanwhile: nothing to close
                survey.expire(session, self.ctx, item)
                closed += 1
        return closed


def _rows_changed(session: Session, claim: Update) -> int:
    """How many rows a conditional UPDATE changed (an UPDATE's result is a CursorResult)."""
    return cast(CursorResult[Any], session.execute(claim)).rowcount
