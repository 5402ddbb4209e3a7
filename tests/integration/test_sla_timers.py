"""SLA timers with a controllable clock: a reminder before the due time and an
escalation at breach, each sent once even with two workers; none once answered;
follow-up reminders on their date; due times from per-type overrides and working hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from intake.daemon import Daemon
from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.staffmail.timers import TimersWorker
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import MONDAY_10, body, complaint, deliver, events, reply_to, staff_config, ticket, to_addr

MONDAY_13 = MONDAY_10 + timedelta(hours=3)  # sun.yue's shift: she gets after-sales tickets; li.na is the head


@pytest.fixture
def opened(make_ctx, db_url, smtp_server):
    clock = Clock(MONDAY_13)
    ctx = make_ctx(db_url, clock, **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    ref = pipeline.take(complaint(), SourceRef("t", "1")).ticket
    t = ticket(ctx, ref)
    assert t.assignee == "sun.yue" and t.urgency == "important" and t.due_at == MONDAY_13 + timedelta(hours=24)
    sent = deliver(ctx, smtp_server)
    return ctx, clock, pipeline, ref, sent


def test_reminder_before_due_and_escalation_at_breach_each_once(opened, smtp_server):
    """Two workers (two daemons) pass over and over: one reminder, one escalation."""
    ctx, clock, pipeline, ref, _ = opened
    workers = [TimersWorker(ctx), TimersWorker(ctx)]

    clock.advance(hours=19, minutes=59)  # 4 h 1 min before due: not yet
    assert [w.run_once()["reminders"] for w in workers] == [0, 0]
    assert deliver(ctx, smtp_server) == []

    clock.advance(minutes=2)  # inside the 4 h before due
    assert sum(w.run_once()["reminders"] for w in workers for _ in range(2)) == 1
    [reminder] = deliver(ctx, smtp_server)
    assert to_addr(reminder) == "sun.yue@example.com" and "提醒" in reminder["Subject"] and "2026-11-24 13:00" in reminder["Subject"]
    assert "support+" in reminder["Reply-To"]

    clock.advance(hours=3, minutes=58)  # 1 min before due: no escalation yet
    assert sum(w.run_once()["escalations"] for w in workers) == 0
    clock.advance(minutes=2)  # breached
    assert sum(w.run_once()["escalations"] for w in workers for _ in range(3)) == 1
    [escalation] = deliver(ctx, smtp_server)
    assert to_addr(escalation) == "li.na@example.com" and "超时升级" in escalation["Subject"]
    assert "孙悦" in body(escalation) and "2026-11-24 13:00" in body(escalation)

    clock.advance(days=3)
    assert all(v == 0 for w in workers for v in w.run_once().values())
    assert deliver(ctx, smtp_server) == []
    assert len(events(ctx, ref, "sla_reminder")) == 1 and len(events(ctx, ref, "sla_breached")) == 1


def test_answered_ticket_gets_no_reminder_and_no_escalation(opened, smtp_server):
    """A first answer before the reminder window stops both timers."""
    ctx, clock, pipeline, ref, sent = opened
    [note] = [m for m in sent if to_addr(m) == "sun.yue@example.com"]
    clock.advance(hours=1)
    pipeline.take(reply_to(note.as_bytes(), sender="孙悦 <sun.yue@example.com>", body="您好，我们正在处理。"), SourceRef("t", "2"))
    deliver(ctx, smtp_server)
    worker = TimersWorker(ctx)
    for hours in (21, 4, 48):
        clock.advance(hours=hours)
        assert worker.run_once() == {"reminders": 0, "escalations": 0, "follow_ups": 0, "surveys_closed": 0}
    assert deliver(ctx, smtp_server) == []


def test_urgency_change_restarts_the_timers_and_run_once_carries_them_out(opened, smtp_server):
    """#urgency urgent: due 2 h after opening, so already breached → escalated by `intake run --once`'s pass."""
    ctx, clock, pipeline, ref, sent = opened
    [note] = [m for m in sent if to_addr(m) == "sun.yue@example.com"]
    clock.advance(hours=3)
    pipeline.take(reply_to(note.as_bytes(), sender="孙悦 <sun.yue@example.com>", body="#urgency urgent"), SourceRef("t", "2"))
    summary = Daemon(ctx).run_once()
    assert summary["timers"]["escalations"] == 1
    heads = [m for m in smtp_server.messages if m.rcpt_tos == ("li.na@example.com",)]
    assert len(heads) == 2  # the 加急 notice from #urgency, then the escalation


def test_follow_up_reminder_on_its_date_once(opened, smtp_server):
    """#followup 2026-11-26: reminded at 09:00 local that day, not before, not twice."""
    ctx, clock, pipeline, ref, sent = opened
    [note] = [m for m in sent if to_addr(m) == "sun.yue@example.com"]
    pipeline.take(
        reply_to(note.as_bytes(), sender="孙悦 <sun.yue@example.com>", body="#followup 2026-11-26 回访客户维修结果\n已安排维修。"),
        SourceRef("t", "2"),
    )
    deliver(ctx, smtp_server)
    worker = TimersWorker(ctx)
    clock.at = datetime(2026, 11, 26, 0, 59, tzinfo=UTC)  # 08:59 in Shanghai
    assert worker.run_once()["follow_ups"] == 0
    clock.advance(minutes=1)
    assert worker.run_once()["follow_ups"] == 1 and worker.run_once()["follow_ups"] == 0
    [reminder] = [m for m in deliver(ctx, smtp_server) if "今日跟进" in m["Subject"]]
    assert to_addr(reminder) == "sun.yue@example.com" and "回访客户维修结果" in reminder["Subject"]
    [e] = events(ctx, ref, "followup_reminder")
    assert e.detail["date"] == "2026-11-26"


def test_due_time_uses_type_override_and_working_hours(make_ctx, db_url):
    """complaint/important = 12 working hours, mon-fri 09:00-18:00, Tuesday a holiday:
    opened Monday 13:00 → 5 h Monday, 7 h Wednesday → Wednesday 16:00."""
    ctx = make_ctx(
        db_url,
        Clock(MONDAY_13),
        **staff_config(sla={"type_hours": {"complaint": {"important": 12}}, "working_hours": "mon-fri 09:00-18:00", "holidays": ["2026-11-24"]}),
    )
    ref = Pipeline(ctx).take(complaint(), SourceRef("t", "1")).ticket
    assert ticket(ctx, ref).due_at == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # Wed 16:00 Shanghai
