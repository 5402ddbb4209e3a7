"""Staff replies that must never reach the customer: no token, a wrong sender, a
tampered token, an out-of-office. Each is quarantined (or ignored) and the right
person is told why; a forged From alone never passes."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr

import pytest
from sqlalchemy import select

from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from intake.store.models import QuarantineItem
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
def setup(make_ctx, db_url, smtp_server):
    """A complaint assigned to li.na, its ack and notification delivered."""
    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    result = pipeline.take(complaint(), SourceRef("t", "first"))
    sent = deliver(ctx, smtp_server)
    [ack] = [m for m in sent if to_addr(m) == CUSTOMER]
    [note] = [m for m in sent if to_addr(m) == "li.na@example.com"]
    return ctx, pipeline, result.ticket, ack, note


def held(ctx) -> list[QuarantineItem]:
    with ctx.sessions() as s:
        return list(s.scalars(select(QuarantineItem).where(QuarantineItem.status == "held")))


def nothing_to_customer(sent) -> bool:
    return all(to_addr(m) != CUSTOMER for m in sent)


def test_right_from_without_token_is_quarantined_and_the_staff_member_told(setup, smtp_server):
    """The assignee's address on a reply to the plain support address (threading by [#ref]) relays nothing."""
    ctx, pipeline, ref, ack, note = setup
    forged = reply_to(ack.as_bytes(), sender="李娜 <li.na@example.com>", body="您的问题已经解决了。", to="support@example.com")
    result = pipeline.take(forged, SourceRef("t", "forged"))
    assert result.outcome == "quarantined" and result.ticket == ref
    [item] = held(ctx)
    assert "without the ticket's reply address" in item.reason
    sent = deliver(ctx, smtp_server)
    assert nothing_to_customer(sent)
    [told] = sent
    assert to_addr(told) == "li.na@example.com" and "未转发" in told["Subject"] and "without the ticket's reply address" in body(told)
    assert [m.kind for m in ticket(ctx, ref).messages if m.direction == "out"] == ["ack"]
    assert ticket(ctx, ref).first_response_at is None and events(ctx, ref, "staff_reply_refused")


def test_right_token_wrong_sender_is_quarantined_and_the_assignee_warned(setup, smtp_server):
    """Someone outside the team who got hold of the reply address cannot answer the customer."""
    ctx, pipeline, ref, ack, note = setup
    forged = reply_to(note.as_bytes(), sender="Mallory <mallory@evil.example>", body="请把您的银行卡号发给我们以便退款。")
    result = pipeline.take(forged, SourceRef("t", "mallory"))
    assert result.outcome == "quarantined" and "may not act on ticket" in result.reason
    sent = deliver(ctx, smtp_server)
    assert nothing_to_customer(sent) and all(to_addr(m) != "mallory@evil.example" for m in sent)
    [told] = sent
    assert to_addr(told) == "li.na@example.com" and "mallory@evil.example" in body(told)
    assert len(held(ctx)) == 1 and ticket(ctx, ref).first_response_at is None


def test_right_token_from_a_colleague_not_on_the_ticket_is_refused_and_they_are_told(setup, smtp_server):
    """Another staff member (not the assignee, not the department's head) cannot reply on it."""
    ctx, pipeline, ref, ack, note = setup
    other = reply_to(note.as_bytes(), sender="陈杰 <chen.jie@example.com>", body="我来回复一下。")
    assert pipeline.take(other, SourceRef("t", "chen")).outcome == "quarantined"
    sent = deliver(ctx, smtp_server)
    assert nothing_to_customer(sent) and [to_addr(m) for m in sent] == ["chen.jie@example.com"]


def test_tampered_token_from_the_assignee_is_refused(setup, smtp_server):
    """A token whose MAC does not verify (here: moved to another ticket number) relays nothing."""
    ctx, pipeline, ref, ack, note = setup
    address = parseaddr(note["Reply-To"])[1]
    local, domain = address.split("@")
    mac = local.rsplit(".", 1)[1]
    other_ticket = ref[:-1] + ("9" if ref[-1] != "9" else "8")
    for n, to in enumerate((f"support+{ref}.{'0' * len(mac)}@{domain}", f"support+{other_ticket}.{mac}@{domain}")):
        result = pipeline.take(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="好的。", to=to), SourceRef("t", f"bad{n}"))
        assert result.outcome == "quarantined" and "bad token" in result.reason
    sent = deliver(ctx, smtp_server)  # told once: at most one refusal notice an hour per staff member
    assert nothing_to_customer(sent) and [to_addr(m) for m in sent] == ["li.na@example.com"]
    assert len(held(ctx)) == 2


def test_forged_from_with_a_token_of_another_ticket_is_refused(make_ctx, db_url, smtp_server):
    """A token is bound to its ticket: a valid token of ticket A does not open ticket B."""
    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    a = pipeline.take(complaint(), SourceRef("t", "a")).ticket
    b = pipeline.take(complaint("另一个投诉：产品质量太差。", sender="钱七 <qian@other.example>"), SourceRef("t", "b")).ticket
    notes = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "li.na@example.com"]
    note_a = next(m for m in notes if a in m["Subject"])
    address = parseaddr(note_a["Reply-To"])[1]
    swapped = address.replace(a, b)
    result = pipeline.take(reply_to(note_a.as_bytes(), sender="李娜 <li.na@example.com>", body="好的。", to=swapped), SourceRef("t", "x"))
    assert result.outcome == "quarantined"
    assert all(to_addr(m) == "li.na@example.com" for m in deliver(ctx, smtp_server))


