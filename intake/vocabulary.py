"""The project's vocabulary, written once: ticket types, urgencies, statuses, channels,
their shown names in Chinese and English, and how a phone number is shown masked.

Mail, web pages, the archive's PDFs, the report and the classifier all read these;
a new type or a changed label is one edit here (and a rules file that scores it).
"""

from __future__ import annotations

import re

TYPES = ("inquiry", "complaint", "fault", "request", "suggestion")
URGENCIES = ("urgent", "important", "normal")
STATUSES = ("new", "in_progress", "follow_up", "resolved", "closed")
OPEN_STATUSES = ("new", "in_progress", "follow_up")
CHANNELS = ("email", "form", "phone", "meeting")

# Labels of the coded values, per language: what the PDF and the file name show.
LABELS: dict[str, dict[str, dict[str, str]]] = {
    "type": {
        "zh": {"inquiry": "咨询", "complaint": "投诉", "fault": "故障", "request": "需求", "suggestion": "建议"},
        "en": {"inquiry": "inquiry", "complaint": "complaint", "fault": "fault", "request": "request", "suggestion": "suggestion"},
    },
    "urgency": {
        "zh": {"urgent": "紧急", "important": "重要", "normal": "一般"},
        "en": {"urgent": "urgent", "important": "important", "normal": "normal"},
    },
    "status": {
        "zh": {"new": "待处理", "in_progress": "处理中", "follow_up": "需跟进", "resolved": "已完成", "closed": "已关闭"},
        "en": {"new": "new", "in_progress": "in progress", "follow_up": "follow-up", "resolved": "resolved", "closed": "closed"},
    },
    "channel": {
        "zh": {"email": "邮件", "form": "网页表单", "phone": "电话", "meeting": "面谈"},
        "en": {"email": "email", "form": "web form", "phone": "phone", "meeting": "meeting"},
    },
    "direction": {
        "zh": {"in": "客户来信", "out": "我方回复"},
        "en": {"in": "from customer", "out": "from us"},
    },
}


def label(kind: str, code: str | None, lang: str = "zh") -> str:
    """The shown name of a coded value; an unknown code is shown as it is."""
    if not code:
        return ""
    return LABELS[kind].get(lang, LABELS[kind]["en"]).get(code, code)


# Phone numbers are stored whole; wherever a record is shown to someone (a staff
# notification, the case PDF, the form's answer page) it is masked here, one way.
_SEPARATORS = re.compile(r"\s*(?:[,;/，；、]|\s{2,})\s*")
_EXTENSION = re.compile(r"(?i)(\s*(?:ext\.?|x|转|分机|#)\s*\d+)$")


def mask_phone(phone: str | None) -> str:
    """Hide the middle digits of each phone number, keeping its formatting:
    13812345678 → 138****5678, +86 138-1234-5678 → +86 138-****-5678,
    010-12345678 → 010-****5678. The four digits before the last four are hidden;
    numbers of 5–7 digits keep only their first and last two; shorter ones are hidden
    whole. Several numbers separated by commas, slashes or 、 are masked one by one."""
    if not phone:
        return ""
    parts = _SEPARATORS.split(phone.strip())
    seps = _SEPARATORS.findall(phone.strip())
    out = [_mask_one(parts[0])]
    for sep, part in zip(seps, parts[1:]):
        out.append(sep + _mask_one(part))
    return "".join(out)


def _mask_one(number: str) -> str:
    extension = ""
    m = _EXTENSION.search(number)
    if m and any(c.isdigit() for c in number[: m.start()]):
        number, extension = number[: m.start()], m.group(1)
    positions = [i for i, c in enumerate(number) if c.isdigit()]
    n = len(positions)
    if n == 0:
        return number + extension
    if n >= 8:
        hidden = positions[-8:-4]
    elif n >= 5:
        hidden = positions[1:-2]
    else:
        hidden = positions
    chars = list(number)
    for i in hidden:
        chars[i] = "*"
    return "".join(chars) + extension
