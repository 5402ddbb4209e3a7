"""Working hours and holidays: adding N hours of working time to a moment.

"mon-fri 09:00-18:00; sat 10:00-14:00" in a time zone, minus holiday dates. The
shift syntax is the staff file's (classify.staff.parse_shift), so one notation
serves both.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from classify.staff import Shift, parse_shift

MAX_DAYS = 400  # a due time further away than this means the hours are misconfigured


def parse_hours(text: str) -> list[Shift]:
    """'mon-fri 09:00-18:00; sat 10:00-14:00' → shifts; raises ValueError."""
    shifts = [parse_shift(part) for part in text.split(";") if part.strip()]
    if not shifts:
        raise ValueError(f"no working hours in {text!r}")
    return shifts


def _intervals(day: date, shifts: list[Shift]) -> list[tuple[datetime, datetime]]:
    out = []
    for s in shifts:
        if day.weekday() not in s.days:
            continue
        start = datetime.combine(day, s.start)
        end = datetime.combine(day if s.start < s.end else day + timedelta(days=1), s.end)
        out.append((start, end))
    return sorted(out)


def add_working_hours(start: datetime, hours: float, *, shifts: list[Shift], holidays: set[date], tz: str) -> datetime:
    """The moment `hours` of working time after `start` (aware); returned in UTC-aware form."""
    zone = ZoneInfo(tz)
    cursor = start.astimezone(zone).replace(tzinfo=None)
    remaining = timedelta(hours=hours)
    day = cursor.date() - timedelta(days=1)  # an overnight shift from yesterday may still run
    for _ in range(MAX_DAYS):
        if day not in holidays:
            for a, b in _intervals(day, shifts):
                if b <= cursor:
                    continue
                a = max(a, cursor)
                take = min(b - a, remaining)
                remaining -= take
                cursor = a + take
                if remaining <= timedelta(0):
                    return cursor.replace(tzinfo=zone).astimezone(start.tzinfo)
        day += timedelta(days=1)
    raise ValueError(f"{hours} working hours do not fit into {MAX_DAYS} days of these working hours")
