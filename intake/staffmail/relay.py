"""Staff replies: recognised by the signed Reply-To token, checked, relayed.

Who may act on a ticket by mail: its assignee, and (staff_mail.allow_department_head,
on by default) the head of the ticket's department — the person who gets its 加急
and escalation notices and must be able to step in. Both conditions must hold: the
reply comes to the ticket's token address with a valid MAC, AND the From address is
the directory address of an allowed person. A reply failing either is never relayed:
it is quarantined with its bytes, and the staff member is told why (mail goes to the
directory address, never to the From of a stranger: no backscatter).

With staff_mail.trusted_authserv_id set, a third condition: our own receiving server's
Authentication-Results must show the From domain authenticated (auth.py), so a
leaked token plus a forged From is refused too.

A staff member's mail that threads to a ticket by subject or References but came
to the plain support address (no token) is refused the same way: a forged From
alone never passes, and a real colleague learns to reply to the notification.
"""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from intake.context import Context
from intake.outgoing.queue import queue_mail
from intake.pipeline.case import Case, Quarantine, Stop
from intake.pipeline.message_row import write_inbound
from intake.staffmail import actions, mailq, notify
from intake.staffmail.auth import authenticated
from intake.staffmail.reading import read_reply
from intake.staffmail.sent import known_text, signatures
from intake.staffmail.token import TokenAddress, load_key, parse_address, verify
from intake.store.fastsql import insert_new, update_row
from intake.store.models import Message, OutboxMail, QuarantineItem, Ticket


def token_addresses(case: Case, ctx: Context) -> list[TokenAddress]:
    msg = case.parsed
    candidates = [*msg.to_addrs, *msg.cc_addrs, *msg.header_all("delivered-to"), *msg.header_all("x-original-to")]
    found = []
    for address in candidates:
        token = parse_address(address, ctx.config.support.address)
        if token is not None and token not in found:
            found.append(token)
    return found


def member_by_address(ctx: Context, address: str):
    directory = ctx.staff()
    if directory is None or not address:
        return None
    address = address.lower()
    return next((m for m in directory.members if m.email and m.email.lower() == address), None)


def allowed(ctx: Context, ticket: Ticket, member) -> bool:
    if member is None:
        return False
    if ticket.assignee and member.id == ticket.assignee:
        return True
    directory = ctx.staff()
    head = directory.head(ticket.department) if directory is not None and ticket.department else None
    return bool(ctx.config.staff_mail.allow_department_head and head is not None and head.id == member.id)


def handle(case: Case, session: Session, ctx: Context) -> None:
    """The staff_reply stage's work; ends the pipeline (Stop) for every staff mail."""
    tokens = token_addresses(case, ctx)
    msg = case.parsed
    sender = member_by_address(ctx, msg.from_addr)
    if not tokens:
        if sender is not None and case.ticket is not None and not case.autoreply:
            _refuse(
                case,
                session,
                ctx,
                case.ticket,
                sender,
                f"a reply from staff address {msg.from_addr} without the ticket's reply address; reply to the notification mail "
                "/ 请直接回复通知邮件（使用其专用回复地址）",
            )
        return  # a customer's mail: the rest of the pipeline
    if case.autoreply:  # an out-of-office answering a notification: nobody hears of it
        raise Stop("autoreply_ignored", f"automatic reply to a staff reply address: {case.autoreply}", None)
    token = tokens[0]
    ticket = session.scalar(select(Ticket).where(func.upper(Ticket.ref) == token.ref.upper()))
    cfg = ctx.config
    if ticket is None or not verify(load_key(cfg), token, ticket.ref, cfg.staff_mail.mac_length):
        # tell a colleague who mistyped; a stranger probing addresses hears nothing
        _refuse(case, session, ctx, ticket, sender, f"the reply address {token.address} is not valid for any ticket (bad token) / 回复地址无效")
    authserv = cfg.staff_mail.trusted_authserv_id
    if authserv and sender is not None:
        passed, why = authenticated(msg.header_all("authentication-results"), authserv, msg.from_addr)
        if not passed:
            _refuse(case, session, ctx, ticket, sender, f"the sender address {msg.from_addr} was not authenticated: {why} / 发件人未通过验证")
    if not allowed(ctx, ticket, sender):
        directory = ctx.staff()
        owner = directory.member(ticket.assignee) if directory is not None and ticket.assignee else None
        _refuse(
            case,
            session,
            ctx,
            ticket,
            sender or owner,
            f"{msg.from_addr[:100] or 'an unknown sender'} may not act on ticket {ticket.ref}: only its assignee"
            + (" or the department head" if cfg.staff_mail.allow_department_head else "")
            + " / 发件人无权处理此工单",
        )
    _accept(case, session, ctx, ticket, sender)


