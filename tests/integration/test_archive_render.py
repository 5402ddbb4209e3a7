"""Case PDFs rendered for real with weasyprint and read back with pdftotext, pdffonts and pypdf."""

from __future__ import annotations

import io
import re
import socket
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdf
import pytest

from archive.record import AttachmentInfo, RawOriginal, ThreadMessage
from archive.render import make_fetcher, render_case_pdf
from archive.sample import sample_case

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "t.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True)
    return re.sub(r"\s+", "", out.stdout.decode("utf-8"))


@pytest.fixture(scope="module")
def zh_pdf() -> bytes:
    return render_case_pdf(sample_case(), version=3, final=True)


def test_chinese_case_text_is_in_the_pdf_with_the_phone_masked(zh_pdf, tmp_path):
    """The record fields, every message and the attachments list are real text; the phone is masked."""
    text = pdf_text(zh_pdf, tmp_path)
    for expected in [
        "客户沟通记录",
        "261122-0007",
        "C202611001",
        "深圳市某科技有限公司/张伟",
        "所属行业",
        "IT",
        "138****5678",
        "zhang.wei@example.cn",
        "沟通方式",
        "邮件",
        "投诉",
        "紧急",
        "加急",
        "售后部",
        "处理人",
        "李娜",
        "已关闭",
        "2026-11-24",
        "2026-11-23",
        "5/5",
        "问题描述",
        "影响财务部月底结账",
        "后续跟进计划",
        "12月15日电话回访",
        "客户为VIP客户",
        "分类依据",
        "财务部月底结账需要大量打印凭证",
        "工程师王强已于今天下午上门检测",
        "满意度打5分",
        "附件清单",
        "卡纸照片.jpg",
        "error-log.txt",
        "261122-0007-1-in.eml",
        "归档版本v3·最终版",
    ]:
        assert expected in text, expected
    assert "13812345678" not in text and "1234-5678" not in text.split("附件清单")[0].split("沟通记录共")[0]


def test_thread_is_in_order(zh_pdf, tmp_path):
    """Messages appear in the order they were exchanged, numbered."""
    text = pdf_text(zh_pdf, tmp_path)
    positions = [text.index(s) for s in ["我司于今年10月", "我们已收到您的来信", "工程师王强", "换件后一周内"]]
    assert positions == sorted(positions)


def test_english_case_uses_english_labels(tmp_path):
    """lang='en' shows type/urgency/status in English; English message text comes through."""
    record = sample_case()
    record = replace(
        record,
        messages=record.messages
        + [
            ThreadMessage(
                "in",
                record.messages[-1].at + timedelta(hours=1),
                "Ann Lee <ann@example.com>",
                "Invoice copy",
                "Could you send the invoice for the replaced toner units? Thanks, Ann",
            )
        ],
    )
    text = pdf_text(render_case_pdf(record, lang="en"), tmp_path)
    for expected in [
        "Customercaserecord",
        "complaint",
        "urgent",
        "closed",
        "Customerno.",
        "Satisfaction",
        "Couldyousendtheinvoiceforthereplacedtonerunits?",
        "深圳市某科技有限公司",
        "138****5678",
    ]:
        assert expected in text, expected


def test_fonts_are_embedded_subsets(zh_pdf, tmp_path):
    """pdffonts lists only embedded, subset fonts: no reader needs the fonts installed."""
    path = tmp_path / "c.pdf"
    path.write_bytes(zh_pdf)
    out = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    rows = out.splitlines()[2:]
    assert rows, out
    for row in rows:
        emb, sub, uni = row.split()[-5:-2]
        assert (emb, sub, uni) == ("yes", "yes", "yes"), row


def test_pdfa3b_metadata_and_embedded_originals(zh_pdf):
    """XMP says PDF/A part 3 conformance B; the original .eml files are embedded byte for byte."""
    reader = pypdf.PdfReader(io.BytesIO(zh_pdf))
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")
    assert re.search(r"pdfaid:part(>|=\")3", xmp), xmp
    assert re.search(r"pdfaid:conformance(>|=\")B", xmp), xmp
    originals = {o.filename: o.data for o in sample_case().raw_originals}
    attachments = reader.attachments
    assert set(attachments) == set(originals)
    for name, data in originals.items():
        assert attachments[name] == [data]
    # weasyprint lists each associated file twice in /AF; what matters is which, and how related
    af = {a.idnum: a.get_object() for a in reader.trailer["/Root"]["/AF"]}
    assert sorted(f["/UF"] for f in af.values()) == sorted(originals)
    assert all(f["/AFRelationship"] == "/Source" for f in af.values())


