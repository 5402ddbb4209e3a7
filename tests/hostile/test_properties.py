"""Issue 13: property-based tests (hypothesis) of what reads customer input. Whatever
comes in, each gives a result, or a recorded reason, in bounded time; never an
exception out of the stage:

- prepare (parsing and classifying, before the transaction): a parsed and classified
  case, or a Quarantine with its reason, from any bytes and from mail-shaped bytes
  built of hostile headers, MIME parts and HTML;
- the quote stripper: text, never empty when the input has text of its own;
- the classifier: a type, an urgency and departments from any subject and body;
- the HTML-to-text conversion: text, and defects as strings.

Example counts are modest (the suite runs on two cores in CI); no example database is
written into the checkout."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classify import Classifier
from classify.rules import TYPES, URGENCIES
from intake.inbound.htmltext import html_to_text
from intake.inbound.message import ParsedMessage
from intake.inbound.quote import strip_quoted
from intake.pipeline.case import Case, Quarantine
from intake.pipeline.stages import prepare
from intake.sources.base import SourceRef

RULES = Path(__file__).resolve().parents[2] / "config" / "rules.toml"

# Each example is small: a second is a generous bound for any of them, and one that
# exceeds it (twice, as hypothesis checks) is reported as a failure.
PROPERTY = settings(
    max_examples=60, deadline=timedelta(seconds=1), database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """A real context (shipped rules, a SQLite file) that prepare reads its limits and classifier from."""
    from intake.config import from_dict
    from intake.context import build_context
    from intake.store.db import make_engine, upgrade

    folder = tmp_path_factory.mktemp("properties")
    config = from_dict({"database": {"url": f"sqlite:///{folder / 'intake.db'}"}, "paths": {"var": str(folder / "var")}})
    upgrade(make_engine(config.database.url))
    return build_context(config)


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_file(RULES)


# ---- what customers (and strangers) send ---------------------------------------------

# Characters that matter to some parser: separators, quotes, escapes, folding, encoded
# words, markup, CJK and full-width forms, controls, a lone surrogate's bytes.
_HOSTILE = st.sampled_from(
    [
        ";",
        '"',
        "'",
        "\\",
        "=",
        "=?",
        "?=",
        "=?utf-8?b?",
        "=?gbk?q?=C4=E3",
        "(",
        ")",
        "<",
        ">",
        "@",
        ",",
        ":",
        "*",
        "%",
        "%E4",
        "\r\n ",
        "\n\t",
        "\r",
        " ",
        "\t",
        "\x00",
        "\x1b",
        "not urgent ",
        "urgent",
        "不紧急",
        "紧急",
        "投诉",
        "how ",
        "^",
        "。",
        "!",
        '<a b="',
        "<ol><li>",
        "<blockquote>",
        "<!--",
        "<script>",
        "</",
        "&#",
        "&amp;",
        "=\r\n",
        "--",
        "boundary",
        "charset=",
        "filename*0*=",
        "utf-8''",
        "x" * 50,
        "客户服务",
        "ｆｕｌｌ",
        "\u200b",
        "\ufeff",
        "é",
    ]
)
_PIECE = st.one_of(_HOSTILE, st.text(max_size=12))
_VALUE = st.lists(_PIECE, max_size=25).map("".join)
_HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Reply-To",
        "Sender",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Content-Type",
        "Content-Disposition",
        "Content-Transfer-Encoding",
        "MIME-Version",
        "Auto-Submitted",
        "X-Whatever",
    ]
)
_CONTENT_TYPES = st.sampled_from(
    [
        "text/plain",
        "text/html",
        "multipart/mixed",
        "multipart/alternative",
        "multipart/related",
        "message/rfc822",
        "application/ms-tnef",
        "application/pdf",
        "text/plain; charset=gbk",
        "text/html; charset=big5",
        'multipart/mixed; boundary="b"',
    ]
)


@st.composite
def mail_shaped(draw) -> bytes:
    """Header lines and MIME parts assembled from hostile pieces."""
    lines = [f"{draw(_HEADER_NAMES)}: {draw(_VALUE)}" for _ in range(draw(st.integers(0, 8)))]
    if draw(st.booleans()):
        lines.insert(0, f"From: {draw(_VALUE)} <{draw(_VALUE)}@kehu.example.cn>")
    if draw(st.booleans()):
        lines.append(f"Content-Type: {draw(_CONTENT_TYPES)}{draw(_VALUE)}")
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        part_headers = [f"Content-Type: {draw(_CONTENT_TYPES)}{draw(_VALUE)}"]
        if draw(st.booleans()):
            part_headers.append(f"Content-Disposition: {draw(st.sampled_from(['inline', 'attachment']))}; filename={draw(_VALUE)}")
        if draw(st.booleans()):
            part_headers.append(f"Content-Transfer-Encoding: {draw(st.sampled_from(['base64', 'quoted-printable', '8bit', 'x-uuencode']))}")
        parts.append("--b\r\n" + "\r\n".join(part_headers) + "\r\n\r\n" + draw(_VALUE))
    body = "\r\n".join(parts) + ("\r\n--b--" if parts else "") + draw(_VALUE)
    text = "\r\n".join(lines) + "\r\n\r\n" + body
    encoding = draw(st.sampled_from(["utf-8", "gb18030", "big5", "latin-1"]))
    return text.encode(encoding, "replace") + draw(st.binary(max_size=20))


def email_ref() -> SourceRef:
    return SourceRef("hypothesis", "k", "email")


# ---- prepare: parse and classify -----------------------------------------------------


def assert_prepared(case: Case) -> None:
    """Parsed and classified, or held for the quarantine with a reason: nothing else."""
    if case.unready is not None:
        assert isinstance(case.unready, Quarantine) and case.unready.reason, repr(case.unready)
        return
    parsed = case.parsed
    assert isinstance(parsed, ParsedMessage)
    assert all(isinstance(d, str) for d in parsed.defects)
    assert "\x00" not in parsed.text + parsed.subject + parsed.new_text  # storable on PostgreSQL
    assert case.classification is not None and case.classification.type in TYPES and case.classification.urgency in URGENCIES


@PROPERTY
@given(raw=st.binary(max_size=3000))
def test_prepare_any_bytes(ctx, raw):
    case = Case(raw=raw, ref=email_ref())
    prepare(case, ctx)
    assert_prepared(case)


@PROPERTY
@given(raw=mail_shaped())
def test_prepare_mail_shaped_bytes(ctx, raw):
    case = Case(raw=raw, ref=email_ref())
    prepare(case, ctx)
    assert_prepared(case)


# ---- the quote stripper ------------------------------------------------------------

_QUOTE_PIECES = st.sampled_from(
    [
        "> ",
        ">",
        "＞",
        "On Mon, 23 Nov 2026, Li Wei <li@example.com> wrote:",
        "wrote:",
        "在 2026年11月20日 写道：",
        "张三 于2026年11月20日 写道：",
        "-----Original Message-----",
        "------------------ 原始邮件 ------------------",
        "From: a@b.cn",
        "发件人：李",
        "Sent: Monday",
        "发送时间：今天",
        "Subject: x",
        "主题：订单",
        "-- ",
        "--",
        "Sent from my iPhone",
        "发自我的iPhone",
        "_" * 12,
        "-" * 30,
        "\n",
        "\n\n",
        " " * 40,
        "\t",
        "订单没有到",
        "please help",
        "on ",
        "于 ",
        "写道",
        ":",
        "：",
        "\r\n",
    ]
)


@PROPERTY
@given(text=st.lists(st.one_of(_QUOTE_PIECES, st.text(max_size=10)), max_size=60).map("".join))
def test_quote_stripper(text):
    result = strip_quoted(text)
    assert isinstance(result, str)
    if text.strip():
        assert result.strip(), "text of its own never comes back empty"


# ---- the classifier ------------------------------------------------------------------


@st.composite
def rule_words(draw, classifier: Classifier) -> str:
    """Text made of the shipped rules' own keywords and negation phrases, hostile pieces and noise."""
    words = sorted(
        {k.text.lstrip("^").rstrip("*") for r in classifier.ruleset.rules for k in r.keywords}
        | {p for r in classifier.ruleset.rules for p in r.negations}
    )
    piece = st.one_of(st.sampled_from(words), _HOSTILE, st.text(max_size=6), st.sampled_from([" ", "。", ". ", "\n", ",", "> "]))
    return "".join(draw(st.lists(piece, max_size=80)))


