"""Plain-data parts of the archive: phone masking, HTML sanitising, labels, searchable text."""

from __future__ import annotations

from datetime import date

import pytest

from archive.record import CaseRecord, searchable_text
from archive.render import render_case_html, sanitize_html
from archive.sample import sample_case
from intake.vocabulary import label, mask_phone


@pytest.mark.parametrize(
    "raw, masked",
    [
        ("13812345678", "138****5678"),
        ("+86 138 1234 5678", "+86 138 **** 5678"),
        ("+8613812345678", "+86138****5678"),
        ("0086-138-1234-5678", "0086-138-****-5678"),
        ("138-1234-5678", "138-****-5678"),
        ("010-12345678", "010-****5678"),
        ("(0755) 8888 9999", "(0755) **** 9999"),
        ("010-12345678 ext 123", "010-****5678 ext 123"),
        ("010-12345678转8001", "010-****5678转8001"),
        ("13812345678 / 13987654321", "138****5678 / 139****4321"),
        ("13812345678、13987654321", "138****5678、139****4321"),
        ("95588", "9**88"),
        ("1234567", "1****67"),
        ("110", "***"),
        ("", ""),
        ("unknown", "unknown"),
    ],
)
def test_mask_phone_hides_the_middle_digits(raw, masked):
    """The seeds' privacy rule (138****5678), for mobiles, +86, landlines, extensions, short numbers."""
    assert mask_phone(raw) == masked


def test_masked_phone_never_shows_the_middle_four():
    """Whatever the formatting, the four digits before the last four are not in the output."""
    for raw in ["13812345678", "+86 13812345678", "138 1234 5678", "+86-138-1234-5678"]:
        assert "1234" not in mask_phone(raw).replace(" ", "").replace("-", "")


def test_sanitize_keeps_structure_and_drops_everything_that_fetches_or_styles():
    """nh3 keeps text, paragraphs, lists, tables; drops img, style, link, script, url(), href, on*=."""
    dirty = (
        '<p style="background:url(http://x/y)" onclick="x()">您好 <b>bold</b></p>'
        '<img src="http://127.0.0.1/x.png"><a href="file:///etc/passwd" rel="attachment">link text</a>'
        "<style>body{background:url(http://x)}</style><script>alert(1)</script>"
        '<link rel="stylesheet" href="http://x/y.css"><table><tr><td colspan="2" style="x">c</td></tr></table>'
        '<svg><image href="http://x"/></svg><iframe src="http://x"></iframe>'
    )
    clean = str(sanitize_html(dirty))
    assert "您好 <b>bold</b>" in clean and "link text" in clean and '<td colspan="2">c</td>' in clean
    for bad in ("img", "style", "url(", "href", "script", "alert", "onclick", "<link", "<a ", "svg", "iframe", "http"):
        assert bad not in clean, bad


def test_labels_in_both_languages():
    assert [label("type", t, "zh") for t in ("inquiry", "complaint", "fault", "request", "suggestion")] == ["咨询", "投诉", "故障", "需求", "建议"]
    assert label("status", "follow_up", "zh") == "需跟进" and label("urgency", "urgent", "en") == "urgent"
    assert label("type", "mystery", "zh") == "mystery" and label("type", None) == ""


def test_satisfaction_must_be_one_to_five():
    with pytest.raises(ValueError):
        CaseRecord(
            ticket_ref="1",
            customer_number="C1",
            customer_name="a",
            company="",
            industry="",
            email="",
            phone="",
            date_opened=date(2026, 1, 1),
            channel="email",
            type="inquiry",
            urgency="normal",
            department="",
            description="",
            handler="",
            status="new",
            satisfaction=6,
        )


def test_searchable_text_holds_the_words_of_fields_and_messages():
    text = searchable_text(sample_case())
    for word in ("深圳市某科技有限公司", "硒鼓组件", "卡纸照片.jpg", "VIP", "zhang.wei@example.cn"):
        assert word in text


def test_template_escapes_customer_text():
    """Text fields are escaped: a description with markup shows as text, never as HTML."""
    from dataclasses import replace

    html = render_case_html(replace(sample_case(), description='<img src="http://x/y">&', notes="<script>"))
    assert '<img src="http://x/y">' not in html and "&lt;img src=&#34;http://x/y&#34;&gt;&amp;" in html
    assert "<script>" not in html
