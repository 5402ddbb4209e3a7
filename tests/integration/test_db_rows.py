"""intake.store.fastsql.add_row: append-only rows wait in the session and are written
before the commit, or before any statement on their table: no read misses them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text

from intake.store.db import transaction
from intake.store.fastsql import add_row, insert_new, write_rows
from intake.store.models import Event, Message, SourceItem, Ticket
from intake.tickets.records import log_event

AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def waiting(session) -> set[str]:
    """The tables with rows waiting in the session."""
    return {table.name for table, rows in session.info.get("intake_rows", {}).items() if rows}


def _ticket(session):
    from intake.store.models import Customer

    customer = insert_new(session, Customer(number="C000001", email="li@example.cn", language="zh"))
    return insert_new(
        session,
        Ticket(
            ref="261123-0001",
            customer=customer,
            customer_id=customer.id,
            channel="email",
            type="inquiry",
            urgency="normal",
            created_at=AT,
            updated_at=AT,
        ),
    )


def test_queued_rows_are_written_at_commit_in_order_whatever_their_columns(ctx):
    with transaction(ctx.sessions) as session:
        ticket = _ticket(session)
        log_event(session, ticket, "system", "first", at=AT)
        add_row(session, Message.__table__, {"ticket_id": ticket.id, "direction": "in", "channel": "email", "fingerprint": "f1", "raw": b"1"})
        add_row(session, Message.__table__, {"ticket_id": ticket.id, "direction": "out", "channel": "email", "raw": b"2"})
        log_event(session, ticket, "system", "second", at=AT, n=2)
        assert waiting(session) == {"events", "messages"}  # nothing has read their tables
    with ctx.sessions() as session:
        assert [e.kind for e in session.scalars(select(Event).order_by(Event.id))] == ["first", "second"]
        assert [(m.direction, m.fingerprint, m.raw) for m in session.scalars(select(Message).order_by(Message.id))] == [
            ("in", "f1", b"1"),
            ("out", None, b"2"),
        ]


def test_queued_rows_are_dropped_with_a_rollback_and_not_written_later(ctx):
    session = ctx.sessions()
    with session.begin():
        _ticket(session)
    session.begin()
    add_row(session, SourceItem.__table__, {"source": "s", "key": "k1", "outcome": "opened", "at": AT})
    session.rollback()
    with session.begin():
        add_row(session, SourceItem.__table__, {"source": "s", "key": "k2", "outcome": "opened", "at": AT})
    session.close()
    with ctx.sessions() as check:
        assert list(check.scalars(select(SourceItem.key))) == ["k2"]


def test_write_rows_inside_a_savepoint_goes_with_its_rollback(ctx):
    with transaction(ctx.sessions) as session:
        try:
            with session.begin_nested():
                add_row(session, SourceItem.__table__, {"source": "s", "key": "gone", "outcome": "opened", "at": AT})
                write_rows(session)
                raise RuntimeError("the item fails after its rows were written")
        except RuntimeError:
            pass
        add_row(session, SourceItem.__table__, {"source": "s", "key": "kept", "outcome": "opened", "at": AT})
    with ctx.sessions() as check:
        assert list(check.scalars(select(SourceItem.key))) == ["kept"]


def test_a_message_with_attachments_keeps_its_place_in_the_thread(ctx):
    """store_message writes a message with files at once (it needs the id for them):
    the rows queued before it are written first, so ids keep the order of the thread."""
    from intake.store.models import Attachment
    from intake.tickets.records import store_message

    with transaction(ctx.sessions) as session:
        ticket = _ticket(session)
        store_message(session, {"ticket_id": ticket.id, "direction": "in", "channel": "email", "kind": "staff", "raw": b"1"})
        store_message(
            session,
            {"ticket_id": ticket.id, "direction": "out", "channel": "email", "kind": "staff_reply", "raw": b"2"},
            [{"filename": "维修单.pdf", "content_type": "application/pdf", "size": 3, "truncated": False, "data": b"pdf"}],
        )
        store_message(session, {"ticket_id": ticket.id, "direction": "in", "channel": "email", "kind": "customer", "raw": b"3"})
    with ctx.sessions() as session:
        thread = list(session.scalars(select(Message).order_by(Message.id)))
        assert [m.kind for m in thread] == ["staff", "staff_reply", "customer"]
        [attachment] = session.scalars(select(Attachment)).all()
        assert attachment.message_id == thread[1].id and attachment.filename == "维修单.pdf"


def test_a_read_of_a_table_with_rows_waiting_sees_them_first(ctx):
    """A group of messages writes its appended rows at the commit; an item that looks up
    what an earlier item of the group wrote (the same mail twice, a reply to it, a
    sender's earlier acknowledgements) must find it, through a prepared statement or the
    session alike."""
    from intake.pipeline.runner import _PRIOR_TAKE

    with transaction(ctx.sessions) as session:
        ticket = _ticket(session)
        add_row(session, SourceItem.__table__, {"source": "s", "key": "k1", "outcome": "opened", "ticket_ref": ticket.ref, "at": AT})
        assert _PRIOR_TAKE.first(session, {"source": "s", "key": "k1"}).ticket_ref == ticket.ref
        log_event(session, ticket, "system", "first", at=AT)
        assert session.execute(text("select count(*) from events")).scalar() == 1
        log_event(session, ticket, "system", "second", at=AT)
        assert [e.kind for e in session.scalars(select(Event).order_by(Event.id))] == ["first", "second"]
        assert waiting(session) == set()


def test_rows_waiting_for_other_tables_stay_waiting(ctx):
    from intake.pipeline.runner import _PRIOR_TAKE

    with transaction(ctx.sessions) as session:
        ticket = _ticket(session)
        log_event(session, ticket, "system", "first", at=AT)
        assert _PRIOR_TAKE.first(session, {"source": "s", "key": "k1"}) is None  # reads source_items only
        assert waiting(session) == {"events"}
    with ctx.sessions() as session:
        assert [e.kind for e in session.scalars(select(Event))] == ["first"]


def test_any_query_through_the_session_writes_every_waiting_row_first(ctx):
    """An ORM statement may reach tables its text does not name (a join along a
    relationship, an eager load): a query through the session writes all that waits."""
    with transaction(ctx.sessions) as session:
        ticket = _ticket(session)
        log_event(session, ticket, "system", "first", at=AT)
        add_row(session, SourceItem.__table__, {"source": "s", "key": "k1", "outcome": "opened", "at": AT})
        assert waiting(session) == {"events", "source_items"}
        assert session.execute(select(Ticket.ref).join(Ticket.events)).scalars().all() == [ticket.ref]
        assert waiting(session) == set()


def test_a_savepoint_rolled_back_keeps_the_rows_queued_before_it(ctx):
    """Only the outermost transaction's end drops waiting rows: a failed item's savepoint
    takes its own rows (the pipeline drops them), not those queued before it began."""
    with transaction(ctx.sessions) as session:
        ticket = _ticket(session)
        log_event(session, ticket, "system", "before", at=AT)
        try:
            with session.begin_nested():
                raise RuntimeError("the item fails")
        except RuntimeError:
            pass
        assert waiting(session) == {"events"}
    with ctx.sessions() as session:
        assert [e.kind for e in session.scalars(select(Event))] == ["before"]


def test_update_row_writes_at_once_leaves_nothing_for_the_unit_of_work_and_refuses_a_missing_row(ctx):
    """One UPDATE now, the object's values as loaded (nothing dirty), an unchanged value left
    out; an object never written (no id) or a row gone is an error, as the unit of work's
    StaleDataError was, never a silent no-op."""
    import pytest

    from intake.store.fastsql import update_row

    with transaction(ctx.sessions) as session:
        ticket = _ticket(session)
        update_row(session, ticket, status="in_progress", updated_at=AT.replace(hour=9), notes="")
        assert not session.is_modified(ticket) and ticket.status == "in_progress"
        assert session.execute(text("SELECT status, notes FROM tickets WHERE id = :id"), {"id": ticket.id}).one() == ("in_progress", "")
        update_row(session, ticket, status="in_progress")  # unchanged: nothing to write
        with pytest.raises(ValueError, match="no primary key"):
            update_row(session, Ticket(ref="261123-0002", status="new"), status="closed")
        gone = Ticket(ref=ticket.ref, status="in_progress")
        gone.id = ticket.id + 1000
        with pytest.raises(LookupError, match="no tickets row"):
            update_row(session, gone, status="closed")


def test_a_row_the_database_refuses_at_the_commit_raises_sqlalchemys_error_and_leaves_nothing(ctx):
    """On PostgreSQL every table's waiting rows go in one pipeline: the server's refusal
    of the last table's row arrives as the pipeline ends. It is raised as SQLAlchemy's
    IntegrityError all the same (the pipeline takes a group again item by item on it),
    the whole transaction rolls back, and the connection serves the next one."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    with transaction(ctx.sessions) as session:
        ticket = _ticket(session)
        add_row(session, SourceItem.__table__, {"source": "s", "key": "taken", "outcome": "opened", "at": AT})
    with pytest.raises(IntegrityError):
        with transaction(ctx.sessions) as session:
            log_event(session, session.merge(ticket), "system", "note", at=AT)
            add_row(session, Message.__table__, {"ticket_id": ticket.id, "direction": "in", "channel": "email", "kind": "customer", "raw": b"1"})
            add_row(session, SourceItem.__table__, {"source": "s", "key": "taken", "outcome": "opened", "at": AT})  # taken before
    with transaction(ctx.sessions) as session:
        add_row(session, SourceItem.__table__, {"source": "s", "key": "next", "outcome": "opened", "at": AT})
    with ctx.sessions() as check:
        assert list(check.scalars(select(SourceItem.key).order_by(SourceItem.id))) == ["taken", "next"]
        assert check.scalars(select(Event)).all() == [] and check.scalars(select(Message)).all() == []


def test_on_postgresql_the_rows_of_every_table_are_written_in_one_round_trip(ctx, monkeypatch):
    """psycopg's executemany alone opens a pipeline of its own and sends a Sync, waiting
    for the server's answer; within the one write_rows opens, each rides it: one Sync
    for all the tables."""
    import pytest
    from psycopg._pipeline_base import BasePipeline

    if not ctx.config.database.url.startswith("postgresql"):
        pytest.skip("SQLite has no round trips")
    syncs = []
    real = BasePipeline._enqueue_sync
    monkeypatch.setattr(BasePipeline, "_enqueue_sync", lambda self: syncs.append(1) or real(self))
    with transaction(ctx.sessions) as session:
        ticket = _ticket(session)
        syncs.clear()
        for n in range(3):
            log_event(session, ticket, "system", "note", at=AT, n=n)
            add_row(session, Message.__table__, {"ticket_id": ticket.id, "direction": "in", "channel": "email", "kind": "customer", "raw": b"%d" % n})
            add_row(session, SourceItem.__table__, {"source": "s", "key": f"k{n}", "outcome": "opened", "at": AT})
    assert len(syncs) == 1
    with ctx.sessions() as check:
        assert (
            len(check.scalars(select(Event)).all()) == len(check.scalars(select(Message)).all()) == len(check.scalars(select(SourceItem)).all()) == 3
        )
