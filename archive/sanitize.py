"""Customer HTML made harmless and cheap to lay out, before it reaches weasyprint.

nh3 reduces it to structure (no images, styles, links or URLs). What nh3 keeps can
still cost weasyprint time and memory far beyond its size, so a second pass over nh3's
serialisation bounds it (measured in bench/hostile_archive_bench.md):

- a table's column grid: a 300-byte `<td colspan=100000>` took 7-9 s and 400 MB, and
  every row of a wide table costs its width (500 cells x 1,000 rows of a 30 KB mail: 39 s).
  A cell spans at most MAX_COLUMNS, a row has at most MAX_COLUMNS columns (later cells
  become spans in one cell after the last), rowspan is dropped (it pushes later rows' cells
  to the right, widening the grid again);
- nesting depth: about 120 nested elements raise RecursionError inside weasyprint;
  elements deeper than MAX_DEPTH are flattened into their text (a block's end becomes a
  line break), so nothing of the text is lost;
- words without a break opportunity: weasyprint lays out the rest of such a word again
  for every line (10 KB: 1 s, 100 KB: 45 s); `layout_safe` puts a zero-width space every
  LONG_WORD characters of such a run. Runs of preserved spaces (text bodies are laid out
  `pre-wrap`) cost the same way (16,000 spaces: 1.2 s, 64,000: 28 s): a run is cut to
  LONG_WORD spaces. More than one blank line in a row (or two <br>) is one: 16,000 newlines
  were 400 pages. Runs are counted across inline elements: a word split by <b></b> every
  60 characters is one word to lay out (89 KB: 18 s counted per text node, 3 s now).

nh3's output is a serialised DOM: every element is closed in order, attribute values are
quoted with `<` and `>` escaped, text has `<` escaped. So one regular-expression pass over
the tags is exact, and linear.
"""

from __future__ import annotations

import re

import nh3
from markupsafe import Markup

# Structure only: no img, style, link, form, iframe; no attributes that carry URLs or CSS.
SAFE_TAGS = {
    "p",
    "br",
    "div",
    "span",
    "b",
    "strong",
    "i",
    "em",
    "u",
    "s",
    "small",
    "sub",
    "sup",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "blockquote",
    "pre",
    "code",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "caption",
}
SAFE_ATTRIBUTES = {"td": {"colspan"}, "th": {"colspan"}}

MAX_COLUMNS = 20  # per table row, counting colspans
MAX_DEPTH = 32  # nested elements of one message (the case template adds about 6 around it)
LONG_WORD = 64  # characters of a run without a break opportunity before a zero-width space

VOID_TAGS = {"br", "hr"}
CELL_TAGS = {"td", "th"}
# ends of these become a line break when flattened, so flattened paragraphs stay apart
BLOCK_TAGS = {
    "p",
    "div",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "blockquote",
    "pre",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "caption",
}

_TAG = re.compile(r"<(/?)([a-z0-9]+)([^>]*)>")
_COLSPAN = re.compile(r'colspan="\s*(\d{1,9})')
# a run with no break opportunity: not a space, not CJK (which breaks between characters);
# an entity (&amp;) counts as one character and is never split
_UNBREAKABLE = "(?:&#?[A-Za-z0-9]+;|[^\\s<>&\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef])"
_LONG_RUN = re.compile(f"{_UNBREAKABLE}{{{LONG_WORD}}}(?={_UNBREAKABLE})")
# inline elements do not end a run: a word split by <b></b> every 60 characters is one word
INLINE_TAGS = {"b", "strong", "i", "em", "u", "s", "small", "sub", "sup", "span", "code"}
_INLINE_TAG = f"</?(?:{'|'.join(sorted(INLINE_TAGS))})(?:\\s[^>]*)?>"
_LONG_RUN_HTML = re.compile(f"(?:{_INLINE_TAG}|{_UNBREAKABLE}){{{LONG_WORD}}}(?=(?:{_INLINE_TAG})*{_UNBREAKABLE})")
_WHITE_RUN_HTML = re.compile(f"(?:\\s|{_INLINE_TAG})+")
_WHITE_TOKEN = re.compile(f"{_INLINE_TAG}|\\s")
_SPACE_RUN = re.compile(f"[ \t\xa0\u3000]{{{LONG_WORD + 1},}}")
_BLANK_LINES = re.compile(r"\n(?:[ \t\r\f\v\xa0\u3000]*\n){2,}")
ZWSP = "\u200b"


