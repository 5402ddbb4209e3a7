"""Outgoing mail bytes: the fast header path writes exactly what compat32 would."""

from __future__ import annotations

import email
from datetime import UTC
from email.policy import compat32

import pytest

from intake.outgoing.compose import _CRLF, compose, folded_words
from intake.outgoing.templates import RenderedMail

PLAIN = compat32.clone(linesep="\r\n")


@pytest.mark.parametrize(
    "value",
    [
        "short",
        "a" * 66,
        "a" * 70,
        "a" * 75,
        "a" * 76,
        "x y " * 30,
        "<id@example.cn> " * 15,
        "",
        " leading space",
        "tab\tinside",
        "=?utf-8?b?5a6i5pyN?= <support@example.cn>",
        "客服",
        "line\r\nbreak",
        "café",
    ],
)
@pytest.mark.parametrize("name", ["To", "References", "X-Intake-Ticket"])
def test_header_bytes_are_those_of_compat32(name, value):
    assert _CRLF.fold_binary(name, value) == PLAIN.fold_binary(name, value)


def test_composed_mail_reads_back_with_every_header_and_crlf_line_ends():
    mail = RenderedMail(subject="[#261123-0007] 我们已收到您的来信 / We received your message " * 2, text="您好，\n收到。\n", html="<p>您好</p>")
    raw = compose(
        mail,
        message_id="ack.261123-0007.0123456789abcdef@example.cn",
        from_name="客服中心",
        from_addr="support@example.cn",
        to_addr="li.wei@example.cn",
        to_name="李\n伟",
        in_reply_to="m1@example.cn",
        references=["r" * 80 + "@example.cn"],
        auto_submitted="auto-replied",
        extra_headers={"X-Intake-Ticket": "261123-0007"},
    )
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == mail.subject
    assert msg["To"].addresses[0].display_name == "李 伟" and msg["To"].addresses[0].addr_spec == "li.wei@example.cn"
    assert msg["Message-ID"] == "<ack.261123-0007.0123456789abcdef@example.cn>"
    assert msg["References"].split() == ["<" + "r" * 80 + "@example.cn>", "<m1@example.cn>"]
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Intake-Ticket"] == "261123-0007"
    assert msg.get_body(("plain",)).get_content() == "您好，\n收到。\n"


@pytest.mark.parametrize(
    "text",
    [
        "订单 2 无法付款",
        "[#261123-0007] 我们已收到您的来信 / We received your message " * 3,
        "é" * 100,
        "𠀀𪚥 emoji 😀 " * 10,
        "ASCII only",
    ],
)
def test_folded_words_read_back_as_the_text_and_each_fits_rfc_2047(text):
    from email.header import decode_header, make_header

    from intake.outgoing.compose import folded_words

    value = folded_words(text)
    assert value.isascii()
    assert str(make_header(decode_header(value))) == text
    assert text.isascii() or all(len(word) <= 75 and len("Subject: " + word) <= 78 for word in value.split("\r\n "))


def _compat32_reference(mail: RenderedMail, headers: list[tuple[str, str]]) -> bytes:
    """What compose wrote when it built the email package's MIME objects."""
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    text = MIMEText(mail.text, "plain", "utf-8")
    if mail.html:
        msg = MIMEMultipart("alternative", boundary="B")
        msg.attach(text)
        msg.attach(MIMEText(mail.html, "html", "utf-8"))
    else:
        msg = text
    for name, value in headers:
        msg[name] = value
    return msg.as_bytes(policy=_CRLF)


@pytest.mark.parametrize(
    "mail",
    [
        RenderedMail(subject="[#261123-0007] 我们已收到您的来信", text="您好，\n" * 40, html=""),
        RenderedMail(subject="Re: your order", text="", html=""),
        RenderedMail(subject="[#261123-0007] 新工单 / New case " * 3, text="正文 body\n" * 30, html="<p>正文</p>\n" * 20),
    ],
)
def test_compose_writes_the_bytes_compat32_wrote(mail, monkeypatch):
    from datetime import datetime

    import intake.outgoing.compose

    monkeypatch.setattr(intake.outgoing.compose, "utcnow", lambda: datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    monkeypatch.setattr(intake.outgoing.compose.secrets, "token_hex", lambda n: "X")
    raw = compose(
        mail,
        message_id="ack.1@example.cn",
        from_name="客服中心",
        from_addr="support@example.cn",
        to_addr="li.wei@example.cn",
        to_name="李伟",
        in_reply_to="m1@example.cn",
        references=["r1@example.cn"],
        auto_submitted="auto-replied",
        extra_headers={"X-Intake-Ticket": "261123-0007", "Reply-To": "reply+abc@example.cn"},
    )
    reference = _compat32_reference(
        mail,
        [
            ("From", "=?utf-8?b?5a6i5pyN5Lit5b+D?= <support@example.cn>"),
            ("To", "=?utf-8?b?5p2O5Lyf?= <li.wei@example.cn>"),
            ("Subject", folded_words(mail.subject)),
            ("Date", "Mon, 23 Nov 2026 08:00:00 +0000"),
            ("Message-ID", "<ack.1@example.cn>"),
            ("In-Reply-To", "<m1@example.cn>"),
            ("References", "<r1@example.cn> <m1@example.cn>"),
            ("Auto-Submitted", "auto-replied"),
            ("X-Auto-Response-Suppress", "All"),
            ("X-Intake-Ticket", "261123-0007"),
            ("Reply-To", "reply+abc@example.cn"),
        ],
    )
    assert raw == reference.replace(b'boundary="B"', b'boundary="=_intake_X"').replace(b"--B", b"--=_intake_X")


@pytest.mark.parametrize("name", ["客户服务中心 Customer Service", "客服中心", "张" * 60, "Li Wei", "A long ASCII name " * 4, "O'Brien, Pat"])
def test_addresses_read_back_and_keep_their_lines_short_without_compat32s_slow_folding(name, monkeypatch):
    from email.policy import Compat32

    def slow_path(*args):
        raise AssertionError("compat32's folding was used")

    raw_name = name
    mail = RenderedMail(subject="s", text="t", html="")
    if not name.isascii() and len(name.encode()) <= 42:  # one encoded-word (longer names fold as compat32 folds them)
        monkeypatch.setattr(Compat32, "fold_binary", slow_path)
    raw = compose(mail, message_id="m@example.cn", from_name=raw_name, from_addr="support@example.cn", to_addr="li.wei@example.cn", to_name=raw_name)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert all(len(line) <= 78 for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n") if len(name.encode()) <= 42)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for header, addr in (("From", "support@example.cn"), ("To", "li.wei@example.cn")):
        [address] = msg[header].addresses
        assert (address.display_name, address.addr_spec) == (" ".join(name.split()), addr)
