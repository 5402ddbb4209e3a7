"""Pipeline.take_many on a real database (SQLite file and PostgreSQL): one transaction
per batch, a savepoint per item, failing items quarantined alone, and the fallback to
one-by-one takes when the batch's transaction itself fails."""

from __future__ import annotations

import email
from collections import Counter
from contextlib import contextmanager
from email.policy import default
from email.utils import parseaddr

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

import intake.pipeline.runner as pipeline_module
from intake.pipeline.runner import Pipeline
from intake.store.models import (
    Customer,
    Message,
    OutboxMail,
    QuarantineItem,
    SourceItem,
    Ticket,
)
from tests.integration.test_pipeline import count, mail, outbox, ref, ticket


def _engine(ctx):
    return ctx.sessions.kw["bind"]


@contextmanager
def listening(ctx, name: str, listener):
    """`listener` on the context's engine event `name` while the block runs."""
    engine = _engine(ctx)
    event.listen(engine, name, listener)
    try:
        yield
    finally:
        event.remove(engine, name, listener)


@contextmanager
def commits(ctx):
    """Counts the transactions committed on the context's engine while the block runs."""
    seen: list[int] = []
    with listening(ctx, "commit", lambda conn: seen.append(1)):
        yield seen


def insert_stage(monkeypatch, stage, before=None) -> None:
    """Put `stage` into the pipeline the Pipeline runs, before `before` (default: acknowledge,
    i.e. after store has written the ticket and its message)."""
    stages = list(pipeline_module.PIPELINE)
    anchor = before or next(s for s in stages if s.__name__ == "acknowledge")
    stages.insert(stages.index(anchor), stage)
    monkeypatch.setattr(pipeline_module, "PIPELINE", tuple(stages))


def source_items(ctx) -> dict[tuple[str, str], tuple[str, str | None]]:
    with ctx.sessions() as s:
        return {(i.source, i.key): (i.outcome, i.ticket_ref) for i in s.scalars(select(SourceItem))}


def tickets_by_subject(ctx) -> dict[str, str]:
    with ctx.sessions() as s:
        return {t.subject: t.ref for t in s.scalars(select(Ticket))}


CUSTOMERS = [
    ("系统无法登录", "你好，我们的系统从今天早上开始无法登录，所有员工都受影响，请尽快处理。", "张伟 <zhang.wei@kehu.example.cn>", "gb18030"),
    ("How to export invoices", "Hello, could you tell me how to export my invoices as PDF? Thanks.", "Ann Lee <ann@example.org>", "utf-8"),
    ("订单一直没有发货", "订单 2026112301 一直没有发货，请帮忙查一下物流。", "李娜 <lina@kehu.example.cn>", "utf-8"),
    ("Printer jams every morning", "Our printer jams every morning, the driver was updated last week.", "Bob Smith <bob@firm.example.com>", "utf-8"),
    ("建議增加匯出功能", "建議在報表頁面增加匯出 Excel 的功能，方便我們每週彙總。", "王強 <wang.qiang@corp.example.hk>", "big5"),
]


# 1 ---------------------------------------------------------------------------------


def test_a_batch_of_customer_messages_opens_one_ticket_each_in_one_commit(ctx, pipeline):
    raws = [mail(body, subject=subject, sender=sender, charset=cs) for subject, body, sender, cs in CUSTOMERS]
    refs = [ref(f"7:{i}", "imap:support/INBOX") for i in range(len(raws))]
    ctx.wake_outbox.clear()
    with commits(ctx) as seen:
        results = pipeline.take_many(list(zip(raws, refs)))
    assert len(seen) == 1, f"{len(seen)} commits for one batch"
    assert ctx.wake_outbox.is_set()

    assert [r.outcome for r in results] == ["opened"] * len(raws)
    assert len({r.ticket for r in results}) == len(raws)
    assert [r.ticket for r in results] == sorted(r.ticket for r in results)  # numbered in batch order
    # results in the order of the items: each result's ticket holds that item's bytes
    for raw, (subject, _, _, _), result in zip(raws, CUSTOMERS, results):
        t = ticket(ctx, result.ticket)
        assert t.subject == subject and t.status == "new"
        [inbound] = [m for m in t.messages if m.direction == "in"]
        assert inbound.raw == raw
    assert count(ctx, Ticket) == len(raws) and count(ctx, Customer) == len(raws)
    assert source_items(ctx) == {(r.source, r.key): ("opened", res.ticket) for r, res in zip(refs, results)}

    acks = outbox(ctx)
    assert len(acks) == len(raws)
    assert sorted(a.ticket_id for a in acks) == sorted(ticket(ctx, r.ticket).id for r in results)
    by_ticket = {ticket(ctx, r.ticket).id: (r.ticket, parseaddr(c[2])[1]) for r, c in zip(results, CUSTOMERS)}
    for ack in acks:
        reference, address = by_ticket[ack.ticket_id]
        assert ack.rcpt_to == address and ack.status == "pending"
        assert f"[#{reference}]" in email.message_from_bytes(ack.raw, policy=default)["Subject"]
    subjects = {a.rcpt_to: email.message_from_bytes(a.raw, policy=default)["Subject"] for a in acks}
    assert "我们已收到您的来信" in subjects["zhang.wei@kehu.example.cn"]
    assert "We have received your message" in subjects["ann@example.org"]