def test_form_submission_is_embedded_as_json(tmp_path):
    """A web-form case embeds its submission as application/json."""
    form = b'{"name": "\xe7\x8e\x8b\xe8\x8a\xb3", "email": "wf@example.cn", "message": "\xe5\x92\xa8\xe8\xaf\xa2"}'
    record = replace(sample_case(), channel="form", raw_originals=[RawOriginal("261122-0007-form.json", form, "application/json")])
    reader = pypdf.PdfReader(io.BytesIO(render_case_pdf(record)))
    assert reader.attachments == {"261122-0007-form.json": [form]}
    assert "网页表单" in pdf_text(render_case_pdf(record), tmp_path)


class Listener:
    """A real TCP listener on loopback that records whether anything connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def connections(self) -> int:
        # a connect() completes in the kernel backlog even if nobody accepts: count them
        self.sock.settimeout(0.3)
        n = 0
        try:
            while True:
                conn, _ = self.sock.accept()
                conn.close()
                n += 1
        except TimeoutError:
            return n

    def close(self) -> None:
        self.sock.close()


def hostile_html(port: int, secret: Path) -> str:
    url = f"http://127.0.0.1:{port}"
    return f"""
    <html><head><link rel="stylesheet" href="{url}/ext.css"><style>@import url({url}/imp.css);
    body {{ background: url({url}/bg.png) }} p::after {{ content: url(file://{secret}) }}</style>
    <link rel="attachment" href="file://{secret}"></head>
    <body><p>请查看图片 Please see</p><img src="{url}/pixel.png"><img src="file://{secret}">
    <div style="background-image: url('{url}/inline.png')">inline style</div>
    <a href="file://{secret}" rel="attachment">leak</a><a href="{url}/click">click</a>
    <svg><image href="{url}/svg.png" width="10" height="10"/></svg>
    <iframe src="{url}/frame"></iframe><object data="{url}/obj"></object>
    <embed src="file://{secret}"><video poster="{url}/poster.png"></video></body></html>"""


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "secret.css"
    path.write_text("body::before { content: 'SECRET-FILE-CONTENT-7f3a' }", encoding="utf-8")
    return path


def test_hostile_message_html_makes_no_connection_and_reads_no_file(listener, secret, tmp_path):
    """Customer HTML with remote images, CSS url(), file:// links: nothing connects, nothing is read."""
    record = sample_case()
    evil = ThreadMessage(
        "in",
        datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        "x <x@example.cn>",
        "图片",
        "",
        html=hostile_html(listener.port, secret),
        attachments=[AttachmentInfo("a.png", "image/png", 10)],
    )
    pdf = render_case_pdf(replace(record, messages=[evil]))
    assert listener.connections() == 0
    text = pdf_text(pdf, tmp_path)
    assert "请查看图片Pleasesee" in text and "inlinestyle" in text  # the harmless text survives
    assert b"SECRET-FILE-CONTENT" not in pdf and "SECRET-FILE-CONTENT" not in text
    assert set(pypdf.PdfReader(io.BytesIO(pdf)).attachments) == {o.filename for o in record.raw_originals}


def test_fetcher_alone_refuses_everything_but_template_assets(listener, secret, tmp_path):
    """Even unsanitised HTML rendered with our fetcher makes no connection and reads no file
    (defence in depth behind nh3): every URL is refused before any I/O."""
    import weasyprint

    fetcher = make_fetcher()
    html = hostile_html(listener.port, secret)
    pdf = weasyprint.HTML(string=html, base_url=str(tmp_path) + "/", url_fetcher=fetcher).write_pdf()
    assert listener.connections() == 0
    assert b"SECRET-FILE-CONTENT" not in pdf and "SECRET-FILE-CONTENT" not in pdf_text(pdf, tmp_path)
    refused = " ".join(fetcher.refused)
    assert f"127.0.0.1:{listener.port}/pixel.png" in refused and f"file://{secret}" in refused
    assert pypdf.PdfReader(io.BytesIO(pdf)).attachments == {}


def test_fetcher_serves_template_assets_only():
    """Files under templates/pdf are served; a path escaping it with .. is refused."""
    from archive.render import TEMPLATE_DIR, asset_path

    assert asset_path((TEMPLATE_DIR / "case.css").as_uri()) == TEMPLATE_DIR / "case.css"
    assert asset_path(TEMPLATE_DIR.as_uri() + "/../../pyproject.toml") is None
    assert asset_path("file:///etc/passwd") is None
    assert asset_path("http://127.0.0.1/case.css") is None
    assert asset_path("file://otherhost" + str(TEMPLATE_DIR / "case.css")) is None
    assert asset_path((TEMPLATE_DIR / "case.css").as_uri() + "%00.png") is None


def test_a_symlink_among_the_assets_cannot_lead_outside(tmp_path, monkeypatch, secret):
    """An asset folder holding a symlink to a file elsewhere does not serve that file."""
    import archive.render as render

    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "ok.css").write_text("p {}")
    (assets / "evil.css").symlink_to(secret)
    monkeypatch.setattr(render, "TEMPLATE_DIR", assets.resolve())
    assert render.asset_path((assets / "ok.css").as_uri()) == (assets / "ok.css").resolve()
    assert render.asset_path((assets / "evil.css").as_uri()) is None


def test_rendered_page_image_for_people_to_look_at(zh_pdf):
    """A Chinese case rendered to PNG in test-artifacts/: page 1 and 2 of a two-page case."""
    ARTIFACTS.mkdir(exist_ok=True)
    pdf_path = ARTIFACTS / "archive-case-zh.pdf"
    pdf_path.write_bytes(zh_pdf)
    for old in ARTIFACTS.glob("archive-case-zh-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", "110", "-png", str(pdf_path), str(ARTIFACTS / "archive-case-zh")], check=True)
    pages = sorted(ARTIFACTS.glob("archive-case-zh-*.png"))
    assert len(pages) == 2, pages  # the typical case fits two A4 pages
    assert all(p.stat().st_size > 20_000 for p in pages)


def test_empty_case_still_renders(tmp_path):
    """A case with no messages, no phone and no optional fields renders with dashes, not errors."""
    record = replace(
        sample_case(),
        messages=[],
        raw_originals=[],
        phone="",
        email="",
        satisfaction=None,
        expected_completion=None,
        actual_completion=None,
        outcome="",
        notes="",
        classification=[],
    )
    text = pdf_text(render_case_pdf(record), tmp_path)
    assert "无附件" in text and "客户编号" in text


def test_rare_and_traditional_characters_render_as_real_glyphs(tmp_path):
    """Characters outside the common subset (堃, 喆, 𠀾 of Ext-B, traditional 處理) fall back to the
    other subset or the system's Noto Sans CJK: real glyphs, extractable text, never boxes."""
    record = replace(sample_case(), customer_name="王堃", company="喆𠀾實業有限公司", notes="已處理完畢")
    pdf = render_case_pdf(record)
    text = pdf_text(pdf, tmp_path)
    assert "喆𠀾實業有限公司/王堃" in text and "已處理完畢" in text
    path = tmp_path / "rare.pdf"
    path.write_bytes(pdf)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert "Noto-Sans-CJK" in fonts or "NotoSansCJK" in fonts, fonts  # the system fallback was used
    assert "Intake-Sans-Rare" in fonts, fonts


def test_long_thread_with_unbreakable_strings_and_html_tables(tmp_path):
    """40 messages, a 600-character URL, an Outlook-style HTML table: every message is in the PDF,
    nothing runs off the page (pdftotext -layout keeps each line within the text width)."""
    base = sample_case()
    long_url = "https://example.cn/" + "a" * 600
    html = "<table><tr><td>订单号</td><td>数量</td></tr><tr><td>PO-2026-001</td><td>12</td></tr></table><blockquote>原始邮件 quoted</blockquote>"
    messages = [
        ThreadMessage(
            "in" if i % 2 == 0 else "out",
            base.messages[0].at + timedelta(hours=i),
            "张伟 <zhang.wei@example.cn>",
            f"第 {i} 封 [261122-0007]",
            f"消息编号 M{i:03d} 内容。{long_url if i == 7 else ''}",
            html=html if i == 9 else None,
        )
        for i in range(40)
    ]
    pdf = render_case_pdf(replace(base, messages=messages))
    text = pdf_text(pdf, tmp_path)
    assert all(f"M{i:03d}" in text for i in range(40) if i != 9)
    assert "PO-2026-001" in text and "原始邮件quoted" in text
    assert "a" * 100 in text  # the long URL is wrapped, not cut
    path = tmp_path / "long.pdf"
    path.write_bytes(pdf)
    boxes = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True).stdout
    xmax = max(float(m) for m in re.findall(r'xMax="([0-9.]+)"', boxes))
    assert xmax <= 595.3 - 16 * 72 / 25.4 + 1  # within the right margin of A4
