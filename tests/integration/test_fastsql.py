"""intake.store.fastsql: hot statements on the driver's cursor store and read exactly what
SQLAlchemy's own execution would, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from intake.store.db import transaction
from intake.store.fastsql import Prepared, insert_returning_id, insert_rows
from intake.store.models import Customer, Event, Message, OutboxMail, SourceItem, Ticket

AT = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))


def _ticket(session) -> int:
    customer_id = insert_returning_id(session, Customer.__table__, {"number": "C000001", "email": "li@example.cn", "name": "李伟"})
    return insert_returning_id(
        session,
        Ticket.__table__,
        {
            "ref": "261123-0001",
            "customer_id": customer_id,
            "subject": "打印机坏了",
            "channel": "email",
            "type": "fault",
            "urgency": "high",
            "status": "new",
            "flagged": True,
            "classification": {"why": ["关键词: 坏了"]},
            "created_at": AT,
            "updated_at": AT.astimezone(BEIJING),
        },
    )


def test_rows_written_on_the_cursor_read_back_through_the_orm_as_written(ctx):
    with transaction(ctx.sessions) as session:
        ticket_id = _ticket(session)
        insert_rows(
            session,
            Event.__table__,
            [
                {"ticket_id": ticket_id, "actor": "system", "kind": "opened", "detail": {"subject": "打印机坏了", "n": [1, 2]}, "at": AT},
                {"ticket_id": ticket_id, "actor": "李伟", "kind": "message", "detail": {}, "at": AT + timedelta(seconds=1)},
            ],
        )
        insert_rows(
            session,
            Message.__table__,
            [
                {
                    "ticket_id": ticket_id,
                    "direction": "in",
                    "channel": "email",
                    "kind": "customer",
                    "to_addrs": ["support@example.com"],
                    "subject": "打印机坏了",
                    "text": "你好",
                    "raw": b"\x00\xff raw bytes",
                    "received_at": AT,
                    "defects": ["x"],
                }
            ],
        )
    with ctx.sessions() as session:
        ticket = session.get(Ticket, ticket_id)
        assert (ticket.ref, ticket.flagged, ticket.classification) == ("261123-0001", True, {"why": ["关键词: 坏了"]})
        assert ticket.created_at == AT and ticket.updated_at == AT and ticket.created_at.tzinfo is not None
        assert ticket.customer.name == "李伟" and ticket.customer.language == "zh"  # a default filled in
        assert ticket.customer.created_at is not None  # a callable default (utcnow) filled in
        events = session.scalars(select(Event).order_by(Event.id)).all()
        assert [(e.actor, e.kind, e.detail, e.at) for e in events] == [
            ("system", "opened", {"subject": "打印机坏了", "n": [1, 2]}, AT),
            ("李伟", "message", {}, AT + timedelta(seconds=1)),
        ]
        [message] = session.scalars(select(Message)).all()
        assert (message.raw, message.to_addrs, message.defects, message.html, message.received_at) == (
            b"\x00\xff raw bytes",
            ["support@example.com"],
            ["x"],
            None,
            AT,
        )
        assert message.from_addr == "" and message.source == ""  # scalar defaults filled in


def test_a_prepared_select_gives_what_the_session_gives(ctx):
    outbox = OutboxMail.__table__
    query = (
        select(outbox.c.id, outbox.c.rcpt_to, outbox.c.created_at)
        .where(outbox.c.kind == "ack", outbox.c.created_at >= bindparam("since"))
        .order_by(outbox.c.id)
        .limit(2)
    )
    with transaction(ctx.sessions) as session:
        for i in range(3):
            session.execute(
                insert(outbox),
                {
                    "kind": "ack",
                    "message_id": f"<a{i}@x>",
                    "mail_from": "s@x",
                    "rcpt_to": f"c{i}@x",
                    "raw": b"r",
                    "status": "pending",
                    "attempts": 0,
                    "created_at": AT + timedelta(minutes=i),
                },
            )
    prepared = Prepared(query)
    with ctx.sessions() as session:
        expected = [tuple(row) for row in session.execute(query, {"since": AT + timedelta(minutes=1)})]
        got = prepared.all(session, {"since": AT + timedelta(minutes=1)})
        assert [tuple(row) for row in got] == expected and len(got) == 2
        assert got[0].rcpt_to == "c1@x" and got[0].created_at == AT + timedelta(minutes=1)
        assert prepared.first(session, {"since": AT + timedelta(hours=1)}) is None
        first_id = session.execute(select(outbox.c.id).order_by(outbox.c.id)).scalars().first()
        assert prepared.scalar(session, {"since": AT}) == first_id


def test_a_driver_error_is_sqlalchemys_own_and_the_session_rolls_back_cleanly(ctx):
    with transaction(ctx.sessions) as session:
        insert_returning_id(session, Customer.__table__, {"number": "C000001", "email": "li@example.cn"})
    session = ctx.sessions()
    session.begin()
    with pytest.raises(IntegrityError):
        insert_returning_id(session, Customer.__table__, {"number": "C000002", "email": "li@example.cn"})
    session.rollback()
    with session.begin():  # the connection is usable again
        insert_returning_id(session, Customer.__table__, {"number": "C000002", "email": "wang@example.cn"})
    session.close()
    with ctx.sessions() as check:
        assert sorted(check.scalars(select(Customer.number))) == ["C000001", "C000002"]


def test_cursor_statements_belong_to_the_session_transaction_and_its_savepoints(ctx):
    row = {"source": "s", "outcome": "opened", "at": AT}
    with transaction(ctx.sessions) as session:
        insert_rows(session, SourceItem.__table__, [{**row, "key": "before"}])  # the transaction's connection is in use
        for attempt in (1, 2):  # a savepoint in which only cursor statements run is still a savepoint
            try:
                with session.begin_nested():
                    insert_rows(session, SourceItem.__table__, [{**row, "key": f"in-savepoint-{attempt}"}])
                    raise RuntimeError("the item fails")
            except RuntimeError:
                pass
        with session.begin_nested():
            insert_rows(session, SourceItem.__table__, [{**row, "key": "released"}])
        insert_rows(session, SourceItem.__table__, [{**row, "key": "kept"}])
    session = ctx.sessions()
    session.begin()
    insert_rows(session, SourceItem.__table__, [{**row, "key": "rolled-back"}])
    session.rollback()
    session.close()
    with ctx.sessions() as check:
        assert list(check.scalars(select(SourceItem.key).order_by(SourceItem.id))) == ["before", "released", "kept"]


def test_an_in_of_a_python_list_is_refused_at_first_use(ctx):
    prepared = Prepared(select(Ticket.id).where(Ticket.status.in_(["new", "closed"])))
    with ctx.sessions() as session, pytest.raises(ValueError, match="expanding"):
        prepared.all(session, {})
