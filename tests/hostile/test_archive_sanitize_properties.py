"""Property tests of the case PDF's HTML sanitiser (archive.sanitize): any input gives
structure within the bounds weasyprint lays out in linear time, and keeps every character
of text that nh3 keeps."""

from __future__ import annotations

import re

import nh3
from hypothesis import given, settings
from hypothesis import strategies as st

from archive.sanitize import LONG_WORD, MAX_COLUMNS, MAX_DEPTH, SAFE_ATTRIBUTES, SAFE_TAGS, ZWSP, sanitize_html

TOKENS = [
    "<div>",
    "</div>",
    "<p>",
    "</p>",
    "<b>",
    "</b>",
    "<span>",
    "<ul><li>",
    "</li></ul>",
    "<pre>",
    "</pre>",
    "<table>",
    "</table>",
    "<tr>",
    "</tr>",
    "<td>",
    "</td>",
    "<th colspan=3>",
    "<td colspan=100000>",
    "<td colspan='0'>",
    "<td rowspan=9999>",
    "<td colspan=-5>",
    "<br>",
    "<hr>",
    "<blockquote>",
    "<img src=x>",
    '<a b="',
    "<!--",
    "-->",
    "<script>",
    "</script>",
    "<style>",
    "&amp;",
    "&nbsp;",
    "&#20013;",
    "文字",
    "text ",
    "x" * 70,
    " " * 90,
    "\n" * 5,
    "\u3000" * 70,
    "<",
    ">",
    '"',
    "'",
]

tag_soup = st.builds(
    lambda depth, tokens: "<div>" * depth + "".join(tokens),
    st.integers(0, 300),
    st.lists(st.sampled_from(TOKENS) | st.text(max_size=20), max_size=300),
)
any_html = tag_soup | st.text(max_size=2000)

_TAG = re.compile(r"<(/?)([a-z0-9]+)([^>]*)>")


def visible(html: str) -> str:
    """The text of serialised HTML without its tags, white space or zero-width spaces."""
    return re.sub(rf"[\s{ZWSP}]+", "", _TAG.sub("", html))


@settings(max_examples=500, deadline=2000)
@given(any_html)
def test_sanitised_html_is_within_the_bounds_and_keeps_the_text(html):
    out = str(sanitize_html(html))
    assert not re.search(r"(?:<br>\s*){3}", out)  # a blank line at most
    depth, rows = 0, []
    for m in _TAG.finditer(out):
        closing, tag, attrs = m.group(1) == "/", m.group(2), m.group(3)
        assert tag in SAFE_TAGS, tag
        assert "rowspan" not in attrs
        if tag in ("br", "hr"):
            continue
        if closing:
            depth -= 1
            if tag == "table":
                rows.pop()
            continue
        depth += 1
        assert depth <= MAX_DEPTH
        if tag == "table":
            rows.append(0)
        elif tag == "tr" and rows:
            rows[-1] = 0
        elif tag in ("td", "th") and rows:
            span = int(re.search(r'colspan="(\d+)"', attrs).group(1)) if "colspan" in attrs else 1
            rows[-1] += span
            assert 1 <= span <= MAX_COLUMNS and rows[-1] <= MAX_COLUMNS
    assert depth == 0
    # no run of LONG_WORD + 1 characters without a break opportunity, of spaces, or of blank
    # lines, even across inline elements (a word split by <b></b> is one word to lay out)
    flowing = re.sub(r"</?(?:b|strong|i|em|u|s|small|sub|sup|span|code)(?:\s[^>]*)?>", "", out)
    flowing = re.sub(r"&#?\w+;", "&", flowing)
    assert not re.search(rf"[^\s<>{ZWSP}\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]{{{LONG_WORD + 1}}}", flowing)
    assert not re.search(rf"[^\S\n]{{{LONG_WORD + 1}}}", flowing)
    assert not re.search(r"\n[^\S\n]*\n[^\S\n]*\n", flowing)
    # every character of text nh3 keeps is still there, in order
    kept = nh3.clean(html, tags=SAFE_TAGS, attributes=SAFE_ATTRIBUTES, url_schemes=set(), strip_comments=True, link_rel=None)
    assert visible(out) == visible(kept)
    assert len(out) <= 2 * len(kept) + 64  # linear
