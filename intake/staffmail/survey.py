"""The satisfaction loop: a survey when a ticket is resolved; the answer closes or reopens it.

A reply whose first line is a score 1–5 (5, ５, 5分, 5/5, 五, "score: 4") is an
answer: at or above survey.close_at the ticket closes (satisfied); below, it
reopens and the assignee is told. A reply that is not a score reopens the ticket
too: the customer has something to say (the pipeline's store stage does the
reopening, and the notify stage tells the assignee). No answer within
survey.timeout_days: closed as "no objection" (timers.py). Every step is an event.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.context import Context
from intake.outgoing.queue import queue_mail
from intake.pipeline.case import Case, Stop
from intake.pipeline.message_row import write_inbound
from intake.staffmail import mailq, notify
from intake.staffmail.models import Survey
from intake.staffmail.token import load_key
from intake.store.fastsql import insert_new, row_id, update_row
from intake.store.models import Message, Ticket
from intake.tickets.records import is_customer_address

_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_SCORE = re.compile(
    r"^(?:(?:score|rating|评分|評分|分数|分數|打分|满意度|滿意度)\s*[:=]?\s*)?"
    r"([1-5一二两三四五])\s*(?:分|星|颗星|顆星|/\s*5|out of 5|stars?|points?)?\s*[.!。！]?$",
    re.IGNORECASE,
)


def parse_score(text: str) -> int | None:
    """The score if the reply's first non-empty line is one, else None."""
    for line in text.splitlines():
        line = unicodedata.normalize("NFKC", line).strip()
        if not line:
            continue
        m = _SCORE.match(line)
        if m is None:
            return None
        value = m.group(1)
        return int(value) if value.isdigit() else _CN_DIGITS[value]
    return None


def link(ctx: Context, ticket: Ticket, survey: Survey) -> str:
    """The one-question page for this survey, when the web form has a public address."""
    base = ctx.config.web.public_base_url.rstrip("/")
    if not base:
        return ""
    return f"{base}/survey/{ticket.ref}/{survey.id}/{_link_mac(ctx, ticket.ref, survey.id)}"


def _link_mac(ctx: Context, ref: str, survey_id: int) -> str:
    return hmac.new(load_key(ctx.config), f"survey:{ref}:{survey_id}".encode(), hashlib.sha256).hexdigest()[:24]


def verify_link(ctx: Context, ref: str, survey_id: int, mac: str) -> bool:
    # as bytes: compare_digest raises TypeError on a str that is not ASCII (a 500 before)
    return hmac.compare_digest(mac.encode("utf-8", "replace"), _link_mac(ctx, ref, survey_id).encode())


def start(session: Session, ctx: Context, ticket: Ticket) -> Survey | None:
    """The ticket was resolved: ask the customer (an earlier open survey is superseded)."""
    if not ctx.config.survey.enabled:
        return None
    now = ctx.now()
    for old in session.scalars(select(Survey).where(Survey.ticket_id == ticket.id, Survey.outcome == "pending")):
        update_row(session, old, outcome="superseded")
    survey = insert_new(
        session,
        Survey(
            ticket_id=row_id(session, ticket),
            sent_at=now,
            expires_at=now + timedelta(days=ctx.config.survey.timeout_days),
            outcome="pending",
            answer="",
            via="",
        ),
    )
    customer = ticket.customer
    if not customer.email:
        mailq.event(
            session, ctx, ticket, "system", "survey_skipped", reason="the customer has no email address; closes as no objection after the time-out"
        )
        return survey
    lang = ticket.language if ticket.language in ("zh", "en") else ctx.config.ack.default_language
    last_in = session.scalar(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.direction == "in", Message.kind == "customer")
        .order_by(Message.id.desc())
        .limit(1)
    )
    mail = ctx.templates.mail(
        "survey",
        lang,
        ticket=ticket,
        customer=customer,
        support=ctx.config.support,
        link=link(ctx, ticket, survey),
        timeout_days=ctx.config.survey.timeout_days,
    )
    message_id = queue_mail(
        session,
        ctx,
        ticket,
        kind="survey",
        mail=mail,
        to_addr=customer.email,
        to_name=customer.name,
        in_reply_to=last_in.message_id if last_in is not None else None,
        to_customer=True,
    )
    update_row(session, survey, message_id=message_id)
    mailq.event(session, ctx, ticket, "system", "survey_sent", survey=survey.id, expires_at=survey.expires_at.isoformat())
    return survey


