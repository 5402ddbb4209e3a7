"""Render a case to PDF/A-3b bytes: jinja2 templates in templates/pdf, weasyprint, nothing fetched.

Customer HTML is sanitised with nh3 down to harmless structure (no images, styles, links
or URLs) with its table width and nesting bounded (archive.sanitize), and weasyprint gets a
URL fetcher that serves only files under templates/pdf: a message pointing at http://,
file:// or CSS url() makes no connection and reads no file.
The originals (.eml, form .json) are embedded as PDF/A-3 associated files, each once: in
the first version of the case that has it; later versions list it with its SHA-256 and
the version that holds it (`earlier`). `plain_reason` gives the plain rendition, the
fallback when the full one cannot be rendered (archive.safe_render): every message as
shortened plain text, the reason shown at the top.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import zlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jinja2
from markupsafe import Markup

from archive.record import CaseRecord
from archive.sanitize import layout_safe, sanitize_html  # noqa: F401 (sanitize_html: re-exported)
from intake import resources
from intake.vocabulary import label, mask_phone

log = logging.getLogger("intake.archive.render")

TEMPLATE_DIR = (resources.templates() / "pdf").resolve()  # the shipped case template, CSS and fonts
PDF_VARIANT = "pdf/a-3b"

# Above these, a message is shown shortened (its original stays embedded in full): the
# layout of 100,000 characters takes 2-7 s, of 1,000,000 about 45 s. A message's text or
# sanitised HTML (above, its text is shown instead) gets MESSAGE_CAP characters, less once
# the case's earlier messages used CASE_BUDGET, but never less than PLAIN_TEXT_CAP: a long
# thread of big mails stays well inside the render's time limit.
MESSAGE_CAP = 100_000
HTML_CAP = 50_000  # sanitised HTML lays out about five times slower than text (tables: 100 KB in 6 s)
CASE_BUDGET = 400_000
PLAIN_TEXT_CAP = 20_000  # also what a message's text gets in the plain rendition
LINE_CAP = 1_000  # characters of a sender, subject or attachment name shown

TEXTS = {
    "zh": {
        "doc_title": "客户沟通记录",
        "record": "记录信息",
        "customer_number": "客户编号",
        "customer": "客户名称/联系人",
        "industry": "所属行业",
        "contact": "联系方式",
        "phone": "电话",
        "email": "邮箱",
        "date": "沟通日期",
        "channel": "沟通方式",
        "type": "沟通事由",
        "urgency": "紧急程度",
        "department": "处理部门",
        "handler": "处理人",
        "status": "处理进度",
        "expected": "预计完成时间",
        "actual": "实际完成时间",
        "satisfaction": "客户满意度",
        "description": "问题描述",
        "outcome": "处理结果",
        "follow_up": "后续跟进计划",
        "notes": "备注",
        "classification": "分类依据",
        "thread": "沟通记录",
        "messages_count": "共 {n} 封",
        "attachments": "附件",
        "attachment_list": "附件清单",
        "filename": "文件名",
        "content_type": "类型",
        "size": "大小",
        "no_attachments": "无附件",
        "originals": "内嵌原件",
        "originals_hint": "原件每件只内嵌一次：“本文件”中的可从 PDF 阅读器的附件面板打开，其余见所列较早版本。",
        "embedded_in": "所在文件",
        "this_file": "本文件",
        "generated": "生成于",
        "flagged": "加急",
        "version": "归档版本",
        "final": "最终版",
        "draft": "过程版",
        "plain_notice": "简化版：完整版式未能生成（{reason}），本案以纯文本记录，原件照常内嵌。",
        "shortened": "仅显示前 {n} 字（共 {total} 字）；客户来信的完整原件见内嵌原件。",
        "html_as_text": "HTML 正文过大（{size}），以纯文本显示。",
    },
    "en": {
        "doc_title": "Customer case record",
        "record": "Record",
        "customer_number": "Customer no.",
        "customer": "Customer",
        "industry": "Industry",
        "contact": "Contact",
        "phone": "Phone",
        "email": "Email",
        "date": "Date",
        "channel": "Channel",
        "type": "Type",
        "urgency": "Urgency",
        "department": "Department",
        "handler": "Handler",
        "status": "Status",
        "expected": "Expected by",
        "actual": "Completed on",
        "satisfaction": "Satisfaction",
        "description": "Description",
        "outcome": "Outcome",
        "follow_up": "Follow-up plan",
        "notes": "Notes",
        "classification": "Why this classification",
        "thread": "Messages",
        "messages_count": "{n} in all",
        "attachments": "Attachments",
        "attachment_list": "Attachments",
        "filename": "File name",
        "content_type": "Type",
        "size": "Size",
        "no_attachments": "No attachments",
        "originals": "Embedded originals",
        "originals_hint": "The original emails and form submissions are embedded as attachments, each once: "
        "those marked 'this file' open from the attachments panel of a PDF reader, the others "
        "are in the earlier version listed, to be checked by their SHA-256.",
        "embedded_in": "Embedded in",
        "this_file": "this file",
        "generated": "Generated",
        "flagged": "expedite",
        "version": "Archive version",
        "final": "final",
        "draft": "interim",
        "plain_notice": "Plain rendition: the full layout could not be rendered ({reason}); the case is "
        "recorded as plain text, its originals embedded as usual.",
        "shortened": "Only the first {n} of {total} characters are shown; a customer's message is in full in its embedded original.",
        "html_as_text": "The HTML body is too large to lay out ({size}); shown as text.",
    },
}


def _size_label(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def _weasyprint():
    # Imported on first use: importing weasyprint loads pango and fontconfig, which
    # the daemon's other processes do not need.
    import weasyprint
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    return weasyprint, URLFetcher, URLFetcherResponse


@lru_cache(maxsize=1)
def _fetcher_class():
    _, URLFetcher, URLFetcherResponse = _weasyprint()

    class AssetsOnlyFetcher(URLFetcher):
        """Serves files under templates/pdf and refuses every other URL, before any I/O."""

        def __init__(self) -> None:
            super().__init__(allowed_protocols={"file"}, allow_redirects=False, timeout=1)
            self.refused: list[str] = []

        def fetch(self, url, headers=None):
            path = asset_path(url)
            if path is None:
                self.refused.append(url)
                log.warning("refused to fetch %s", url[:200])
                raise ValueError(f"fetching is disabled outside the template assets: {url[:200]}")
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(url, body=path.read_bytes(), headers={"Content-Type": mime})

    return AssetsOnlyFetcher


def asset_path(url: str) -> Path | None:
    """The file a URL names if it is one of our template assets, else None."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    # decided on the text of the path first: nothing outside templates/pdf is even stat'ed
    lexical = Path(os.path.normpath(unquote(parts.path)))
    if not lexical.is_absolute() or not lexical.is_relative_to(TEMPLATE_DIR) or "\x00" in str(lexical):
        return None
    path = lexical.resolve()  # a symlink inside the assets must not lead outside them
    if not path.is_relative_to(TEMPLATE_DIR) or not path.is_file():
        return None
    return path


