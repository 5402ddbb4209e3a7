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
