"""HTML-only mail as readable text: paragraphs kept, links' text kept, script and style dropped."""
from __future__ import annotations

import re

_CJK_BREAK = re.compile("(?<=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])[ \t]*\r?\n[ \t]*(?=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])")
_BLANK_LINES = re.compile(r"\n[ \t\xa0]*(?:\n[ \t\xa0]*){2,}")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])")


def html_to_text(html: str, defects: list[str]) -> str:
    """Readable text from HTML: paragraphs kept, links' text kept, script/style dropped."""
    import html2text

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
        text = re.sub(r"(?is)<(script|style)\b.*?</\1>|<[^>]+>", " ", html)
    text = _MD_ESCAPE.sub(r"\1", text).replace("\xa0", " ")
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", text).strip()
