"""Due times by type and urgency, and what the SLA timers decide (plain functions).

Defaults come from the seeds through ack.response_hours (urgent: start within 2 h,
important: respond within 24 h, normal: within 48 h) — the time promised to the
customer is the time the team is held to. sla.type_hours overrides it per type;
sla.working_hours counts only working time for the urgencies it names.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from intake.staffmail.workhours import add_working_hours, parse_hours


def due_hours(config, type_: str, urgency: str) -> float:
    return config.sla.type_hours.get(type_, {}).get(urgency, config.ack.response_hours[urgency])


@lru_cache(maxsize=8)
def _shifts(text: str):
    return parse_hours(text)


def due_time(config, start: datetime, type_: str, urgency: str) -> datetime:
    """When the first response is due for a ticket opened at `start`."""
    hours = due_hours(config, type_, urgency)
    sla = config.sla
    if sla.working_hours and urgency in sla.working_hours_for:
        holidays = {date.fromisoformat(d) for d in sla.holidays}
        return add_working_hours(start, hours, shifts=_shifts(sla.working_hours), holidays=holidays, tz=config.tickets.timezone)
    return start + timedelta(hours=hours)


def remind_at(config, due: datetime, urgency: str) -> datetime:
    return due - timedelta(hours=config.sla.remind_before_hours.get(urgency, 0))


def follow_up_moment(config, day: date) -> datetime:
    """A follow-up reminder goes out at sla.follow_up_hour (local) on its date."""
    zone = ZoneInfo(config.tickets.timezone)
    return datetime.combine(day, time(config.sla.follow_up_hour), tzinfo=zone)


def local(config, moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(ZoneInfo(config.tickets.timezone)).strftime("%Y-%m-%d %H:%M")
