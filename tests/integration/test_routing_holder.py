"""Routing keeps a customer with the person who holds their open case (intake/pipeline/stages.py
route), against least-open assignment, on a real database; and a known customer is found
again, never made twice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from intake.pipeline.runner import Pipeline
from intake.store.models import Customer
from intake.tickets.records import set_status
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