def make_fetcher():
    """A weasyprint URL fetcher that only serves templates/pdf; `.refused` lists what it refused."""
    return _fetcher_class()()


@lru_cache(maxsize=1)
def _jinja() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


# record fields shown as typed; a long unbroken run in any of them would be laid out quadratically
_FREE_TEXT_FIELDS = ("customer_name", "company", "industry", "email", "department", "description", "handler", "outcome", "follow_up_plan", "notes")


def _shortened(text: str, cap: int, t: dict) -> tuple[str, str]:
    """(text cut at `cap` characters, the note saying so) or (text, "")."""
    if len(text) <= cap:
        return text, ""
    return text[:cap], t["shortened"].format(n=f"{cap:,}", total=f"{len(text):,}")


def _line(value: str | None, cap: int = LINE_CAP) -> str:
    """A one-line value (sender, subject, file name) as shown: at most `cap` characters."""
    value = value or ""
    return layout_safe(value if len(value) <= cap else value[:cap] + "…")


def _message_body(m, t: dict, cap: int, plain: bool) -> tuple[Markup | None, str, str]:
    """(sanitised HTML or None, text, note) of one message, within `cap` characters."""
    if m.html and not plain:
        html = sanitize_html(m.html)
        if len(html) <= min(cap, HTML_CAP):
            return html, "", ""
        text, note = _shortened(m.text or "", cap, t)
        return None, layout_safe(text), " ".join(filter(None, [t["html_as_text"].format(size=_size_label(len(m.html))), note]))
    text, note = _shortened(m.text or "", cap, t)
    return None, layout_safe(text), note


