"""Every staff command, in English and Chinese, carried out from a real reply; a bad
command relays nothing and answers the staff member with the error."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.staffmail.models import FollowUp
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import (
    CUSTOMER,
    MONDAY_10,
    body,
    complaint,
    deliver,
    events,
    reply_to,
    staff_config,
    ticket,
    to_addr,
)


@pytest.fixture
def case(make_ctx, db_url, smtp_server):
    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    ref = pipeline.take(complaint(), SourceRef("t", "open")).ticket
    [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "li.na@example.com"]
    n = iter(range(100))

    def reply(text: str, sender: str = "李娜 <li.na@example.com>"):
        result = pipeline.take(reply_to(note.as_bytes(), sender=sender, body=text), SourceRef("t", f"r{next(n)}"))
        return result, deliver(ctx, smtp_server)

    return ctx, ref, reply


def test_note_is_internal_and_never_relayed(case):
    """#note / #备注: kept in the ticket's notes and log; nothing reaches the customer."""
    ctx, ref, reply = case
    for text in ("#note customer is a key account\nCalled them, they are fine.", "#备注 已电话联系客户"):
        result, sent = reply(text)
        assert result.outcome == "appended" and sent == []
    t = ticket(ctx, ref)
    assert "customer is a key account\nCalled them, they are fine." in t.notes and "已电话联系客户" in t.notes
    assert [e.detail["text"] for e in events(ctx, ref, "note")] == ["customer is a key account\nCalled them, they are fine.", "已电话联系客户"]
    assert [m.kind for m in t.messages if m.direction == "out"] == ["ack"] and t.first_response_at is None


def test_status_in_both_languages_and_resolved_sends_the_survey_after_the_answer(case):
    """#status in_progress, #状态 需跟进, #status resolved: the answer, then the survey, reach the customer."""
    ctx, ref, reply = case
    reply("#status in_progress")
    assert ticket(ctx, ref).status == "in_progress"
    reply("#状态：需跟进")
    assert ticket(ctx, ref).status == "follow_up"
    result, sent = reply("#status resolved\n已为您更换新机，问题已解决。")
    assert [to_addr(m) for m in sent] == [CUSTOMER, CUSTOMER]
    assert "已为您更换新机" in body(sent[0]) and "满意度调查" in sent[1]["Subject"]
    t = ticket(ctx, ref)
    assert t.status == "resolved" and t.resolved_at == MONDAY_10
    assert [(e.detail["old"], e.detail["new"]) for e in events(ctx, ref, "status")] == [
        ("new", "in_progress"),
        ("in_progress", "follow_up"),
        ("follow_up", "resolved"),
    ]


def test_staff_cannot_close(case):
    """#status closed is refused: only the customer's answer closes a ticket."""
    ctx, ref, reply = case
    result, sent = reply("#status closed\n好的")
    assert [to_addr(m) for m in sent] == ["li.na@example.com"] and "closed" in body(sent[0])
    assert ticket(ctx, ref).status == "new"


def test_assign_moves_the_ticket_and_notifies_the_new_assignee(case):
    """#assign sun.yue and #转派 by name: the new assignee gets the notification with the token."""
    ctx, ref, reply = case
    result, sent = reply("#assign sun.yue\n您好，此事转由同事孙悦跟进。")
    assert sorted(to_addr(m) for m in sent) == sorted([CUSTOMER, "sun.yue@example.com"])
    [note] = [m for m in sent if to_addr(m) == "sun.yue@example.com"]
    assert "转派给您" in note["Subject"] and "李娜" in body(note) and "support+" in note["Reply-To"]
    assert ticket(ctx, ref).assignee == "sun.yue"
    # li.na is the department head: still allowed; she hands it on by name in Chinese
    reply("#转派 刘洋")
    assert ticket(ctx, ref).assignee == "liu.yang"


def test_eta_sets_the_expected_completion(case):
    """#eta 2026-11-30 and #预计 2026年12月2日."""
    ctx, ref, reply = case
    reply("#eta 2026-11-30")
    assert ticket(ctx, ref).expected_completion == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)  # 2026-11-30 00:00 in Shanghai
    reply("#预计 2026年12月2日")
    [first, second] = events(ctx, ref, "eta")
    assert (first.detail["date"], second.detail["date"]) == ("2026-11-30", "2026-12-02")