def _refuse(case: Case, session: Session, ctx: Context, ticket: Ticket | None, tell, reason: str) -> NoReturn:
    """Quarantine the mail (its bytes and the reason) and tell the staff member why.
    Anyone can forge a staff From, so the telling is bounded: only about a ticket that
    exists (a token naming none tells nobody), at most once an hour per staff member
    (the quarantine keeps every refused mail), and never echoing the received subject."""
    if case.ref.source.startswith("quarantine:"):
        raise Quarantine(reason)  # a retry refused again: the item stays held; they were told the first time
    item = insert_new(
        session, QuarantineItem(source=case.ref.source, key=case.ref.key, channel=case.ref.channel, raw=case.raw, reason=reason, created_at=ctx.now())
    )
    if ticket is not None:
        mailq.event(session, ctx, ticket, "system", "staff_reply_refused", sender=case.parsed.from_addr, reason=reason, quarantine=item.id)
        if tell is not None and tell.email and not _told_within_the_hour(session, ctx, tell.email):
            notify.tell_staff(session, ctx, ticket, tell, problems=[reason], subject=ticket.subject, original="", kind=REFUSAL_KIND)
    raise Stop("quarantined", f"#{item.id}: {reason}", ticket.ref if ticket is not None else None)


REFUSAL_KIND = "staff_refused"  # the outbox kind of a refusal notice, counted for the hourly bound
_OUTBOX = OutboxMail.__table__
_REFUSALS_TOLD = (
    select(func.count())
    .select_from(_OUTBOX)
    .where(_OUTBOX.c.kind == REFUSAL_KIND, _OUTBOX.c.rcpt_to == bindparam("to"), _OUTBOX.c.created_at >= bindparam("since"))
)


def _told_within_the_hour(session: Session, ctx: Context, address: str) -> bool:
    return session.execute(_REFUSALS_TOLD, {"to": address, "since": ctx.now() - timedelta(hours=1)}).scalar_one() > 0  # a count: always one row


def _accept(case: Case, session: Session, ctx: Context, ticket: Ticket, member) -> None:
    actor = f"staff:{member.id}"
    today = ctx.now().astimezone(ZoneInfo(ctx.config.tickets.timezone)).date()
    reading = read_reply(
        case.parsed,
        known_text(session, ticket),
        signatures=signatures(session, member),
        own_addresses=[case.parsed.from_addr, member.email],
        staff_lookup=lambda word: _lookup(ctx, word),
        today=today,
    )
    parsed, new_text, leaked = reading.parsed, reading.new_text, reading.leaked
    # the token address is a credential: not listed (the raw bytes keep it as received)
    write_inbound(case, session, ctx, ticket, kind="staff", to_addrs=[ctx.config.support.address])
    mailq.event(session, ctx, ticket, actor, "staff_reply", message_id=case.parsed.message_id)
    if leaked:  # the safety net: a quote we could not strip must not reach the customer
        mailq.event(session, ctx, ticket, actor, "relay_withheld", lines=leaked[:10])
        problem = (
            "your reply still contains lines of our notification (a quote that could not be told from your text), so it was not sent "
            "and no command was carried out; please reply again with only your answer above the quote / 回复中仍含有通知邮件的内容，未转发给客户，"
            "指令也未执行；请只在引用上方写答复后重新回复. Lines: " + " | ".join(leaked[:5])
        )
        notify.tell_staff(session, ctx, ticket, member, problems=[problem], subject=case.parsed.subject, original=new_text)
        raise Stop("appended", f"staff reply from {member.id} withheld: {len(leaked)} line(s) of our notification left after stripping", ticket.ref)
    if parsed.errors:
        mailq.event(session, ctx, ticket, actor, "commands_refused", errors=parsed.errors)
        notify.tell_staff(session, ctx, ticket, member, problems=parsed.errors, subject=case.parsed.subject, original=new_text)
        raise Stop("appended", f"staff reply with {len(parsed.errors)} bad command(s): nothing relayed", ticket.ref)
    if not parsed.body and not parsed.commands:  # all quote: say so, or they believe the customer has their answer
        mailq.event(session, ctx, ticket, actor, "relay_empty")
        notify.tell_staff(
            session,
            ctx,
            ticket,
            member,
            subject=case.parsed.subject,
            original="",
            problems=[
                "no answer was found above the quoted mail, so nothing was sent to the customer; write your answer above the quote "
                "/ 引用内容上方没有找到答复，未转发给客户；请把答复写在引用内容的上方"
            ],
        )
        raise Stop("appended", f"staff reply from {member.id}: no text above the quote; nothing relayed", ticket.ref)
    relayed = False
    if parsed.body and not parsed.internal:  # the answer first: a survey (#status resolved) follows it
        relayed = relay(session, ctx, ticket, member, parsed.body, attachments=case.parsed.attachments)
    for command in parsed.commands:
        actions.apply(command, session, ctx, ticket, member, parsed)
    if parsed.commands and not relayed and ticket.status == "new":
        mailq.change_status(session, ctx, ticket, "in_progress", actor, reason="first staff action")
    update_row(session, ticket, updated_at=ctx.now())
    done = ", ".join(c.name for c in parsed.commands) or "no commands"
    raise Stop("appended", f"staff reply from {member.id}: {done}; {'relayed to the customer' if relayed else 'not relayed'}", ticket.ref)