# 2 ---------------------------------------------------------------------------------


def test_a_mixed_batch_quarantines_the_oversize_item_and_dedupes_and_threads_within_the_batch(make_ctx, db_url):
    ctx = make_ctx(db_url, limits={"max_message_bytes": 4096})
    pipeline = Pipeline(ctx)
    good = mail(
        "你好，发票金额开错了，请帮忙重开。", subject="发票开错了", sender="陈静 <chen.jing@kehu.example.cn>", message_id="<first@kehu.example.cn>"
    )
    oversize = mail("很长的内容。" * 600, subject="附件太大", sender="zhao@kehu.example.cn")
    reply = mail(
        "补充：发票号 No.20261123。",
        subject="Re: 发票开错了",
        sender="陈静 <chen.jing@kehu.example.cn>",
        headers={"In-Reply-To": "<first@kehu.example.cn>"},
    )
    other = mail("Where is my refund?", subject="Refund", sender="dave@example.org")
    assert len(oversize) > 4096 >= max(len(good), len(reply), len(other))
    refs = [
        ref("1:1", "imap:support/INBOX"),
        ref("1:2", "imap:support/INBOX"),
        ref("3:9", "imap:sales/INBOX"),
        ref("1:3", "imap:support/INBOX"),
        ref("1:4", "imap:support/INBOX"),
    ]
    with commits(ctx) as seen:
        results = pipeline.take_many(list(zip([good, oversize, good, reply, other], refs)))
    assert len(seen) == 1

    first, big, dup, threaded, last = results
    assert first.outcome == "opened"
    assert big.outcome == "quarantined" and "max_message_bytes" in big.reason and big.ticket is None
    assert dup.outcome == "duplicate" and dup.ticket == first.ticket
    assert threaded.outcome == "appended" and threaded.ticket == first.ticket
    assert last.outcome == "opened" and last.ticket not in (None, first.ticket)

    with ctx.sessions() as s:
        [q] = s.scalars(select(QuarantineItem)).all()
        assert q.raw == oversize and q.status == "held"
        assert "exceeds limits.max_message_bytes (4096)" in q.reason
        assert (q.source, q.key, q.channel) == ("imap:support/INBOX", "1:2", "email")
        assert s.scalar(select(func.count()).select_from(Message).where(Message.raw == oversize)) == 0
    assert count(ctx, Ticket) == 2
    t = ticket(ctx, first.ticket)
    inbound = [m for m in t.messages if m.direction == "in"]
    assert [m.raw for m in inbound] == [good, reply]  # the duplicate is not stored twice
    assert {"opened", "message"} <= {e.kind for e in t.events}
    assert count(ctx, Message, Message.raw == good) == 1
    assert ticket(ctx, last.ticket).subject == "Refund"
    assert source_items(ctx) == {
        ("imap:support/INBOX", "1:1"): ("opened", first.ticket),
        ("imap:support/INBOX", "1:2"): ("quarantined", None),
        ("imap:sales/INBOX", "3:9"): ("duplicate", first.ticket),
        ("imap:support/INBOX", "1:3"): ("appended", first.ticket),
        ("imap:support/INBOX", "1:4"): ("opened", last.ticket),
    }
    # one acknowledgement per ticket: none for the duplicate, the reply or the quarantined item
    assert sorted(a.rcpt_to for a in outbox(ctx)) == ["chen.jing@kehu.example.cn", "dave@example.org"]