def test_type_and_urgency_change_and_urgent_flags_the_head(case):
    """#type fault, #类型 投诉, #urgency urgent (due time moves, 加急 to the head), #紧急程度 一般."""
    ctx, ref, reply = case
    reply("#type fault")
    assert ticket(ctx, ref).type == "fault"
    reply("#类型 投诉")
    assert ticket(ctx, ref).type == "complaint"
    result, sent = reply("#urgency urgent")
    t = ticket(ctx, ref)
    assert t.urgency == "urgent" and t.flagged and t.due_at == t.created_at.replace(hour=t.created_at.hour + 2)
    assert [to_addr(m) for m in sent] == ["li.na@example.com"] and "加急工单" in sent[0]["Subject"]
    reply("#紧急程度 一般")
    assert ticket(ctx, ref).urgency == "normal"
    assert [e.detail["new"] for e in events(ctx, ref, "urgency")] == ["urgent", "normal"]


def test_followup_records_the_promise_and_sets_follow_up(case):
    """#followup 2026-12-01 call back, #跟进 2026-12-03 回访."""
    ctx, ref, reply = case
    reply("#followup 2026-12-01 call back about the repair\n#跟进 2026-12-03 回访客户")
    with ctx.sessions() as s:
        rows = list(s.scalars(select(FollowUp).order_by(FollowUp.id)))
    assert [(f.due_on, f.what, f.created_by) for f in rows] == [
        (date(2026, 12, 1), "call back about the repair", "li.na"),
        (date(2026, 12, 3), "回访客户", "li.na"),
    ]
    t = ticket(ctx, ref)
    assert t.status == "follow_up" and "2026-12-01 call back about the repair" in t.follow_up_plan


@pytest.mark.parametrize(
    "bad, why",
    [
        ("#frobnicate now", "unknown command"),
        ("#status done", "#status needs one of"),
        ("#assign nobody.here", "no staff member"),
        ("#eta next week", "#eta needs a date"),
        ("#eta 2026-11-01", "in the past"),
        ("#type praise", "#type needs one of"),
        ("#urgency asap", "#urgency needs one of"),
        ("#followup 2026-12-01", "what to follow up"),
        ("#跟进 明天 回访", "#followup needs a date"),
    ],
)
def test_bad_command_relays_nothing_changes_nothing_and_answers_the_staff_member(case, bad, why):
    """Unknown or malformed: all or nothing — the good command and the text stay unsent too."""
    ctx, ref, reply = case
    result, sent = reply(f"#status in_progress\n{bad}\n这段话不应发给客户。")
    assert result.outcome == "appended"
    assert [to_addr(m) for m in sent] == ["li.na@example.com"]
    assert why in body(sent[0]) and "未转发" in sent[0]["Subject"]
    t = ticket(ctx, ref)
    assert t.status == "new" and t.first_response_at is None
    assert [m.kind for m in t.messages if m.direction == "out"] == ["ack"]
    [refused] = events(ctx, ref, "commands_refused")
    assert any(why in e for e in refused.detail["errors"])


def test_numbered_and_hashtag_lines_are_part_of_the_answer(case):
    """'#1 …' lines and an unknown '#word' inside the text are relayed as written; nothing is run."""
    ctx, ref, reply = case
    result, sent = reply("#1 步骤：重启设备\n#2 步骤：重新登录\n\n如仍有问题请回复。\n#售后服务")
    assert [to_addr(m) for m in sent] == [CUSTOMER]
    assert "#1 步骤：重启设备\n#2 步骤：重新登录\n\n如仍有问题请回复。\n#售后服务" in body(sent[0])
    assert ticket(ctx, ref).status == "in_progress" and events(ctx, ref, "commands_refused") == []


def test_a_command_below_the_text_is_run_and_not_relayed(case):
    """Commands anywhere above the quote (issue 14): '#note' after the text makes the reply internal."""
    ctx, ref, reply = case
    result, sent = reply("#1 步骤：重启设备\n#note 已电话指导客户")
    assert sent == [] and "已电话指导客户" in ticket(ctx, ref).notes