def withdraw(session: Session, ctx: Context, ticket: Ticket) -> None:
    """Staff took the ticket up again before the customer answered: the survey is void."""
    for item in session.scalars(select(Survey).where(Survey.ticket_id == ticket.id, Survey.outcome == "pending")):
        update_row(session, item, outcome="superseded")
        mailq.event(session, ctx, ticket, "system", "survey_withdrawn", survey=item.id)


def pending(session: Session, ticket: Ticket) -> Survey | None:
    return session.scalar(select(Survey).where(Survey.ticket_id == ticket.id, Survey.outcome == "pending").order_by(Survey.id.desc()).limit(1))


def answer(session: Session, ctx: Context, ticket: Ticket, survey: Survey, score: int, *, via: str, text: str = "") -> str:
    """Record a score; close the ticket (satisfied) or reopen it and tell the assignee."""
    actor = mailq.customer_actor(ticket)
    satisfied = score >= ctx.config.survey.close_at
    update_row(session, survey, score=score, answer=text[:2000], via=via, answered_at=ctx.now(), outcome="satisfied" if satisfied else "reopened")
    update_row(session, ticket, satisfaction=score, outcome=ticket.outcome or "customer satisfied" if satisfied else ticket.outcome)
    mailq.event(session, ctx, ticket, actor, "survey_answered", score=score, via=via, survey=survey.id)
    if satisfied:
        mailq.change_status(session, ctx, ticket, "closed", actor, reason=f"satisfaction {score} of 5 (at least {ctx.config.survey.close_at})")
        return "closed"
    mailq.change_status(session, ctx, ticket, "in_progress", actor, reason=f"satisfaction {score} of 5 (below {ctx.config.survey.close_at})")
    notify.notify_assignee(session, ctx, ticket, reason="survey_low")
    return "reopened"


def handle_reply(case: Case, session: Session, ctx: Context) -> None:
    """The survey_answer stage: a customer's reply on a ticket with a pending survey."""
    ticket = case.ticket
    if ticket is None or case.parsed is None or case.channel != "email":
        return
    if not is_customer_address(ctx.config, ticket, case.parsed.from_addr):
        return  # only the ticket's own customer answers its survey (a colleague's mail is appended)
    survey = pending(session, ticket)
    if survey is None:
        return
    score = parse_score(case.parsed.new_text)
    if score is None:
        # the customer has something to say: the store stage reopens, notify tells the assignee
        update_row(session, survey, outcome="reopened", answer=case.parsed.new_text[:2000], via="email", answered_at=ctx.now())
        mailq.event(session, ctx, ticket, "system", "survey_reply_not_a_score", survey=survey.id)
        case.notes.append("survey_reply")
        return
    case.message = write_inbound(case, session, ctx, ticket, kind="survey_answer")
    outcome = answer(session, ctx, ticket, survey, score, via="email", text=case.parsed.new_text)
    raise Stop("appended", f"survey answered {score} of 5: ticket {outcome}", ticket.ref)


def expire(session: Session, ctx: Context, survey: Survey) -> None:
    """No answer in time: closed as "no objection" (the seeds' 无异议)."""
    ticket = survey.ticket
    update_row(session, survey, outcome="no_objection")
    update_row(session, ticket, outcome=ticket.outcome or "no objection")
    mailq.event(session, ctx, ticket, "system", "survey_expired", survey=survey.id, days=ctx.config.survey.timeout_days)
    mailq.change_status(
        session, ctx, ticket, "closed", "system", reason=f"no answer to the survey within {ctx.config.survey.timeout_days:g} days: no objection"
    )
