"""The satisfaction loop through the real SMTP server: resolved → survey; a high score
closes, a low score or a reply that is not a score reopens and tells the assignee,
silence closes as "no objection"; every step in the event log."""

from __future__ import annotations

import email
from email.policy import default as default_policy

import pytest
from sqlalchemy import select

from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.staffmail.models import Survey
from intake.staffmail.timers import TimersWorker
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import (
    CUSTOMER,
    MONDAY_10,
    body,
    complaint,
    deliver,
    events,
    outbox,
    reply_to,
    staff_config,
    ticket,
    to_addr,
)


@pytest.fixture
def resolved(make_ctx, db_url, smtp_server):
    """A ticket answered and resolved by li.na; the survey delivered to the customer."""
    clock = Clock(MONDAY_10)
    ctx = make_ctx(db_url, clock, **staff_config(smtp_server, survey={"close_at": 4, "timeout_days": 5}))
    pipeline = Pipeline(ctx)
    ref = pipeline.take(complaint(), SourceRef("t", "open")).ticket
    [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "li.na@example.com"]
    clock.advance(hours=2)
    pipeline.take(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="#status resolved\n维修已完成。"), SourceRef("t", "fix"))
    [answer, survey_mail] = deliver(ctx, smtp_server)
    assert to_addr(survey_mail) == CUSTOMER and "满意度调查" in survey_mail["Subject"] and "1–5" in body(survey_mail)
    assert ticket(ctx, ref).status == "resolved"
    n = iter(range(100))

    def customer_says(text: str):
        raw = reply_to(survey_mail.as_bytes(), sender=f"赵丽 <{CUSTOMER}>", body=text)
        return pipeline.take(raw, SourceRef("t", f"c{next(n)}")), deliver(ctx, smtp_server)

    return ctx, clock, ref, customer_says


def surveys(ctx) -> list[Survey]:
    with ctx.sessions() as s:
        return list(s.scalars(select(Survey).order_by(Survey.id)))


@pytest.mark.parametrize("answer, score", [("5", 5), ("４分", 4), ("评分：5", 5), ("五", 5)])
def test_high_score_closes_the_ticket(resolved, answer, score):
    """A score at or above close_at closes it as satisfied; nothing more is sent."""
    ctx, clock, ref, customer_says = resolved
    result, sent = customer_says(answer)
    assert result.outcome == "appended" and sent == []
    t = ticket(ctx, ref)
    assert t.status == "closed" and t.satisfaction == score and t.closed_at == clock()
    [s] = surveys(ctx)
    assert (s.outcome, s.score, s.via) == ("satisfied", score, "email")
    kinds = [e.kind for e in t.events]
    assert kinds.index("survey_sent") < kinds.index("survey_answered") and t.events[-1].detail["new"] == "closed"
    assert [m.kind for m in t.messages if m.direction == "in"][-1] == "survey_answer"


def test_low_score_reopens_and_tells_the_assignee(resolved):
    """2 of 5: back to in progress, and li.na hears of it."""
    ctx, clock, ref, customer_says = resolved
    result, sent = customer_says("2")
    t = ticket(ctx, ref)
    assert t.status == "in_progress" and t.satisfaction == 2
    [told] = sent
    assert to_addr(told) == "li.na@example.com" and "不满意" in told["Subject"] and "2 分" in body(told)
    assert surveys(ctx)[0].outcome == "reopened"
    assert {"survey_answered", "notify_queued"} <= {e.kind for e in t.events}


def test_reply_that_is_not_a_score_reopens_and_tells_the_assignee_with_the_text(resolved):
    """The customer writes instead of scoring: reopened, the assignee gets their words."""
    ctx, clock, ref, customer_says = resolved
    result, sent = customer_says("还是不行，机器又坏了，请再派人来看看。")
    t = ticket(ctx, ref)
    assert t.status == "in_progress" and t.satisfaction is None
    [told] = sent
    assert to_addr(told) == "li.na@example.com" and "机器又坏了" in body(told) and "满意度调查" in told["Subject"]
    [s] = surveys(ctx)
    assert s.outcome == "reopened" and s.score is None and "机器又坏了" in s.answer
    assert events(ctx, ref, "survey_reply_not_a_score")