def test_a_group_that_goes_through_at_once_dedupes_and_threads_on_rows_it_has_not_written_yet(ctx, pipeline):
    """Without a failing item the group runs without savepoints and writes its appended
    rows (messages, source refs, events, mail) at the commit; the duplicate and the reply
    must still find what the first item left waiting."""
    good = mail(
        "你好，发票金额开错了，请帮忙重开。", subject="发票开错了", sender="陈静 <chen.jing@kehu.example.cn>", message_id="<first@kehu.example.cn>"
    )
    reply = mail(
        "补充：发票号 No.20261123。",
        subject="Re: 发票开错了",
        sender="陈静 <chen.jing@kehu.example.cn>",
        headers={"In-Reply-To": "<first@kehu.example.cn>"},
    )
    refs = [ref("1:1", "imap:support/INBOX"), ref("3:9", "imap:sales/INBOX"), ref("1:3", "imap:support/INBOX"), ref("1:3", "imap:support/INBOX")]
    with commits(ctx) as seen:
        first, dup, threaded, again = pipeline.take_many(list(zip([good, good, reply, reply], refs)))
    assert len(seen) == 1
    assert first.outcome == "opened"
    assert dup.outcome == "duplicate" and dup.ticket == first.ticket
    assert threaded.outcome == "appended" and threaded.ticket == first.ticket
    assert again.outcome == "duplicate" and again.ticket == first.ticket  # the same source ref twice
    assert count(ctx, Ticket) == 1
    assert [m.raw for m in ticket(ctx, first.ticket).messages if m.direction == "in"] == [good, reply]
    assert [a.rcpt_to for a in outbox(ctx)] == ["chen.jing@kehu.example.cn"]


def test_a_group_of_new_cases_writes_its_messages_and_mail_once_at_the_commit(ctx, pipeline, monkeypatch):
    """Every item asks whether its email was taken before and how many acknowledgements its
    sender got this hour; those lookups look at the group's waiting rows themselves
    instead of writing them an item at a time (one INSERT a table a group, not one an item)."""
    from intake.store import fastsql

    inserts: Counter[str] = Counter()
    run = fastsql.Prepared._run

    def counted(self, session, values, many):
        compiled, cursor = run(self, session, values, many)
        if compiled.sql.startswith("INSERT INTO"):
            inserts[compiled.sql.split()[2]] += 1
        return compiled, cursor

    monkeypatch.setattr(fastsql.Prepared, "_run", counted)
    raws = [mail(f"第 {i} 个问题：订单没到。", subject=f"订单 {i}", sender=f"k{i}@kehu.example.cn") for i in range(5)]
    with commits(ctx) as seen:
        results = pipeline.take_many([(raw, ref(f"1:{i}", "imap:support/INBOX")) for i, raw in enumerate(raws)])
    assert [r.outcome for r in results] == ["opened"] * 5 and len(seen) == 1
    assert inserts["messages"] == 1 and inserts["outbox"] == 1  # inbound and acknowledgements together
    assert inserts["tickets"] == 5
    assert count(ctx, Message) == 10 and len(outbox(ctx)) == 5


@contextmanager
def lookups(ctx, monkeypatch):
    """Counts the statements that look for an earlier copy of a message (by fingerprint),
    count a sender's acknowledgements or look for a sender's customer, however they run:
    through the session or on the driver's cursor (intake/store/fastsql.py)."""
    from intake.store import fastsql

    seen: Counter[str] = Counter()

    def note(sql: str) -> None:
        if sql.startswith("SELECT") and "fingerprint" in sql.split("WHERE", 1)[-1]:
            seen["copies"] += 1
        if sql.startswith("SELECT") and "FROM outbox" in sql and "kind" in sql and "rcpt_to" in sql:
            seen["acks"] += 1
        if sql.startswith("SELECT") and "customers.email" in sql.split("WHERE", 1)[-1]:
            seen["customers"] += 1  # a customer by address, or who holds their cases

    run = fastsql.Prepared._run

    def counted(self, session, values, many):
        compiled, cursor = run(self, session, values, many)
        note(compiled.sql)
        return compiled, cursor

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        note(statement)

    monkeypatch.setattr(fastsql.Prepared, "_run", counted)
    with listening(ctx, "before_cursor_execute", on_execute):
        yield seen


