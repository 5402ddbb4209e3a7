"""The whole staff loop through the real Dovecot and SMTP servers: customer mail →
ticket → notification to the assignee → the assignee's reply → the customer."""

from __future__ import annotations

import email
from email.policy import default
from email.utils import parseaddr

from sqlalchemy import select

from intake.daemon import Daemon
from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.staffmail.token import parse_address
from intake.store.models import Ticket
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


def imap_daemon(make_ctx, db_url, clock, dovecot, smtp_server) -> Daemon:
    """The daemon on the real servers: the support mailbox on Dovecot in, SMTP out."""
    account = {
        "name": "support",
        "host": dovecot.host,
        "port": dovecot.port,
        "security": "plain",
        "username": "support",
        "password": dovecot.users["support"],
        "idle": False,
        "poll_interval": 0.2,
    }
    ctx = make_ctx(db_url, clock, imap=[account], maildir={"enabled": False}, spool={"enabled": False}, **staff_config(smtp_server))
    return Daemon(ctx)


def received(smtp_server, before: int) -> list:
    return [email.message_from_bytes(m.raw, policy=default) for m in smtp_server.messages[before:]]


def test_customer_mail_reaches_assignee_and_their_reply_reaches_the_customer_stripped(make_ctx, db_url, dovecot, smtp_server):
    """The whole loop through `intake run --once` passes: Dovecot → notification with case facts and a
    signed Reply-To → the assignee's reply (delivered to the support mailbox) → relayed from the
    support address with the staff name, quotes and signature gone; first response recorded."""
    clock = Clock(MONDAY_10)
    daemon = imap_daemon(make_ctx, db_url, clock, dovecot, smtp_server)
    ctx = daemon.ctx

    # an earlier ticket of the same customer, listed in the notification
    dovecot.append("support", "INBOX", complaint("请问发票什么时候寄出？", subject="发票咨询"))
    assert daemon.run_once()["taken"] == {"imap:support/INBOX": 1}
    before = len(smtp_server.messages)
    dovecot.append("support", "INBOX", complaint())
    daemon.run_once()
    with ctx.sessions() as s:
        first, ref = [t.ref for t in s.scalars(select(Ticket).order_by(Ticket.id))]
    t = ticket(ctx, ref)
    assert t.type == "complaint" and t.department == "after_sales" and t.assignee == "li.na"

    sent = received(smtp_server, before)
    [ack] = [m for m in sent if to_addr(m) == CUSTOMER]
    [note] = [m for m in sent if to_addr(m) == "li.na@example.com"]
    assert f"[#{t.ref}]" in note["Subject"] and "新工单" in note["Subject"]
    token = parse_address(parseaddr(note["Reply-To"])[1], "support@example.com")
    assert token is not None and token.ref.upper() == t.ref.upper() and len(token.mac) == 20
    text = body(note)
    due = {"urgent": "2026-11-23 12:00", "important": "2026-11-24 10:00", "normal": "2026-11-25 10:00"}[t.urgency]
    for fact in ("投诉", "售后部", "维修人员答应上门却一直没来", first, "发票咨询", due):
        assert fact in text, fact  # type, department, the message, earlier ticket, due time

    clock.advance(minutes=40)
    answer = reply_to(
        note.as_bytes(),
        sender="李娜 <li.na@example.com>",
        body="赵女士您好：\n\n非常抱歉给您带来不便，维修师傅明天上午十点上门。\n\n--\n李娜 售后部\n电话 010-12345678",
    )
    before = len(smtp_server.messages)
    dovecot.append("support", "INBOX", answer)  # plus-addressed mail lands in the support mailbox
    assert daemon.run_once()["taken"] == {"imap:support/INBOX": 1}

    [relayed] = received(smtp_server, before)
    assert to_addr(relayed) == CUSTOMER
    name, addr = parseaddr(str(relayed["From"]))
    assert addr == "support@example.com" and "李娜" in name
    assert f"[#{t.ref}]" in relayed["Subject"] and relayed["In-Reply-To"]
    text = body(relayed)
    assert "维修师傅明天上午十点上门" in text and "李娜" in text
    assert "写道" not in text and "> " not in text and "010-12345678" not in text  # quote and signature stripped
    assert token.mac not in relayed.as_string()  # the token never reaches the customer

    t = ticket(ctx, t.ref)
    assert t.first_response_at == MONDAY_10.replace(minute=40) and t.status == "in_progress"
    assert [m.kind for m in t.messages if m.direction == "out"] == ["ack", "staff_reply"]
    [first_response] = events(ctx, t.ref, "first_response")
    assert first_response.detail["minutes"] == 40 and first_response.detail["met"] is True
    assert {o.status for o in outbox(ctx)} == {"sent"}
    assert dovecot.fetch_all("support", "INBOX") == []  # every message taken and moved away


