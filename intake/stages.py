"""The pipeline's stages: small functions, one job each, in the order of PIPELINE.

Each takes (case, session, ctx), reads what earlier stages put on the case and adds
to it. The session is the item's one transaction; mail to send is written as
outbox rows in it. No stage talks to IMAP, SMTP or the file system.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from intake.case import Case, Quarantine, Stop
from intake.context import Context
from intake.fastsql import Prepared
from intake.models import Attachment, Customer, Message, OutboxMail, Ticket
from intake.outgoing import queue_mail
from intake.staffmail.sla import due_time
from intake.tickets import (
    IS_OPEN, clip, find_or_create_customer, insert_new, log_event, new_ref, open_counts, queue_archive, row_id, set_status, store_message,
)


def prepare(case: Case, ctx: Context) -> None:
    """The work that needs no database, done before the item's transaction begins (on
    SQLite, before its turn at the write lock): parsing. What it raises is raised again
    by the parse stage, inside the transaction, and handled there as ever."""
    try:
        parse(case, None, ctx)
    except Exception as exc:
        case.unready = exc


def parse(case: Case, session: Session | None, ctx: Context) -> None:
    """Raw bytes → ParsedMessage; what cannot be read at all is quarantined."""
    from intake.message import UnparseableMessage, parse_message

    if case.unready is not None:
        raise case.unready
    if case.parsed is not None:  # prepared
        return

    limit = ctx.config.limits.max_message_bytes
    if len(case.raw) > limit:
        raise Quarantine(f"{len(case.raw)} bytes exceeds limits.max_message_bytes ({limit})")
    try:
        if case.channel == "form":
            from intake.forms import parse_submission, submission_fields

            case.parsed = parse_submission(case.raw)
            case.form = submission_fields(case.raw)
        else:
            case.parsed = parse_message(case.raw, max_attachment_bytes=ctx.config.limits.max_attachment_bytes)
    except UnparseableMessage as exc:
        raise Quarantine(f"unparseable: {exc.reason}") from None


def _sha256(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


def dedupe(case: Case, session: Session, ctx: Context) -> None:
    """The same message twice (two mailboxes, a re-delivery, a second ingest) is one
    message; a Message-ID reused by another sender or other content is not."""
    msg = case.parsed
    sender = msg.from_addr or case.form.get("phone", "")
    case.content_hash = _sha256(
        sender, msg.subject, msg.text.strip(), *(_sha256(a.filename, a.data) for a in msg.attachments)
    )
    if case.channel == "form":
        if session.get_bind().dialect.name == "postgresql":
            # two identical submissions at the same moment (a double click reaching two
            # daemons or two request threads) queue here, so the second sees the first
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(case.content_hash[:15], 16)})
        window = ctx.config.limits.form_duplicate_window_seconds
        earlier = session.execute(_SAME_FORM, {"hash": case.content_hash, "since": ctx.now() - timedelta(seconds=window)}).first()
        if earlier is not None:
            raise Stop("duplicate", "the same submission again within seconds", earlier.ref)
        return
    identity = msg.message_id or (msg.date.isoformat() if msg.date else "")
    case.fingerprint = _sha256("email", identity, case.content_hash)
    earlier = _SAME_EMAIL.first(session, {"fingerprint": case.fingerprint})
    if earlier is not None:
        raise Stop("duplicate", f"message already taken (Message-ID {msg.message_id or 'none'})", earlier.ref)


# The lookups every item makes, built once (statement construction is a measurable
# share of the per-message cost); each gives the ticket reference of an earlier copy.
_MESSAGES, _TICKETS = Message.__table__, Ticket.__table__
_EARLIER = select(_TICKETS.c.ref).select_from(_MESSAGES.outerjoin(_TICKETS, _MESSAGES.c.ticket_id == _TICKETS.c.id))
_SAME_EMAIL = Prepared(_EARLIER.where(_MESSAGES.c.fingerprint == bindparam("fingerprint")))
_SAME_FORM = _EARLIER.where(
    _MESSAGES.c.content_hash == bindparam("hash"), _MESSAGES.c.channel == "form", _MESSAGES.c.received_at >= bindparam("since")
).limit(1)


def loop_check(case: Case, session: Session, ctx: Context) -> None:
    """RFC 3834: note why this message must get no automatic answer (the message is
    still kept, and threaded when it belongs to a ticket)."""
    from intake.loops import auto_reply_reason

    if case.channel == "form":
        return
    if case.parsed.from_addr == ctx.config.support.address:
        case.autoreply = "sent from our own support address"
    else:
        case.autoreply = auto_reply_reason(case.parsed)


def thread(case: Case, session: Session, ctx: Context) -> None:
    """A reply belongs to its ticket: by [#REF] in the subject or by In-Reply-To/References."""
    msg = case.parsed
    ticket = None
    match = ctx.ref_pattern.search(msg.subject or "")
    if match:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == match.group(1)))
        if ticket is not None and not _may_write_to(ticket, msg.from_addr):
            case.notes.append(f"{msg.from_addr or 'a sender'} named ticket {ticket.ref} in the subject but is not its customer")
            ticket = None
    ids = [*getattr(msg, "in_reply_to", []), *reversed(getattr(msg, "references", []))]
    if ticket is None and ids:
        known = session.scalar(
            select(Message).where(Message.message_id.in_(ids), Message.ticket_id.is_not(None)).order_by(Message.id.desc()).limit(1)
        )
        ticket = known.ticket if known is not None else None
    case.ticket = ticket


