"""Commands at the top of a staff reply: parsed and checked here as plain data.

Each command is a line of its own starting with `#`, anywhere in the new text above
the quote (after a greeting, between paragraphs); command lines are never relayed:

    #note / #备注 [text]            internal note; the whole reply stays internal
    #status / #状态 VALUE           in_progress|follow_up|resolved (处理中|需跟进|已完成)
    #assign / #转派 STAFF           a staff id, email address or name
    #eta / #预计 DATE               expected completion (2026-11-30, 2026/11/30, 2026年11月30日)
    #type / #类型 TYPE              inquiry|complaint|fault|request|suggestion (咨询|投诉|故障|需求|建议)
    #urgency / #紧急程度 URGENCY    urgent|important|normal (紧急|重要|一般)
    #followup / #跟进 DATE [what]   a follow-up on that date; the assignee is reminded then

A colon may follow the name (`#状态：已完成`). A line like `#1 …` is not a command. An
unknown `#word` line is a mistyped command (an error) at the top of the reply (after at
most a greeting) or beside a real command; elsewhere it is text (`#hashtag`). A body
that is only a greeting ("Hi,") beside commands is no answer and is not relayed.
All or nothing: if any command is unknown or malformed, none is carried out and
nothing is relayed; the staff member gets the errors (relay.py).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from intake.vocabulary import TYPES, URGENCIES

ALIASES = {
    "note": ("note", "备注", "備註", "内部"),
    "status": ("status", "状态", "狀態"),
    "assign": ("assign", "转派", "轉派", "指派"),
    "eta": ("eta", "预计", "預計", "预计完成"),
    "type": ("type", "类型", "類型"),
    "urgency": ("urgency", "紧急程度", "緊急程度"),
    "followup": ("followup", "follow-up", "follow_up", "跟进", "跟進"),
}
_NAMES = {alias: name for name, aliases in ALIASES.items() for alias in aliases}

STATUS_VALUES = {
    "in_progress": "in_progress",
    "in-progress": "in_progress",
    "处理中": "in_progress",
    "處理中": "in_progress",
    "follow_up": "follow_up",
    "follow-up": "follow_up",
    "followup": "follow_up",
    "需跟进": "follow_up",
    "需跟進": "follow_up",
    "resolved": "resolved",
    "已完成": "resolved",
    "已解决": "resolved",
    "已解決": "resolved",
    "完成": "resolved",
}
TYPE_VALUES = {
    **{t: t for t in TYPES},
    "咨询": "inquiry",
    "諮詢": "inquiry",
    "投诉": "complaint",
    "投訴": "complaint",
    "故障": "fault",
    "需求": "request",
    "建议": "suggestion",
    "建議": "suggestion",
}
URGENCY_VALUES = {
    **{u: u for u in URGENCIES},
    "紧急": "urgent",
    "緊急": "urgent",
    "重要": "important",
    "一般": "normal",
}

_LINE = re.compile(r"^#(?P<name>[^\s:#\d][^\s:]*)\s*:?\s*(?P<arg>.*)$")
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


@dataclass(frozen=True)
class Command:
    name: str  # canonical: note, status, assign, eta, type, urgency, followup
    value: str = ""  # the checked value: a status, staff id, ISO date, type, urgency
    text: str = ""  # free text: the note, what to follow up
    line: str = ""  # as written


@dataclass
class Parsed:
    commands: list[Command] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    body: str = ""  # what is left to relay

    @property
    def internal(self) -> bool:
        return any(c.name == "note" for c in self.commands)


def parse_date(text: str) -> date | None:
    m = _DATE.match(text.strip())
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def parse(text: str, *, staff_lookup, today: date) -> Parsed:
    """Split a staff reply (quotes already stripped) into checked commands and the body.

    staff_lookup(word) → a staff id or None; today is the team's local date."""
    lines = text.replace("\r\n", "\n").split("\n")
    normalised = [unicodedata.normalize("NFKC", line).strip() for line in lines]
    matches = [_LINE.match(line) for line in normalised]
    known = [m is not None and m.group("name").lower() in _NAMES for m in matches]
    result = Parsed()
    body: list[str] = []
    text_lines: list[str] = []  # non-blank lines that are not commands, so far
    for i, (line, m) in enumerate(zip(normalised, matches)):
        if m is None or not (known[i] or _at_top(text_lines) or _beside_a_command(normalised, known, i)):
            body.append(lines[i])
            if line:
                text_lines.append(line)
            continue
        name, arg = m.group("name").lower(), m.group("arg").strip()
        canonical = _NAMES.get(name)
        if canonical is None:
            result.errors.append(f"unknown command #{m.group('name')} / 未知指令 (line: {line})")
            continue
        command, error = _check(canonical, arg, line, staff_lookup, today)
        if error or command is None:
            result.errors.append(f"{error} (line: {line})")
        else:
            result.commands.append(command)
    result.body = _BLANK_RUN.sub("\n\n", "\n".join(body)).strip()
    if result.commands and _GREETING.match(result.body):
        result.body = ""
    return result


