"""Words of hurry before a deadline days away (config/rules.toml, rules with hurry = true):
LABELS.md calls a case urgent when business is blocked now or work is due today, and
important when the deadline is days away, however anxious the customer sounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from classify import Classifier, RulesError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped() -> Classifier:
    return Classifier.from_file(ROOT / "config" / "rules.toml")


@pytest.mark.parametrize(
    "subject, body",
    [
        ("新学期分班 急!!", "今年一年级扩招，系统里只能建到一(8)班。9月2日开学报到前要用，麻烦下周一之前帮我们加上三个班。"),
        ("KDS screens ASAP please", "We launch the new lunch menu next Monday. Could you add two kitchen screens before Monday? ASAP please."),
        ("", "新店下周六试营业，需要加购8台点餐平板，越快越好，最迟下周三要装好。"),
    ],
)
def test_hurry_before_a_deadline_days_away_is_important_and_says_why(shipped, subject, body):
    c = shipped.classify(subject, body)
    assert c.urgency == "important"
    assert c.decision["hurry"]["words"]
    assert "days away" in c.explain("en") and "几天后" in c.explain("zh")


@pytest.mark.parametrize(
    "subject, body",
    [
        # the same hurry, due today or tomorrow: work today
        ("新学期分班 急!!", "系统里只能建到一(8)班，今天下午4点前要给新生分班，麻烦加上三个班。"),
        ("KDS screens ASAP please", "We launch the new lunch menu tomorrow morning. Could you add two kitchen screens? ASAP please."),
        # the same hurry and a situation: the line is stopped now
        ("急!!", "整条产线停产了，所有订单都发不出去。下周一客户还要来验厂。"),
        # hurry with nothing days away stays urgent (said outright, LABELS.md)
        ("紧急", "收银系统登不上，请马上处理。"),
    ],
)
def test_hurry_stays_urgent_when_due_today_tomorrow_blocked_or_without_a_later_deadline(shipped, subject, body):
    c = shipped.classify(subject, body)
    assert c.urgency == "urgent", c.explain("en")
    assert "hurry" not in c.decision


RULES = """\
[defaults]
type = "inquiry"
urgency = "normal"

[time]
days = 2
hurry = 3

[[rules]]
name = "hurry"
target = "urgency:urgent"
weight = 6
hurry = true
keywords = ["asap"]

[[rules]]
name = "weekday"
target = "urgency:important"
weight = 1
days = true
keywords = ["monday"]

[[rules]]
name = "down"
target = "urgency:urgent"
weight = 6
keywords = ["is down"]
"""


def test_the_flags_of_a_rules_file_of_ones_own(tmp_path: Path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES, encoding="utf-8")
    c = Classifier.from_file(path)
    assert c.classify("", "asap please").urgency == "urgent"
    assert c.classify("", "asap please, we start monday").urgency == "important"  # a rule with days = true
    assert c.classify("", "the portal is down, asap, we start monday").urgency == "urgent"  # not all hurry
    assert c.classify("", "打印机卡纸,下周五前要用\n急").urgency == "important"  # [time] hurry and days
    assert c.classify("", "打印机卡纸\n急").urgency == "urgent"


@pytest.mark.parametrize(
    "line, problem",
    [
        ('hurry = "yes"', "rule 'hurry': hurry must be true or false"),
        ("days = true", "rule 'hurry': days = true is only for target \"urgency:important\""),
    ],
)
def test_a_wrong_flag_is_refused_with_its_rule_and_line(tmp_path: Path, line, problem):
    path = tmp_path / "rules.toml"
    path.write_text(RULES.replace("hurry = true", line), encoding="utf-8")
    with pytest.raises(RulesError) as info:
        Classifier.from_file(path)
    assert problem in str(info.value) and str(path) in str(info.value)
    assert "line 13:" in str(info.value)  # the flag's own line
