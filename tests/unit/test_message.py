"""parse_message: every customer charset comes out exactly, parts degrade alone, garbage is refused."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from intake.inbound.message import ParsedMessage, UnparseableMessage, parse_message
from tests.fixtures.mail import build
from tests.fixtures.mail.build import (
    EN,
    HTML,
    JA,
    LATIN,
    ZH_BIG5,
    ZH_GBK,
    attachment_part,
    base_headers,
    encoded_word,
    multipart,
    part,
    raw,
    rfc2231_filename,
    text_message,
    text_part,
    tnef,
    winmail_message,
)

# ---- charsets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "codec", "text", "subject", "cte"),
    [
        ("utf-8", "utf-8", ZH_GBK, "打印机无法连接", "base64"),
        ("gb2312", "gb18030", ZH_GBK, "打印机无法连接（镕）", "base64"),
        ("GBK", "gb18030", ZH_GBK, "打印机无法连接", "8bit"),
        ("big5", "big5hkscs", ZH_BIG5, "伺服器當機 嘅", "quoted-printable"),
        ("iso-2022-jp", "iso2022_jp_ext", JA, "プリンター故障", "7bit"),
        ("iso-8859-1", "cp1252", LATIN, "Facture erronée – 5 €", "quoted-printable"),
        ("windows-1252", "cp1252", LATIN, "Facture erronée", "8bit"),
        ("us-ascii", "ascii", EN, "Damaged order", "7bit"),
    ],
)
def test_each_customer_charset_comes_out_exactly(label: str, codec: str, text: str, subject: str, cte: str) -> None:
    """Body and subject in each charset customers use decode to the exact original text."""
    msg = parse_message(text_message(text, label, codec=codec, subject=subject, cte=cte))
    assert msg.text == text
    assert msg.subject == subject
    assert msg.defects == []


def test_declared_utf8_over_gbk_bytes_falls_back_with_a_defect() -> None:
    """A part labelled utf-8 whose bytes are GBK decodes right and says what was guessed."""
    msg = parse_message(text_message(ZH_GBK, "utf-8", codec="gb18030", subject="打印机", cte="8bit"))
    assert msg.text == ZH_GBK
    assert msg.subject == "打印机"
    assert any("text/plain" in d and "gb18030" in d for d in msg.defects)


def test_undeclared_8bit_headers_are_decoded() -> None:
    """Raw GBK / Big5 bytes in Subject and From (no RFC 2047) come out as text."""
    headers = base_headers(subject="投诉：发票金额错误".encode("gbk"), sender="陳大文 <chan@example.hk>".encode("big5"))
    msg = parse_message(raw(headers, b"see subject"))
    assert msg.subject == "投诉：发票金额错误"
    assert msg.from_name == "陳大文"
    assert msg.from_addr == "chan@example.hk"
    assert msg.header("subject") == "投诉：发票金额错误"


def test_broken_encoded_words_in_subject_and_from() -> None:
    """Split multibyte words, a wrong charset label and missing spaces are all repaired."""
    data = "关于订单的投诉".encode("gbk")
    import base64

    split = f"=?gb2312?B?{base64.b64encode(data[:3]).decode()}?==?gb2312?B?{base64.b64encode(data[3:]).decode()}?="
    sender = f'"{encoded_word("王芳", "utf-8", "gbk")}" <Wang.Fang@Example.CN>'
    msg = parse_message(raw(base_headers(subject="Re:" + split, sender=sender), b"body"))
    assert msg.subject == "Re:关于订单的投诉"
    assert msg.from_name == "王芳"
    assert msg.from_addr == "wang.fang@example.cn"


# ---- headers ----------------------------------------------------------------------


def test_addresses_ids_and_date_are_read() -> None:
    """Addresses lower-cased and bare, ids without <>, Date timezone-aware."""
    headers = [
        ("From", f"{encoded_word('李伟', 'gb2312', 'gbk')} <Li.Wei@Example.CN>"),
        ("Reply-To", "Orders <Orders@Example.CN>"),
        ("To", "Support <support@acme-support.cn>, sales@acme-support.cn"),
        ("Cc", '"Zhang, San" <zhang@example.cn>'),
        ("Subject", "Re: [T-2026-0042] printer"),
        ("Date", "Mon, 23 Nov 2026 10:15:00 +0800"),
        ("Message-ID", " <reply.77@example.cn> "),
        ("In-Reply-To", "<ack.42@acme-support.cn>"),
        ("References", "<orig.1@example.cn>\r\n <ack.42@acme-support.cn>"),
    ]
    msg = parse_message(raw(headers, b"Thanks, still broken."))
    assert (msg.from_name, msg.from_addr) == ("李伟", "li.wei@example.cn")
    assert msg.reply_to == "orders@example.cn"
    assert msg.to_addrs == ["support@acme-support.cn", "sales@acme-support.cn"]
    assert msg.cc_addrs == ["zhang@example.cn"]
    assert msg.message_id == "reply.77@example.cn"
    assert msg.in_reply_to == ["ack.42@acme-support.cn"]
    assert msg.references == ["orig.1@example.cn", "ack.42@acme-support.cn"]
    assert msg.date == datetime(2026, 11, 23, 2, 15, tzinfo=UTC)
    assert msg.date.utcoffset() == timedelta(hours=8)
    assert msg.header_all("to") == ["Support <support@acme-support.cn>, sales@acme-support.cn"]
    assert msg.header("X-Missing") is None


def test_missing_and_bad_headers_degrade() -> None:
    """No Message-ID gives None; an unreadable Date gives None and a defect; -0000 means UTC."""
    headers = [("From", "a@example.com"), ("Subject", "  spaced \r\n   out  "), ("Date", "yesterday-ish")]
    msg = parse_message(raw(headers, b"hi"))
    assert msg.message_id is None
    assert msg.date is None and any("Date" in d for d in msg.defects)
    assert msg.subject == "spaced out"
    utc = parse_message(raw([("From", "a@example.com"), ("Date", "Mon, 23 Nov 2026 10:15:00 -0000")], b"hi"))
    assert utc.date is not None and utc.date.utcoffset() == timedelta(0)


def test_mbox_from_line_is_skipped() -> None:
    """A message saved from an mbox (leading 'From ' line) still parses."""
    msg = parse_message(b"From li@example.cn Mon Nov 23 10:15:00 2026\n" + text_message(EN, "us-ascii", cte="7bit"))
    assert msg.from_addr == "li.wei@example.cn"
    assert msg.text == EN


# ---- bodies -----------------------------------------------------------------------


def test_html_only_mail_becomes_readable_text() -> None:
    """HTML-only: paragraphs and link text kept, script/style and markup dropped; html kept as is."""
    msg = parse_message(text_message(HTML, "utf-8", subtype="html"))
    assert msg.text == "您好，\n\n我们需要为 20 个新员工开通账户，详见申请表。\n\n谢谢！\n王芳"
    assert msg.html == HTML
    assert msg.language == "zh"


def test_html_text_has_no_markdown_escapes() -> None:
    """Numbered lines and dashes from HTML are not backslash-escaped in the text."""
    html = "<p>1. Order A-17 failed.</p><p>- second point</p><p>price 5*3 [approx]</p>"
    msg = parse_message(text_message(html, "utf-8", subtype="html"))
    assert msg.text == "1. Order A-17 failed.\n\n- second point\n\nprice 5*3 [approx]"


def test_alternative_prefers_plain_and_keeps_html() -> None:
    """multipart/alternative: text from text/plain, html from text/html."""
    html = "<p>HTML version</p>"
    msg = parse_message(multipart("alternative", [text_part("Plain version"), text_part(html, subtype="html")]))
    assert msg.text == "Plain version"
    assert msg.html == html


def test_alternative_with_empty_plain_uses_html() -> None:
    """An empty text/plain alternative does not hide the HTML one."""
    msg = parse_message(multipart("alternative", [text_part(" \r\n"), text_part("<p>Real <b>text</b></p>", subtype="html")]))
    assert msg.text == "Real text"


def test_related_html_with_inline_image() -> None:
    """alternative(plain, related(html, image)): plain text, the HTML, and the image as attachment."""
    image = part(
        [("Content-Type", "image/png"), ("Content-ID", "<logo>"), ("Content-Transfer-Encoding", "base64")],
        build.encode_body(b"\x89PNG\r\n\x1a\n" + b"0" * 64, "base64"),
    )
    related = multipart("related", [text_part('<p>Hi <img src="cid:logo"></p>', subtype="html"), image], headers=[], boundary="rel")
    msg = parse_message(multipart("alternative", [text_part("Hi"), related]))
    assert msg.text == "Hi"
    assert msg.html == '<p>Hi <img src="cid:logo"></p>'
    assert [(a.filename, a.content_type, a.size) for a in msg.attachments] == [("attachment-1.png", "image/png", 72)]


def test_reply_text_is_split_into_new_text() -> None:
    """new_text drops the quoted acknowledgement; text keeps everything."""
    body = "问题还没有解决，请再看一下。\n\n在 2026年11月20日 10:00，客服中心 <support@acme-support.cn> 写道：\n> 您的工单 T-2026-0042 已创建"
    msg = parse_message(text_message(body, "utf-8"))
    assert msg.text == body
    assert msg.new_text == "问题还没有解决，请再看一下。"


@pytest.mark.parametrize(
    ("subject", "body", "language"),
    [
        ("打印机故障", "您好，打印机坏了。", "zh"),
        ("Printer", "您好，我们的 ERP 系统从今天早上开始无法登录，请访问 https://erp.example.cn/login 查看。", "zh"),
        ("Printer broken", "Hello, the printer in our Shanghai office (上海) is broken.", "en"),
        ("Hello", "", "en"),
    ],
)
def test_language_follows_the_share_of_chinese(subject: str, body: str, language: str) -> None:
    """language is zh when subject+new_text is meaningfully Chinese, else en."""
    msg = parse_message(raw(base_headers(subject=encoded_word(subject, "utf-8")), body.encode("utf-8") or b""))
    assert msg.language == language


# ---- attachments ------------------------------------------------------------------


def test_attachment_names_in_every_encoding() -> None:
    """RFC 2231 continuations, RFC 2047 names, raw GBK bytes: all decode to the right file name."""
    parts = [
        text_part("see attached"),
        attachment_part(rfc2231_filename("发票 2026-11.pdf"), b"%PDF-1.4", "application/pdf"),
        attachment_part(rfc2231_filename("報價單.xlsx", charset="big5"), b"PK", "application/vnd.ms-excel"),
        attachment_part(f'attachment; filename="{encoded_word("合同.docx", "gb2312", "gbk")}"', b"doc"),
        attachment_part(b'attachment; filename="' + "截图.png".encode("gbk") + b'"', b"png", "image/png"),
        attachment_part('attachment; filename="../../etc/passwd"', b"root"),
        attachment_part('attachment; filename="C:\\Users\\li\\Desktop\\report.txt"', b"r", "text/plain"),
        attachment_part("attachment", b"%PDF-1.4", "application/pdf"),
    ]
    msg = parse_message(multipart("mixed", parts))
    assert [a.filename for a in msg.attachments] == [
        "发票 2026-11.pdf",
        "報價單.xlsx",
        "合同.docx",
        "截图.png",
        "passwd",
        "report.txt",
        "attachment-7.pdf",
    ]
    assert [a.content_type for a in msg.attachments][:2] == ["application/pdf", "application/vnd.ms-excel"]
    assert msg.attachments[0].data == b"%PDF-1.4" and msg.attachments[0].size == 8
    assert msg.text == "see attached"


def test_attachment_over_the_limit_is_truncated_with_size_kept() -> None:
    """An attachment over max_attachment_bytes keeps its name and size, drops its bytes, notes it."""
    big, small = b"A" * 5000, b"B" * 100
    parts = [
        text_part("two files"),
        attachment_part('attachment; filename="big.bin"', big),
        attachment_part('attachment; filename="small.bin"', small),
    ]
    msg = parse_message(multipart("mixed", parts), max_attachment_bytes=1000)
    big_att, small_att = msg.attachments
    assert (big_att.filename, big_att.size, big_att.data, big_att.truncated) == ("big.bin", 5000, b"", True)
    assert (small_att.size, small_att.data, small_att.truncated) == (100, small, False)
    assert any("big.bin" in d and "limit" in d for d in msg.defects)


def test_forwarded_message_is_kept_as_an_eml_attachment() -> None:
    """A message/rfc822 part becomes an .eml attachment with its bytes."""
    inner = text_message("inner body", "utf-8", subject="inner")
    fwd = part([("Content-Type", "message/rfc822")], inner)
    msg = parse_message(multipart("mixed", [text_part("FYI"), fwd]))
    assert msg.text == "FYI"
    (att,) = msg.attachments
    assert att.content_type == "message/rfc822" and att.filename.endswith(".eml")
    assert parse_message(att.data).text == "inner body"


# ---- winmail.dat -------------------------------------------------------------------


def test_tnef_is_unpacked_into_body_and_attachments() -> None:
    """An Outlook winmail.dat alone: its body becomes the text, its files the attachments."""
    files = [("server log 2026-11-22.txt", b"ERROR disk full\n" * 3, "text/plain"), ("报价单.xlsx", b"PK\x03\x04data", "application/vnd.ms-excel")]
    msg = parse_message(winmail_message(tnef("服务器磁盘已满，请看附件日志。", files)))
    assert msg.text == "服务器磁盘已满，请看附件日志。"
    assert [(a.filename, a.data) for a in msg.attachments] == [(name, data) for name, data, _ in files]
    assert [a.content_type for a in msg.attachments] == ["text/plain", "application/vnd.ms-excel"]
    assert "winmail.dat" not in [a.filename for a in msg.attachments]


def test_tnef_beside_plain_text_does_not_double_the_body() -> None:
    """With text/plain beside winmail.dat, the text is the plain part, once."""
    msg = parse_message(winmail_message(tnef("Same body", [("a.txt", b"a", "text/plain")]), plain="Same body"))
    assert msg.text == "Same body"
    assert [a.filename for a in msg.attachments] == ["a.txt"]


def test_tnef_html_body_is_used_when_no_plain() -> None:
    """A TNEF carrying only an HTML body gives readable text and keeps the HTML."""
    msg = parse_message(winmail_message(tnef("", [], html="<p>Hello <b>there</b></p>")))
    assert msg.text == "Hello there"
    assert msg.html == "<p>Hello <b>there</b></p>"


def test_corrupt_tnef_is_kept_whole_with_a_defect() -> None:
    """A winmail.dat that cannot be unpacked stays an attachment; the rest of the mail is intact."""
    broken = b"\x78\x9f\x3e\x22" + b"\x00garbage" * 3
    msg = parse_message(winmail_message(broken[:4] + b"\x01\x00" + b"\xff" * 30, plain="see attachment"))
    assert msg.text == "see attachment"
    assert [a.filename for a in msg.attachments] == ["winmail.dat"]
    assert any("TNEF" in d for d in msg.defects)


# ---- degrading alone -----------------------------------------------------------------


def test_a_broken_part_degrades_alone() -> None:
    """Undecodable text, an unknown transfer encoding and a bad TNEF each leave a defect; the good part is exact."""
    bad_text = part([("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "8bit")], b"\xff\xfe\xff\x80\x81 tail")
    bad_cte = part([("Content-Type", 'application/pdf; name="a.pdf"'), ("Content-Transfer-Encoding", "x-wrong")], b"%PDF")
    bad_tnef = part([("Content-Type", "application/ms-tnef")], b"not tnef at all")
    msg = parse_message(multipart("mixed", [text_part(ZH_GBK, "gb2312", codec="gb18030"), bad_text, bad_cte, bad_tnef]))
    assert msg.text.startswith(ZH_GBK + "\n\n")
    assert msg.text.endswith(" tail")
    assert [a.filename for a in msg.attachments] == ["a.pdf", "winmail.dat"]
    assert any("text/plain" in d for d in msg.defects)
    assert any("TNEF" in d for d in msg.defects)


def test_multipart_without_boundary_is_read_as_text() -> None:
    """A multipart header with no boundary does not lose the body."""
    msg = parse_message(raw(base_headers() + [("Content-Type", "multipart/mixed")], b"just text here"))
    assert "just text here" in msg.text


# ---- refusing what is not a message ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty input"),
        (b" \r\n\t\n", "empty input"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "no header block"),
        (b'{"name": "Li", "email": "li@example.cn"}', "no header block"),
        (b"Hello, this is just a line of text.\nAnd another.", "no header block"),
        (bytes(range(256)) * 4, "no header block"),
        (b"X-Foo: bar\r\nX-Bar: baz\r\n\r\nbody", "no header block"),
        (b"Subject: hello\r\nDate: Mon, 23 Nov 2026 10:15:00 +0800\r\n\r\n", "no sender address and no body"),
    ],
)
def test_non_messages_raise_with_a_reason(data: bytes, reason: str) -> None:
    """Input that is not an email raises UnparseableMessage with a clear reason."""
    with pytest.raises(UnparseableMessage) as caught:
        parse_message(data)
    assert reason in caught.value.reason


def test_non_bytes_input_raises_unparseable() -> None:
    """A str handed in by mistake is refused with a reason, not a TypeError."""
    with pytest.raises(UnparseableMessage, match="not bytes"):
        parse_message("From: a@b.c\r\n\r\nhi")  # type: ignore[arg-type]


# ---- robustness ---------------------------------------------------------------------------


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """One random damage of the kinds mail suffers: flipped bytes, cuts, splices, junk."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if kind == 0 and buf:  # flip bytes
            for _ in range(rng.randint(1, 20)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif kind == 1:  # truncate
            del buf[pos:]
        elif kind == 2:  # delete a chunk
            del buf[pos : pos + rng.randint(1, 200)]
        elif kind == 3:  # duplicate a chunk
            chunk = buf[pos : pos + rng.randint(1, 300)]
            buf[pos:pos] = chunk
        elif kind == 4:  # insert MIME-ish junk
            junk = rng.choice(
                [
                    b"\r\n--==b0und4ry==\r\n",
                    b"=?",
                    b"?=",
                    b"=?gb2312?B?",
                    b"; filename*0*=",
                    b"\r\n\r\n",
                    b"Content-Type: multipart/mixed; boundary=x\r\n",
                    b"\x00",
                    b"%",
                    b"\xff\xfe",
                    b"begin 644 x\r\n",
                ]
            )
            buf[pos:pos] = junk * rng.randint(1, 5)
        elif kind == 5:  # random bytes
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        else:  # splice another sample in
            other = rng.choice(build.samples())
            start = rng.randrange(len(other))
            buf[pos:pos] = other[start : start + rng.randint(1, 500)]
    return bytes(buf)


def test_fuzzed_real_messages_never_raise_anything_but_unparseable() -> None:
    """3,000 randomly damaged sample messages: each parses or raises UnparseableMessage with a reason."""
    rng = random.Random(20261123)
    samples = build.samples()
    parsed = refused = 0
    for _ in range(3000):
        data = _mutate(rng, rng.choice(samples))
        try:
            msg = parse_message(data, max_attachment_bytes=rng.choice([0, 100, 10_000_000]))
        except UnparseableMessage as exc:
            assert exc.reason
            refused += 1
            continue
        assert isinstance(msg, ParsedMessage)
        assert isinstance(msg.text, str) and isinstance(msg.new_text, str) and isinstance(msg.subject, str)
        assert msg.language in ("zh", "en")
        assert all(a.filename and "/" not in a.filename and "\\" not in a.filename for a in msg.attachments)
        # Everything textual must be storable: valid UTF-8, no NUL (PostgreSQL refuses both).
        texts = [msg.text, msg.new_text, msg.subject, msg.from_name, msg.from_addr, msg.html or ""]
        texts += [v for pair in msg.headers for v in pair] + [a.filename for a in msg.attachments]
        for value in texts:
            assert "\x00" not in value
            value.encode("utf-8")  # raises on a lone surrogate
        parsed += 1
    assert parsed > 2000  # the damage is real but most messages should survive it
    assert refused >= 0


def test_deeply_nested_multipart_is_cut_off_not_crashed() -> None:
    """Hostile nesting (200 levels) parses with a defect instead of a RecursionError."""
    inner = text_part("deep")
    for level in range(200):
        inner = multipart("mixed", [inner], headers=[], boundary=f"b{level}")
    msg = parse_message(raw(base_headers(), b"").split(b"\r\n\r\n")[0] + b"\r\n" + inner)
    assert any("nested" in d for d in msg.defects)


def test_html_source_line_breaks_between_chinese_characters_vanish() -> None:
    """A source line break inside a Chinese sentence does not become a space in the text."""
    msg = parse_message(text_message("<p>需要为他们开通账号，\n并希望增加功能。</p>", "utf-8", subtype="html"))
    assert msg.text == "需要为他们开通账号，并希望增加功能。"


# ---- the examples a newcomer tries first --------------------------------------------------


def test_examples_are_reproducible_and_parse_as_their_names_say() -> None:
    """examples/*.eml are exactly what make_examples.py writes, and each parses as described."""
    import importlib.util
    from pathlib import Path

    from intake.inbound.loops import auto_reply_reason

    folder = Path(__file__).resolve().parents[2] / "examples"
    spec = importlib.util.spec_from_file_location("make_examples", folder / "make_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = module.examples()
    assert sorted(made) == sorted(p.name for p in folder.glob("*.eml"))
    for name, data in made.items():
        assert (folder / name).read_bytes() == data, name

    parsed = {name: parse_message(data) for name, data in made.items()}
    complaint = parsed["01-complaint-gbk.eml"]
    assert complaint.from_name == "张喆" and "13812345678" in complaint.text and complaint.defects == []
    assert "香港恒達電子有限公司" in parsed["02-fault-big5.eml"].text
    assert parsed["03-inquiry-en.eml"].language == "en"
    html = parsed["04-request-html.eml"]
    assert html.html is not None and "批量导入用户" in html.text and "tracking" not in html.text
    reply = parsed["05-reply-to-ack.eml"]
    assert complaint.message_id in reply.references and "写道" not in reply.new_text
    assert auto_reply_reason(parsed["06-out-of-office.eml"]) is not None
    assert [name for name, msg in parsed.items() if auto_reply_reason(msg)] == ["06-out-of-office.eml"]
    assert all(msg.language == "zh" for name, msg in parsed.items() if name[:2] in ("01", "02", "04", "05"))


def test_committed_eml_fixtures_match_the_builder_and_parse_exactly() -> None:
    """tests/fixtures/mail/eml/*.eml are the builder's bytes and parse to their expected subject and text."""
    from pathlib import Path

    folder = Path(build.__file__).resolve().parent / "eml"
    files = {p.name: p.read_bytes() for p in folder.glob("*.eml")}
    assert files == {f"{name}.eml": data for name, data in zip(build.SAMPLE_NAMES, build.samples())}
    for name, (subject, text) in build.EXPECTED.items():
        msg = parse_message(files[name])
        assert (msg.subject, msg.text) == (subject, text), name


def test_nul_characters_are_dropped_from_text_fields() -> None:
    """NUL bytes in headers or body (refused by PostgreSQL text columns) do not reach the fields."""
    msg = parse_message(raw(base_headers(subject="Printer\x00 problem"), b"Body\x00 text"))
    assert msg.subject == "Printer problem"
    assert msg.text == "Body text"
    assert msg.header("subject") == "Printer problem"
