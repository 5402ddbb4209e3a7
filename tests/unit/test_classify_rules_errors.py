"""A broken rules file is refused with a message naming the file, the line and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from classify import Classifier, RulesError

GOOD = """\
[defaults]
type = "inquiry"

[[rules]]
name = "complaint-zh"
target = "type:complaint"
weight = 2
keywords = ["投诉"]
"""


def refuse(tmp_path: Path, text: str) -> RulesError:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as info:
        Classifier.from_file(path)
    assert str(path) in str(info.value)
    return info.value


def test_good_file_loads(tmp_path: Path):
    """The base text of these tests is itself valid."""
    path = tmp_path / "rules.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert Classifier.from_file(path).classify("投诉", "").type == "complaint"


def test_toml_syntax_error_names_line(tmp_path: Path):
    """A TOML syntax error reports the line tomllib found it on."""
    err = refuse(tmp_path, GOOD.replace("weight = 2", "weight = = 2"))
    assert err.line == 7 and "line 7" in str(err) and "TOML syntax error" in str(err)


def test_unknown_key_names_line_and_key(tmp_path: Path):
    """A misspelt key is refused with its line and a hint."""
    err = refuse(tmp_path, GOOD.replace("weight = 2", "wieght = 2"))
    assert err.line == 7 and err.key == "wieght"
    assert "rule 'complaint-zh': unknown key 'wieght' (did you mean 'weight'?)" in str(err)


def test_wrong_type_names_line(tmp_path: Path):
    """A weight that is not a number is refused, quoting the bad value."""
    err = refuse(tmp_path, GOOD.replace("weight = 2", 'weight = "high"'))
    assert str(err).endswith("line 7: rule 'complaint-zh': weight must be a number, got 'high'")


def test_unknown_target_names_line(tmp_path: Path):
    """A target that is neither a known type nor a known urgency is refused."""
    err = refuse(tmp_path, GOOD.replace('"type:complaint"', '"type:complaints"'))
    assert err.line == 6 and "unknown target 'type:complaints'" in str(err)


def test_errors_in_later_rules_and_sections_name_their_line(tmp_path: Path):
    """Line numbers are right for the second [[rules]] table and for [defaults]."""
    text = GOOD + '\n[[rules]]\nname = "b"\ntarget = "urgency:urgent"\nkeywords = "紧急"\n'
    err = refuse(tmp_path, text)
    assert err.line == 13 and "rule 'b': keywords must be a list" in str(err)
    err = refuse(tmp_path, GOOD.replace('type = "inquiry"', 'type = "question"'))
    assert err.line == 2 and "[defaults] type must be one of" in str(err)


def test_duplicate_rule_name_and_unknown_negation_set(tmp_path: Path):
    """Two rules with one name, or a rule naming a missing negation set, are refused."""
    err = refuse(tmp_path, GOOD + GOOD.split("\n", 2)[2].replace("[defaults]", ""))
    assert "already used by the rule at line 4" in str(err)
    err = refuse(tmp_path, GOOD + 'negation_sets = ["nope"]\n')
    assert err.line == 9 and "unknown negation set 'nope'" in str(err)


def test_routing_must_name_known_types(tmp_path: Path):
    """A routing entry for a type that does not exist is refused."""
    err = refuse(tmp_path, GOOD + '\n[routing]\ncomplain = ["after_sales"]\n')
    assert err.line == 11 and "[routing] key must be one of" in str(err)