_BLANK_RUN = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")
# "Hi,", "Hello Zhao,", "您好：", "赵女士，您好！": a greeting alone on its line
_GREETING = re.compile(r"^(?:(?:hi|hello|dear|hey)\b.{0,25}|.{0,12}(?:您好|你好|大家好).{0,3}|.{1,25}[,，:：])$", re.IGNORECASE)


def _at_top(text_lines: list[str]) -> bool:
    """Before any text, or after one greeting line."""
    return not text_lines or (len(text_lines) == 1 and bool(_GREETING.match(text_lines[0])))


def _beside_a_command(lines: list[str], known: list[bool], i: int) -> bool:
    """A real command in the same block of consecutive '#' lines as line i."""
    for step in (-1, 1):
        j = i + step
        while 0 <= j < len(lines) and lines[j].startswith("#"):
            if known[j]:
                return True
            j += step
    return False


def _check(name: str, arg: str, line: str, staff_lookup, today: date) -> tuple[Command | None, str | None]:
    if name == "note":
        return Command("note", text=arg, line=line), None
    if name == "status":
        value = STATUS_VALUES.get(arg.lower())
        if value is None:
            if arg.lower() in ("closed", "已关闭", "已關閉", "new", "待处理"):
                return None, f"#status {arg}: staff cannot set this; a ticket closes when the customer is satisfied / 此状态不能由员工设置"
            return None, f"#status needs one of in_progress, follow_up, resolved (处理中, 需跟进, 已完成), got {arg!r}"
        return Command("status", value=value, line=line), None
    if name == "assign":
        if not arg:
            return None, "#assign needs a staff id / #转派 需要员工编号"
        staff_id = staff_lookup(arg)
        if staff_id is None:
            return None, f"#assign: no staff member {arg!r} / 没有这位员工"
        return Command("assign", value=staff_id, line=line), None
    if name == "eta":
        day = parse_date(arg)
        if day is None:
            return None, f"#eta needs a date like 2026-11-30, got {arg!r}"
        if day < today:
            return None, f"#eta {day.isoformat()} is in the past / 日期已过"
        return Command("eta", value=day.isoformat(), line=line), None
    if name == "type":
        value = TYPE_VALUES.get(arg.lower())
        if value is None:
            return None, f"#type needs one of inquiry, complaint, fault, request, suggestion (咨询, 投诉, 故障, 需求, 建议), got {arg!r}"
        return Command("type", value=value, line=line), None
    if name == "urgency":
        value = URGENCY_VALUES.get(arg.lower())
        if value is None:
            return None, f"#urgency needs one of urgent, important, normal (紧急, 重要, 一般), got {arg!r}"
        return Command("urgency", value=value, line=line), None
    # followup
    first, _, rest = arg.partition(" ")
    day = parse_date(first)
    if day is None:
        return None, f"#followup needs a date and what to do, like: #followup 2026-12-01 call back; got {arg!r}"
    if day < today:
        return None, f"#followup {day.isoformat()} is in the past / 日期已过"
    if not rest.strip():
        return None, "#followup needs what to follow up after the date / 请写明跟进事项"
    return Command("followup", value=day.isoformat(), text=rest.strip(), line=line), None