def test_a_group_looks_for_copies_and_counts_acknowledgements_once_not_once_an_item(ctx, pipeline, monkeypatch):
    """On PostgreSQL every statement is a round trip: the group asks both questions
    once, and finds a copy taken before it and a sender's acknowledgements of the last
    hour, with the group's own acknowledgements counted too (limit 3 an hour here)."""
    ctx.config.limits.acks_per_sender_per_hour = 3
    taken_before = mail("Where is my refund?", subject="Refund", sender="dave@example.org")
    opened = pipeline.take(taken_before, ref("1:1", "imap:support/INBOX"))
    assert pipeline.take(mail("And my invoice?", subject="Invoice", sender="dave@example.org"), ref("1:2", "imap:support/INBOX")).outcome == "opened"
    group = [
        (taken_before, ref("9:1", "imap:sales/INBOX")),  # the same mail from another mailbox
        *[
            (mail(f"Order {n} has not arrived.", subject=f"Order {n}", sender="dave@example.org"), ref(f"1:{n + 3}", "imap:support/INBOX"))
            for n in range(3)
        ],
        *[(mail(f"订单 {n} 没到。", subject=f"订单 {n}", sender=f"c{n}@kehu.example.cn"), ref(f"1:{n + 6}", "imap:support/INBOX")) for n in range(3)],
    ]
    with lookups(ctx, monkeypatch) as seen, commits(ctx) as committed:
        results = pipeline.take_many(group)
    assert len(committed) == 1
    assert seen == {"copies": 1, "acks": 1, "customers": 1}
    assert [r.outcome for r in results] == ["duplicate"] + ["opened"] * 6
    assert results[0].ticket == opened.ticket
    # dave had two acknowledgements this hour: one more, then the cap
    skipped = [any(e.kind == "ack_skipped" for e in ticket(ctx, r.ticket).events) for r in results[1:4]]
    assert skipped == [False, True, True]
    assert Counter(a.rcpt_to for a in outbox(ctx)) == {
        "dave@example.org": 3,
        "c0@kehu.example.cn": 1,
        "c1@kehu.example.cn": 1,
        "c2@kehu.example.cn": 1,
    }


def test_a_copy_within_the_group_is_still_found_with_the_group_lookups(ctx, pipeline, monkeypatch):
    """The group's lookups were made before its items wrote anything: an item whose copy is
    another item of the same group looks in the database, after its rows. (Without that,
    the unique fingerprint would still fail the commit and the items be taken again one by
    one: the single commit is what shows the copy was found.)"""
    raw = mail("发票金额开错了。", subject="发票", sender="chen@kehu.example.cn")
    other = mail("Other.", subject="Other", sender="o@example.org")
    items = [(raw, ref("1:1", "imap:support/INBOX")), (other, ref("1:2", "imap:support/INBOX")), (raw, ref("2:1", "imap:sales/INBOX"))]
    with lookups(ctx, monkeypatch) as seen, commits(ctx) as committed:
        first, _, copy = pipeline.take_many(items)
    assert len(committed) == 1
    assert (first.outcome, copy.outcome) == ("opened", "duplicate") and copy.ticket == first.ticket
    assert seen["copies"] == 3  # the group's, then one for each of the two items that share a fingerprint
    assert count(ctx, Ticket) == 2

    # taken before and twice in the next group: both copies are duplicates, in one commit
    items = [
        (raw, ref("3:1", "imap:other/INBOX")),
        (raw, ref("4:1", "imap:more/INBOX")),
        (mail("New.", subject="New", sender="n@example.org"), ref("1:3", "imap:support/INBOX")),
    ]
    with commits(ctx) as committed:
        results = pipeline.take_many(items)
    assert len(committed) == 1
    assert [(r.outcome, r.ticket == first.ticket) for r in results] == [("duplicate", True), ("duplicate", True), ("opened", False)]
    assert count(ctx, Ticket) == 3


def test_a_taken_group_leaves_none_of_its_items_in_memory(ctx, pipeline):
    """A group's items (raw bytes, parsed text, attachments) are freed when the group is
    done, by reference counting alone: nothing that outlives an item may point back at it
    in a cycle (the group's lookups once did), or a backlog's mail piles up until the
    collector's next full pass."""
    import gc

    from intake.pipeline.case import Case

    items = [
        (mail(f"{'很长的正文' * 2000} {n}", subject=f"长 {n}", sender=f"c{n}@example.org"), ref(f"1:{n}", "imap:support/INBOX")) for n in range(5)
    ]
    gc.collect()
    gc.disable()
    try:
        assert [r.outcome for r in pipeline.take_many(items)] == ["opened"] * 5
        assert [o for o in gc.get_objects() if isinstance(o, Case)] == []
    finally:
        gc.enable()


def test_a_group_holding_a_ref_taken_before_commits_once_and_answers_duplicate(ctx, pipeline):
    """The group looks up its refs taken before in one statement: the ref taken earlier is a
    duplicate at once, not a unique-key failure at the commit that sends the whole group
    round again one item at a time."""
    first = mail("Where is my refund?", subject="Refund", sender="dave@example.org")
    assert pipeline.take(first, ref("1:1", "imap:support/INBOX")).outcome == "opened"
    others = [mail(f"Order {n} has not arrived.", subject=f"Order {n}", sender=f"c{n}@example.org") for n in range(3)]
    items = [(first, ref("1:1", "imap:support/INBOX"))] + [(raw, ref(f"1:{n + 2}", "imap:support/INBOX")) for n, raw in enumerate(others)]
    with commits(ctx) as seen:
        results = pipeline.take_many(items)
    assert len(seen) == 1
    assert [r.outcome for r in results] == ["duplicate", "opened", "opened", "opened"]
    assert count(ctx, Ticket) == 4


