"""A case as plain data, what the archive renders: the seeds' record table plus the thread.

The pipeline builds a `CaseRecord` from its tables (the `load_record` callable given to
the archive worker); nothing here touches a database, so the renderer can be tested
and benchmarked with plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

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


class AttachmentInfo(NamedTuple):
    """An attachment of a message, listed (not embedded) in the PDF."""

    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ThreadMessage:
    direction: str  # "in" (customer) or "out" (us)
    at: datetime
    sender: str
    subject: str
    text: str
    html: str | None = None  # untrusted: sanitised before rendering
    attachments: list[AttachmentInfo] = field(default_factory=list)


class RawOriginal(NamedTuple):
    """An original as received (.eml, form .json), embedded in the PDF/A file."""

    filename: str
    data: bytes
    mime: str = "message/rfc822"


@dataclass(frozen=True)
class CaseRecord:
    ticket_ref: str
    customer_number: str
    customer_name: str  # contact person
    company: str
    industry: str
    email: str
    phone: str  # stored in full; the PDF shows it masked
    date_opened: date
    channel: str  # email, form, phone, meeting
    type: str  # inquiry, complaint, fault, request, suggestion
    urgency: str  # urgent, important, normal
    department: str
    description: str
    handler: str
    status: str  # new, in_progress, follow_up, resolved, closed
    expected_completion: date | None = None
    actual_completion: date | None = None
    closed_on: date | None = None  # retention counts from here
    outcome: str = ""
    satisfaction: int | None = None  # 1..5, 5 = very satisfied
    follow_up_plan: str = ""
    notes: str = ""
    flagged: bool = False  # 加急
    classification: list[str] = field(default_factory=list)  # why this type and urgency, one line each
    messages: list[ThreadMessage] = field(default_factory=list)
    raw_originals: list[RawOriginal] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.satisfaction is not None and not 1 <= self.satisfaction <= 5:
            raise ValueError(f"satisfaction must be 1..5 or None, not {self.satisfaction!r}")

    @property
    def customer_label(self) -> str:
        """Who the case is about, for the file name: the company, else the person."""
        return self.company or self.customer_name or self.customer_number


_SEPARATORS = re.compile(r"\s*(?:[,;/，；、]|\s{2,})\s*")
_EXTENSION = re.compile(r"(?i)(\s*(?:ext\.?|x|转|分机|#)\s*\d+)$")


def mask_phone(phone: str) -> str:
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


def searchable_text(record: CaseRecord) -> str:
    """The words of a case, stored with each archived file for word search."""
    parts = [
        record.ticket_ref,
        record.customer_number,
        record.customer_name,
        record.company,
        record.industry,
        record.email,
        record.department,
        record.handler,
        record.description,
        record.outcome,
        record.follow_up_plan,
        record.notes,
    ]
    for m in record.messages:
        parts += [m.sender, m.subject, m.text]
        parts += [a.filename for a in m.attachments]
    return "\n".join(p for p in parts if p)
