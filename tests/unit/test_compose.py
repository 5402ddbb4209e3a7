"""Outgoing mail bytes: the fast header path writes exactly what compat32 would."""
from __future__ import annotations

import email
from email.policy import compat32

import pytest

from intake.compose import _CRLF, compose
from intake.render import RenderedMail

PLAIN = compat32.clone(linesep="\r\n")


@pytest.mark.parametrize("value", [
    "short", "a" * 66, "a" * 70, "a" * 75, "a" * 76, "x y " * 30, "<id@example.cn> " * 15, "", " leading space",
    "tab\tinside", "=?utf-8?b?5a6i5pyN?= <support@example.cn>", "客服", "line\r\nbreak", "café",
])
@pytest.mark.parametrize("name", ["To", "References", "X-Intake-Ticket"])
def test_header_bytes_are_those_of_compat32(name, value):
    assert _CRLF.fold_binary(name, value) == PLAIN.fold_binary(name, value)


def test_composed_mail_reads_back_with_every_header_and_crlf_line_ends():
    mail = RenderedMail(subject="[#261123-0007] 我们已收到您的来信 / We received your message " * 2, text="您好，\n收到。\n", html="<p>您好</p>")
    raw = compose(mail, message_id="ack.261123-0007.0123456789abcdef@example.cn", from_name="客服中心", from_addr="support@example.cn",
                  to_addr="li.wei@example.cn", to_name="李\n伟", in_reply_to="m1@example.cn", references=["r" * 80 + "@example.cn"],
                  auto_submitted="auto-replied", extra_headers={"X-Intake-Ticket": "261123-0007"})
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == mail.subject
    assert msg["To"].addresses[0].display_name == "李 伟" and msg["To"].addresses[0].addr_spec == "li.wei@example.cn"
    assert msg["Message-ID"] == "<ack.261123-0007.0123456789abcdef@example.cn>"
    assert msg["References"].split() == ["<" + "r" * 80 + "@example.cn>", "<m1@example.cn>"]
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Intake-Ticket"] == "261123-0007"
    assert msg.get_body(("plain",)).get_content() == "您好，\n收到。\n"


@pytest.mark.parametrize("text", [
    "订单 2 无法付款", "[#261123-0007] 我们已收到您的来信 / We received your message " * 3, "é" * 100, "𠀀𪚥 emoji 😀 " * 10, "ASCII only",
])
def test_folded_words_read_back_as_the_text_and_each_fits_rfc_2047(text):
    from email.header import decode_header, make_header

    from intake.compose import folded_words

    value = folded_words(text)
    assert value.isascii()
    assert str(make_header(decode_header(value))) == text
    assert text.isascii() or all(len(word) <= 75 and len("Subject: " + word) <= 78 for word in value.split("\r\n "))
