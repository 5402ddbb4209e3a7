"""The pipeline writes through one store API (intake/store/fastsql.py: insert_new,
update_row, add_row, the prepared statements), never through the ORM's unit of work.
The paths of an item below — a new case, a second case that teaches the customer's
record a name, a threaded reply, each staff command, a refused staff mail, a survey
answer, a reopening by the customer's words, a group taken together, a quarantine, its
retry and its release — are run while every flush records what the ORM had to write.
The unit of work's flush was the largest single cost of a case, and three ways of
writing made an item's path hard to follow (issue 16)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.store.models import Customer, QuarantineItem
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import CUSTOMER, MONDAY_10, complaint, deliver, reply_to, staff_config, ticket, to_addr


class _Found(list):
    armed = False


@pytest.fixture
def orm_writes():
    """What each flush while `found.armed` would write through the unit of work: new,
    changed and deleted objects (the test arms it while the pipeline takes items; the
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


def test_the_paths_of_an_item_write_without_the_unit_of_work(make_ctx, db_url, smtp_server, orm_writes):
    clock = Clock(MONDAY_10)
    sections = staff_config(smtp_server, survey={"close_at": 4, "timeout_days": 5})
    ctx = make_ctx(db_url, clock, **sections)
    pipeline = Pipeline(ctx)
    n = iter(range(1000))

    def armed(call):
        orm_writes.armed = True
        try:
            return call()
        finally:
            orm_writes.armed = False

    def take(raw: bytes, via: Pipeline = pipeline):
        return armed(lambda: via.take(raw, SourceRef("t", f"k{next(n)}")))

    opened = take(complaint(sender=CUSTOMER))  # a bare address: the record has no name yet
    assert opened.outcome == "opened"
    sent = deliver(ctx, smtp_server)
    [note] = [m for m in sent if to_addr(m) == "li.na@example.com"]
    [ack] = [m for m in sent if to_addr(m) == CUSTOMER]

    mail: list = []  # what the last staff reply sent

    def staff(text: str, sender: str = "李娜 <li.na@example.com>"):
        result = take(reply_to(note.as_bytes(), sender=sender, body=text))
        mail[:] = deliver(ctx, smtp_server)
        return result

    assert take(reply_to(ack.as_bytes(), sender=f"赵丽 <{CUSTOMER}>", body="还有一个问题：发票也没有收到。")).outcome == "appended"
    assert take(complaint("另一台打印机也坏了。", subject="打印机故障", sender=f"赵丽 <{CUSTOMER}>")).outcome == "opened"
    with ctx.sessions() as s:
        assert s.scalar(select(Customer.name).where(Customer.email == CUSTOMER)) == "赵丽"  # learnt
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
    assert staff("#note 不是我的单子", sender="陌生人 <stranger@example.com>").outcome == "quarantined"
    # li.na, the department head, resolves it; the customer's low score reopens it
    assert staff("#status resolved\n已处理完毕。").outcome == "appended"
    [survey] = [m for m in mail if "满意度调查" in m["Subject"]]
    assert take(reply_to(survey.as_bytes(), sender=f"赵丽 <{CUSTOMER}>", body="2")).outcome == "appended"
    assert ticket(ctx, opened.ticket).status == "in_progress"
    # resolved again; this time the customer answers in words: the store stage reopens it
    assert staff("#status resolved\n已再次处理。").outcome == "appended"
    assert take(reply_to(ack.as_bytes(), sender=f"赵丽 <{CUSTOMER}>", body="还是不行，又坏了。")).outcome == "appended"
    assert ticket(ctx, opened.ticket).status == "in_progress"
    # a group taken together (savepoint an item), as the IMAP source hands them over
    group = [
        (complaint("第三个问题。", subject="网络故障", sender=f"赵丽 <{CUSTOMER}>"), SourceRef("t", f"g{next(n)}")),
        (reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="#note 一起处理"), SourceRef("t", f"g{next(n)}")),
    ]
    assert [r.outcome for r in armed(lambda: pipeline.take_many(group))] == ["opened", "appended"]
    # held for its size by a daemon with a small limit, retried (held again), then released
    small = Pipeline(make_ctx(db_url, clock, **sections, limits={"max_message_bytes": 2000}))
    held = take(complaint("很长的投诉。" * 400, subject="长邮件"), via=small)
    assert held.outcome == "quarantined"
    with ctx.sessions() as s:
        held_id = s.scalar(select(QuarantineItem.id).where(QuarantineItem.status == "held").order_by(QuarantineItem.id.desc()))
    assert [r.outcome for _, r in armed(lambda: small.retry_quarantined(held_id))] == ["quarantined"]
    assert [r.outcome for _, r in armed(lambda: pipeline.retry_quarantined(held_id))] == ["opened"]
    assert not orm_writes, "\n".join(orm_writes)