# Domains anyone can have an address at: sharing one proves nothing.
PUBLIC_MAIL_DOMAINS = frozenset(
    "qq.com foxmail.com 163.com 126.com yeah.net sina.com sina.cn sohu.com aliyun.com 139.com 189.cn "
    "gmail.com googlemail.com outlook.com hotmail.com live.com msn.com yahoo.com icloud.com me.com "
    "proton.me protonmail.com gmx.com gmx.net mail.com yandex.ru".split()
)


def _may_write_to(ticket: Ticket, sender: str) -> bool:
    """A reference in a subject is easy to guess (they are sequential): it threads mail
    from the ticket's customer, or a colleague at the customer's own company domain.
    A reply carrying our Message-ID in In-Reply-To/References needs no such check."""
    customer = (ticket.customer.email or "").lower()
    if not sender or not customer:
        return False
    if sender == customer:
        return True
    domain = customer.rpartition("@")[2]
    return sender.rpartition("@")[2] == domain and domain not in PUBLIC_MAIL_DOMAINS


def ignore_autoreply(case: Case, session: Session, ctx: Context) -> None:
    """An auto-reply is stored (on its ticket when it threads) and answered by nobody."""
    if not case.autoreply:
        return
    case.message = _store_message(case, session, ctx, case.ticket, kind="autoreply")
    if case.ticket is not None:
        log_event(session, case.ticket, "system", "autoreply_received", at=ctx.now(), reason=case.autoreply)
    raise Stop("autoreply_ignored", case.autoreply, case.ticket.ref if case.ticket else None)


def classify(case: Case, session: Session, ctx: Context) -> None:
    """Type and urgency of a new case from the keyword rules (a form may name the type)."""
    if case.ticket is not None:
        return
    case.classification = ctx.classifier().classify(case.parsed.subject, case.parsed.new_text)
    chosen = case.form.get("type")
    if chosen in ("inquiry", "complaint", "fault", "request", "suggestion") and chosen != case.classification.type:
        case.notes.append(f"type {chosen!r} chosen by the customer on the form over {case.classification.type!r}")
        case.classification.type = chosen
        case.classification.departments = ctx.departments_for(chosen, case.classification.departments)


_CUSTOMERS = Customer.__table__
_HOLDER = Prepared(  # who holds this customer's open case in the department
    select(_TICKETS.c.assignee)
    .select_from(_TICKETS.join(_CUSTOMERS, _TICKETS.c.customer_id == _CUSTOMERS.c.id))
    .where(IS_OPEN, _TICKETS.c.department == bindparam("department"), _TICKETS.c.assignee.is_not(None))
    .where(_CUSTOMERS.c.email == bindparam("email"))
    .order_by(_TICKETS.c.id.desc())
    .limit(1)
)


def route(case: Case, session: Session, ctx: Context) -> None:
    """Department from the type; one person in it, by the configured strategy. A
    customer's new case goes to whoever already holds one of their open cases."""
    if case.ticket is not None:
        return
    case.department = case.classification.departments[0] if case.classification.departments else ""
    staff = ctx.staff()
    if staff is None or not case.department:
        return
    from classify import choose_assignee

    holder = None
    if case.parsed.from_addr:
        holder = _HOLDER.scalar(session, {"email": case.parsed.from_addr, "department": case.department})
    # each strategy reads only what it needs: the last assignee, or the open counts
    last, counts = None, {}
    if staff.strategy == "round_robin":
        last = session.scalar(
            select(Ticket.assignee).where(Ticket.department == case.department, Ticket.assignee.is_not(None)).order_by(Ticket.id.desc()).limit(1)
        )
    else:
        counts = open_counts(session, [m.id for m in staff.members if case.department in m.departments])
    member = choose_assignee(
        staff, case.department, open_counts=counts, now=ctx.now(), current_holder=holder, last_assigned=last, urgent=bool(case.classification.flagged),
    )
    case.assignee = member.id if member else None


