"""HTML-only mail as readable text: paragraphs kept, links' text kept, script and style dropped.

html2text reads HTML with the standard library's html.parser, which takes quadratic
time on tags that never close (`<a b="` repeated: 30 KB took 2 s, 120 KB 33 s), and
writes nested lists and quotes with one indent per level on every line (output
quadratic in the nesting). So the HTML is first rewritten in one linear pass into
what html.parser reads in linear time: each tag as its bare name (attributes
dropped: the text needs none), comments, declarations, scripts and styles removed,
a `<` that opens no tag written as `&lt;`, and lists and quotes nested deeper than
MAX_NESTING flattened. What is left is capped at MAX_CONVERTED characters before
conversion, with a defect noted; the HTML itself is kept whole on the message.
"""

from __future__ import annotations

import re

MAX_NESTING = 8  # lists and quotes deeper than this are flattened into the level above (none written by hand)
MAX_CONVERTED = 150_000  # characters of simplified HTML converted to text (html2text: about 1-2 s a MB)

_CJK_BREAK = re.compile("(?<=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])[ \t]*\r?\n[ \t]*(?=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])")
_BLANK_LINES = re.compile(r"\n[ \t\xa0]*(?:\n[ \t\xa0]*){2,}")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])")

# One token where a "<" stands. No part of it reads past the next "<", so each
# character is looked at a bounded number of times whatever the input.
_TAG = re.compile(
    r"""<(?:
        (?P<comment>!--)
      | (?P<close>/)?(?P<name>[a-zA-Z][a-zA-Z0-9:_-]*)(?:[^<>"']|"[^"<]*"|'[^'<]*')*?(?P<empty>/)?>
      | [!?/][^<>]*>                              # doctype, <![if mso]>, <?xml ...?>, </ >
    )""",
    re.VERBOSE,
)
_RAW_TEXT_END = {name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in ("script", "style")}
# Nesting that html2text writes as an indent per level: lists and block quotes.
_NESTING = {"ul": "list", "ol": "list", "blockquote": "quote"}


def html_to_text(html: str, defects: list[str]) -> str:
    """Readable text from HTML: paragraphs kept, links' text kept, script/style dropped."""
    import html2text

    html = simplify(html, defects)
    if len(html) > MAX_CONVERTED:
        cut = html.rfind("<", 0, MAX_CONVERTED)  # never inside a tag
        html = html[: cut if cut > MAX_CONVERTED // 2 else MAX_CONVERTED]
        defects.append(f"HTML body over {MAX_CONVERTED} characters once simplified: text taken from its first {len(html)} (the HTML is kept whole)")
    # A line break in the source between two Chinese characters is no space in the
    # rendered page (CSS segment-break rules); html2text would make it one.
    html = _CJK_BREAK.sub("", html)
    try:
        converter = html2text.HTML2Text()
        converter.body_width = 0
        converter.ignore_links = True
        converter.ignore_images = True
        converter.ignore_emphasis = True
        converter.unicode_snob = True
        text = converter.handle(html)
    except Exception as exc:
        defects.append(f"HTML body could not be converted ({type(exc).__name__}); tags stripped instead")
        text = re.sub(r"<[^<>]*>", " ", html)
    text = _MD_ESCAPE.sub(r"\1", text).replace("\xa0", " ")
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", text).strip()


def simplify(html: str, defects: list[str]) -> str:
    """The HTML as bare tags and text, in time linear in its length (see the module's doc)."""
    out: list[str] = []
    depth = {"list": 0, "quote": 0}
    flattened = {"list": 0, "quote": 0}  # open tags dropped for depth, whose end tags go too
    pos, n, dropped = 0, len(html), 0
    while pos < n:
        lt = html.find("<", pos)
        if lt < 0:
            out.append(html[pos:])
            break
        out.append(html[pos:lt])
        match = _TAG.match(html, lt)
        if match is None:  # a "<" that opens nothing: text, as a browser shows it
            out.append("&lt;")
            pos = lt + 1
            continue
        pos = match.end()
        if match["comment"]:  # to its "-->" (or the end, as in a browser); "<!-->" is empty
            empty = re.compile(r"-?>").match(html, pos)
            end = pos if empty else html.find("-->", pos)
            pos = n if end < 0 else (empty.end() if empty else end + 3)
            continue
        name = (match["name"] or "").lower()
        if not name:  # declaration or processing instruction
            continue
        if name in _RAW_TEXT_END and not match["close"]:
            closing = _RAW_TEXT_END[name].search(html, pos)
            pos = n if closing is None else closing.end()
            continue
        kind = _NESTING.get(name)
        if kind and not match["close"] and not match["empty"]:
            if depth[kind] >= MAX_NESTING:
                flattened[kind] += 1
                dropped += 1
                continue
            depth[kind] += 1
        elif kind and match["close"]:
            if flattened[kind]:
                flattened[kind] -= 1
                continue
            depth[kind] = max(0, depth[kind] - 1)
        out.append(f"<{'/' if match['close'] else ''}{name}{'/' if match['empty'] else ''}>")
    if dropped:
        defects.append(f"HTML body: lists or quotes nested deeper than {MAX_NESTING} levels flattened ({dropped} tags)")
    return "".join(out)