def render_case_html(
    record: CaseRecord,
    *,
    lang: str = "zh",
    version: int | None = None,
    final: bool = False,
    generated_at: datetime | None = None,
    earlier: Mapping[str, str] | None = None,
    plain_reason: str | None = None,
) -> str:
    """The case as the HTML that becomes the PDF (useful to test the template alone).
    `earlier`: SHA-256 of an original → the earlier version's file that embeds it (listed, not embedded);
    `plain_reason`: render the plain rendition and say why."""
    if lang not in TEXTS:
        raise ValueError(f"unknown language {lang!r}; known: {', '.join(TEXTS)}")
    t = TEXTS[lang]
    earlier = earlier or {}
    generated_at = generated_at or datetime.now(UTC)
    safe: dict[str, Any] = {f: layout_safe(getattr(record, f) or "") for f in _FREE_TEXT_FIELDS}  # every one a str field
    record = replace(record, **safe)
    messages = []
    attachments = []
    budget = CASE_BUDGET
    for no, m in enumerate(record.messages, start=1):
        plain = plain_reason is not None
        cap = PLAIN_TEXT_CAP if plain else max(PLAIN_TEXT_CAP, min(MESSAGE_CAP, budget))
        html, text, note = _message_body(m, t, cap, plain)
        budget -= len(html) if html is not None else len(text)
        messages.append(
            {
                "direction": m.direction,
                "direction_label": label("direction", m.direction, lang),
                "at": m.at.strftime("%Y-%m-%d %H:%M %Z").strip(),
                "sender": _line(m.sender),
                "subject": _line(m.subject),
                "text": text,
                "html": html,
                "note": note,
                "attachments": [{"filename": _line(a.filename), "size_label": _size_label(a.size)} for a in m.attachments],
            }
        )
        for a in m.attachments:
            attachments.append(
                {"message_no": no, "filename": _line(a.filename), "content_type": layout_safe(a.content_type), "size_label": _size_label(a.size)}
            )
    originals = []
    for o in record.raw_originals:
        digest = hashlib.sha256(o.data).hexdigest()
        originals.append(
            {
                "filename": o.filename,
                "mime": o.mime,
                "size_label": _size_label(len(o.data)),
                "sha256": digest,
                "embedded_in": earlier.get(digest, t["this_file"]),
            }
        )
    version_line = ""
    if version is not None:
        version_line = f"{t['version']} v{version} · {t['final'] if final else t['draft']}"
    customer_line = " / ".join(x for x in (record.company, record.customer_name) if x) or "—"
    subject = next((m["subject"] for m in messages if m["subject"]), "")
    plain_notice = t["plain_notice"].format(reason=plain_reason[:300]) if plain_reason is not None else ""
    return (
        _jinja()
        .get_template("case.html.j2")
        .render(
            r=record,
            t=t,
            lang=lang,
            dash="—",
            type_label=label("type", record.type, lang),
            urgency_label=label("urgency", record.urgency, lang),
            status_label=label("status", record.status, lang),
            channel_label=label("channel", record.channel, lang),
            phone=mask_phone(record.phone),
            customer_line=customer_line,
            subject=subject,
            messages=messages,
            attachments=attachments,
            originals=originals,
            version_line=version_line,
            plain_notice=plain_notice,
            generated_at=generated_at.strftime("%Y-%m-%d %H:%M UTC") if generated_at.tzinfo else generated_at.strftime("%Y-%m-%d %H:%M"),
        )
    )


class _Zlib6:
    """zlib at level 6 for pydyf, which hard-codes 9: ~10 % less CPU per case PDF for ~1 % more bytes
    (measured in bench/archive_bench.md)."""

    def __getattr__(self, name):
        return getattr(zlib, name)

    @staticmethod
    def compressobj(level=-1, *args, **kwargs):
        return zlib.compressobj(6, *args, **kwargs)

    @staticmethod
    def compress(data, level=-1):
        return zlib.compress(data, 6)


@lru_cache(maxsize=1)
def _stylesheet():
    """The stylesheet and its fonts, loaded once per process: a render then costs layout only."""
    weasyprint, _, _ = _weasyprint()
    import pydyf
    from weasyprint.text.fonts import FontConfiguration

    if getattr(pydyf, "zlib", None) is zlib:
        pydyf.zlib = _Zlib6()

    font_config = FontConfiguration()
    css = weasyprint.CSS(
        filename=str(TEMPLATE_DIR / "case.css"), base_url=TEMPLATE_DIR.as_uri() + "/", url_fetcher=make_fetcher(), font_config=font_config
    )
    return css, font_config


def render_case_pdf(
    record: CaseRecord,
    *,
    lang: str = "zh",
    version: int | None = None,
    final: bool = False,
    generated_at: datetime | None = None,
    earlier: Mapping[str, str] | None = None,
    plain_reason: str | None = None,
) -> bytes:
    """The case as PDF/A-3b bytes, with its originals embedded as associated files, except
    those `earlier` says an earlier version embeds already (SHA-256 → that file)."""
    weasyprint, _, _ = _weasyprint()
    css, font_config = _stylesheet()
    earlier = earlier or {}
    generated_at = generated_at or datetime.now(UTC)
    html = render_case_html(record, lang=lang, version=version, final=final, generated_at=generated_at, earlier=earlier, plain_reason=plain_reason)
    fetcher = make_fetcher()
    document = weasyprint.HTML(string=html, base_url=TEMPLATE_DIR.as_uri() + "/", url_fetcher=fetcher)
    naive = generated_at.astimezone(UTC).replace(tzinfo=None)
    originals = [
        weasyprint.Attachment(
            string=o.data,
            name=o.filename,
            description=f"original {o.mime}",
            relationship="Source",
            created=naive,
            modified=naive,
            url_fetcher=fetcher,
        )
        for o in record.raw_originals
        if hashlib.sha256(o.data).hexdigest() not in earlier
    ]
    return document.write_pdf(pdf_variant=PDF_VARIANT, attachments=originals, stylesheets=[css], font_config=font_config)
