"""The whole staff loop through the real Dovecot and SMTP servers: customer mail →
ticket → notification to the assignee → the assignee's reply → the customer."""
from __future__ import annotations

from email.utils import parseaddr

from intake.pipeline import Pipeline
from intake.sources.base import SourceRef
from intake.staffmail.token import parse_address

from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import (
    CUSTOMER, MONDAY_10, body, complaint, deliver, events, outbox, reply_to, staff_config, ticket, to_addr,
)


def through_imap(dovecot, pipeline, raw: bytes):
    """Deliver `raw` into the support mailbox on Dovecot, fetch it back over IMAP, take it."""
    dovecot.append("support", "INBOX", raw)
    [item] = [m for m in dovecot.fetch_all("support", "INBOX") if m["raw"].replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")]
    validity = dovecot.uidvalidity("support", "INBOX")
    return pipeline.take(item["raw"], SourceRef("imap:support/INBOX", f"{validity}:{item['uid']}", "email"))


def test_customer_mail_reaches_assignee_and_their_reply_reaches_the_customer_stripped(make_ctx, db_url, dovecot, smtp_server):
    """The whole loop: notification with case facts and a signed Reply-To; the reply relayed
    from the support address with the staff name, quotes and signature gone; first response recorded."""
    clock = Clock(MONDAY_10)
    ctx = make_ctx(db_url, clock, **staff_config(smtp_server))
    pipeline = Pipeline(ctx)

    # an earlier ticket of the same customer, listed in the notification
    first = through_imap(dovecot, pipeline, complaint("请问发票什么时候寄出？", subject="发票咨询"))
    deliver(ctx, smtp_server)
    opened = through_imap(dovecot, pipeline, complaint())
    assert opened.outcome == "opened"
    t = ticket(ctx, opened.ticket)
    assert t.type == "complaint" and t.department == "after_sales" and t.assignee == "li.na"

    sent = deliver(ctx, smtp_server)
    [ack] = [m for m in sent if to_addr(m) == CUSTOMER]
    [note] = [m for m in sent if to_addr(m) == "li.na@example.com"]
    assert f"[#{t.ref}]" in note["Subject"] and "新工单" in note["Subject"]
    token = parse_address(parseaddr(note["Reply-To"])[1], "support@example.com")
    assert token is not None and token.ref.upper() == t.ref.upper() and len(token.mac) == 20
    text = body(note)
    due = {"urgent": "2026-11-23 12:00", "important": "2026-11-24 10:00", "normal": "2026-11-25 10:00"}[t.urgency]
    for fact in ("投诉", "售后部", "维修人员答应上门却一直没来", first.ticket, "发票咨询", due):
        assert fact in text, fact  # type, department, the message, earlier ticket, due time

    clock.advance(minutes=40)
    answer = reply_to(
        note.as_bytes(), sender="李娜 <li.na@example.com>",
        body="赵女士您好：\n\n非常抱歉给您带来不便，维修师傅明天上午十点上门。\n\n--\n李娜 售后部\n电话 010-12345678",
    )
    result = through_imap(dovecot, pipeline, answer)
    assert result.outcome == "appended" and result.ticket == t.ref, result

    [relayed] = deliver(ctx, smtp_server)
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
    assert [o.status for o in outbox(ctx)] == ["sent"] * len(outbox(ctx))


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
    result = Pipeline(ctx).take(complaint("紧急！我们的生产系统全部宕机，所有员工都无法登录，核心业务停摆，请立即处理！", subject="系统宕机 紧急"), SourceRef("t", "1"))
    t = ticket(ctx, result.ticket)
    assert t.urgency == "urgent" and t.flagged
    sent = deliver(ctx, smtp_server)
    heads = [m for m in sent if "加急" in m["Subject"] and "加急工单" in m["Subject"]]
    assert len(heads) == 1
    assert to_addr(heads[0]) in {"li.na@example.com", "wang.lei@example.com"}  # the head of the ticket's department
    assert "宕机" in body(heads[0])