def test_garbage_in_a_batch_is_quarantined_and_the_rest_is_taken(ctx, pipeline):
    garbage = b"\x00\x01\x02 not a message"
    items = [
        (mail("问题一", subject="一", sender="a@kehu.example.cn"), ref()),
        (garbage, ref("g", "maildir:drop")),
        (mail("问题二", subject="二", sender="b@kehu.example.cn"), ref()),
    ]
    results = pipeline.take_many(items)
    assert [r.outcome for r in results] == ["opened", "quarantined", "opened"]
    assert "unparseable" in results[1].reason
    with ctx.sessions() as s:
        [q] = s.scalars(select(QuarantineItem)).all()
        assert q.raw == garbage and "unparseable" in q.reason and q.key == "g"
    assert count(ctx, Ticket) == 2 and len(outbox(ctx)) == 2


# 3 ---------------------------------------------------------------------------------


def test_a_stage_crashing_on_one_item_quarantines_it_alone_and_commits_the_others(ctx, pipeline, monkeypatch):
    calls: list[str] = []

    def crash_on_boom(case, session, ctx):
        calls.append(case.parsed.subject)
        if "BOOM" in case.parsed.subject:
            raise RuntimeError("disk on fire")

    insert_stage(monkeypatch, crash_on_boom)  # after store: its ticket, customer and message are written
    items = [
        (mail("第一个问题", subject="问题一", sender="a@kehu.example.cn"), ref("5:1")),
        (mail("Something broke", subject="BOOM here", sender="victim@crash.example.net"), ref("5:2")),
        (mail("第三个问题", subject="问题三", sender="c@kehu.example.cn"), ref("5:3")),
    ]
    with commits(ctx) as seen:
        results = pipeline.take_many(items)
    assert len(seen) == 1
    # the group went at once up to the crash, rolled back, and ran again with a savepoint
    # an item; the stage did run past store for the failing item
    assert calls == ["问题一", "BOOM here", "问题一", "BOOM here", "问题三"]

    assert [r.outcome for r in results] == ["opened", "quarantined", "opened"]
    assert "internal error" in results[1].reason and "disk on fire" in results[1].reason and results[1].ticket is None
    with ctx.sessions() as s:
        [q] = s.scalars(select(QuarantineItem)).all()
        assert q.raw == items[1][0] and q.key == "5:2" and q.status == "held"
        assert q.reason.startswith("internal error: RuntimeError: disk on fire")
    # nothing of the failing item remains: no ticket, message, customer, acknowledgement
    assert set(tickets_by_subject(ctx)) == {"问题一", "问题三"}
    assert count(ctx, Ticket) == 2
    assert count(ctx, Message, Message.subject == "BOOM here") == 0
    assert count(ctx, Message, Message.raw == items[1][0]) == 0
    assert count(ctx, Customer, Customer.email == "victim@crash.example.net") == 0
    assert count(ctx, OutboxMail, OutboxMail.rcpt_to == "victim@crash.example.net") == 0
    assert sorted(a.rcpt_to for a in outbox(ctx)) == ["a@kehu.example.cn", "c@kehu.example.cn"]
    assert source_items(ctx) == {
        ("test", "5:1"): ("opened", results[0].ticket),
        ("test", "5:2"): ("quarantined", None),
        ("test", "5:3"): ("opened", results[2].ticket),
    }
    for r in (results[0], results[2]):
        assert len([m for m in ticket(ctx, r.ticket).messages if m.direction == "in"]) == 1


def test_a_crash_in_a_reply_leaves_the_earlier_ticket_of_the_batch_untouched(ctx, pipeline, monkeypatch):
    """The failing item modified a ticket opened earlier in the same batch: the savepoint's
    rollback must undo only the reply's change, not the ticket itself."""

    def crash_on_reply(case, session, ctx):
        if case.parsed.subject.startswith("Re:"):
            raise ValueError("bad reply")

    insert_stage(monkeypatch, crash_on_reply)
    first = mail("系统无法登录", subject="登录问题", sender="zhang@kehu.example.cn", message_id="<orig@kehu.example.cn>")
    reply = mail("补充截图", subject="Re: 登录问题", sender="zhang@kehu.example.cn", headers={"In-Reply-To": "<orig@kehu.example.cn>"})
    after = mail("另一个问题", subject="另一个问题", sender="zhang@kehu.example.cn")
    results = pipeline.take_many([(first, ref()), (reply, ref()), (after, ref())])
    assert [r.outcome for r in results] == ["opened", "quarantined", "opened"]
    assert "ValueError: bad reply" in results[1].reason
    t = ticket(ctx, results[0].ticket)
    assert [m.raw for m in t.messages if m.direction == "in"] == [first]
    assert "message" not in {e.kind for e in t.events}
    assert count(ctx, Ticket) == 2 and count(ctx, Customer) == 1 and count(ctx, QuarantineItem) == 1


