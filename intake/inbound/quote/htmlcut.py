"""HTML replies: cut at the element a client wraps the quoted message in, before
converting to text, where the client's structure still says what is quote.

Blockquotes (Apple's and Thunderbird's `type=cite`, Gmail's inside `gmail_quote`) need
no cut of their own: the conversion turns them into '>' lines, which keeps answers
written between them. The containers below hold (or open) the whole quoted message,
so everything from their start on is dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# (attribute, value pattern): an element whose attribute matches opens the quoted message
_QUOTE_CONTAINERS = (
    (
        "class",
        re.compile(
            r"\b(?:gmail_quote|gmail_attr|gmail_extra|yahoo_quoted|iosymail|moz-cite-prefix|protonmail_quote|zmail_extra|tutanota_quote|skiff_quote"
            r"|__aliyun_quote|quote-wrapper)\b"
        ),
    ),
    (
        "id",
        re.compile(
            r"^(?:divRplyFwdMsg|appendonsend|mail-editor-reference-message-container|AppleOriginalContents|original-content|isReplyContent"
            r"|isForwardContent|reply-content|ntes_quote|origbody|QQMailReplyQuote|stopSpelling|replySplit|reply139content|oriMsgHtmlSeperator"
            r"|zwchr|yahoo_quoted_\w+)$",
            re.IGNORECASE,
        ),
    ),  # 139: China Mobile's mail
    ("name", re.compile(r"^(?:quote|QQMailReplyQuote)$", re.IGNORECASE)),
)
# Outlook desktop: <div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"> above the header block
_OUTLOOK_BORDER = re.compile(r"border-top\s*:\s*solid\s+#(?:e1e1e1|b5c4df)", re.IGNORECASE)


class _Finder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: tuple[int, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found is not None:
            return
        values = {name.lower(): value or "" for name, value in attrs}
        if any(pattern.search(values.get(attr, "")) for attr, pattern in _QUOTE_CONTAINERS) or (
            tag == "div" and _OUTLOOK_BORDER.search(values.get("style", ""))
        ):
            self.found = self.getpos()


def cut_html(html: str) -> str:
    """The HTML up to the first quote container (all of it when there is none)."""
    finder = _Finder()
    try:
        finder.feed(html)
        finder.close()
    except Exception:  # malformed markup: the text rules still apply after conversion
        return html
    if finder.found is None:
        return html
    line, column = finder.found
    offset = 0
    for _ in range(line - 1):  # the parser counts lines by "\n" alone
        offset = html.index("\n", offset) + 1
    return html[: offset + column]
