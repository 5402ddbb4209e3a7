"""Ticket references and customer numbers have no gaps (intake/tickets/numbers.py): a
group taken at once reserves the numbers it may need in one statement, draws them item
by item and gives back what it did not use before its commit; a group rolled back takes
its numbers back with it. On a real database, SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from intake.pipeline.runner import Pipeline
from intake.store.models import Customer, Ticket
from intake.tickets.numbers import next_number
from intake.tickets.records import ref_counter
from tests.integration.conftest import Clock
from tests.integration.test_pipeline import mail, ref
from tests.integration.test_pipeline_batch import commits, insert_stage, listening
from tests.integration.test_staffmail_kit import MONDAY_10

DAY = "261123"  # MONDAY_10 in the team's time zone


def numbers(ctx) -> tuple[list[str], list[str]]:
    """Every ticket reference and customer number, in the order they were made."""
    with ctx.sessions() as s:
        return list(s.scalars(select(Ticket.ref).order_by(Ticket.id))), list(s.scalars(select(Customer.number).order_by(Customer.id)))


def refs(*numbers: int) -> list[str]:
    return [f"{DAY}-{n:04d}" for n in numbers]


def customer_numbers(*numbers: int) -> list[str]:
    return [f"C{n:06d}" for n in numbers]


@contextmanager
def counter_updates(ctx, monkeypatch):
    """The UPDATEs of the counters table, however they run (session or driver's cursor)."""
    from intake.store import fastsql

    seen: list[str] = []
    run = fastsql.Prepared._run

    def counted(self, session, values, many):
        compiled, cursor = run(self, session, values, many)
        if compiled.sql.startswith("UPDATE counters"):
            seen.append(compiled.sql)
        return compiled, cursor

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("UPDATE counters"):
            seen.append(statement)

    monkeypatch.setattr(fastsql.Prepared, "_run", counted)
    with listening(ctx, "before_cursor_execute", on_execute):
        yield seen


def test_a_group_draws_its_numbers_from_one_reservation_and_gives_back_the_rest(make_ctx, db_url, monkeypatch):
    ctx = make_ctx(db_url, Clock(MONDAY_10))
    pipeline = Pipeline(ctx)
    # a fresh database: no counter has its row yet, so nothing is reserved
    first = mail("第一封", subject="一", sender="a@kehu.example.cn")
    pipeline.take_many([(first, ref()), (mail("第二封", subject="二", sender="b@kehu.example.cn"), ref())])
    assert numbers(ctx) == (refs(1, 2), customer_numbers(1, 2))

    group = [
        (mail("新客户", subject="三", sender="c@kehu.example.cn"), ref()),
        (first, ref()),  # a copy of a message taken before: opens nothing
        (mail("老客户的新问题", subject="四", sender="a@kehu.example.cn"), ref()),  # a known customer: no new number
        (mail("又一个新客户", subject="五", sender="d@kehu.example.cn"), ref()),
    ]
    with counter_updates(ctx, monkeypatch) as updates, commits(ctx) as committed:
        results = pipeline.take_many(group)
    assert [r.outcome for r in results] == ["opened", "duplicate", "opened", "opened"]
    assert len(committed) == 1
    # one reservation for both counters (4 references, 2 customer numbers), and the one
    # reference not used given back; one by one it would have been five statements
    assert len(updates) == 2
    assert numbers(ctx) == (refs(1, 2, 3, 4, 5), customer_numbers(1, 2, 3, 4))
    assert [r.ticket for r in results if r.outcome == "opened"] == refs(3, 4, 5)

    # the next number continues where the group stopped, alone as in a group
    pipeline.take(mail("单独一封", subject="六", sender="e@kehu.example.cn"), ref())
    pipeline.take_many([(mail("再一组", subject="七", sender="f@kehu.example.cn"), ref())])
    assert numbers(ctx) == (refs(1, 2, 3, 4, 5, 6, 7), customer_numbers(1, 2, 3, 4, 5, 6))


def test_a_group_rolled_back_takes_its_reserved_numbers_back(make_ctx, db_url, monkeypatch):
    """The group fails on its third item after that item drew its numbers: everything
    rolls back, the items are taken again one by one, and the numbers follow on without a gap."""
    ctx = make_ctx(db_url, Clock(MONDAY_10))
    pipeline = Pipeline(ctx)
    pipeline.take(mail("先来一封", subject="零", sender="z@kehu.example.cn"), ref())
    failed = []

    def fails_once_on_the_third(case, session, ctx):
        if case.parsed.subject == "三" and not failed:
            failed.append(1)
            raise IntegrityError("INSERT INTO source_items ...", {}, Exception("UNIQUE constraint failed (simulated)"))

    insert_stage(monkeypatch, fails_once_on_the_third)
    group = [(mail(f"第{n}封", subject=n, sender=f"{n}@kehu.example.cn"), ref()) for n in ("一", "二", "三", "四")]
    results = pipeline.take_many(group)
    assert failed and [r.outcome for r in results] == ["opened"] * 4
    assert numbers(ctx) == (refs(1, 2, 3, 4, 5), customer_numbers(1, 2, 3, 4, 5))
    assert [r.ticket for r in results] == refs(2, 3, 4, 5)


def test_a_savepoint_while_numbers_are_reserved_is_refused_and_the_group_taken_again(make_ctx, db_url, monkeypatch):
    """A number drawn in a savepoint rolled back would be neither used nor given back: a
    savepoint may not begin while numbers are reserved. The group fails loudly, and is
    taken again with a savepoint an item, where nothing is reserved."""
    ctx = make_ctx(db_url, Clock(MONDAY_10))
    pipeline = Pipeline(ctx)
    pipeline.take(mail("先来一封", subject="零", sender="z@kehu.example.cn"), ref())

    class Undone(Exception):
        pass

    def draws_a_number_in_a_savepoint_rolled_back(case, session, ctx):
        if case.parsed.subject == "二":
            try:
                with session.begin_nested():
                    next_number(session, ref_counter(ctx.config.tickets.timezone, ctx.now()))
                    raise Undone
            except Undone:
                pass

    insert_stage(monkeypatch, draws_a_number_in_a_savepoint_rolled_back)
    group = [(mail(f"第{n}封", subject=n, sender=f"{n}@kehu.example.cn"), ref()) for n in ("一", "二", "三")]
    results = pipeline.take_many(group)
    assert [r.outcome for r in results] == ["opened"] * 3
    assert numbers(ctx) == (refs(1, 2, 3, 4), customer_numbers(1, 2, 3, 4))


def test_a_group_across_midnight_gives_back_the_old_days_numbers(make_ctx, db_url, monkeypatch):
    """The group reserved references of the day it began; its items after midnight in the
    team's time zone number the new day from 0001, and the old day's unused references go
    back: a late ticket of the old day continues its count."""
    before_midnight = datetime(2026, 11, 23, 15, 59, 58, tzinfo=UTC)  # 23:59:58 in Shanghai
    clock = Clock(before_midnight)
    ctx = make_ctx(db_url, clock)
    assert ctx.config.tickets.timezone == "Asia/Shanghai"
    pipeline = Pipeline(ctx)
    pipeline.take(mail("先来一封", subject="零", sender="z@kehu.example.cn"), ref())

    def midnight_after_the_first(case, session, ctx):
        if case.parsed.subject == "一":
            clock.advance(seconds=5)

    insert_stage(monkeypatch, midnight_after_the_first)
    group = [(mail(f"第{n}封", subject=n, sender=f"{n}@kehu.example.cn"), ref()) for n in ("一", "二", "三")]
    with commits(ctx) as committed:
        results = pipeline.take_many(group)
    assert len(committed) == 1
    assert [r.ticket for r in results] == ["261123-0002", "261124-0001", "261124-0002"]
    clock.at = before_midnight  # a late one of the old day (a clock set back, say)
    assert pipeline.take(mail("迟到的一封", subject="迟", sender="late@kehu.example.cn"), ref()).ticket == "261123-0003"
