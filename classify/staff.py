"""config/staff.toml: departments, their heads, the staff and their shifts, as plain data.

    [assignment]
    strategy = "least_open"          # or "round_robin"
    timezone = "Asia/Shanghai"       # for shifts without their own timezone

    [departments.after_sales]
    label_zh = "售后部"
    label_en = "After-sales"
    head = "li.na"                   # a staff id

    [[staff]]
    id = "li.na"
    name = "李娜"
    email = "li.na@example.com"
    departments = ["after_sales"]
    shifts = ["mon-fri 09:00-18:00"] # no shifts key: always on duty
    away = false
    languages = ["zh", "en"]
    timezone = "Asia/Shanghai"       # optional
    signature = '''李娜 | 售后部
    电话 010-12345678'''                # optional: cut from the end of their replies before relaying

A shift "fri 22:00-06:00" runs past midnight into Saturday morning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from classify.errors import RulesError, describe, read_toml

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STRATEGIES = ("least_open", "round_robin")
_SHIFT = re.compile(r"^\s*(?P<days>[a-z,\-]+)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")
_TOP_KEYS = ("assignment", "departments", "staff")
_ASSIGNMENT_KEYS = ("strategy", "timezone")
_DEPARTMENT_KEYS = ("label_zh", "label_en", "head")
_STAFF_KEYS = ("id", "name", "email", "departments", "shifts", "away", "languages", "timezone", "signature")


@dataclass(frozen=True)
class Shift:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time  # end <= start: the shift runs past midnight
    text: str

    def covers(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        day = local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= t < self.end
        # overnight: the evening of a listed day, or the morning after it
        return (day in self.days and t >= self.start) or ((day - 1) % 7 in self.days and t < self.end)


@dataclass
class StaffMember:
    id: str
    name: str
    email: str
    departments: list[str]
    head_of: list[str] = field(default_factory=list)
    away: bool = False
    shifts: list[Shift] = field(default_factory=list)  # empty: always on duty
    timezone: str = "UTC"
    languages: list[str] = field(default_factory=list)
    signature: str = ""  # the text their mail client appends; cut from their replies

    def on_shift(self, now: datetime) -> bool:
        """Whether `now` (aware; naive is taken as UTC) falls in one of the shifts."""
        if not self.shifts:
            return True
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        local = now.astimezone(ZoneInfo(self.timezone))
        return any(s.covers(local) for s in self.shifts)

    def available(self, now: datetime) -> bool:
        return not self.away and self.on_shift(now)


@dataclass
class Department:
    name: str
    label_zh: str
    label_en: str
    head: str | None  # staff id


@dataclass
class StaffDirectory:
    members: list[StaffMember]
    departments: dict[str, Department]
    strategy: str = "least_open"

    def member(self, staff_id: str | None) -> StaffMember | None:
        return next((m for m in self.members if m.id == staff_id), None)

    def in_department(self, department: str) -> list[StaffMember]:
        """Members of a department, in file order."""
        return [m for m in self.members if department in m.departments]

    def labels(self, lang: str = "en") -> dict[str, str]:
        """Department id → its name for people, in Chinese ("zh") or English."""
        zh = lang.lower().startswith("zh")
        return {name: (d.label_zh if zh else d.label_en) for name, d in self.departments.items()}

    def head(self, department: str) -> StaffMember | None:
        """Who is notified of a 加急 case in this department."""
        dept = self.departments.get(department)
        return self.member(dept.head) if dept else None


def parse_shift(text: str) -> Shift:
    """'mon-fri 09:00-18:00', 'sat,sun 10:00-16:00', 'fri 22:00-06:00'; raises ValueError."""
    m = _SHIFT.match(text.lower())
    if not m:
        raise ValueError(f"shift {text!r} is not like 'mon-fri 09:00-18:00'")
    days: set[int] = set()
    for part in m.group("days").split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"shift {text!r}: unknown day in {part!r} (use {', '.join(DAYS)})")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    try:
        start, end = (time.fromisoformat(m.group(k).zfill(5)) for k in ("start", "end"))
    except ValueError:
        raise ValueError(f"shift {text!r}: not a time of day") from None
    if start == end:
        raise ValueError(f"shift {text!r}: starts and ends at the same time")
    return Shift(frozenset(days), start, end, text)


def load_staff(path: Path) -> StaffDirectory:
    """Read and validate a staff file; raises RulesError naming the line, key and problem."""
    path = Path(path)
    data, lines = read_toml(path)

    def fail(line: int | None, problem: str, key: str | None = None) -> RulesError:
        return RulesError(path, line, problem, key)

    def unknown(table: dict, allowed: tuple[str, ...], line: int | None, where: str) -> None:
        for key in table:
            if key not in allowed:
                raise fail(lines.key(line, key), f"{where}unknown key '{key}' (allowed: {', '.join(allowed)})", key)

    unknown(data, _TOP_KEYS, None, "")
    a_line = lines.table("assignment")
    assignment = data.get("assignment", {})
    unknown(assignment, _ASSIGNMENT_KEYS, a_line, "[assignment]: ")
    strategy = assignment.get("strategy", "least_open")
    if strategy not in STRATEGIES:
        raise fail(
            lines.key(a_line, "strategy"), f"[assignment] strategy must be one of {', '.join(STRATEGIES)}, got {describe(strategy)}", "strategy"
        )
    default_tz = assignment.get("timezone", "UTC")
    _zone(default_tz, lambda p: fail(lines.key(a_line, "timezone"), f"[assignment] timezone: {p}", "timezone"))

    departments: dict[str, Department] = {}
    raw_departments = data.get("departments", {})
    if not isinstance(raw_departments, dict) or not raw_departments:
        raise fail(None, "[departments] must define at least one department", "departments")
    name: str  # a TOML key, so the default label is a str
    for name, raw in raw_departments.items():
        d_line = lines.table(f"departments.{name}")
        if not isinstance(raw, dict):
            raise fail(d_line, f"[departments.{name}] must be a table, got {describe(raw)}", name)
        unknown(raw, _DEPARTMENT_KEYS, d_line, f"[departments.{name}]: ")
        for key in ("label_zh", "label_en", "head"):
            if key in raw and not (isinstance(raw[key], str) and raw[key].strip()):
                raise fail(lines.key(d_line, key), f"[departments.{name}] {key} must be a non-empty string, got {describe(raw[key])}", key)
        departments[name] = Department(name, raw.get("label_zh", name), raw.get("label_en", name), raw.get("head"))

    members: list[StaffMember] = []
    raw_staff = data.get("staff", [])
    if not isinstance(raw_staff, list):
        raise fail(lines.key(None, "staff"), "'staff' must be an array of tables ([[staff]])", "staff")
    for index, raw in enumerate(raw_staff):
        s_line = lines.table("staff", index)
        members.append(_member(raw, s_line, lines, departments, default_tz, fail, unknown))
        if any(m.id == members[-1].id for m in members[:-1]):
            raise fail(lines.key(s_line, "id"), f"staff '{members[-1].id}': id is used twice", "id")

    for name, dept in departments.items():
        head = next((m for m in members if m.id == dept.head), None)
        if dept.head is not None and head is None:
            raise fail(lines.key(lines.table(f"departments.{name}"), "head"), f"[departments.{name}] head '{dept.head}' is not a staff id", "head")
        if head is not None:
            head.head_of.append(name)
    return StaffDirectory(members, departments, strategy)


def _zone(name: object, fail) -> None:
    try:
        if not isinstance(name, str):
            raise ZoneInfoNotFoundError
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(f"unknown timezone {describe(name)}") from None


def _member(raw: object, line: int | None, lines, departments: dict, default_tz: str, fail, unknown) -> StaffMember:
    if not isinstance(raw, dict):
        raise fail(line, f"[[staff]] must be a table, got {describe(raw)}")
    sid = raw.get("id")
    if not isinstance(sid, str) or not sid.strip():
        raise fail(lines.key(line, "id") if "id" in raw else line, f"[[staff]] id must be a non-empty string, got {describe(sid)}", "id")
    where = f"staff '{sid}': "
    unknown(raw, _STAFF_KEYS, line, where)
    at = lambda key: lines.key(line, key)  # noqa: E731
    for key in ("name", "email"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise fail(at(key) if key in raw else line, f"{where}{key} must be a non-empty string, got {describe(raw.get(key))}", key)
    if "@" not in raw["email"]:
        raise fail(at("email"), f"{where}email {raw['email']!r} is not an email address", "email")
    depts = raw.get("departments")
    if not isinstance(depts, list) or not depts or not all(isinstance(d, str) for d in depts):
        raise fail(
            at("departments") if "departments" in raw else line,
            f"{where}departments must be a non-empty list of department names, got {describe(depts)}",
            "departments",
        )
    for d in depts:
        if d not in departments:
            raise fail(at("departments"), f"{where}unknown department '{d}' (known: {', '.join(departments)})", "departments")
    away = raw.get("away", False)
    if not isinstance(away, bool):
        raise fail(at("away"), f"{where}away must be true or false, got {describe(away)}", "away")
    tz = raw.get("timezone", default_tz)
    _zone(tz, lambda p: fail(at("timezone"), f"{where}timezone: {p}", "timezone"))
    shifts_raw = raw.get("shifts", [])
    if not isinstance(shifts_raw, list) or not all(isinstance(s, str) for s in shifts_raw):
        raise fail(at("shifts"), f'{where}shifts must be a list like ["mon-fri 09:00-18:00"], got {describe(shifts_raw)}', "shifts")
    try:
        shifts = [parse_shift(s) for s in shifts_raw]
    except ValueError as exc:
        raise fail(at("shifts"), f"{where}{exc}", "shifts") from None
    languages = raw.get("languages", [])
    if not isinstance(languages, list) or not all(isinstance(x, str) for x in languages):
        raise fail(at("languages"), f"{where}languages must be a list of strings, got {describe(languages)}", "languages")
    signature = raw.get("signature", "")
    if not isinstance(signature, str):
        raise fail(at("signature"), f"{where}signature must be a string, got {describe(signature)}", "signature")
    return StaffMember(sid, raw["name"], raw["email"], list(depts), [], away, shifts, tz, list(languages), signature.strip())
