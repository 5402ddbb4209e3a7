"""Mail to staff: the assignee's notification (with the signed Reply-To) and the
加急 notice to the department head; also the staff member's error replies.

Everything here renders templates and queues outbox rows in the caller's
transaction; nothing is sent from here.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from intake.context import Context
from intake.outgoing.queue import queue_mail
from intake.staffmail import mailq, sla
from intake.staffmail.token import load_key, make_address
from intake.store.models import Message, Ticket
from intake.vocabulary import mask_phone


def staff_language(member) -> str:
    """Chinese unless the member reads only English (staff.toml languages)."""
    langs = getattr(member, "languages", None) or []
    return "en" if langs and "zh" not in langs else "zh"


def reply_address(ctx: Context, ticket: Ticket) -> str:
    cfg = ctx.config
    return make_address(load_key(cfg), ticket.ref, cfg.support.address, cfg.staff_mail.mac_length)


def department_label(ctx: Context, department: str, lang: str) -> str:
    directory = ctx.staff()
    dept = directory.departments.get(department) if directory is not None and department else None
    if dept is None:
        return department or "-"
    return dept.label_zh if lang == "zh" else dept.label_en


def earlier_tickets(session: Session, ctx: Context, ticket: Ticket) -> list[Ticket]:
    limit = ctx.config.staff_mail.earlier_tickets
    if not limit or ticket.customer.new_here:
        return []
    return list(session.scalars(_EARLIER_TICKETS, {"customer": ticket.customer_id, "ticket": ticket.id, "limit": limit}))


_EARLIER_TICKETS = (  # built once: it runs for every notification
    select(Ticket)
    .where(Ticket.customer_id == bindparam("customer"), Ticket.id != bindparam("ticket"))
    .order_by(Ticket.id.desc())
    .limit(bindparam("limit"))
)


def _case_context(session: Session, ctx: Context, ticket: Ticket, lang: str) -> dict:
    customer = ticket.customer
    return {
        "ticket": ticket,
        "customer": customer,
        "phone": mask_phone(customer.phone),
        "support": ctx.config.support,
        "due_local": sla.local(ctx.config, ticket.due_at),
        "eta_local": sla.local(ctx.config, ticket.expected_completion)[:10] if ticket.expected_completion else "",
        "department": department_label(ctx, ticket.department, lang),
        "earlier": earlier_tickets(session, ctx, ticket),
        "tz": ctx.config.tickets.timezone,
    }


def notify_assignee(session: Session, ctx: Context, ticket: Ticket, *, reason: str, message: Message | None = None, by: str = "") -> bool:
    """reason: "assigned" (new ticket), "reassigned" (#assign), "customer_wrote" (a new message).
    False (and an event saying why) when there is nobody to notify."""
    directory = ctx.staff()
    member = directory.member(ticket.assignee) if directory is not None and ticket.assignee else None
    if member is None or not member.email:
        mailq.event(session, ctx, ticket, "system", "notify_skipped", reason=f"no staff member with an address for assignee {ticket.assignee!r}")
        return False
    lang = staff_language(member)
    text = message.text if message is not None else ""
    if message is not None:
        from intake.inbound.quote import strip_quoted

        text = strip_quoted(message.text or "")
    mail = ctx.templates.mail(
        "notify",
        lang,
        member=member,
        reason=reason,
        by=by,
        message=message,
        message_text=text,
        **_case_context(session, ctx, ticket, lang),
    )
    queue_mail(session, ctx, ticket, kind="notify", mail=mail, to_addr=member.email, to_name=member.name, reply_to=reply_address(ctx, ticket))
    return True


def notify_head(session: Session, ctx: Context, ticket: Ticket, *, kind: str, message: Message | None = None) -> bool:
    """kind: "flagged" (加急 on a new urgent case) or "escalation" (SLA breached)."""
    directory = ctx.staff()
    head = directory.head(ticket.department) if directory is not None and ticket.department else None
    if head is None or not head.email:
        mailq.event(session, ctx, ticket, "system", f"{kind}_skipped", reason=f"no head with an address for department {ticket.department!r}")
        return False
    lang = staff_language(head)
    assignee = directory.member(ticket.assignee) if ticket.assignee else None
    text = ""
    if message is not None:
        from intake.inbound.quote import strip_quoted

        text = strip_quoted(message.text or "")
    mail = ctx.templates.mail(
        "escalation",
        lang,
        head=head,
        kind=kind,
        assignee=assignee,
        message_text=text,
        now_local=sla.local(ctx.config, ctx.now()),
        **_case_context(session, ctx, ticket, lang),
    )
    queue_mail(
        session,
        ctx,
        ticket,
        kind="flagged" if kind == "flagged" else "escalation",
        mail=mail,
        to_addr=head.email,
        to_name=head.name,
        reply_to=reply_address(ctx, ticket),
    )
    return True


def tell_staff(
    session: Session,
    ctx: Context,
    ticket: Ticket | None,
    member,
    *,
    problems: list[str],
    subject: str,
    original: str = "",
    relayed: bool = False,
    commands_applied: bool = False,
    kind: str = "staff_error",
) -> None:
    """A staff member's reply was not relayed (or, relayed=True, only partly): say why."""
    lang = staff_language(member)
    mail = ctx.templates.mail(
        "staff_error",
        lang,
        member=member,
        ticket=ticket,
        problems=problems,
        subject=subject,
        original=original,
        support=ctx.config.support,
        relayed=relayed,
        commands_applied=commands_applied,
    )
    reply_to = reply_address(ctx, ticket) if ticket is not None and ticket.assignee == member.id else None
    queue_mail(session, ctx, ticket, kind=kind, mail=mail, to_addr=member.email, to_name=member.name, reply_to=reply_to)
