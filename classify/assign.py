"""Auto-assignment within a department, a pure function over the staff directory.

Choices (documented for the team):
  * A customer's follow-up stays with whoever holds their open ticket while that
    person is not away, even off shift: they know the case and will see it at the
    start of their next shift. Only for an urgent case (`urgent=True`) does an
    off-shift holder give way to someone on duty. An away holder always gives way.
  * Otherwise only staff who are not away and on shift at `now` are candidates.
  * least_open: the fewest open tickets; ties go to whoever is listed first in
    staff.toml, so the outcome never depends on dict or set order. The counts are
    asked for (`open_counts`, a query in the daemon) only when two or more people
    are available, and only of them: counting is linear in their open tickets,
    and with one person on shift it was the costliest statement of a new case on
    PostgreSQL (bench/imap_backlog.md).
  * round_robin: the next available member after `last_assigned`, in file order,
    wrapping around.
  * Nobody available: None. The caller leaves the case unassigned in the
    department's queue (and a 加急 case still notifies the department head).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from classify.staff import StaffDirectory, StaffMember


def choose_assignee(
    directory: StaffDirectory,
    department: str,
    *,
    open_counts: Callable[[list[str]], Mapping[str, int]],
    now: datetime,
    current_holder: str | None = None,
    last_assigned: str | None = None,
    urgent: bool = False,
) -> StaffMember | None:
    holder = directory.member(current_holder)
    if holder is not None and not holder.away and (holder.on_shift(now) or not urgent):
        return holder

    members = directory.in_department(department)
    available = [m for m in members if m.available(now)]
    if not available:
        return None
    if directory.strategy == "round_robin":
        ids = [m.id for m in members]
        if last_assigned in ids:
            start = ids.index(last_assigned) + 1
            rotated = members[start:] + members[:start]
            return next(m for m in rotated if m in available)
        return available[0]
    if len(available) == 1:
        return available[0]
    counts = open_counts([m.id for m in available])
    order = {m.id: i for i, m in enumerate(members)}
    return min(available, key=lambda m: (counts.get(m.id, 0), order[m.id]))