def test_staff_out_of_office_to_the_token_is_ignored_silently(setup, smtp_server):
    """An auto-reply from the assignee's mailbox never reaches the customer and tells nobody."""
    ctx, pipeline, ref, ack, note = setup
    ooo = reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="我正在休假，12月1日回来。", headers={"Auto-Submitted": "auto-replied"})
    result = pipeline.take(ooo, SourceRef("t", "ooo"))
    assert result.outcome == "autoreply_ignored"
    assert deliver(ctx, smtp_server) == [] and held(ctx) == []


def test_department_head_may_reply_on_a_colleagues_ticket(make_ctx, db_url, smtp_server):
    """Documented policy: the head of the ticket's department may step in and answer."""
    clock = Clock(MONDAY_10 + timedelta(hours=3))  # 13:00: sun.yue's shift, listed first in after_sales
    ctx = make_ctx(db_url, clock, **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    ref = pipeline.take(complaint(), SourceRef("t", "1")).ticket
    assert ticket(ctx, ref).assignee == "sun.yue"
    [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "sun.yue@example.com"]
    result = pipeline.take(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="我是售后部负责人，我来处理。"), SourceRef("t", "2"))
    assert result.outcome == "appended"
    [relayed] = deliver(ctx, smtp_server)
    assert to_addr(relayed) == CUSTOMER and "李娜" in parseaddr(str(relayed["From"]))[0]


def test_department_head_refused_when_the_policy_is_off(make_ctx, db_url, smtp_server):
    """staff_mail.allow_department_head = false: only the assignee."""
    ctx = make_ctx(db_url, Clock(MONDAY_10 + timedelta(hours=3)), **staff_config(smtp_server, staff_mail={"allow_department_head": False}))
    pipeline = Pipeline(ctx)
    pipeline.take(complaint(), SourceRef("t", "1"))
    [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "sun.yue@example.com"]
    result = pipeline.take(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="我来处理。"), SourceRef("t", "2"))
    assert result.outcome == "quarantined"
    assert nothing_to_customer(deliver(ctx, smtp_server))


def test_retrying_a_refused_reply_keeps_it_held_and_tells_nobody_again(setup, smtp_server):
    """`intake quarantine retry` on a forged reply: refused again, the same item stays held."""
    ctx, pipeline, ref, ack, note = setup
    forged = reply_to(note.as_bytes(), sender="Mallory <mallory@evil.example>", body="转账给我。")
    pipeline.take(forged, SourceRef("t", "m"))
    deliver(ctx, smtp_server)
    [(qid, result)] = pipeline.retry_quarantined()
    assert result.outcome == "quarantined"
    [item] = held(ctx)
    assert item.id == qid and item.retries == 1
    assert deliver(ctx, smtp_server) == []


def test_the_same_staff_reply_from_two_mailboxes_is_relayed_once(setup, smtp_server):
    """Dedupe covers staff replies too: the customer gets one answer."""
    ctx, pipeline, ref, ack, note = setup
    answer = reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="已安排。")
    assert pipeline.take(answer, SourceRef("imap:a/INBOX", "1:1")).outcome == "appended"
    assert pipeline.take(answer, SourceRef("imap:b/INBOX", "1:1")).outcome == "duplicate"
    assert [to_addr(m) for m in deliver(ctx, smtp_server)] == [CUSTOMER]


def test_reply_on_a_phone_only_ticket_tells_the_staff_member_to_call(make_ctx, db_url, smtp_server):
    """A form case with a phone number only cannot be answered by mail: the staff member hears so."""
    import json

    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    form = json.dumps(
        {"name": "赵丽", "phone": "13812345678", "subject": "投诉", "message": "我要投诉：维修人员一直没来，太差了。"}, ensure_ascii=False
    )
    ref = pipeline.take(form.encode(), SourceRef("spool", "f1", "form")).ticket
    [note] = deliver(ctx, smtp_server)
    assert to_addr(note) == "li.na@example.com" and "138****5678" in body(note) and "13812345678" not in body(note)
    pipeline.take(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="您好，已处理。"), SourceRef("t", "2"))
    [told] = deliver(ctx, smtp_server)
    assert to_addr(told) == "li.na@example.com" and "请电话联系" in body(told)
    assert ticket(ctx, ref).first_response_at is None


def test_with_trusted_authserv_only_authenticated_staff_replies_pass(make_ctx, db_url, smtp_server):
    """staff_mail.trusted_authserv_id: right token and From, but no pass from our server → refused;
    a foreign server's pass → refused; our server's dkim pass for the From domain → relayed."""
    ctx = make_ctx(db_url, Clock(MONDAY_10), **staff_config(smtp_server, staff_mail={"secret": "x" * 20, "trusted_authserv_id": "mx.example.com"}))
    pipeline = Pipeline(ctx)
    pipeline.take(complaint(), SourceRef("t", "1"))
    [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "li.na@example.com"]

    def answer(key, header=None):
        extra = {"Authentication-Results": header} if header else {}
        return pipeline.take(reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body="已处理。", headers=extra), SourceRef("t", key))

    assert answer("none").outcome == "quarantined"
    assert answer("foreign", "mx.evil.example; dkim=pass header.d=example.com").outcome == "quarantined"
    sent = deliver(ctx, smtp_server)  # both refused; told once (at most one refusal notice an hour)
    assert nothing_to_customer(sent) and all("was not authenticated" in body(m) for m in sent) and len(sent) == 1
    assert answer("ok", "mx.example.com; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=example.com").outcome == "appended"
    assert [to_addr(m) for m in deliver(ctx, smtp_server)] == [CUSTOMER]
