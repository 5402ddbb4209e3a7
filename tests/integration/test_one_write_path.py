"""The pipeline writes through one store API (intake/store/fastsql.py: insert_new,
update_row, add_row, the prepared statements), never through the ORM's unit of work:
an item's every path — a new case, a reply, each staff command, a refused staff mail,
a survey answer, a reopening, a quarantine — is run here while every flush records
what the ORM had to write. The unit of work's flush was the largest single cost of a
case, and three ways of writing made an item's path hard to follow (issue 16)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import CUSTOMER, MONDAY_10, complaint, deliver, reply_to, staff_config, ticket, to_addr


@pytest.fixture
def orm_writes():
    """What each flush while `found.armed` would write through the unit of work: new,
    changed and deleted objects (the test arms it while the pipeline takes an item; the
    mailer, which records its health, is not the pipeline)."""
    found = _Found()

    def record(session: Session, flush_context, instances) -> None:
        if not found.armed:
            return
        for obj in session.new:
            found.append(f"new {type(obj).__name__}")
        for obj in session.dirty:
            if session.is_modified(obj, include_collections=False):
                changed = sorted(a.key for a in inspect(obj).attrs if a.history.has_changes())
                found.append(f"changed {type(obj).__name__}: {', '.join(changed)}")
        for obj in session.deleted:
            found.append(f"deleted {type(obj).__name__}")

    event.listen(Session, "before_flush", record)
    yield found
    event.remove(Session, "before_flush", record)


class _Found(list):
    armed = False


def test_every_path_of_an_item_writes_without_the_unit_of_work(make_ctx, db_url, smtp_server, orm_writes):
    clock = Clock(MONDAY_10)
    ctx = make_ctx(db_url, clock, **staff_config(smtp_server, survey={"close_at": 4, "timeout_days": 5}))
    pipeline = Pipeline(ctx)
    n = iter(range(1000))

    def take(raw: bytes):
        orm_writes.armed = True
        try:
            return pipeline.take(raw, SourceRef("t", f"k{next(n)}"))
        finally:
            orm_writes.armed = False

    opened = take(complaint())
    assert opened.outcome == "opened"
    [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "li.na@example.com"]

    def staff(text: str, sender: str = "李娜 <li.na@example.com>"):
        result = take(reply_to(note.as_bytes(), sender=sender, body=text))
        deliver(ctx, smtp_server)
        return result

    assert take(complaint("还有一个问题：发票也没有收到。", subject="Re: 投诉售后服务", in_reply_to="c0@kehu.example.cn")).outcome in (
        "appended",
        "opened",
    )
    for command in (
        "#note 已电话联系客户",
        "#eta 2026-11-30\n我们会在周一前处理。",
        "#type fault",
        "#urgency urgent",
        "#assign sun.yue",
        "#followup 2026-11-27 再次回访",
        "#status in_progress\n正在处理。",
    ):
        assert staff(command).outcome == "appended", command
    assert staff("#note 不是我的单子", sender="陌生人 <stranger@example.com>").outcome in ("quarantined", "opened")
    # li.na, the department head, resolves it; the customer's low score reopens it
    assert take(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="#status resolved\n已处理完毕。")).outcome == "appended"
    [survey] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == CUSTOMER and "满意度调查" in m["Subject"]]
    assert take(reply_to(survey.as_bytes(), sender=f"赵丽 <{CUSTOMER}>", body="2")).outcome == "appended"
    assert ticket(ctx, opened.ticket).status == "in_progress"
    assert take(b"\xff" * (ctx.config.limits.max_message_bytes + 1)).outcome == "quarantined"
    assert not orm_writes, "\n".join(orm_writes)
