"""Find the new part of a reply: drop quoted earlier messages and signatures.

Conservative by design: a ticket that keeps a little quoted text is better than one
that lost what the customer wrote. Text before the first quote marker always stays.
"""
from __future__ import annotations

import re

# A line that opens a quoted earlier message; everything from it on is the old mail.
_REPLY_HEADER = re.compile(
    r"""^\s*(?:
        -{2,}\s*(?:original\s+message|forwarded\s+message|reply\s+message|原始邮件|原始郵件|原邮件|转发邮件|轉寄郵件|回复邮件)\s*-{2,}
      | _{10,}\s*$                                          # Outlook's rule above its header block
      | (?:on|am|le)\s.{4,200}\s(?:wrote|schrieb|a\s+écrit)\s*:\s*$
      | 在\s?.{4,200}(?:写道|寫道)\s*[:：]?\s*$               # 在 2026年11月20日 …… 写道：
      | .{2,200}(?:于|於)\s?.{4,80}(?:写道|寫道)\s*[:：]?\s*$  # 张三 <z@x.cn> 于2026年11月20日周五 10:00写道：
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# "On Mon, 20 Nov 2026, Li Wei <li@example.com>" + next line "wrote:" (Gmail wraps long ones).
_ATTRIBUTION_START = re.compile(r"^\s*on\s.{4,200}$", re.IGNORECASE)
_WROTE_LINE = re.compile(r"^\s*.{0,100}wrote\s*:\s*$", re.IGNORECASE)
# Outlook's header block of the message replied to: From/发件人 then Sent/Date/发送时间.
_HEADER_FROM = re.compile(r"^\s*\*?(?:from|发件人|寄件者|發件人)\s*\*?\s*[:：]", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(?:sent|date|to|cc|subject|发送时间|时间|日期|收件人|主题|寄件日期|傳送時間|收件者|主旨)\s*\*?\s*[:：]",
    re.IGNORECASE,
)
_HEADER_SENT = re.compile(r"^\s*\*?(?:sent|date|发送时间|时间|日期|寄件日期|傳送時間)\s*\*?\s*[:：]", re.IGNORECASE)
_QUOTED = re.compile(r"^\s*>")
_SIG_DASHES = re.compile(r"^--\s?$")
_MOBILE_SIG = re.compile(
    r"""^\s*(?:
        sent\s+from\s+my\s+\S.{0,40}
      | sent\s+from\s+(?:mail|outlook|yahoo|samsung|huawei|xiaomi)\b.{0,40}
      | get\s+outlook\s+for\s+\S.{0,20}
      | (?:发自|發自|来自|來自)(?:我的)?\s?(?:iphone|ipad|android|samsung|华为|華為|小米|荣耀|oppo|vivo
          |\S{0,12}(?:邮箱|郵箱|手机|手機|设备|設備|客户端|大师|大師))\S{0,12}
      | 从我的\s?\S{1,20}发送
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_MAX_SIGNATURE_LINES = 15


def strip_quoted(text: str) -> str:
    """`text` without quoted earlier replies and signatures.

    Never returns an empty string for text that has content of its own: if nothing
    but quotes is left, the whole text (stripped) comes back.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = _first_reply_header(lines)
    if cut is not None and _has_content(lines[:cut]):
        lines = lines[:cut]
    elif cut is not None:
        # Bottom-posted reply: the quote comes first. Drop only its header line.
        lines = lines[:cut] + lines[cut + 1 :]
    lines = [line for line in lines if not _QUOTED.match(line)]
    lines = _drop_signature(lines)
    result = "\n".join(line.rstrip() for line in lines).strip()
    return result or text.strip()


def _has_content(lines: list[str]) -> bool:
    return any(line.strip() and not _QUOTED.match(line) for line in lines)


def _first_reply_header(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        if len(line) > 300:
            continue
        if _REPLY_HEADER.match(line):
            return i
        if _ATTRIBUTION_START.match(line) and i + 1 < len(lines) and _WROTE_LINE.match(lines[i + 1]):
            return i
        if _HEADER_FROM.match(line) and _outlook_block(lines, i):
            return i
    return None


def _outlook_block(lines: list[str], start: int) -> bool:
    """A From:/发件人: line followed by header lines including Sent:/Date:/发送时间:."""
    seen_sent = False
    for line in lines[start + 1 : start + 6]:
        if not line.strip():
            break
        if not _HEADER_NEXT.match(line):
            return False
        seen_sent = seen_sent or bool(_HEADER_SENT.match(line))
    return seen_sent


def _drop_signature(lines: list[str]) -> list[str]:
    """Cut at "-- " or a mobile "Sent from my iPhone" line near the end, if text remains above."""
    tail_start = max(0, len(lines) - _MAX_SIGNATURE_LINES - 1)
    for i in range(tail_start, len(lines)):
        line = lines[i]
        if (_SIG_DASHES.match(line) or _MOBILE_SIG.match(line)) and _has_content(lines[:i]):
            return lines[:i]
    return lines
