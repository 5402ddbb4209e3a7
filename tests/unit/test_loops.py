"""auto_reply_reason: each RFC 3834 rule fires on its own, and a customer's message passes."""

from __future__ import annotations

import pytest

from intake.inbound.loops import auto_reply_reason
from intake.inbound.message import ParsedMessage, parse_message
from tests.fixtures.mail.build import attachment_part, base_headers, encoded_word, multipart, raw, text_message, text_part


def _message(extra: list[tuple[str, str]] = (), *, sender: str = "Li Wei <li.wei@example.cn>", subject: str = "Printer problem") -> ParsedMessage:  # type: ignore[assignment]
    headers = base_headers(subject=subject, sender=sender) + list(extra)
    return parse_message(raw(headers, b"Hello, our printer is broken. Please help."))


def test_a_customer_message_gets_a_reply() -> None:
    """A plain customer message, even with Auto-Submitted: no and Precedence: normal, is not an auto-reply."""
    assert auto_reply_reason(_message()) is None
    assert auto_reply_reason(_message([("Auto-Submitted", "no"), ("Precedence", "normal")])) is None
    zh = parse_message(text_message("您好，打印机坏了。", "gb2312", codec="gb18030", subject="打印机故障"))
    assert auto_reply_reason(zh) is None


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ([("Auto-Submitted", "auto-replied")], "Auto-Submitted"),
        ([("Auto-Submitted", "auto-generated")], "Auto-Submitted"),
        ([("Auto-Submitted", "auto-notified; owner-email=x@y")], "Auto-Submitted"),
        ([("Precedence", "bulk")], "Precedence"),
        ([("Precedence", "junk")], "Precedence"),
        ([("Precedence", "list")], "Precedence"),
        ([("Precedence", "auto_reply")], "Precedence"),
        ([("List-Id", "<offers.example.cn>")], "list-id"),
        ([("List-Unsubscribe", "<mailto:unsub@example.cn>")], "list-unsubscribe"),
        ([("X-Autoreply", "yes")], "x-autoreply"),
        ([("X-Autorespond", "Out of office")], "x-autorespond"),
        ([("X-Auto-Response-Suppress", "All")], "X-Auto-Response-Suppress"),
        ([("X-Auto-Response-Suppress", "DR, OOF, AutoReply")], "X-Auto-Response-Suppress"),
        ([("Return-Path", "<>")], "Return-Path"),
    ],
)
def test_each_header_rule_fires(extra: list[tuple[str, str]], needle: str) -> None:
    """Each loop-protection header marks the message as automatic, and the reason names it."""
    reason = auto_reply_reason(_message(extra))
    assert reason is not None and needle.lower() in reason.lower()


def test_x_auto_response_suppress_without_reply_kinds_passes() -> None:
    """X-Auto-Response-Suppress: DR, RN (only receipts) does not by itself mean automatic."""
    assert auto_reply_reason(_message([("X-Auto-Response-Suppress", "DR, RN")])) is None


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.example.cn",
        "Mail Delivery System <postmaster@example.cn>",
        "noreply@example.cn",
        "no-reply@example.cn",
        "No_Reply <no_reply@example.cn>",
        "donotreply@example.cn",
        "do-not-reply@example.cn",
        "bounces+123@example.cn",
    ],
)
def test_machine_senders_are_recognised(sender: str) -> None:
    """mailer-daemon, postmaster, noreply and similar senders get no reply."""
    reason = auto_reply_reason(_message(sender=sender))
    assert reason is not None and "machine sender" in reason


@pytest.mark.parametrize("sender", ["Noreen <noreen@example.cn>", "replyto@example.cn", "postmasters-guild@example.cn"])
def test_people_with_similar_names_are_not_machines(sender: str) -> None:
    """Local parts that only resemble machine names pass."""
    assert auto_reply_reason(_message(sender=sender)) is None


def test_delivery_status_notification_is_recognised() -> None:
    """multipart/report with a message/delivery-status part is a bounce."""
    status = b"Reporting-MTA: dns; mx.example.cn\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    report = multipart(
        "report; report-type=delivery-status",
        [text_part("Your message could not be delivered."), attachment_part("inline", status, "message/delivery-status")],
        headers=base_headers(subject="Your message", sender="Mail System <mailer@example.cn>"),
    )
    reason = auto_reply_reason(parse_message(report))
    assert reason is not None and "report" in reason


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Printer problem",
        "Automatic reply: Printer problem",
        "Auto: Printer problem",
        "Autoreply: away",
        "On vacation until Dec 1",
        "自动回复：打印机故障",
        "自動回覆：伺服器當機",
        "休假通知",
        "外出中，12月1日返回",
        "我不在办公室",
    ],
)
def test_out_of_office_subjects_are_recognised(subject: str) -> None:
    """English and Chinese out-of-office subjects (also RFC 2047 encoded) mean an auto-reply."""
    reason = auto_reply_reason(_message(subject=encoded_word(subject, "utf-8")))
    assert reason is not None and "subject" in reason


def test_no_sender_address_gets_no_reply() -> None:
    """Without a sender address there is no one to acknowledge."""
    msg = parse_message(raw([("Subject", "hi"), ("Date", "Mon, 23 Nov 2026 10:15:00 +0800")], b"body"))
    assert auto_reply_reason(msg) == "no sender address"


@pytest.mark.parametrize(
    "subject",
    [
        "我休假回来发现系统无法登录",
        "员工外出打卡功能报错",
        "Cannot book my vacation days in the HR module",
        "我们的员工休假审批流程出错",
        "The delivery status page shows an error",
        "Parcel returned as undeliverable, order 2026112301",
    ],
)
def test_customer_subjects_mentioning_leave_or_delivery_are_not_auto_replies(subject: str) -> None:
    """Words like 休假, 外出, vacation, undeliverable mark an auto-reply only as a subject's first word."""
    assert auto_reply_reason(_message(subject=encoded_word(subject, "utf-8"))) is None
