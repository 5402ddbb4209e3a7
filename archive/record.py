"""A case as plain data, what the archive renders: the seeds' record table plus the thread.

The pipeline builds a `CaseRecord` from its tables (the `load_record` callable given to
the archive worker); nothing here touches a database, so the renderer can be tested
and benchmarked with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple


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