def layout_safe(text: str) -> str:
    """`text` with a zero-width space after every LONG_WORD characters of an unbreakable run
    (a pasted base64 blob, a long URL), runs of spaces cut to LONG_WORD and blank lines in a
    row made one: weasyprint's line breaking is quadratic in such runs."""
    text = _BLANK_LINES.sub("\n\n", text)
    text = _SPACE_RUN.sub(" " * LONG_WORD, text)
    return _LONG_RUN.sub(lambda m: m.group(0) + ZWSP, text)


def _squeeze_white(m: re.Match) -> str:
    run = m.group()
    if len(run) <= LONG_WORD and run.count("\n") <= 2:
        return run
    spaces = newlines = 0
    kept = []
    for token in _WHITE_TOKEN.findall(run):
        if token.startswith("<"):
            kept.append(token)
        elif token == "\n":
            if newlines < 2:
                kept.append(token)
                newlines += 1
        elif spaces < LONG_WORD:
            kept.append(token)
            spaces += 1
    return "".join(kept)


def _layout_safe_html(html: str) -> str:
    """layout_safe for serialised HTML: runs are counted across inline tags (a tag counts
    as a character, so a run with tags gets its zero-width space a little early)."""
    html = _WHITE_RUN_HTML.sub(_squeeze_white, html)
    return _LONG_RUN_HTML.sub(lambda m: m.group(0) + ZWSP, html)


def _colspan(attrs: str) -> int:
    m = _COLSPAN.search(attrs)
    return max(1, int(m.group(1))) if m else 1


def bound_structure(html: str) -> str:
    """nh3's output with nesting, table width and long words bounded (see the module's doc)."""
    out: list[str] = []
    stack: list[str | None] = []  # per open element: the tag written, or None if flattened
    rows: list[int] = []  # per open table: columns used in its current row
    pos = 0
    breaks = 0  # line breaks written since the last text or other tag: two make a blank line, enough
    for m in _TAG.finditer(html):
        text = html[pos : m.start()]
        if text:
            out.append(text)
            breaks = breaks if text.isspace() else 0
        pos = m.end()
        closing, tag, attrs = m.group(1) == "/", m.group(2), m.group(3)
        if closing:
            written = stack.pop() if stack else None
            if tag == "table" and rows:
                rows.pop()
            if written is not None:
                out.append(f"</{written}>")
                breaks = 0
            elif tag in BLOCK_TAGS and not breaks:
                out.append("<br>")
                breaks = 1
            elif tag in CELL_TAGS:
                out.append(" ")
            continue
        if tag == "br" or (tag in VOID_TAGS and len(stack) >= MAX_DEPTH):
            if breaks < 2:
                out.append("<br>")
                breaks += 1
            continue
        if tag in VOID_TAGS:
            out.append(f"<{tag}>")
            breaks = 0
            continue
        if tag == "table":
            rows.append(0)
        elif tag == "tr" and rows:
            rows[-1] = 0
        if len(stack) >= MAX_DEPTH:
            stack.append(None)
            continue
        if tag in CELL_TAGS and rows:
            free = MAX_COLUMNS - rows[-1]
            if free <= 0:  # the row is full: this cell's content goes into one more anonymous cell
                stack.append("span")
                out.append("<span> ")
                continue
            span = min(_colspan(attrs), free)
            rows[-1] += span
            stack.append(tag)
            out.append(f'<{tag} colspan="{span}">' if span > 1 else f"<{tag}>")
            continue
        stack.append(tag)
        out.append(f"<{tag}{attrs}>")
    out.append(html[pos:])
    return _layout_safe_html("".join(out))


def sanitize_html(html: str) -> Markup:
    """Customer HTML reduced to harmless, bounded structure; safe to put into the template as is."""
    cleaned = nh3.clean(
        html,
        tags=SAFE_TAGS,
        attributes=SAFE_ATTRIBUTES,
        url_schemes=set(),
        strip_comments=True,
        link_rel=None,
    )
    return Markup(bound_structure(cleaned))
