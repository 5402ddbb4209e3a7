"""Routing keeps a customer with the person who holds their open case (intake/pipeline/stages.py
route), against least-open assignment, on a real database; and a known customer is found
again, never made twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from intake.pipeline.runner import Pipeline
from intake.store.models import Customer, Ticket
from intake.tickets.records import set_assignee, set_status
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import CUSTOMER, MONDAY_10, complaint, ref, staff_config, ticket

# 13:00 in Shanghai: two of after-sales are on shift (config/staff.toml: li.na, sun.yue)
MONDAY_13 = MONDAY_10 + timedelta(hours=3)


def test_a_customers_new_case_goes_to_whoever_holds_their_open_one_not_to_the_least_loaded(make_ctx, db_url):
    ctx = make_ctx(db_url, Clock(MONDAY_13), **staff_config())
    pipeline = Pipeline(ctx)
    first = ticket(ctx, pipeline.take(complaint(), ref()).ticket)
    assert first.department == "after_sales" and first.assignee
    # least-open would now choose a colleague with no open case; the holder keeps the customer
    second = ticket(ctx, pipeline.take(complaint("另外，上次换的配件又坏了。", subject="配件又坏了"), ref()).ticket)
    assert second.ref != first.ref and second.assignee == first.assignee
    assert second.customer_id == first.customer_id
    stranger = ticket(ctx, pipeline.take(complaint(sender="钱多 <qian.duo@kehu.example.cn>"), ref()).ticket)
    assert stranger.assignee and stranger.assignee != first.assignee  # least-open: the colleague without two open cases
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Customer).where(Customer.email == CUSTOMER)) == 1


def test_a_customer_whose_cases_are_all_closed_is_found_again_and_routed_afresh(make_ctx, db_url):
    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config())
    pipeline = Pipeline(ctx)
    first = ticket(ctx, pipeline.take(complaint(), ref()).ticket)
    with ctx.sessions() as s, s.begin():
        closed = s.merge(first)
        set_status(s, closed, "closed", "system", reason="test", now=MONDAY_10)
    again = ticket(ctx, pipeline.take(complaint("又出问题了。", subject="新的问题"), ref()).ticket)
    assert again.ref != first.ref and again.customer_id == first.customer_id  # the same customer, no second record
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 1


def test_a_group_asks_once_for_its_senders_and_keeps_its_own_new_customers_and_cases(make_ctx, db_url, monkeypatch):
    """A group taken at once asks for its senders' customers and who holds their cases in
    one statement (records.look_up_customers); what the group itself then creates, a
    customer and their first case, is what a later item of the same group is routed by."""
    from tests.integration.test_pipeline_batch import commits, lookups

    ctx = make_ctx(db_url, Clock(MONDAY_13), **staff_config())
    pipeline = Pipeline(ctx)
    held = ticket(ctx, pipeline.take(complaint(), ref()).ticket)
    assert held.assignee == "sun.yue"  # a tie: config/staff.toml lists her first
    newcomer = "孙明 <sun.ming@kehu.example.cn>"
    group = [
        (complaint(sender="钱多 <qian.duo@kehu.example.cn>", subject="维修没人来"), ref()),  # least-open: li.na
        (complaint(sender=newcomer, subject="第一次投诉"), ref()),  # a tie again: sun.yue
        (complaint(sender=newcomer, subject="第二次投诉"), ref()),  # least-open would say li.na; she holds it
        (complaint("另外，上次换的配件又坏了。", subject="配件又坏了"), ref()),  # the case held before the group
    ]
    with lookups(ctx, monkeypatch) as seen, commits(ctx) as committed:
        results = pipeline.take_many(group)
    assert len(committed) == 1 and [r.outcome for r in results] == ["opened"] * 4
    assert seen["customers"] == 1  # one for the group, none an item
    assert [ticket(ctx, r.ticket).assignee for r in results] == ["li.na", "sun.yue", "sun.yue", "sun.yue"]
    first, second = (ticket(ctx, r.ticket) for r in results[1:3])
    assert first.customer_id == second.customer_id  # made once, found again within the group
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 3


def test_status_and_assignee_changes_in_the_transaction_keep_the_holders_true(make_ctx, db_url):
    """After each write the transaction's answer is the database's (each write made with
    the customer looked up afresh, so that it is that write which keeps the answer true)."""
    from intake.tickets import records

    ctx = make_ctx(db_url, Clock(MONDAY_13), **staff_config())
    pipeline = Pipeline(ctx)
    refs = [pipeline.take(complaint(subject=f"投诉 {n}"), ref()).ticket for n in range(2)]
    stranger = "nobody@kehu.example.cn"
    with ctx.sessions() as s, s.begin():
        older, newer = (s.scalar(select(Ticket).where(Ticket.ref == r)) for r in refs)

        def after(write, expected: str | None) -> None:
            records.look_up_customers(s, [CUSTOMER, stranger])
            write()
            in_the_database = records._HOLDER.scalar(s, {"email": CUSTOMER, "department": "after_sales"})
            assert records.holder(s, CUSTOMER, "after_sales") == in_the_database == expected

        after(lambda: None, "sun.yue")
        after(lambda: set_assignee(s, newer, "li.na"), "li.na")  # the newest open case's person
        after(lambda: set_status(s, newer, "closed", "test", now=MONDAY_13), "sun.yue")
        after(lambda: set_status(s, older, "resolved", "test", now=MONDAY_13), None)
        after(lambda: set_status(s, newer, "in_progress", "test", now=MONDAY_13), "li.na")  # reopened
        assert records.holder(s, CUSTOMER, "sales") is None
        assert records.holder(s, stranger, "after_sales") is None


@pytest.mark.postgres
def test_a_customer_another_daemon_makes_during_the_group_is_found_when_its_items_are_taken_again(make_ctx, pg_url, monkeypatch):
    """On PostgreSQL another daemon may create a sender's customer after the group looked
    them up: the group's insert fails on the unique address, the group rolls back, and its
    items are taken again one by one, finding that customer. Nothing is made twice."""
    from intake.pipeline import stages
    from tests.integration.test_pipeline_batch import commits, insert_stage

    ctx = make_ctx(pg_url, Clock(MONDAY_13), **staff_config())
    meanwhile = []

    def another_daemon_makes_the_customer(case, session, ctx):
        if not meanwhile:
            with ctx.sessions() as other, other.begin():
                other.add(Customer(number="C900001", email=CUSTOMER, name="赵丽", language="zh"))
            meanwhile.append(1)

    insert_stage(monkeypatch, another_daemon_makes_the_customer, before=stages.store)
    with commits(ctx) as committed:
        results = Pipeline(ctx).take_many([(complaint(subject=f"投诉 {n}"), ref()) for n in range(2)])
    assert [r.outcome for r in results] == ["opened", "opened"]
    assert len(committed) == 1 + 2  # the other daemon's, then the items one by one
    with ctx.sessions() as s:
        customers = s.scalars(select(Customer)).all()
        assert [c.number for c in customers] == ["C900001"]
        assert {ticket(ctx, r.ticket).customer_id for r in results} == {customers[0].id}
