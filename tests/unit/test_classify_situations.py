"""Rules that generalise (issue 15): urgent first, situations, traps. Pure logic, no servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from classify import Classifier
from classify.errors import RulesError
from classify.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]

SMALL_RULES = """
[defaults]
type = "inquiry"
urgency = "normal"
{extra}

[[rules]]
name = "stopped"
target = "urgency:urgent"
weight = 3
keywords = ["line stopped"]

[[rules]]
name = "weak-important"
target = "urgency:important"
weight = 1.5
keywords = ["payroll", "again", "still"]

[[rules]]
name = "calm"
target = "urgency:normal"
weight = 4
keywords = ["minor"]
"""


def small(tmp_path: Path, extra: str = "") -> Classifier:
    path = tmp_path / "rules.toml"
    path.write_text(SMALL_RULES.format(extra=extra), encoding="utf-8")
    return Classifier.from_file(path)


def test_an_urgent_score_at_the_threshold_wins_over_more_important_words(tmp_path):
    text = "Line stopped again, still nothing, payroll run waiting"
    assert small(tmp_path).classify("", text).urgency == "important"  # 4.5 against 3: the highest score
    result = small(tmp_path, "urgent_wins_at = 3").classify("", text)
    assert result.urgency == "urgent" and result.decision["urgency"]["how"] == "urgent_wins"
    assert "urgent first" in result.explain() and "紧急优先" in result.explain("zh")
    # below the threshold, or outweighed by calm words, the scores decide as before
    assert small(tmp_path, "urgent_wins_at = 4").classify("", text).urgency == "important"
    assert small(tmp_path, "urgent_wins_at = 3").classify("", "line stopped, minor").urgency == "normal"


def test_urgent_wins_at_is_validated(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(SMALL_RULES.format(extra='urgent_wins_at = "soon"'), encoding="utf-8")
    with pytest.raises(RulesError, match="urgent_wins_at must be a number") as info:
        load_rules(path)
    assert info.value.line == 5
    path.write_text(SMALL_RULES.format(extra="urgent_wins_at = 0"), encoding="utf-8")
    with pytest.raises(RulesError, match="urgent_wins_at must be greater than 0"):
        load_rules(path)


@pytest.fixture(scope="module")
def default_rules() -> Classifier:
    return Classifier.from_file(ROOT / "config" / "rules.toml")


@pytest.mark.parametrize(
    "subject, body, type_, urgency",
    [
        # keyword traps of LABELS.md: the word names a topic, not this case
        ("X100停产了吗", "请问X100控制器是不是停产了?还有备件吗?", "inquiry", "normal"),
        ("", "你们的SC-300停产以后还能买到配件吗?替代型号是哪个?", "inquiry", "normal"),
        ("停产", "我们车间因为你们的控制器故障已经停产两个小时了!", "fault", "urgent"),
        ("", "加急的话多少钱?", "inquiry", "normal"),
        ("投诉表", "你们网站上的投诉表单太长了,建议简化一下,只留必填项。", "suggestion", "normal"),
        ("投诉", "我要投诉你们的安装师傅,迟到两个小时还态度恶劣。", "complaint", "important"),
    ],
)
def test_keyword_traps(default_rules, subject, body, type_, urgency):
    result = default_rules.classify(subject, body)
    assert (result.type, result.urgency) == (type_, urgency), result.explain()
