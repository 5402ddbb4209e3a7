"""The pipeline on a real database (SQLite file and PostgreSQL): tickets, threads,
duplicates, auto-replies, acknowledgements, quarantine, exactly-once source refs."""

from __future__ import annotations

import email
import json
import threading
from email.message import EmailMessage
from email.policy import default

import pytest
from sqlalchemy import func, select

from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.store.models import Customer, Event, Message, OutboxMail, QuarantineItem, SourceItem, Ticket

_n = iter(range(1_000_000))


def mail(
    body: str = "你好，我们的系统从今天早上开始无法登录，所有员工都受影响，请尽快处理。",
    *,
    subject: str = "系统无法登录",
    sender: str = "张伟 <zhang.wei@kehu.example.cn>",
    message_id: str | None = None,
    charset: str = "utf-8",
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 10:15:00 +0800"
    msg["Message-ID"] = message_id or f"<m{next(_n)}@kehu.example.cn>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body, charset=charset)
    return bytes(msg)


def ref(key: str | None = None, source: str = "test", channel: str = "email") -> SourceRef:
    return SourceRef(source, key or f"k{next(_n)}", channel)


def count(ctx, model, *where) -> int:
    with ctx.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def outbox(ctx, kind: str = "ack") -> list[OutboxMail]:
    """Queued mail of one kind (staff notifications share the outbox with acknowledgements)."""
    with ctx.sessions() as s:
        return list(s.scalars(select(OutboxMail).where(OutboxMail.kind == kind).order_by(OutboxMail.id)))


def ticket(ctx, reference: str) -> Ticket:
    with ctx.sessions() as s:
        t = s.scalar(select(Ticket).where(Ticket.ref == reference))
        _ = (t.customer, t.messages, t.events)  # load while the session is open
        return t


def test_new_email_opens_ticket_with_customer_message_events_and_chinese_ack(ctx, pipeline):
    raw = mail(charset="gb18030")
    result = pipeline.take(raw, ref())
    assert result.outcome == "opened"
    t = ticket(ctx, result.ticket)
    assert t.status == "new" and t.channel == "email" and t.language == "zh"
    assert t.customer.email == "zhang.wei@kehu.example.cn" and t.customer.name == "张伟"
    assert t.customer.number.startswith("C") and t.customer.number[1:].isdigit()
    assert t.type in ("inquiry", "complaint", "fault", "request", "suggestion")
    assert t.urgency in ("urgent", "important", "normal") and t.due_at > t.created_at
    inbound = [m for m in t.messages if m.direction == "in"]
    assert len(inbound) == 1 and inbound[0].raw == raw and "无法登录" in inbound[0].text
    assert {"opened", "classified", "ack_queued"} <= {e.kind for e in t.events}

    [ack] = outbox(ctx)
    assert ack.kind == "ack" and ack.rcpt_to == "zhang.wei@kehu.example.cn" and ack.status == "pending"
    sent = email.message_from_bytes(ack.raw, policy=default)
    assert f"[#{t.ref}]" in sent["Subject"] and "我们已收到您的来信" in sent["Subject"]
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent["Message-ID"] == f"<{ack.message_id}>"
    assert sent["In-Reply-To"] == email.message_from_bytes(raw)["Message-ID"]
    body = sent.get_content()
    assert t.ref in body and "工单编号" in body and "小时内" in body


def test_english_message_gets_english_ack(ctx, pipeline):
    result = pipeline.take(
        mail(
            "Hello, could you tell me how to export my invoices as PDF? Thanks.", subject="How to export invoices", sender="Ann Lee <ann@example.org>"
        ),
        ref(),
    )
    [ack] = outbox(ctx)
    sent = email.message_from_bytes(ack.raw, policy=default)
    assert sent["Subject"].startswith(f"[#{result.ticket}] We have received your message")
    assert "Dear Ann Lee" in sent.get_content()


def test_ticket_references_are_sortable_and_unique(ctx, pipeline):
    refs = [pipeline.take(mail(f"问题 {i}", subject=f"问题 {i}", sender=f"c{i}@example.cn"), ref()).ticket for i in range(12)]
    assert len(set(refs)) == 12 and refs == sorted(refs)


def test_same_message_twice_from_two_mailboxes_is_one_ticket_one_ack(ctx, pipeline):
    raw = mail(message_id="<same@kehu.example.cn>")
    redelivered = b"Received: from relay2.example.net by mx.example.com; Mon, 23 Nov 2026 10:16:00 +0800\r\n" + raw
    first = pipeline.take(raw, ref("1:5", "imap:support/INBOX"))
    second = pipeline.take(redelivered, ref("7:9", "imap:sales/INBOX"))
    assert first.outcome == "opened"
    assert second.outcome == "duplicate" and second.ticket == first.ticket
    assert count(ctx, Ticket) == 1 and len(outbox(ctx)) == 1


def test_same_source_item_twice_is_duplicate(ctx, pipeline):
    first = pipeline.take(mail(), ref("42:1"))
    again = pipeline.take(mail(), ref("42:1"))  # offered again after a crash before the move
    assert again.outcome == "duplicate" and again.ticket == first.ticket
    assert count(ctx, Ticket) == 1


def test_reused_message_id_from_another_sender_or_content_is_not_a_duplicate(ctx, pipeline):
    a = pipeline.take(mail("第一封", message_id="<reused@x>", sender="a@kehu.example.cn"), ref())
    b = pipeline.take(mail("第一封", message_id="<reused@x>", sender="b@other.example.cn"), ref())
    c = pipeline.take(mail("完全不同的内容", message_id="<reused@x>", sender="a@kehu.example.cn"), ref())
    assert [a.outcome, b.outcome, c.outcome] == ["opened", "opened", "opened"]
    assert len({a.ticket, b.ticket, c.ticket}) == 3


def test_reply_threads_by_in_reply_to_our_ack_and_by_subject_reference(ctx, pipeline):
    first = pipeline.take(mail(), ref())
    [ack] = outbox(ctx)
    reply = pipeline.take(mail("补充一下：错误代码 E1024。", subject="Re: 系统无法登录", headers={"In-Reply-To": f"<{ack.message_id}>"}), ref())
    by_subject = pipeline.take(mail("再补充截图。", subject=f"回复：[#{first.ticket}] 我们已收到您的来信"), ref())
    assert reply.outcome == by_subject.outcome == "appended"
    assert reply.ticket == by_subject.ticket == first.ticket
    assert count(ctx, Ticket) == 1
    assert len(outbox(ctx)) == 1  # no new acknowledgement for a reply
    t = ticket(ctx, first.ticket)
    assert [m.direction for m in t.messages] == ["in", "out", "in", "in"]


def test_reply_to_resolved_ticket_reopens_it(ctx, pipeline):
    from intake.tickets.records import set_status

    first = pipeline.take(mail(), ref())
    with ctx.sessions() as s, s.begin():
        set_status(s, s.scalar(select(Ticket).where(Ticket.ref == first.ticket)), "resolved", "staff:li")
    again = pipeline.take(mail("问题又出现了", subject=f"Re: [#{first.ticket}] 系统无法登录"), ref())
    assert again.outcome == "appended" and again.reason == "reopened"
    t = ticket(ctx, first.ticket)
    assert t.status == "in_progress" and t.resolved_at is None
    assert [(e.detail["old"], e.detail["new"]) for e in t.events if e.kind == "status"] == [("new", "resolved"), ("resolved", "in_progress")]


@pytest.mark.parametrize(
    "headers,subject,sender",
    [
        ({"Auto-Submitted": "auto-replied"}, "Re: 系统无法登录", "zhang.wei@kehu.example.cn"),
        ({"Precedence": "bulk"}, "Newsletter", "news@shop.example.com"),
        ({"List-Id": "<announce.example.com>"}, "Announcement", "list@example.com"),
        ({}, "Delivery Status Notification (Failure)", "MAILER-DAEMON@mx.example.com"),
        ({}, "自动回复：我正在休假", "wang@kehu.example.cn"),
        ({}, "Out of Office: back Monday", "bob@example.org"),
        ({}, "Hello", "noreply@example.org"),
    ],
)
def test_auto_replies_get_no_ack_and_are_kept(ctx, pipeline, headers, subject, sender):
    raw = mail("I am away until Monday.", subject=subject, sender=sender, headers=headers)
    result = pipeline.take(raw, ref())
    assert result.outcome == "autoreply_ignored" and result.reason
    assert outbox(ctx) == [] and count(ctx, Ticket) == 0
    assert count(ctx, Message, Message.raw == raw, Message.kind == "autoreply") == 1


def test_out_of_office_reply_to_our_ack_is_kept_on_the_ticket_without_reopening(ctx, pipeline):
    first = pipeline.take(mail(), ref())
    [ack] = outbox(ctx)
    ooo = pipeline.take(
        mail("我正在休假", subject="自动回复: 我们已收到您的来信", headers={"Auto-Submitted": "auto-replied", "In-Reply-To": f"<{ack.message_id}>"}),
        ref(),
    )
    assert ooo.outcome == "autoreply_ignored" and ooo.ticket == first.ticket
    assert len(outbox(ctx)) == 1


def test_mail_from_our_own_address_is_never_answered(ctx, pipeline):
    result = pipeline.take(mail("loop?", subject="hello", sender="support@example.com"), ref())
    assert result.outcome == "autoreply_ignored" and outbox(ctx) == []


def test_acks_per_sender_per_hour_are_capped(make_ctx, db_url):
    ctx = make_ctx(db_url, limits={"acks_per_sender_per_hour": 3})
    pipeline = Pipeline(ctx)
    results = [pipeline.take(mail(f"第 {i} 个问题", subject=f"问题 {i}"), ref()) for i in range(5)]
    assert [r.outcome for r in results] == ["opened"] * 5
    assert len(outbox(ctx)) == 3
    t = ticket(ctx, results[-1].ticket)
    [skipped] = [e for e in t.events if e.kind == "ack_skipped"]
    assert "limit 3" in skipped.detail["reason"]


def test_unparseable_message_is_quarantined_with_its_bytes_and_retried_after_a_fix(make_ctx, db_url):
    ctx = make_ctx(db_url, limits={"max_message_bytes": 1024})
    raw = mail("很长的内容。" * 200)
    result = Pipeline(ctx).take(raw, ref())
    assert result.outcome == "quarantined" and "max_message_bytes" in result.reason
    with ctx.sessions() as s:
        [q] = s.scalars(select(QuarantineItem)).all()
        assert q.raw == raw and q.status == "held" and "exceeds" in q.reason
    assert count(ctx, Ticket) == 0

    fixed = make_ctx(db_url, limits={"max_message_bytes": 10_000_000})
    [(qid, retried)] = Pipeline(fixed).retry_quarantined()
    assert retried.outcome == "opened" and qid == q.id
    with fixed.sessions() as s:
        q = s.get(QuarantineItem, qid)
        assert q.status == "released" and q.ticket_ref == retried.ticket and q.retries == 1


def test_garbage_is_quarantined_and_the_next_message_still_works(ctx, pipeline):
    bad = pipeline.take(b"\x00\x01\x02 not a message", ref())
    good = pipeline.take(mail(), ref())
    assert bad.outcome == "quarantined" and "unparseable" in bad.reason
    assert good.outcome == "opened"


def test_a_crashing_stage_quarantines_the_item_and_leaves_nothing_half_written(ctx, pipeline, monkeypatch):
    import intake.pipeline.runner as pipeline_module

    def broken(case, session, ctx):
        raise RuntimeError("disk on fire")

    stages = list(pipeline_module.PIPELINE)
    stages.insert(stages.index(pipeline_module.PIPELINE[-1]), broken)  # after store, before acknowledge
    monkeypatch.setattr(pipeline_module, "PIPELINE", tuple(stages))
    result = pipeline.take(mail(), ref("9:9"))
    assert result.outcome == "quarantined" and "disk on fire" in result.reason
    assert count(ctx, Ticket) == 0 and count(ctx, Message) == 0 and outbox(ctx) == []
    assert count(ctx, SourceItem, SourceItem.key == "9:9", SourceItem.outcome == "quarantined") == 1


def test_form_submission_opens_ticket_and_acks_the_given_address(ctx, pipeline):
    form = {
        "name": "李娜",
        "email": "lina@kehu.example.cn",
        "phone": "13812345678",
        "company": "某科技有限公司",
        "subject": "希望增加导出功能",
        "message": "建议在报表页面增加导出 Excel 的功能，方便我们每周汇总。",
    }
    result = pipeline.take(json.dumps(form, ensure_ascii=False).encode(), ref(channel="form", source="spool"))
    assert result.outcome == "opened"
    t = ticket(ctx, result.ticket)
    assert t.channel == "form" and t.customer.company == "某科技有限公司" and t.customer.phone == "13812345678"
    assert [m.rcpt_to for m in outbox(ctx)] == ["lina@kehu.example.cn"]


def test_form_with_phone_only_gets_ticket_and_no_email(ctx, pipeline):
    form = {"name": "王强", "phone": "13900001111", "message": "打印机卡纸，无法打印。"}
    result = pipeline.take(json.dumps(form, ensure_ascii=False).encode(), ref(channel="form", source="spool"))
    assert result.outcome == "opened" and outbox(ctx) == []
    t = ticket(ctx, result.ticket)
    assert t.customer.phone == "13900001111" and t.customer.email is None
    assert any(e.kind == "ack_skipped" for e in t.events)


def test_double_submitted_form_is_one_ticket(ctx, pipeline):
    raw = json.dumps({"name": "李娜", "email": "lina@kehu.example.cn", "message": "订单 2026112301 一直没有发货。"}, ensure_ascii=False).encode()
    first = pipeline.take(raw, ref("a.json", "spool", "form"))
    second = pipeline.take(raw, ref("b.json", "spool", "form"))
    assert first.outcome == "opened" and second.outcome == "duplicate" and second.ticket == first.ticket
    assert count(ctx, Ticket) == 1


def test_same_customer_second_ticket_reuses_customer(ctx, pipeline):
    pipeline.take(mail("问题一", subject="一"), ref())
    pipeline.take(mail("问题二", subject="二"), ref())
    assert count(ctx, Customer) == 1 and count(ctx, Ticket) == 2


def test_concurrent_takes_of_the_same_message_give_one_ticket(ctx):
    raw = mail(message_id="<race@kehu.example.cn>")
    results, barrier = [], threading.Barrier(4)

    def take(i: int) -> None:
        pipeline = Pipeline(ctx)
        barrier.wait()
        results.append(pipeline.take(raw, ref(f"race-{i}", f"imap:box{i}/INBOX")))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results) == ["duplicate"] * 3 + ["opened"]
    assert count(ctx, Ticket) == 1 and len(outbox(ctx)) == 1