def test_no_answer_closes_as_no_objection_after_the_timeout(resolved, smtp_server):
    """timeout_days = 5: day 4 nothing, day 5 closed with outcome "no objection", once."""
    ctx, clock, ref, customer_says = resolved
    worker = TimersWorker(ctx)
    clock.advance(days=4, hours=23)
    assert worker.run_once()["surveys_closed"] == 0 and ticket(ctx, ref).status == "resolved"
    clock.advance(hours=1)
    assert worker.run_once()["surveys_closed"] == 1 and worker.run_once()["surveys_closed"] == 0
    t = ticket(ctx, ref)
    assert t.status == "closed" and t.outcome == "no objection" and t.satisfaction is None
    assert surveys(ctx)[0].outcome == "no_objection" and events(ctx, ref, "survey_expired")
    assert deliver(ctx, smtp_server) == []


def test_a_late_reply_after_the_timeout_is_an_ordinary_customer_message(resolved):
    """After "no objection" the survey is over: a "5" is a new message — the ticket reopens
    as for any customer mail and the assignee is told; the survey keeps its outcome."""
    ctx, clock, ref, customer_says = resolved
    clock.advance(days=6)
    TimersWorker(ctx).run_once()
    result, sent = customer_says("5")
    assert result.outcome == "appended" and ticket(ctx, ref).status == "in_progress"
    assert [to_addr(m) for m in sent] == ["li.na@example.com"] and "客户新来信" in sent[0]["Subject"]
    assert surveys(ctx)[0].outcome == "no_objection" and ticket(ctx, ref).satisfaction is None


def test_one_question_page_records_the_score_once(make_ctx, db_url, smtp_server):
    """The link in the survey mail (web.public_base_url set): GET shows 1–5, POST 5 closes the
    ticket; a second POST and a tampered link change nothing."""
    import re

    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from intake.staffmail.survey_page import survey_routes

    clock = Clock(MONDAY_10)
    ctx = make_ctx(db_url, clock, **staff_config(smtp_server, web={"public_base_url": "https://help.example.com/"}))
    pipeline = Pipeline(ctx)
    ref = pipeline.take(complaint(), SourceRef("t", "open")).ticket
    [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "li.na@example.com"]
    pipeline.take(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="#status resolved\n已处理。"), SourceRef("t", "fix"))
    survey_mail = [m for m in deliver(ctx, smtp_server) if "满意度调查" in m["Subject"]][0]
    [link] = re.findall(r"https://help\.example\.com(/survey/\S+)", body(survey_mail))

    client = TestClient(Starlette(routes=survey_routes(ctx)))
    page = client.get(link)
    assert page.status_code == 200 and ref in page.text and page.text.count('name="score"') == 5
    assert client.post(link, data={"score": "9"}).status_code == 400
    tampered = link[:-1] + ("0" if link[-1] != "0" else "1")
    assert client.post(tampered, data={"score": "1"}).status_code == 404
    done = client.post(link, data={"score": "5"})
    assert done.status_code == 200 and "感谢您的评价" in done.text and "工单已关闭" in done.text
    assert client.post(link, data={"score": "1"}).status_code == 409
    t = ticket(ctx, ref)
    assert t.status == "closed" and t.satisfaction == 5
    [s] = surveys(ctx)
    assert (s.outcome, s.score, s.via) == ("satisfied", 5, "web")


def test_staff_taking_the_ticket_up_again_withdraws_the_survey(resolved, smtp_server):
    """#status in_progress after resolving: a later "5" from the customer does not close the ticket."""
    ctx, clock, ref, customer_says = resolved
    [note_row] = outbox(ctx, "notify")
    note = email.message_from_bytes(note_row.raw, policy=default_policy)
    Pipeline(ctx).take(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="#status in_progress"), SourceRef("t", "again"))
    assert surveys(ctx)[0].outcome == "superseded" and events(ctx, ref, "survey_withdrawn")
    result, sent = customer_says("5")
    t = ticket(ctx, ref)
    assert t.status == "in_progress" and t.satisfaction is None
    assert [to_addr(m) for m in sent] == ["li.na@example.com"]  # an ordinary customer message for the assignee
