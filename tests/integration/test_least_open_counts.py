"""Least-open assignment counts a person's open tickets once a transaction
(intake/tickets/records.py open_counts), and the writes of that transaction keep the
counts true: a group of new cases is spread as if taken one by one, and a change of
status or assignee is counted at once. On a real database, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from intake.pipeline.runner import Pipeline
from intake.store.models import Ticket
from intake.tickets import records
from intake.tickets.records import open_counts, set_assignee, set_status
from intake.vocabulary import OPEN_STATUSES
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import MONDAY_10, complaint, ref, staff_config

# 13:00 in Shanghai: two of after-sales are on shift (config/staff.toml lists sun.yue
# first, so a tie goes to her)
MONDAY_13 = MONDAY_10 + timedelta(hours=3)
PEOPLE = ["sun.yue", "li.na"]


def counted_in_the_database(session) -> dict[str, int]:
    rows = session.execute(
        select(Ticket.assignee, func.count()).where(Ticket.status.in_(OPEN_STATUSES), Ticket.assignee.in_(PEOPLE)).group_by(Ticket.assignee)
    )
    return {person: 0 for person in PEOPLE} | dict(rows.all())


def strangers(n: int, first: int = 0) -> list:
    """New customers' complaints (a known customer's would go to whoever holds their case)."""
    return [(complaint(sender=f"客户{i} <kehu{i}@kehu.example.cn>", subject=f"投诉 {i}"), ref()) for i in range(first, first + n)]


def test_a_group_of_new_cases_is_spread_as_if_taken_one_by_one_with_one_count(make_ctx, db_url, monkeypatch):
    asked = []
    real = records._open_of
    monkeypatch.setattr(records, "_open_of", lambda people: asked.append(people) or real(people))
    ctx = make_ctx(db_url, Clock(MONDAY_13), **staff_config())
    results = Pipeline(ctx).take_many(strangers(6))
    with ctx.sessions() as s:
        assignees = [s.scalar(select(Ticket.assignee).where(Ticket.ref == r.ticket)) for r in results]
    # each new case goes to whoever holds fewer: the group's own earlier cases count
    assert assignees == PEOPLE * 3
    assert asked == [2]  # the two people counted once for the group, not once a case

    # one by one, each item its own transaction: the same spread, a count each
    asked.clear()
    results = [Pipeline(ctx).take(raw, r) for raw, r in strangers(2, first=6)]
    with ctx.sessions() as s:
        assert [s.scalar(select(Ticket.assignee).where(Ticket.ref == r.ticket)) for r in results] == PEOPLE
    assert asked == [2, 2]


def test_status_and_assignee_changes_in_the_transaction_keep_the_counts_true(make_ctx, db_url):
    ctx = make_ctx(db_url, Clock(MONDAY_13), **staff_config())
    Pipeline(ctx).take_many(strangers(4))
    with ctx.sessions() as s, s.begin():
        assert open_counts(s, PEOPLE) == counted_in_the_database(s) == {"sun.yue": 2, "li.na": 2}
        first, second, third = s.scalars(select(Ticket).order_by(Ticket.id).limit(3)).all()
        assert (first.assignee, second.assignee, third.assignee) == ("sun.yue", "li.na", "sun.yue")

        set_status(s, first, "resolved", "test", now=MONDAY_13)
        assert open_counts(s, PEOPLE) == counted_in_the_database(s) == {"sun.yue": 1, "li.na": 2}
        set_status(s, first, "closed", "test", now=MONDAY_13)  # closed after resolved: still not open
        set_assignee(s, second, "sun.yue")
        assert open_counts(s, PEOPLE) == counted_in_the_database(s) == {"sun.yue": 2, "li.na": 1}
        set_status(s, first, "in_progress", "test", now=MONDAY_13)  # reopened
        set_assignee(s, third, None)
        assert open_counts(s, PEOPLE) == counted_in_the_database(s) == {"sun.yue": 2, "li.na": 1}
        set_assignee(s, third, "li.na")
        assert open_counts(s, PEOPLE) == counted_in_the_database(s) == {"sun.yue": 2, "li.na": 2}


def test_an_item_rolled_back_in_its_savepoint_leaves_nothing_in_the_counts(make_ctx, db_url, monkeypatch):
    """A group with a failing item is taken with a savepoint an item: the failing item's
    assignment is rolled back, and so must its count be (the counts are forgotten at
    every savepoint's end), or the next case would go to the wrong person."""
    from intake.pipeline import runner

    def fails_after_store(case, session, ctx):
        if case.parsed.subject == "投诉 1":
            raise RuntimeError("a bug after the ticket was written")

    monkeypatch.setattr(runner, "PIPELINE", (*runner.PIPELINE, fails_after_store))
    ctx = make_ctx(db_url, Clock(MONDAY_13), **staff_config())
    results = Pipeline(ctx).take_many(strangers(3))
    assert [r.outcome for r in results] == ["opened", "quarantined", "opened"]
    with ctx.sessions() as s:
        assignees = [s.scalar(select(Ticket.assignee).where(Ticket.ref == r.ticket)) for r in results if r.ticket]
        assert assignees == PEOPLE  # the second real case goes to li.na, who holds none
        assert counted_in_the_database(s) == {"sun.yue": 1, "li.na": 1}
