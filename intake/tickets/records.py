"""Tickets and customers in the database: references, numbers, status changes, events."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, literal, select
from sqlalchemy.orm import Session

from intake.store.fastsql import (
    Prepared,
    add_row,
    insert_new,
    insert_returning_id,
    insert_rows,
    memo_if_any,
    row_id,
    transaction_memo,
    update_row,
)
from intake.store.models import Attachment, Customer, Event, Message, Ticket, utcnow
from intake.tickets.numbers import next_number
from intake.vocabulary import OPEN_STATUSES, STATUSES

REF_BODY = r"\d{6}-\d{4,}"
CUSTOMER_NUMBERS = "customer"  # the counter of customer numbers (C000042)


def new_ref(session: Session, prefix: str, tz: str, now: datetime) -> str:
    """Short, human-friendly and sortable: 261123-0007 (day in the team's time zone)."""
    counter = ref_counter(tz, now)
    return f"{prefix}{counter.removeprefix(_REFS_OF_DAY)}-{next_number(session, counter):04d}"


_REFS_OF_DAY = "t:"


def ref_counter(tz: str, now: datetime) -> str:
    """The counter of the references of `now`'s day (intake/tickets/numbers.py)."""
    return _REFS_OF_DAY + now.astimezone(ZoneInfo(tz)).strftime("%y%m%d")


def ref_pattern(prefix: str) -> re.Pattern[str]:
    """Finds a reference as we write it in subjects: [#261123-0007]."""
    return re.compile(r"\[#\s*(" + re.escape(prefix) + REF_BODY + r")\s*\]")


def clip(value: str | None, column) -> str:
    """Fit a customer-supplied value into its column: PostgreSQL refuses what is longer
    (SQLite would take it), and a 500-character display name is no reason to lose a message."""
    value = value or ""
    limit = column.property.columns[0].type.length
    return value[:limit] if limit else value


_CUSTOMERS = Customer.__table__
# An open ticket, as a prepared statement (intake/store/fastsql.py) can hold it: the statuses
# as literals, not an IN of a Python list (an expanding parameter).
IS_OPEN = Ticket.__table__.c.status.in_([literal(s) for s in OPEN_STATUSES])
_CUSTOMER_BY_EMAIL = Prepared(select(_CUSTOMERS.c.id).where(_CUSTOMERS.c.email == bindparam("email")))
_CUSTOMER_BY_PHONE = select(_CUSTOMERS.c.id).where(_CUSTOMERS.c.phone == bindparam("phone"), _CUSTOMERS.c.email.is_(None)).limit(1)


def find_or_create_customer(session: Session, *, email: str, phone: str, name: str, company: str, language: str, learn: bool = True) -> Customer:
    """The customer with this address (or phone), made when new. `learn` fills what the
    record lacks from this message; a web form proves nothing about the address typed
    into it, so it never changes a record (learn=False)."""
    known = None
    looked_up = memo_if_any(session, _CUSTOMER_IDS)  # a group's senders (look_up_customers)
    if email and looked_up is not None and email in looked_up:
        known = looked_up[email]
    elif email:
        known = _CUSTOMER_BY_EMAIL.scalar(session, {"email": email})
    elif phone:
        known = session.execute(_CUSTOMER_BY_PHONE, {"phone": phone}).scalar()
    # a new customer (most mail in a backlog) costs one plain lookup, no ORM query
    customer = session.get(Customer, known) if known is not None else None
    if customer is None:
        customer = Customer(
            number=f"C{next_number(session, CUSTOMER_NUMBERS):06d}",
            email=email or None,
            phone=clip(phone, Customer.phone) or None,
            name=clip(name, Customer.name),
            company=clip(company, Customer.company),
            language=language,
        )
        insert_new(session, customer)
        customer.new_here = True
        if email and looked_up is not None:
            looked_up[email] = customer.id
            transaction_memo(session, _HOLDERS)[customer.id] = {}  # a new customer holds no case yet
    else:
        customer.new_here = False  # created earlier in this transaction, with the ticket before this one
        if not learn:
            return customer
        # learn what we did not know; never overwrite what staff may have corrected
        update_row(  # what is known already is left out
            session,
            customer,
            name=customer.name or clip(name, Customer.name),
            company=customer.company or clip(company, Customer.company),
            phone=customer.phone or clip(phone, Customer.phone) or None,
        )
    return customer


def is_customer_address(config, ticket: Ticket, sender: str) -> bool:
    """The ticket's own customer: their address, or one listed for them in
    [tickets] customer_addresses. Only they answer its survey."""
    customer = (ticket.customer.email or "").lower()
    sender = (sender or "").lower()
    if not sender or not customer:
        return False
    return sender == customer or sender in config.tickets.customer_addresses.get(customer, ())


def may_write_to(config, ticket: Ticket, sender: str) -> bool:
    """May mail from `sender` be added to the ticket (and reopen it)? References are
    sequential and Message-IDs are copied easily, so naming a ticket proves nothing:
    its customer may, and a colleague at the customer's domain only where that domain
    is listed in [tickets] colleague_domains."""
    if is_customer_address(config, ticket, sender):
        return True
    customer, sender = (ticket.customer.email or "").lower(), (sender or "").lower()
    domain = customer.rpartition("@")[2]
    return bool(sender and domain) and domain in config.tickets.colleague_domains and sender.rpartition("@")[2] == domain


def store_message(session: Session, row: dict, attachments: Sequence[dict] = ()) -> None:
    """One message of a thread (inbound or outbound), written once and never changed.
    Without attachments it waits with the other appended rows (intake.store.fastsql.add_row);
    with them it needs its id now, and its INSERT writes the messages waiting before it
    first (any statement on a table does): ids keep the order in which the thread happened."""
    if not attachments:
        add_row(session, Message.__table__, row)
        return
    stored_id = insert_returning_id(session, Message.__table__, row)
    insert_rows(session, Attachment.__table__, [{**a, "message_id": stored_id} for a in attachments])


def log_event(session: Session, ticket: Ticket, actor: str, kind: str, *, at: datetime | None = None, **detail) -> None:
    """One entry in the ticket's event log (who, when, what). The log is only ever
    appended to: a plain insert (intake.store.fastsql.add_row), a fraction of the ORM's cost."""
    add_row(session, Event.__table__, {"ticket_id": row_id(session, ticket), "actor": actor, "kind": kind, "detail": detail, "at": at or utcnow()})


def set_status(session: Session, ticket: Ticket, status: str, actor: str, reason: str = "", *, now: datetime | None = None) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
    if status == ticket.status:
        return
    previous, now = ticket.status, now or utcnow()
    changes: dict = {"status": status, "updated_at": now}
    if status == "resolved":
        changes["resolved_at"] = now
    elif status == "closed":
        changes["closed_at"] = now
    elif previous in ("resolved", "closed"):
        changes["resolved_at"] = changes["closed_at"] = None
    _count_open(session, ticket.assignee, previous, -1)
    update_row(session, ticket, **changes)
    _count_open(session, ticket.assignee, status, 1)
    _forget_holders(session, ticket)
    log_event(session, ticket, actor, "status", at=now, old=previous, new=status, reason=reason)
    queue_archive(session, ticket, "closed" if status == "closed" else "changed", now)


def queue_archive(session: Session, ticket: Ticket, reason: str, now: datetime) -> None:
    """A new version of the case PDF, rendered by the archive worker after this
    transaction commits: when a case opens, on each significant change, at close."""
    from archive.models import (
        ArchiveJob,  # the table only: no PDF machinery on this path
    )

    add_row(
        session,
        ArchiveJob.__table__,
        {
            "ticket_id": row_id(session, ticket),
            "reason": reason,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )


# Least-open assignment counts the open tickets of a department's people for every new
# case: a count linear in them (1 ms a case on PostgreSQL with 600 open tickets a person in
# a backlog, the costliest statement of a new case: bench/imap_backlog.md). So a
# transaction (a group of up to ten items taken at once) counts each person once, and the
# writes below that open a ticket, change its status or its assignee keep those counts
# true. The counts live in a transaction memo (intake/store/fastsql.py), forgotten whenever
# a transaction or savepoint begins or ends: an item rolled back in its savepoint leaves
# nothing in them (then a person is counted once an item, as before).
_OPEN_COUNTS = "open_counts"


def open_counts(session: Session, staff_ids: list[str]) -> dict[str, int]:
    """Open tickets per assignee of `staff_ids`, for least-open assignment: those not yet
    counted in this transaction in one statement on the (assignee, status) index."""
    known: dict[str, int] = transaction_memo(session, _OPEN_COUNTS)
    missing = [person for person in staff_ids if person not in known]
    if missing:
        counted = dict(_open_of(len(missing)).all(session, {f"id{i}": v for i, v in enumerate(missing)}))
        known.update((person, counted.get(person, 0)) for person in missing)
    return {person: known[person] for person in staff_ids}


def _count_open(session: Session, assignee: str | None, status: str, change: int) -> None:
    """One open ticket more (`change` 1) or fewer (-1) for `assignee`, in the counts this
    transaction holds; a person not counted yet is counted from the database as written."""
    known = memo_if_any(session, _OPEN_COUNTS)
    if known and assignee in known and status in OPEN_STATUSES:
        known[assignee] += change


def insert_ticket(session: Session, ticket: Ticket) -> None:
    """A new ticket, written at once (its id is needed by everything after)."""
    insert_new(session, ticket)
    _count_open(session, ticket.assignee, ticket.status, 1)
    holders = memo_if_any(session, _HOLDERS)
    if holders is not None and ticket.customer_id in holders and ticket.assignee and ticket.status in OPEN_STATUSES:
        holders[ticket.customer_id][ticket.department] = ticket.assignee  # the newest open case is the holder's


def set_assignee(session: Session, ticket: Ticket, assignee: str | None) -> None:
    _count_open(session, ticket.assignee, ticket.status, -1)
    update_row(session, ticket, assignee=assignee)
    _count_open(session, assignee, ticket.status, 1)
    _forget_holders(session, ticket)


# Route gives a customer's new case to whoever holds one of their open cases in the
# department, and store looks the customer up by address: two statements a new case. A
# group taken at once (intake/pipeline/stages.py look_up_group) asks both for all its
# senders in one statement (bench/imap_backlog.md: 7.4 -> 5.5 statements a message on
# PostgreSQL). What the group then writes keeps these memos true: a customer it creates
# (find_or_create_customer), a case it opens (insert_ticket); a status or assignee it
# changes makes the holder of that customer unknown again, asked of the database.
_CUSTOMER_IDS = "customer_ids"  # email -> the customer's id, None: no such customer
_HOLDERS = "holders"  # customer id -> {department: assignee of their newest open assigned case}

_HOLDER = Prepared(  # who holds this customer's open case in the department
    select(Ticket.__table__.c.assignee)
    .select_from(Ticket.__table__.join(_CUSTOMERS, Ticket.__table__.c.customer_id == _CUSTOMERS.c.id))
    .where(Ticket.__table__.c.department == bindparam("department"), Ticket.__table__.c.assignee.is_not(None))
    .where(IS_OPEN)
    .where(_CUSTOMERS.c.email == bindparam("email"))
    .order_by(Ticket.__table__.c.id.desc())
    .limit(1)
)


def look_up_customers(session: Session, emails: Collection[str]) -> None:
    """The customers with these addresses and who holds each one's open cases, in one
    statement, for the rest of the transaction (holder, find_or_create_customer)."""
    tickets = Ticket.__table__
    found = session.execute(
        select(_CUSTOMERS.c.email, _CUSTOMERS.c.id, tickets.c.department, tickets.c.assignee)
        .select_from(
            _CUSTOMERS.outerjoin(
                tickets,
                (tickets.c.customer_id == _CUSTOMERS.c.id) & tickets.c.assignee.is_not(None) & IS_OPEN,
            )
        )
        .where(_CUSTOMERS.c.email.in_(emails))
        .order_by(tickets.c.id.desc())
    )
    ids: dict[str, int | None] = transaction_memo(session, _CUSTOMER_IDS)
    holders: dict[int, dict[str, str]] = transaction_memo(session, _HOLDERS)
    ids.update(dict.fromkeys(emails))
    found_now: dict[int, dict[str, str]] = {}  # what was known of these customers is replaced
    for email, customer_id, department, assignee in found:
        ids[email] = customer_id
        held = found_now.setdefault(customer_id, {})
        if assignee is not None:
            held.setdefault(department, assignee)  # the newest case first
    holders.update(found_now)


def holder(session: Session, email: str, department: str) -> str | None:
    """Who holds an open case of the customer with this address in `department`."""
    ids, holders = memo_if_any(session, _CUSTOMER_IDS), memo_if_any(session, _HOLDERS)
    if ids is not None and holders is not None and email in ids:
        customer_id = ids[email]
        if customer_id is None:
            return None  # no such customer
        if customer_id in holders:
            return holders[customer_id].get(department)
    return _HOLDER.scalar(session, {"email": email, "department": department})


def _forget_holders(session: Session, ticket: Ticket) -> None:
    holders = memo_if_any(session, _HOLDERS)
    if holders is not None:
        holders.pop(ticket.customer_id, None)


_OPEN_OF: dict[int, Prepared] = {}


def _open_of(people: int) -> Prepared:
    statement = _OPEN_OF.get(people)
    if statement is None:
        tickets = Ticket.__table__
        statement = _OPEN_OF[people] = Prepared(
            select(tickets.c.assignee, func.count())
            .where(IS_OPEN, tickets.c.assignee.in_([bindparam(f"id{i}") for i in range(people)]))
            .group_by(tickets.c.assignee)
        )
    return statement