def test_events_record_who_and_what(ctx, pipeline):
    result = pipeline.take(mail(), ref())
    with ctx.sessions() as s:
        events = s.scalars(select(Event).join(Ticket).where(Ticket.ref == result.ticket).order_by(Event.id)).all()
    opened = events[0]
    assert opened.kind == "opened" and opened.actor == "customer:zhang.wei@kehu.example.cn"
    classified = next(e for e in events if e.kind == "classified")
    assert classified.detail["type"] and classified.detail["urgency"]


def test_a_stranger_naming_a_ticket_in_the_subject_does_not_join_it(ctx, pipeline):
    """References are sequential and easy to guess: only the customer threads by subject
    (a colleague at the customer's domain only where [tickets] colleague_domains lists it:
    tests/hostile/test_auth_threading.py); anyone else opens a ticket of their own."""
    first = pipeline.take(mail("我的订单有问题", subject="订单问题", sender="alice@kehu.example.cn"), ref())
    colleague = pipeline.take(mail("补充：订单号 1001", subject=f"Re: [#{first.ticket}] 订单问题", sender="bob@kehu.example.cn"), ref())
    stranger = pipeline.take(mail("5", subject=f"Re: [#{first.ticket}] 满意度", sender="mallory@evil.example.net"), ref())
    customer = pipeline.take(mail("补充：订单号 1002", subject=f"Re: [#{first.ticket}] 订单问题", sender="alice@kehu.example.cn"), ref())
    assert colleague.outcome == "opened" and colleague.ticket != first.ticket
    assert stranger.outcome == "opened" and stranger.ticket != first.ticket
    assert customer.outcome == "appended" and customer.ticket == first.ticket


