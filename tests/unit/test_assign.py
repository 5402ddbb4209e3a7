"""Auto-assignment within a department and the staff file (plain data, a fixed clock)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from classify import RulesError, choose_assignee, load_staff, parse_shift

ROOT = Path(__file__).resolve().parents[2]

STAFF = """
[assignment]
strategy = "{strategy}"
timezone = "Asia/Shanghai"

[departments.after_sales]
label_zh = "售后部"
label_en = "After-sales"
head = "a"

[[staff]]
id = "a"
name = "A"
email = "a@example.com"
departments = ["after_sales"]
shifts = ["mon-fri 09:00-18:00"]

[[staff]]
id = "b"
name = "B"
email = "b@example.com"
departments = ["after_sales"]
shifts = ["mon-fri 09:00-18:00"]

[[staff]]
id = "c"
name = "C"
email = "c@example.com"
departments = ["after_sales"]
shifts = ["mon-fri 09:00-18:00"]
away = {c_away}

[[staff]]
id = "night"
name = "N"
email = "n@example.com"
departments = ["after_sales"]
shifts = ["mon-fri 22:00-06:00"]
"""

# Monday 23 Nov 2026, 11:00 and 23:00 in Shanghai
DAY = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
SUNDAY = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def directory(tmp_path: Path, strategy: str = "least_open", c_away: str = "false"):
    path = tmp_path / "staff.toml"
    path.write_text(STAFF.format(strategy=strategy, c_away=c_away), encoding="utf-8")
    return load_staff(path)


def pick(d, open_counts=None, **kw):
    """The chosen member's id; `open_counts` as the daemon's query would answer, and the
    people it was asked about are recorded in ASKED."""
    ASKED.clear()

    def count(people):
        ASKED.append(list(people))
        return {k: v for k, v in (open_counts or {}).items() if k in people}

    kw.setdefault("now", DAY)
    member = choose_assignee(d, "after_sales", open_counts=count, **kw)
    return member.id if member else None


ASKED: list[list[str]] = []


def test_least_open_wins_and_ties_go_to_the_first_listed(tmp_path: Path):
    """The member with the fewest open tickets gets the case; equal counts go by file order."""
    d = directory(tmp_path)
    assert pick(d, open_counts={"a": 5, "b": 2, "c": 3}) == "b"
    assert pick(d, open_counts={"a": 2, "b": 2, "c": 2}) == "a"
    assert pick(d, open_counts={"a": 1}) == "b"  # missing from the counts means none open


def test_round_robin_follows_last_assigned(tmp_path: Path):
    """Round-robin takes the next available member after the last one, wrapping around."""
    d = directory(tmp_path, "round_robin")
    assert pick(d) == "a"
    assert pick(d, last_assigned="a") == "b"
    assert pick(d, last_assigned="b") == "c"
    assert pick(d, last_assigned="c") == "a"  # night is off shift by day


def test_away_staff_are_skipped(tmp_path: Path):
    """A member marked away never gets a new case, in either strategy."""
    d = directory(tmp_path, c_away="true")
    assert pick(d, open_counts={"a": 4, "b": 4, "c": 0}) == "a"
    rr = directory(tmp_path, "round_robin", c_away="true")
    assert pick(rr, last_assigned="b") == "a"


def test_off_shift_staff_are_skipped_and_overnight_shift_counts(tmp_path: Path):
    """By day the night shift is skipped; at 23:00 only the night shift is on duty."""
    d = directory(tmp_path)
    assert pick(d, open_counts={"a": 3, "b": 3, "c": 3, "night": 0}) == "a"
    assert pick(d, now=NIGHT, open_counts={"night": 9}) == "night"


def test_follow_up_goes_to_the_holder(tmp_path: Path):
    """A follow-up stays with its holder, even one with more open tickets or off shift."""
    d = directory(tmp_path)
    assert pick(d, open_counts={"a": 9, "b": 0}, current_holder="a") == "a"
    assert pick(d, now=NIGHT, current_holder="b") == "b"
    # ... but an urgent case does not wait for an off-shift holder
    assert pick(d, now=NIGHT, current_holder="b", urgent=True) == "night"


def test_away_holder_gives_way(tmp_path: Path):
    """When the holder is away the case goes to the least-loaded available member."""
    d = directory(tmp_path, c_away="true")
    assert pick(d, open_counts={"a": 2, "b": 1}, current_holder="c") == "b"


def test_nobody_available_gives_none(tmp_path: Path):
    """On Sunday nobody in the department is on shift: no assignee."""
    d = directory(tmp_path)
    assert pick(d, now=SUNDAY) is None
    assert choose_assignee(d, "no_such_department", open_counts=dict, now=DAY) is None


def test_counts_are_asked_only_when_there_is_a_choice(tmp_path: Path):
    """Counting open tickets is a query in the daemon: asked only of the people
    available, and not at all when one person or nobody is, or the holder keeps it."""
    d = directory(tmp_path, c_away="true")
    assert pick(d, open_counts={"a": 4, "b": 1, "c": 0}) == "b"
    assert ASKED == [["a", "b"]]  # c is away, night is off shift
    assert pick(d, now=NIGHT, open_counts={"night": 9}) == "night"
    assert ASKED == []  # only the night shift is on: no count
    assert pick(d, open_counts={"a": 9}, current_holder="a") == "a"
    assert ASKED == []
    assert pick(d, now=SUNDAY) is None
    assert ASKED == []


def test_shift_parsing():
    """Day ranges, lists and overnight shifts parse; nonsense is refused."""
    s = parse_shift("sat,sun 10:00-16:00")
    assert s.days == {5, 6}
    assert parse_shift("fri-mon 9:00-12:00").days == {4, 5, 6, 0}
    with pytest.raises(ValueError):
        parse_shift("weekdays 9-5")


def test_example_staff_file_is_valid():
    """config/staff.toml loads: four departments, each with a head, one member away."""
    d = load_staff(ROOT / "config" / "staff.toml")
    assert set(d.departments) == {"general", "after_sales", "product", "tech"}
    assert all(d.head(name) is not None for name in d.departments)
    assert 6 <= len(d.members) <= 8 and sum(m.away for m in d.members) == 1
    assert all(m.email.endswith("@example.com") for m in d.members)


def test_staff_errors_name_line_and_key(tmp_path: Path):
    """A bad staff file is refused with the line, the key and the problem."""
    path = tmp_path / "staff.toml"
    path.write_text(STAFF.format(strategy="fastest", c_away="false"))
    with pytest.raises(RulesError) as info:
        load_staff(path)
    assert info.value.line == 3 and info.value.key == "strategy"
    path.write_text(STAFF.format(strategy="least_open", c_away='"yes"'))
    with pytest.raises(RulesError) as info:
        load_staff(path)
    assert info.value.line == 31 and "staff 'c': away must be true or false" in str(info.value)
    path.write_text(STAFF.format(strategy="least_open", c_away="false").replace('head = "a"', 'head = "zz"'))
    with pytest.raises(RulesError, match="head 'zz' is not a staff id"):
        load_staff(path)
    path.write_text(STAFF.format(strategy="least_open", c_away="false").replace("mon-fri 22:00", "mon-fry 22:00"))
    with pytest.raises(RulesError, match="unknown day"):
        load_staff(path)