def store(case: Case, session: Session, ctx: Context) -> None:
    """Append to the threaded ticket (reopening a finished one) or open a new ticket."""
    msg = case.parsed
    if case.ticket is not None:
        ticket = case.ticket
        case.message = _store_message(case, session, ctx, ticket, kind="customer")
        ticket.updated_at = ctx.now()
        log_event(session, ticket, f"customer:{msg.from_addr or case.form.get('phone', '')}", "message", at=ctx.now(), message_id=msg.message_id, subject=msg.subject)
        if ticket.status in ("resolved", "closed"):
            set_status(session, ticket, "in_progress", "system", reason="the customer wrote again", now=ctx.now())
            case.reopened = True
        session.flush()
        return
    customer = find_or_create_customer(
        session,
        email=msg.from_addr,
        phone=case.form.get("phone", ""),
        name=msg.from_name or case.form.get("name", ""),
        company=case.form.get("company", ""),
        language=msg.language,
    )
    c = case.classification
    now = ctx.now()
    ticket = Ticket(
        ref=new_ref(session, ctx.config.tickets.ref_prefix, ctx.config.tickets.timezone, now),
        customer_id=customer.id,
        subject=msg.subject,
        channel="form" if case.channel == "form" else "email",
        type=c.type,
        urgency=c.urgency,
        department=case.department,
        assignee=case.assignee,
        flagged=bool(c.flagged),
        status="new",
        language=msg.language,
        classification=c.to_dict(),
        created_at=now,
        updated_at=now,
        due_at=due_time(ctx.config, now, c.type, c.urgency),  # type overrides, working hours
    )
    insert_new(session, ticket)
    # the relationship set as loaded: setting it would make the customer dirty (its
    # `tickets` backref) and cost a flush of both at the next savepoint
    set_committed_value(ticket, "customer", customer)
    case.ticket, case.opened = ticket, True
    case.message = _store_message(case, session, ctx, ticket, kind="customer")
    actor = f"customer:{msg.from_addr or case.form.get('phone', '')}"
    log_event(session, ticket, actor, "opened", at=now, channel=ticket.channel, source=case.ref.source, subject=msg.subject)
    log_event(session, ticket, "system", "classified", at=now, type=c.type, urgency=c.urgency, flagged=ticket.flagged, why=c.explain("en").splitlines(), notes=case.notes)
    if ticket.department or ticket.assignee:
        log_event(session, ticket, "system", "assigned", at=now, department=ticket.department, assignee=ticket.assignee)


@dataclass(frozen=True)
class StoredMessage:
    """What later stages read of an inbound message once it is written."""

    kind: str
    text: str


def _store_message(case: Case, session: Session, ctx: Context, ticket: Ticket | None, *, kind: str,
                   to_addrs: list[str] | None = None) -> StoredMessage:
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
    store_message(session, row, [
        {"filename": clip(a.filename, Attachment.filename), "content_type": clip(a.content_type, Attachment.content_type),
         "size": a.size, "truncated": a.truncated, "data": a.data}
        for a in msg.attachments
    ])
    return StoredMessage(kind=kind, text=msg.text)


_OUTBOX = OutboxMail.__table__
_RECENT_ACKS = Prepared(select(func.count()).select_from(_OUTBOX).where(
    _OUTBOX.c.kind == "ack", _OUTBOX.c.rcpt_to == bindparam("to"), _OUTBOX.c.created_at >= bindparam("since")))


def acknowledge(case: Case, session: Session, ctx: Context) -> None:
    """A new ticket's customer gets its reference at once: rendered now, queued in
    the outbox, sent by the mailer. Capped per sender per hour against loops."""
    if not case.opened:
        return
    ticket, msg = case.ticket, case.parsed
    if not msg.from_addr:
        log_event(session, ticket, "system", "ack_skipped", at=ctx.now(), reason="no email address (phone only)")
        return
    cap = ctx.config.limits.acks_per_sender_per_hour
    recent = _RECENT_ACKS.scalar(session, {"to": msg.from_addr, "since": ctx.now() - timedelta(hours=1)})
    if recent >= cap:
        log_event(session, ticket, "system", "ack_skipped", at=ctx.now(), reason=f"{recent} acknowledgements to {msg.from_addr} in the last hour (limit {cap})")
        return
    lang = msg.language if msg.language in ("zh", "en") else ctx.config.ack.default_language
    hours = ctx.config.ack.response_hours[ticket.urgency]
    due_local = ticket.due_at.astimezone(ZoneInfo(ctx.config.tickets.timezone)).strftime("%Y-%m-%d %H:%M")
    mail = ctx.templates.mail("ack", lang, ticket=ticket, customer=ticket.customer, support=ctx.config.support, response_hours=hours, due_local=due_local)
    queue_mail(
        session, ctx, ticket, kind="ack", mail=mail, to_addr=msg.from_addr, to_name=msg.from_name,
        in_reply_to=msg.message_id, references=list(getattr(msg, "references", [])), auto_submitted="auto-replied", to_customer=True,
    )
    case.acknowledged = True


from intake.staffmail.stages import notify, schedule, staff_reply, survey_answer  # noqa: E402  (staff mail loop, issue 6)


def to_archive(case: Case, session: Session, ctx: Context) -> None:
    """The case PDF is (re)written off the acknowledgement path: a job row here, the
    archive worker renders it. A customer's new message is a significant change."""
    if ctx.config.archive.enabled and case.ticket is not None and (case.opened or case.message is not None) and not case.reopened:
        queue_archive(session, case.ticket, "opened" if case.opened else "changed", ctx.now())


PIPELINE = (
    parse, dedupe, loop_check, thread, staff_reply, ignore_autoreply, survey_answer,
    classify, route, store, schedule, acknowledge, notify, to_archive,
)