def test_a_long_read_does_not_hold_up_writers(ctx, pipeline):
    """Reading sessions (status, search, export, verify) take no write lock on SQLite:
    a ticket opens while a read transaction is open in another thread."""
    import threading

    done = threading.Event()
    with ctx.read_sessions() as reader:
        reader.scalar(select(func.count()).select_from(Ticket))  # the read transaction is open now
        worker = threading.Thread(target=lambda: (pipeline.take(mail(), ref()), done.set()))
        worker.start()
        assert done.wait(10), "the pipeline waited for a reader"
        worker.join()
    assert count(ctx, Ticket) == 1


def test_overlong_names_and_a_line_break_in_a_form_name_still_make_a_ticket(ctx, pipeline):
    """Customer-supplied values longer than their columns are clipped (PostgreSQL refuses
    them), and a name typed with a line break cannot break the acknowledgement's headers."""
    long_name = "某" * 400
    emailed = pipeline.take(mail("请帮忙查一下发票。", subject="发票", sender=f"{long_name} <long@kehu.example.cn>"), ref())
    form = {"name": "李娜\r\nBcc: victim@example.org", "email": "lina2@kehu.example.cn", "company": "某科技有限公司", "message": "订单没有发货。"}
    submitted = pipeline.take(json.dumps(form, ensure_ascii=False).encode(), ref(channel="form", source="spool"))
    assert emailed.outcome == "opened" and submitted.outcome == "opened"
    acks = outbox(ctx)
    assert len(acks) == 2
    headers = email.message_from_bytes(acks[1].raw)
    assert "Bcc" not in headers and headers["To"] == "lina2@kehu.example.cn"  # a form's ack echoes no typed name