# 4 ---------------------------------------------------------------------------------


def test_the_same_refs_in_a_second_batch_are_duplicates_and_open_nothing(ctx, pipeline):
    items = [
        (mail(body, subject=subject, sender=sender, charset=cs), ref(f"9:{i}", "imap:support/INBOX"))
        for i, (subject, body, sender, cs) in enumerate(CUSTOMERS[:3])
    ]
    first = pipeline.take_many(items)
    assert [r.outcome for r in first] == ["opened"] * 3
    new = (mail("新的问题", subject="新问题", sender="new@kehu.example.cn"), ref("9:99", "imap:support/INBOX"))
    again = pipeline.take_many([*items, new])  # offered again after a crash before the move, plus one new
    assert [r.outcome for r in again] == ["duplicate", "duplicate", "duplicate", "opened"]
    assert [r.ticket for r in again[:3]] == [r.ticket for r in first]
    assert count(ctx, Ticket) == 4 and len(outbox(ctx)) == 4
    assert count(ctx, Message, Message.direction == "in") == 4
    assert count(ctx, SourceItem) == 4  # the refs are stored once
    assert {k: v[0] for k, v in source_items(ctx).items()} == {("imap:support/INBOX", f"9:{i}"): "opened" for i in (0, 1, 2, 99)}


def test_the_same_ref_twice_in_one_batch_is_taken_once(ctx, pipeline):
    raw = mail()
    results = pipeline.take_many([(raw, ref("2:2")), (raw, ref("2:2"))])
    assert [r.outcome for r in results] == ["opened", "duplicate"] and results[1].ticket == results[0].ticket
    assert count(ctx, Ticket) == 1 and count(ctx, SourceItem) == 1 and len(outbox(ctx)) == 1


def test_a_quarantined_ref_offered_again_in_a_batch_is_not_quarantined_twice(make_ctx, db_url):
    ctx = make_ctx(db_url, limits={"max_message_bytes": 2048})
    pipeline = Pipeline(ctx)
    big = mail("很长的内容。" * 300)
    items = [(big, ref("4:1")), (mail("短", subject="短", sender="s@kehu.example.cn"), ref("4:2"))]
    assert [r.outcome for r in pipeline.take_many(items)] == ["quarantined", "opened"]
    again = pipeline.take_many(items)
    assert [r.outcome for r in again] == ["duplicate", "duplicate"]
    assert count(ctx, QuarantineItem) == 1 and count(ctx, Ticket) == 1


# 5 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["real_constraint", "raised", "operational_error"])
def test_an_integrity_error_rolls_the_batch_back_and_each_item_is_taken_once(ctx, pipeline, monkeypatch, how):
    items = [
        (mail("问题一", subject="一", sender="a@kehu.example.cn"), ref("6:1", "imap:support/INBOX")),
        (b"\x00\x01 garbage", ref("6:2", "imap:support/INBOX")),
        (mail("Problem two", subject="COLLIDE two", sender="b@example.org"), ref("6:3", "imap:support/INBOX")),
        (mail("问题三", subject="三", sender="c@kehu.example.cn"), ref("6:4", "imap:support/INBOX")),
    ]
    calls: list[str] = []

    def collide_once(case, session, ctx):
        if "COLLIDE" not in case.parsed.subject:
            return
        calls.append(case.ref.key)
        if len(calls) > 1:
            return
        if how == "real_constraint":
            # the first item's ref row, already flushed in this transaction: a real unique key hit
            session.add(SourceItem(source="imap:support/INBOX", key="6:1", outcome="opened", at=ctx.now()))
            session.flush()
        elif how == "raised":
            raise IntegrityError("INSERT INTO source_items ...", {}, Exception("UNIQUE constraint failed (simulated)"))
        else:  # a deadlock between two daemons' batches, say
            raise OperationalError("UPDATE counters ...", {}, Exception("deadlock detected (simulated)"))

    insert_stage(monkeypatch, collide_once)
    with commits(ctx) as seen:
        results = pipeline.take_many(items)
    assert calls == ["6:3", "6:3"], "the colliding item should run in the batch and again on its own"
    assert len(seen) == 4  # the batch committed nothing; then one commit per item

    # "opened", not "duplicate": the batch's work (item 6:1 included) was rolled back before the retakes
    assert [r.outcome for r in results] == ["opened", "quarantined", "opened", "opened"]
    assert "unparseable" in results[1].reason
    assert len({results[0].ticket, results[2].ticket, results[3].ticket}) == 3
    assert count(ctx, Ticket) == 3 and len(outbox(ctx)) == 3
    assert count(ctx, Message, Message.direction == "in") == 3
    assert count(ctx, QuarantineItem) == 1 and count(ctx, Customer) == 3
    assert source_items(ctx) == {
        ("imap:support/INBOX", "6:1"): ("opened", results[0].ticket),
        ("imap:support/INBOX", "6:2"): ("quarantined", None),
        ("imap:support/INBOX", "6:3"): ("opened", results[2].ticket),
        ("imap:support/INBOX", "6:4"): ("opened", results[3].ticket),
    }
    assert set(tickets_by_subject(ctx)) == {"一", "COLLIDE two", "三"}


