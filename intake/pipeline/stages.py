"""The customer's stages of the pipeline: small functions, one job each (their order: intake/pipeline/builtin.py).

Each takes (case, session, ctx), reads what earlier stages put on the case and adds
to it. The session is the item's one transaction; mail to send is written as
outbox rows in it. No stage talks to IMAP, SMTP or the file system.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from intake.context import Context
from intake.outgoing.queue import queue_mail
from intake.pipeline.case import Case, Quarantine, Stop
from intake.pipeline.message_row import write_inbound
from intake.staffmail.sla import due_time
from intake.store.fastsql import Prepared, update_row, waiting, write_rows
from intake.store.models import Customer, Message, OutboxMail, Ticket
from intake.tickets.numbers import reserve as reserve_numbers
from intake.tickets.records import (
    CUSTOMER_NUMBERS,
    find_or_create_customer,
    holder,
    insert_ticket,
    log_event,
    look_up_customers,
    may_write_to,
    new_ref,
    open_counts,
    queue_archive,
    ref_counter,
    set_status,
)
from intake.vocabulary import TYPES


def prepare(case: Case, ctx: Context) -> None:
    """The work that needs no database, done before the item's transaction begins (on
    SQLite, before its turn at the write lock): parsing, and classifying the text, the
    two whose cost grows with the input. What parsing raises is raised again by the
    parse stage, inside the transaction, and handled there as ever. Every parsed item
    is classified, since whether it opens a ticket is known only inside."""
    try:
        parse(case, None, ctx)
    except Exception as exc:
        case.unready = exc
        return
    identify(case)
    try:
        case.classification = case.prepared = _classified(case, ctx)
    except Exception:  # a bug: met again in the classify stage, if this item opens a ticket
        case.classification = None


def _classified(case: Case, ctx: Context):
    """Type, urgency and departments from the keyword rules: text in, verdict out."""
    return ctx.classifier().classify(case.parsed.subject, case.parsed.new_text)


def parse(case: Case, session: Session | None, ctx: Context) -> None:
    """Raw bytes → ParsedMessage; what cannot be read at all is quarantined."""
    from intake.inbound.message import UnparseableMessage, parse_message

    if case.unready is not None:
        raise case.unready
    if case.parsed is not None:  # prepared
        return

    limit = ctx.config.limits.max_message_bytes
    if len(case.raw) > limit:
        raise Quarantine(f"{len(case.raw)} bytes exceeds limits.max_message_bytes ({limit})")
    try:
        if case.channel == "form":
            from intake.inbound.form import parse_submission, submission_fields

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


def identify(case: Case) -> None:
    """What makes two copies of a message one: its content (sender, subject, text,
    attachments) and, for mail, its Message-ID or date as well. Pure: done in prepare."""
    msg = case.parsed
    sender = msg.from_addr or case.form.get("phone", "")
    case.content_hash = _sha256(sender, msg.subject, msg.text.strip(), *(_sha256(a.filename, a.data) for a in msg.attachments))
    if case.channel != "form":
        identity = msg.message_id or (msg.date.isoformat() if msg.date else "")
        case.fingerprint = _sha256("email", identity, case.content_hash)


def dedupe(case: Case, session: Session, ctx: Context) -> None:
    """The same message twice (two mailboxes, a re-delivery, a second ingest) is one
    message; a Message-ID reused by another sender or other content is not."""
    if case.content_hash is None:  # not prepared
        identify(case)
    assert case.content_hash is not None, "identify sets it"
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
    group = case.group
    if group is not None and not group.copy_in_group(case):
        taken, ticket_ref = case.fingerprint in group.copies, group.copies.get(case.fingerprint)
    else:
        if any(row.get("fingerprint") == case.fingerprint for row in waiting(session, _MESSAGES)):
            write_rows(session, [_MESSAGES])  # a copy earlier in this group (rare): written, then found as any other
        earlier = _SAME_EMAIL.first(session, {"fingerprint": case.fingerprint})
        taken, ticket_ref = earlier is not None, earlier.ref if earlier is not None else None
    if taken:
        raise Stop("duplicate", f"message already taken (Message-ID {case.parsed.message_id or 'none'})", ticket_ref)


@dataclass
class GroupLookups:
    """Two lookups that dedupe and acknowledge make for every item, made once for a group
    at its start (Pipeline._group_at_once): on PostgreSQL each statement is a round trip
    to the server (9.2 -> 7.4 statements a message, bench/imap_backlog.md). What the group
    itself does is kept here, not read from rows (some are written during the group, some
    wait for its commit): an item whose copy is another item of the group looks in the
    database as before, and a sender's count adds the acknowledgements the group queued.
    On PostgreSQL what another daemon commits during the group is not seen until the next
    one, as it was not seen before an item's own lookup: a copy taken there meanwhile
    fails the group's commit on the unique fingerprint, and its items are taken again one
    by one (the same outcome, later)."""

    fingerprints: Counter[str | None]  # of the group's items
    copies: dict[str, str | None]  # fingerprint -> the ticket of a copy taken before the group
    acks: dict[str, int]  # sender -> acknowledgements to them in the hour before the group
    queued: Counter[str] = field(default_factory=Counter)  # sender -> acknowledgements queued in the group

    def copy_in_group(self, case: Case) -> bool:
        return self.fingerprints[case.fingerprint] > 1

    def acks_to(self, address: str) -> int | None:
        """Acknowledgements to `address` in the last hour, this group's so far included;
        None for an address not looked up."""
        before = self.acks.get(address)
        return None if before is None else before + self.queued[address]


def look_up_group(session: Session, cases: list[Case], ctx: Context) -> None:
    """GroupLookups for `cases` (prepared, none a form), set on each case as `case.group`;
    the senders' customers and who holds their cases, kept by the transaction
    (intake/tickets/records.py look_up_customers); and the numbers the group may need
    for new customers and tickets (intake/tickets/numbers.py)."""
    now = ctx.now()
    senders = {case.parsed.from_addr for case in cases if case.parsed.from_addr}
    staff = {sender for sender in senders if _is_staff(ctx, sender)}  # they open no case
    # first: where another daemon holds the counters, this waits for its commit, and the
    # lookups below then see what it wrote (its customers, its copies of our mail)
    reserve_numbers(
        session,
        {
            CUSTOMER_NUMBERS: len(senders - staff),
            ref_counter(ctx.config.tickets.timezone, now): sum(1 for case in cases if case.parsed.from_addr not in staff),
        },
    )
    wanted = [case.fingerprint for case in cases if case.fingerprint is not None]
    copies: dict[str, str | None] = {}
    if wanted:
        copies = dict(session.execute(_COPIES.where(_MESSAGES.c.fingerprint.in_(wanted))).all())
    acks = dict.fromkeys(senders, 0)
    if senders:
        acks.update(session.execute(_ACKS_TO.where(_OUTBOX.c.rcpt_to.in_(senders)), {"since": now - ACK_WINDOW}).all())
        look_up_customers(session, senders)  # the senders' customers and holders, for route and store
    lookups = GroupLookups(Counter(case.fingerprint for case in cases), copies, acks)
    for case in cases:
        case.group = lookups


# The copy lookups, built once (statement construction is a measurable share of the
# per-message cost); each gives the ticket reference of an earlier copy.
_MESSAGES, _TICKETS, _OUTBOX = Message.__table__, Ticket.__table__, OutboxMail.__table__
_EARLIER_FROM = _MESSAGES.outerjoin(_TICKETS, _MESSAGES.c.ticket_id == _TICKETS.c.id)
_EARLIER = select(_TICKETS.c.ref).select_from(_EARLIER_FROM)
_COPIES = select(_MESSAGES.c.fingerprint, _TICKETS.c.ref).select_from(_EARLIER_FROM)  # a group's (look_up_group)
# asked by an item outside a group taken at once (alone, in a savepoint, in a group
# with a form) or whose copy is in its group: the group's messages are left waiting
# (dedupe looks at them itself)
_SAME_EMAIL = Prepared(_EARLIER.where(_MESSAGES.c.fingerprint == bindparam("fingerprint")), sees_waiting=False)
_SAME_FORM = _EARLIER.where(
    _MESSAGES.c.content_hash == bindparam("hash"), _MESSAGES.c.channel == "form", _MESSAGES.c.received_at >= bindparam("since")
).limit(1)


def loop_check(case: Case, session: Session, ctx: Context) -> None:
    """RFC 3834: note why this message must get no automatic answer (the message is
    still kept, and threaded when it belongs to a ticket)."""
    from intake.inbound.loops import auto_reply_reason

    if case.channel == "form":
        return
    if case.parsed.from_addr == ctx.config.support.address:
        case.autoreply = "sent from our own support address"
    else:
        case.autoreply = auto_reply_reason(case.parsed)


def thread(case: Case, session: Session, ctx: Context) -> None:
    """A reply belongs to its ticket: by [#REF] in the subject or by In-Reply-To/References,
    and only if its sender may write to that ticket (tickets.may_write_to): references
    are sequential and Message-IDs are copied easily. A refused sender opens a ticket of
    their own. A web form proves nothing about the address typed into it: it never
    threads, except through the signed case link of its acknowledgement (case_link)."""
    if case.channel == "form":
        from intake.tickets.case_link import linked_ticket

        case.ticket = linked_ticket(case, session, ctx)
        return
    msg = case.parsed
    sender = msg.from_addr
    ticket = refused = None
    match = ctx.ref_pattern.search(msg.subject or "")
    if match:
        named = session.scalar(select(Ticket).where(Ticket.ref == match.group(1)))
        if named is not None and may_write_to(ctx.config, named, sender):
            ticket = named
        elif named is not None:
            refused = named
            case.notes.append(f"{sender or 'a sender'} named ticket {named.ref} in the subject but may not write to it")
    ids = [*msg.in_reply_to, *reversed(msg.references)][:_MAX_REFERENCES]
    if ticket is None and ids:
        # only among the tickets this sender may write to: a Message-ID someone stored
        # on a ticket of their own captures nobody else's follow-ups
        ticket = _referenced_ticket(session, ctx, ids, sender)
    if ticket is None and (refused is not None or ids) and sender and _is_staff(ctx, sender):
        # staff mail naming a ticket without its reply address: the staff_reply stage
        # refuses it and tells them (it must not open a customer ticket)
        ticket = refused or (_referenced_ticket(session, ctx, ids, None) if ids else None)
    case.ticket = ticket


# In-Reply-To/References looked up per message: more ids than this is no reply
_MAX_REFERENCES = 50
# the newest of a message's References repeated in our acknowledgement's (RFC 5322 allows trimming)
_MAX_ECHOED_REFERENCES = 20


def _referenced_ticket(session: Session, ctx: Context, ids: list[str], sender: str | None) -> Ticket | None:
    """The ticket of the newest message with one of these ids, among the tickets `sender`
    may write to (tickets.may_write_to, as SQL); sender None: among all."""
    query = (
        select(Message.ticket_id)
        .join(Ticket, Message.ticket_id == Ticket.id)
        .join(Customer, Ticket.customer_id == Customer.id)
        .where(Message.message_id.in_(ids))
        .order_by(Message.id.desc())
        .limit(1)
    )
    if sender is not None:
        if not sender:
            return None
        rules = ctx.config.tickets
        customers = [sender, *(customer for customer, listed in rules.customer_addresses.items() if sender in listed)]
        allowed: ColumnElement[bool] = Customer.email.in_(customers)
        domain = sender.rpartition("@")[2]
        if domain in rules.colleague_domains:
            allowed = allowed | Customer.email.endswith("@" + domain, autoescape=True)
        query = query.where(allowed)
    found = session.scalar(query)
    return session.get(Ticket, found) if found is not None else None


def _is_staff(ctx: Context, sender: str) -> bool:
    from intake.staffmail.relay import member_by_address

    return member_by_address(ctx, sender) is not None


def ignore_autoreply(case: Case, session: Session, ctx: Context) -> None:
    """An auto-reply is stored (on its ticket when it threads) and answered by nobody."""
    if not case.autoreply:
        return
    case.message = write_inbound(case, session, ctx, case.ticket, kind="autoreply")
    if case.ticket is not None:
        log_event(session, case.ticket, "system", "autoreply_received", at=ctx.now(), reason=case.autoreply)
    raise Stop("autoreply_ignored", case.autoreply, case.ticket.ref if case.ticket else None)


def classify(case: Case, session: Session, ctx: Context) -> None:
    """Type and urgency of a new case: the keyword rules' verdict, reached in prepare
    before the transaction; a form may name the type."""
    if case.ticket is not None:
        return
    if case.classification is None:  # not prepared, or classifying failed there
        case.classification = _classified(case, ctx)
    chosen = case.form.get("type")
    if chosen in TYPES and chosen != case.classification.type:
        case.notes.append(f"type {chosen!r} chosen by the customer on the form over {case.classification.type!r}")
        case.classification = replace(case.classification, type=chosen, departments=ctx.departments_for(chosen, case.classification.departments))


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

    current = holder(session, case.parsed.from_addr, case.department) if case.parsed.from_addr else None
    # each strategy reads only what it needs: the last assignee, or the open counts
    last = None
    if staff.strategy == "round_robin":
        last = session.scalar(
            select(Ticket.assignee).where(Ticket.department == case.department, Ticket.assignee.is_not(None)).order_by(Ticket.id.desc()).limit(1)
        )
    member = choose_assignee(
        staff,
        case.department,
        open_counts=lambda people: open_counts(session, people),
        now=ctx.now(),
        current_holder=current,
        last_assigned=last,
        urgent=bool(case.classification.flagged),
    )
    case.assignee = member.id if member else None


def store(case: Case, session: Session, ctx: Context) -> None:
    """Append to the threaded ticket (reopening a finished one) or open a new ticket."""
    msg = case.parsed
    if case.ticket is not None:
        ticket = case.ticket
        case.message = write_inbound(case, session, ctx, ticket, kind="customer")
        update_row(session, ticket, updated_at=ctx.now())
        log_event(
            session,
            ticket,
            f"customer:{msg.from_addr or case.form.get('phone', '')}",
            "message",
            at=ctx.now(),
            message_id=msg.message_id,
            subject=msg.subject,
        )
        if ticket.status in ("resolved", "closed"):
            set_status(session, ticket, "in_progress", "system", reason="the customer wrote again", now=ctx.now())
            case.reopened = True
        return
    customer = find_or_create_customer(
        session,
        email=msg.from_addr,
        phone=case.form.get("phone", ""),
        name=msg.from_name or case.form.get("name", ""),
        company=case.form.get("company", ""),
        language=msg.language,
        learn=case.channel != "form",  # a form proves nothing about the address typed into it
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
    insert_ticket(session, ticket)
    # the relationship set as loaded: setting it would make the customer dirty (its
    # `tickets` backref) and cost a flush of both at the next savepoint
    set_committed_value(ticket, "customer", customer)
    case.ticket, case.opened = ticket, True
    case.message = write_inbound(case, session, ctx, ticket, kind="customer")
    actor = f"customer:{msg.from_addr or case.form.get('phone', '')}"
    log_event(session, ticket, actor, "opened", at=now, channel=ticket.channel, source=case.ref.source, subject=msg.subject)
    log_event(
        session,
        ticket,
        "system",
        "classified",
        at=now,
        type=c.type,
        urgency=c.urgency,
        flagged=ticket.flagged,
        why=c.explain("en").splitlines(),
        notes=case.notes,
    )
    if ticket.department or ticket.assignee:
        log_event(session, ticket, "system", "assigned", at=now, department=ticket.department, assignee=ticket.assignee)


ACK_WINDOW = timedelta(hours=1)  # limits.acks_per_sender_per_hour
_ACKS_TO = (
    select(_OUTBOX.c.rcpt_to, func.count()).where(_OUTBOX.c.kind == "ack", _OUTBOX.c.created_at >= bindparam("since")).group_by(_OUTBOX.c.rcpt_to)
)
_RECENT_ACKS = Prepared(  # asked as _SAME_EMAIL is (no GroupLookups): the mail waiting is counted by acknowledge
    select(func.count())
    .select_from(_OUTBOX)
    .where(_OUTBOX.c.kind == "ack", _OUTBOX.c.rcpt_to == bindparam("to"), _OUTBOX.c.created_at >= bindparam("since")),
    sees_waiting=False,
)
# a form case is acknowledged as it opens: the last hour's form tickets (on the
# created_at index), not a scan of the whole outbox
_RECENT_FORM_ACKS = (
    select(func.count())
    .select_from(_TICKETS.join(_OUTBOX, _OUTBOX.c.ticket_id == _TICKETS.c.id))
    .where(_TICKETS.c.created_at >= bindparam("since"), _TICKETS.c.channel == "form", _OUTBOX.c.kind == "ack")
)


def acknowledge(case: Case, session: Session, ctx: Context) -> None:
    """A new ticket's customer gets its reference at once: rendered now, queued in
    the outbox, sent by the mailer. Capped per sender per hour against loops. A form's
    address was typed by anyone: its acknowledgement echoes nothing typed into the
    form (a spam relay otherwise), and all form acknowledgements together are capped
    per hour (limits.form_acks_per_hour) besides the per-address and per-IP limits."""
    if not case.opened:
        return
    ticket, msg = case.ticket, case.parsed
    if not msg.from_addr:
        log_event(session, ticket, "system", "ack_skipped", at=ctx.now(), reason="no email address (phone only)")
        return
    from intake.inbound.form import plain_address

    if not plain_address(msg.from_addr):  # it would go into our To header and RCPT as it is
        log_event(session, ticket, "system", "ack_skipped", at=ctx.now(), reason="the sender's address is not a plain address we can answer")
        return
    limits, since = ctx.config.limits, ctx.now() - ACK_WINDOW
    recent = case.group.acks_to(msg.from_addr) if case.group is not None else None
    if recent is None:
        recent = _RECENT_ACKS.scalar(session, {"to": msg.from_addr, "since": since})
        recent += sum(1 for row in waiting(session, _OUTBOX) if row["kind"] == "ack" and row["rcpt_to"] == msg.from_addr)  # queued, not written
    if recent >= limits.acks_per_sender_per_hour:
        log_event(
            session,
            ticket,
            "system",
            "ack_skipped",
            at=ctx.now(),
            reason=f"{recent} acknowledgements to {msg.from_addr} in the last hour (limit {limits.acks_per_sender_per_hour})",
        )
        return
    from_form = case.channel == "form"
    if from_form:
        recent = session.execute(_RECENT_FORM_ACKS, {"since": since}).scalar_one()  # a count: always one row
        if recent >= limits.form_acks_per_hour:
            log_event(
                session,
                ticket,
                "system",
                "ack_skipped",
                at=ctx.now(),
                reason=f"{recent} acknowledgements of web forms in the last hour (limit {limits.form_acks_per_hour})",
            )
            return
    lang = msg.language if msg.language in ("zh", "en") else ctx.config.ack.default_language
    hours = ctx.config.ack.response_hours[ticket.urgency]
    due_local = ticket.due_at.astimezone(ZoneInfo(ctx.config.tickets.timezone)).strftime("%Y-%m-%d %H:%M")
    case_link = ""
    if from_form:
        from intake.tickets.case_link import link

        case_link = link(ctx.config, ticket.ref, ctx.now().date())
    mail = ctx.templates.mail(
        "ack",
        lang,
        ticket=ticket,
        customer=ticket.customer,
        support=ctx.config.support,
        response_hours=hours,
        due_local=due_local,
        from_form=from_form,
        case_link=case_link,
        # the name this mail gives, not the record's: a record may have been
        # made by a form post, whose typed name proves nothing
        greeting_name="" if from_form else msg.from_name,
    )
    queue_mail(
        session,
        ctx,
        ticket,
        kind="ack",
        mail=mail,
        to_addr=msg.from_addr,
        to_name="" if from_form else msg.from_name,
        in_reply_to=msg.message_id,
        references=msg.references[-_MAX_ECHOED_REFERENCES:],
        auto_submitted="auto-replied",
        to_customer=True,
    )
    case.acknowledged = True
    if case.group is not None:
        case.group.queued[msg.from_addr] += 1


def to_archive(case: Case, session: Session, ctx: Context) -> None:
    """The case PDF is (re)written off the acknowledgement path: a job row here, the
    archive worker renders it. A customer's new message is a significant change."""
    if ctx.config.archive.enabled and case.ticket is not None and (case.opened or case.message is not None) and not case.reopened:
        queue_archive(session, case.ticket, "opened" if case.opened else "changed", ctx.now())