def _lookup(ctx: Context, word: str) -> str | None:
    directory = ctx.staff()
    if directory is None:
        return None
    word = word.strip().lower()
    for m in directory.members:
        if word in (m.id.lower(), (m.email or "").lower(), m.name.lower()):
            return m.id
    return None


def relay(session: Session, ctx: Context, ticket: Ticket, member, body: str, attachments: list | None = None) -> bool:
    """The staff member's text (and attached files) to the customer, from the support
    address, signed with their name. A file over limits.max_attachment_bytes was kept
    by the parser as name and size only: it is not sent, and the staff member is told."""
    customer = ticket.customer
    actor = f"staff:{member.id}"
    if not customer.email:
        mailq.event(session, ctx, ticket, actor, "relay_skipped", reason="the customer has no email address")
        notify.tell_staff(
            session,
            ctx,
            ticket,
            member,
            problems=["the customer has no email address; please call them / 客户没有邮箱，请电话联系"],
            subject=ticket.subject,
            original=body,
            commands_applied=True,
        )
        return False
    last_in = session.scalar(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.direction == "in", Message.kind == "customer")
        .order_by(Message.id.desc())
        .limit(1)
    )
    lang = ticket.language if ticket.language in ("zh", "en") else ctx.config.ack.default_language
    mail = ctx.templates.mail("relay", lang, ticket=ticket, customer=customer, member=member, body=body, support=ctx.config.support)
    files = [a for a in attachments or [] if not a.truncated]
    dropped = [a.filename for a in attachments or [] if a.truncated]
    queue_mail(
        session,
        ctx,
        ticket,
        kind="staff_reply",
        mail=mail,
        to_addr=customer.email,
        to_name=customer.name,
        from_name=f"{member.name} | {ctx.config.support.name}",
        in_reply_to=last_in.message_id if last_in is not None else None,
        to_customer=True,
        auto_submitted=None,
        attachments=files,
    )
    if dropped:
        limit = ctx.config.limits.max_attachment_bytes
        mailq.event(session, ctx, ticket, actor, "attachments_not_relayed", files=dropped, limit=limit)
        notify.tell_staff(
            session,
            ctx,
            ticket,
            member,
            subject=ticket.subject,
            original="",
            relayed=True,
            problems=[f"your answer was sent, but without {', '.join(dropped)}: larger than {limit} bytes / 附件过大，未随回复发送"],
        )
    now = ctx.now()
    if ticket.first_response_at is None:
        update_row(session, ticket, first_response_at=now)
        minutes = round((now - ticket.created_at).total_seconds() / 60, 1)
        mailq.event(
            session,
            ctx,
            ticket,
            actor,
            "first_response",
            minutes=minutes,
            due_at=ticket.due_at.isoformat() if ticket.due_at else None,
            met=bool(ticket.due_at is None or now <= ticket.due_at),
        )
    if ticket.status == "new":
        mailq.change_status(session, ctx, ticket, "in_progress", actor, reason="first answer to the customer")
    return True