@PROPERTY
@given(data=st.data())
def test_classifier(classifier, data):
    subject = data.draw(st.one_of(st.text(max_size=40), rule_words(classifier)))
    body = data.draw(st.one_of(st.text(max_size=400), rule_words(classifier)))
    result = classifier.classify(subject, body)
    assert result.type in TYPES and result.urgency in URGENCIES
    assert result.departments == classifier.departments_for(result.type)
    json.dumps(result.to_dict(), ensure_ascii=False)  # stored on the ticket as JSON
    assert result.explain("zh") and result.explain("en")


# ---- HTML to text --------------------------------------------------------------------

_TAGS = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<br>",
        "<br/>",
        "<div>",
        "</div>",
        "<ul>",
        "</ul>",
        "<ol>",
        "</ol>",
        "<li>",
        "</li>",
        "<blockquote>",
        "</blockquote>",
        "<table>",
        "<tr>",
        "<td>",
        "</td>",
        "<th>",
        "</table>",
        "<pre>",
        "</pre>",
        "<h1>",
        "</h1>",
        '<a href="x">',
        "</a>",
        "<img src=x>",
        "<script>",
        "</script>",
        "<style>",
        "</style>",
        "<!--",
        "-->",
        "<!-->",
        "<![if mso]>",
        "<![endif]>",
        "<?xml x?>",
        "<!DOCTYPE html>",
        '<a b="',
        "<a b='",
        '<p title="a>b">',
        "<o:p>",
        "</o:p>",
        "<q>",
        "<abbr title=t>",
        "&nbsp;",
        "&#x4e2d;",
        "&#99999999;",
        "&",
        "<",
        ">",
        "<pre><blockquote>",
        "<dl><dd>",
        "</ SCRIPT >",
    ]
)


@PROPERTY
@given(html=st.lists(st.one_of(_TAGS, st.text(max_size=8), _HOSTILE), max_size=120).map("".join))
def test_html_to_text(html):
    defects: list[str] = []
    text = html_to_text(html, defects)
    assert isinstance(text, str) and all(isinstance(d, str) for d in defects)
    assert len(text) <= 20 * len(html) + 100  # no amplification (nested lists were quadratic)
