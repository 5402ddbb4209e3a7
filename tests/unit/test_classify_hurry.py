"""Words of hurry before a deadline days away (config/rules.toml, rules with hurry = true):
LABELS.md calls a case urgent when business is blocked now or work is due today, and
important when the deadline is days away, however anxious the customer sounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from classify import Classifier, RulesError


@pytest.mark.parametrize(
    "subject, body",
    [
        ("新学期分班 急!!", "今年一年级扩招，系统里只能建到一(8)班。9月2日开学报到前要用，麻烦下周一之前帮我们加上三个班。"),
        ("KDS screens ASAP please", "We launch the new lunch menu next Monday. Could you add two kitchen screens before Monday? ASAP please."),
        ("", "新店下周六试营业，需要加购8台点餐平板，越快越好，最迟下周三要装好。"),
    ],
)
def test_hurry_before_a_deadline_days_away_is_important_and_says_why(shipped_rules, subject, body):
    c = shipped_rules.classify(subject, body)
    assert c.urgency == "important"
    assert c.decision["hurry"]["words"]
    assert "days away" in c.explain("en") and "几天后" in c.explain("zh")


@pytest.mark.parametrize(
    "subject, body",
    [
        # the same hurry, due today or tomorrow: work today
        ("新学期分班 急!!", "系统里只能建到一(8)班，今天下午4点前要给新生分班，麻烦加上三个班。"),
        ("KDS screens ASAP please", "We launch the new lunch menu tomorrow morning. Could you add two kitchen screens? ASAP please."),
        # tomorrow said anywhere, not as a deadline the rules know (a review found it missed)
        ("Urgent: need the invoice by Friday.", "The auditors come tomorrow."),
        ("", "急!明天能发吗?下周五前一定要寄到"),
        # the same hurry and a situation: the line is stopped now
        ("急!!", "整条产线停产了，所有订单都发不出去。下周一客户还要来验厂。"),
        # hurry with nothing days away stays urgent (said outright, LABELS.md)
        ("紧急", "请尽快回复。"),
        # a weekday in the past or opening hours is no deadline (a review found these demoted)
        ("", "急!从周一开始一直登不上系统"),
        ("URGENT: the card reader broke on Monday and still fails", ""),
        # calls for help are a situation, not only a hurry
        ("", "收银机坏了，现在怎么办？周五还要营业"),
    ],
)
def test_hurry_stays_urgent_when_due_today_tomorrow_blocked_or_without_a_later_deadline(shipped_rules, subject, body):
    c = shipped_rules.classify(subject, body)
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
keywords = ["down"]
negations = ["not"]
"""


def test_the_flags_of_a_rules_file_of_ones_own(tmp_path: Path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES, encoding="utf-8")
    c = Classifier.from_file(path)
    assert c.classify("", "asap please").urgency == "urgent"
    assert c.classify("", "asap please, we start monday").urgency == "important"  # a rule with days = true
    assert c.classify("", "the portal is down, asap, we start monday").urgency == "urgent"  # not all hurry
    assert c.classify("", "the portal is not down, but asap, we start monday").urgency == "important"  # a cancelled hit is no evidence
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


def test_the_hurry_line_is_shown_only_when_the_scores_decided(shipped_rules):
    """A suggestion's urgency is fixed by its type: the hurry did not matter, and the
    explanation does not say it did."""
    # (not "希望下周一前增加…": a deadline makes the idea the customer's own need, a request, by LABELS.md)
    c = shipped_rules.classify("紧急建议:建议产品下周一前考虑增加夜间模式", "")
    assert c.type == "suggestion" and c.urgency == "normal" and "hurry" not in c.decision
    assert "words of hurry" not in c.explain("en")


def test_a_rules_file_without_time_hurry_still_counts_a_bare_ji_with_its_today_weight(tmp_path: Path):
    """Rules files written before [time] hurry counted the bare 急 as today: it keeps counting."""
    path = tmp_path / "rules.toml"
    path.write_text(RULES.replace("hurry = 3\n", "today = 3\n", 1), encoding="utf-8")
    c = Classifier.from_file(path)
    assert c.ruleset.time_weights["hurry"] == 3
    assert c.classify("", "打印机卡纸\n急").urgency == "urgent"