def test_an_item_is_parsed_once_however_many_tries_its_group_takes(ctx, pipeline, monkeypatch):
    """The group at once rolls back (a stage crashes), the group with savepoints rolls back
    (an integrity error), the items are taken one by one: three tries, one parse each, and
    what the rules decided before the first try is what the tickets carry."""
    import intake.inbound.message as message_module

    real_parse, parses = message_module.parse_message, Counter()

    def counting_parse(raw, **kwargs):
        parses[raw] += 1
        return real_parse(raw, **kwargs)

    monkeypatch.setattr(message_module, "parse_message", counting_parse)
    items = [
        (mail(body, subject=subject, sender=sender, charset=charset), ref(f"7:{n}", "imap:support/INBOX"))
        for n, (subject, body, sender, charset) in enumerate(CUSTOMERS[:3])
    ]
    items[1] = (mail("Could you check my order? TRIES", subject="TRIES order", sender="c@example.org"), ref("7:1", "imap:support/INBOX"))
    tries: list[int] = []

    def crash_then_collide(case, session, ctx):
        if "TRIES" not in case.parsed.subject:
            return
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("a bug on the first try (simulated)")
        if len(tries) == 2:
            raise IntegrityError("INSERT INTO source_items ...", {}, Exception("UNIQUE constraint failed (simulated)"))

    insert_stage(monkeypatch, crash_then_collide)
    results = pipeline.take_many(items)
    assert len(tries) == 3 and [r.outcome for r in results] == ["opened", "opened", "opened"]
    assert sorted(parses.values()) == [1, 1, 1], "each message parsed once, before the first try"
    with ctx.sessions() as s:
        for t in s.scalars(select(Ticket)):
            verdict = ctx.classifier().classify(t.subject, t.messages[0].text)
            assert (t.type, t.urgency) == (verdict.type, verdict.urgency)


def test_an_integrity_error_that_persists_quarantines_that_item_alone(ctx, pipeline, monkeypatch):
    """Not a race after all: the one-by-one takes retry it and then quarantine it as a
    database constraint; the rest of the batch is taken."""

    def always_collide(case, session, ctx):
        if case.parsed.subject == "bad":
            raise IntegrityError("INSERT ...", {}, Exception("CHECK constraint failed (simulated)"))

    insert_stage(monkeypatch, always_collide)
    items = [
        (mail("好", subject="good 1", sender="a@kehu.example.cn"), ref("8:1")),
        (mail("坏", subject="bad", sender="b@kehu.example.cn"), ref("8:2")),
        (mail("好", subject="good 2", sender="c@kehu.example.cn"), ref("8:3")),
    ]
    results = pipeline.take_many(items)
    assert [r.outcome for r in results] == ["opened", "quarantined", "opened"]
    assert "database constraint" in results[1].reason
    with ctx.sessions() as s:
        [q] = s.scalars(select(QuarantineItem)).all()
        assert q.raw == items[1][0] and "CHECK constraint failed (simulated)" in q.reason
    assert set(tickets_by_subject(ctx)) == {"good 1", "good 2"} and len(outbox(ctx)) == 2


# more: state shared between the items of one batch -----------------------------------