def test_customer_writing_again_notifies_the_assignee_with_the_new_message(make_ctx, db_url, smtp_server):
    """A follow-up from the customer reaches the assignee, quoted history stripped."""
    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    opened = pipeline.take(complaint(), SourceRef("t", "1"))
    [ack] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == CUSTOMER]
    again = reply_to(ack.as_bytes(), sender=f"赵丽 <{CUSTOMER}>", body="补充一下：我的订单号是 A-20261101-88。", to="support@example.com")
    assert pipeline.take(again, SourceRef("t", "2")).outcome == "appended"
    [note] = deliver(ctx, smtp_server)
    assert to_addr(note) == "li.na@example.com" and "客户新来信" in note["Subject"]
    assert "A-20261101-88" in body(note) and "我们已收到您的来信" not in body(note)
    assert parse_address(parseaddr(note["Reply-To"])[1], "support@example.com").ref.upper() == opened.ticket.upper()


def test_urgent_flagged_case_notifies_the_department_head(make_ctx, db_url, smtp_server):
    """加急: an urgent case also goes to the head of its department."""
    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config(smtp_server))
    result = Pipeline(ctx).take(
        complaint("紧急！我们的生产系统全部宕机，所有员工都无法登录，核心业务停摆，请立即处理！", subject="系统宕机 紧急"), SourceRef("t", "1")
    )
    t = ticket(ctx, result.ticket)
    assert t.urgency == "urgent" and t.flagged
    sent = deliver(ctx, smtp_server)
    heads = [m for m in sent if "加急" in m["Subject"] and "加急工单" in m["Subject"]]
    assert len(heads) == 1
    assert to_addr(heads[0]) in {"li.na@example.com", "wang.lei@example.com"}  # the head of the ticket's department
    assert "宕机" in body(heads[0])


def test_staff_attachments_go_to_the_customer_and_oversized_ones_are_reported(make_ctx, db_url, smtp_server):
    """A PDF attached to the reply reaches the customer and stays on the ticket; a file over the
    size limit is not sent and the staff member hears so."""
    from email.message import EmailMessage

    ctx = make_ctx(db_url, Clock(MONDAY_10), limits={"max_attachment_bytes": 50_000}, **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    ref = pipeline.take(complaint(), SourceRef("t", "1")).ticket
    [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "li.na@example.com"]
    reply = email.message_from_bytes(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="维修单见附件。"), policy=default)
    assert isinstance(reply, EmailMessage)
    reply.add_attachment(b"%PDF-1.7 repair order", maintype="application", subtype="pdf", filename="维修单.pdf")
    reply.add_attachment(b"x" * 60_000, maintype="application", subtype="zip", filename="logs.zip")
    assert pipeline.take(reply.as_bytes(), SourceRef("t", "2")).outcome == "appended"
    sent = deliver(ctx, smtp_server)
    [relayed] = [m for m in sent if to_addr(m) == CUSTOMER]
    files = {part.get_filename(): part.get_content() for part in relayed.iter_attachments()}
    assert files == {"维修单.pdf": b"%PDF-1.7 repair order"} and "维修单见附件" in body(relayed)
    [told] = [m for m in sent if to_addr(m) == "li.na@example.com"]
    assert "logs.zip" in body(told) and "已转发" in told["Subject"]
    thread = ticket(ctx, ref).messages  # in id order: the order things happened
    assert [m.kind for m in thread][-1] == "staff_reply", [(m.id, m.kind, m.direction) for m in thread]
    assert [m.direction for m in thread].count("in") == len(thread) - 2  # the ack and the relayed reply went out
    [out] = [m for m in thread if m.kind == "staff_reply"]
    with ctx.sessions() as s:
        from intake.store.models import Message

        assert [a.filename for a in s.get(Message, out.id).attachments] == ["维修单.pdf"]


def test_a_new_customers_notification_lists_no_earlier_tickets_but_their_second_case_in_the_same_batch_lists_the_first(make_ctx, db_url):
    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config())
    pipeline = Pipeline(ctx)
    items = [(complaint("请问发票什么时候寄出？", subject="发票咨询"), SourceRef("test", "a")), (complaint(), SourceRef("test", "b"))]
    first, second = pipeline.take_many(items)  # one transaction: the customer is created by the first
    assert (first.outcome, second.outcome) == ("opened", "opened")
    notes = {}
    for row in outbox(ctx, "notify"):
        note = email.message_from_bytes(row.raw, policy=default)
        notes[note["X-Intake-Ticket"]] = body(note)
    assert "该客户没有以往的工单" in notes[first.ticket]
    assert "该客户以往的工单" in notes[second.ticket] and first.ticket in notes[second.ticket] and "发票咨询" in notes[second.ticket]