def test_a_failed_reply_that_reopened_a_ticket_does_not_leave_it_reopened_for_the_next_item(ctx, pipeline, monkeypatch):
    """The failing reply reopened a resolved ticket (flushed in its savepoint) before
    crashing: the next reply in the batch must see the ticket resolved again and reopen it
    itself, with one status event."""
    from intake.tickets.records import set_status

    opened = pipeline.take(mail("系统无法登录", subject="登录问题", sender="zhang@kehu.example.cn", message_id="<orig2@kehu.example.cn>"), ref())
    with ctx.sessions() as s, s.begin():
        set_status(s, s.scalar(select(Ticket).where(Ticket.ref == opened.ticket)), "resolved", "staff:li")

    def crash_on_first_reply(case, session, ctx):
        if case.parsed.subject == "Re: 登录问题 (1)":
            raise RuntimeError("crashed after reopening")

    insert_stage(monkeypatch, crash_on_first_reply)
    headers = {"In-Reply-To": "<orig2@kehu.example.cn>"}
    results = pipeline.take_many(
        [
            (mail("又不行了", subject="Re: 登录问题 (1)", sender="zhang@kehu.example.cn", headers=headers), ref()),
            (mail("还是不行", subject="Re: 登录问题 (2)", sender="zhang@kehu.example.cn", headers=headers), ref()),
        ]
    )
    assert [r.outcome for r in results] == ["quarantined", "appended"]
    assert results[1].ticket == opened.ticket and results[1].reason == "reopened"
    t = ticket(ctx, opened.ticket)
    assert t.status == "in_progress"
    assert [(e.detail["old"], e.detail["new"]) for e in t.events if e.kind == "status"] == [("new", "resolved"), ("resolved", "in_progress")]
    assert [m.subject for m in t.messages if m.direction == "in"] == ["登录问题", "Re: 登录问题 (2)"]


def test_the_ack_cap_counts_acknowledgements_queued_earlier_in_the_same_batch(make_ctx, db_url):
    ctx = make_ctx(db_url, limits={"acks_per_sender_per_hour": 2})
    results = Pipeline(ctx).take_many([(mail(f"第 {i} 个问题", subject=f"问题 {i}", sender="same@kehu.example.cn"), ref()) for i in range(4)])
    assert [r.outcome for r in results] == ["opened"] * 4
    assert len(outbox(ctx)) == 2 and count(ctx, Ticket) == 4
    assert [any(e.kind == "ack_skipped" for e in ticket(ctx, r.ticket).events) for r in results] == [False, False, True, True]


def test_two_batches_taking_the_same_messages_at_once_make_one_ticket_each(ctx):
    """Two daemons (threads here) fetch overlapping batches, in opposite orders: every
    message is one ticket and one acknowledgement, whatever rolled back."""
    import threading

    raws = [mail(f"并发问题 {i}", subject=f"并发 {i}", sender=f"p{i}@kehu.example.cn") for i in range(6)]
    batches = [
        [(raw, ref(f"a{i}", "imap:a/INBOX")) for i, raw in enumerate(raws)],
        [(raw, ref(f"b{i}", "imap:b/INBOX")) for i, raw in reversed(list(enumerate(raws)))],
    ]
    results: dict[int, list] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(n: int) -> None:
        try:
            barrier.wait()
            results[n] = Pipeline(ctx).take_many(batches[n])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    a, b = results[0], list(reversed(results[1]))
    for ra, rb in zip(a, b):
        assert sorted([ra.outcome, rb.outcome]) == ["duplicate", "opened"] and ra.ticket == rb.ticket
    assert count(ctx, Ticket) == 6 and len(outbox(ctx)) == 6 and count(ctx, SourceItem) == 12


def test_a_database_failure_while_retaking_one_by_one_raises_and_the_batch_offered_again_is_taken_once(ctx, pipeline, monkeypatch):
    """The batch hits a unique key, the one-by-one takes then hit a failure of the
    database itself on the third item: take_many raises (the source keeps the whole batch),
    and when the source offers the batch again every item ends up taken exactly once."""
    failures = {
        "6:2": [IntegrityError("INSERT ...", {}, Exception("race (simulated)"))],
        "6:3": [OperationalError("SELECT ...", {}, Exception("server closed the connection (simulated)"))],
    }  # not reached in the batch

    def flaky(case, session, ctx):
        planned = failures.get(case.ref.key)
        if planned:
            exc = planned.pop(0)
            if exc is not None:
                raise exc

    insert_stage(monkeypatch, flaky)
    items = [(mail(f"问题 {i}", subject=f"问题 {i}", sender=f"u{i}@kehu.example.cn"), ref(f"6:{i}")) for i in (1, 2, 3, 4)]
    with pytest.raises(OperationalError):
        pipeline.take_many(items)
    # what the one-by-one takes committed before the failure stays (each in its own transaction)
    partial = source_items(ctx)
    assert set(partial) <= {("test", "6:1"), ("test", "6:2")}

    results = pipeline.take_many(items)
    assert [r.outcome for r in results][2:] == ["opened", "opened"]
    assert all(r.outcome == ("duplicate" if ("test", f"6:{i}") in partial else "opened") for i, r in zip((1, 2, 3, 4), results))
    assert count(ctx, Ticket) == 4 and len(outbox(ctx)) == 4 and count(ctx, SourceItem) == 4
    assert set(tickets_by_subject(ctx)) == {"问题 1", "问题 2", "问题 3", "问题 4"}
