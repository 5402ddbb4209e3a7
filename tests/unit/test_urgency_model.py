"""classify/urgency_model.py and urgency_learning.py, the learned urgency (issue 15): learning from examples, reading a
message (checked against a softmax computed here with plain floats), its section of the
lexicon file written and read back, a broken section refused with its line, the rules'
switch for it, and how the classifier lets it decide while the rules keep their last word."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest

from classify import Classifier, RulesError, load_rules
from classify.lexicon import Lexicon, learn, load_lexicon, render
from classify.urgency_learning import learn_urgency, with_learned_urgency
from classify.urgency_model import SECTION_HEADER, URGENCY, UrgencyModel, signals

# ---------------------------------------------------------------- learning and reading


def _examples() -> list[tuple[set[str], dict[str, float], str]]:
    """A line stopped is urgent, a deadline next week important, a question normal; 'printer'
    is in all three and says nothing."""
    rows = []
    for i in range(20):
        rows.append(({"停产", "printer", f"x{i}"}, {"(bias)": 1.0}, "urgent"))
        rows.append(({"下周", "printer", f"y{i}"}, {"(bias)": 1.0}, "important"))
        rows.append(({"请问", "printer", f"z{i}"}, {"(bias)": 1.0}, "normal"))
    return rows


VOCABULARY = {"停产", "下周", "请问", "printer"}


def _read(model: UrgencyModel, message_terms: set[str], rules_signals: dict[str, float], lean: float = 0.0):
    return model.read(model.known(message_terms), rules_signals, lean)


def test_learning_finds_the_terms_that_tell_the_urgencies_apart():
    model = learn_urgency(_examples(), VOCABULARY)
    assert _read(model, {"停产"}, {"(bias)": 1.0}).best == "urgent"
    assert _read(model, {"下周", "printer"}, {"(bias)": 1.0}).best == "important"
    assert _read(model, {"请问"}, {"(bias)": 1.0}).best == "normal"
    # a term outside the vocabulary is no feature, however often it was seen
    assert "x1" not in model.weights and "printer" in model.weights
    # the word every label holds weighs little next to the ones that tell them apart
    assert max(map(abs, model.weights["printer"])) < min(max(model.weights[t]) for t in ("停产", "下周", "请问"))


def test_learning_is_the_same_on_every_run():
    assert learn_urgency(_examples(), VOCABULARY).weights == learn_urgency(_examples(), VOCABULARY).weights


def test_read_is_the_softmax_of_the_summed_weights():
    model = UrgencyModel({"停产": (1.5, -0.25, -1.0), "today": (0.75, 0.5, -2.0), "(rules: normal)": (-0.5, 0.0, 1.25), "(bias)": (0.1, 0.2, 0.3)})
    reading = _read(model, {"停产", "today", "unknown"}, {"(rules: normal)": 1.0, "(bias)": 1.0, "(never learned)": 1.0}, lean=0.4)
    sums = [1.5 + 0.75 - 0.5 + 0.1, -0.25 + 0.5 + 0.0 + 0.2, -1.0 - 2.0 + 1.25 + 0.3]
    expected = [math.exp(s) / sum(math.exp(x) for x in sums) for s in sums]
    assert reading.probabilities == pytest.approx(expected, abs=1e-3)  # the evidence's: the lean is not in them
    assert reading.best == "urgent" and not reading.tipped
    assert model.strongest(reading) == ("停产", "today")  # the terms that favour urgent most, the strongest first
    # the lean tips a close call to urgent, only adds to urgent, and says so
    close = UrgencyModel({"w": (0.0, 0.3, 0.0)})
    assert _read(close, {"w"}, {}).best == "important" and not _read(close, {"w"}, {}).tipped
    tipped = _read(close, {"w"}, {}, lean=0.5)
    assert tipped.best == "urgent" and tipped.tipped and tipped.probability("urgent") < tipped.probability("important")
    # no evidence at all: the three alike
    assert _read(model, set(), {}).probabilities == pytest.approx((1 / 3, 1 / 3, 1 / 3))


def test_covering_a_vocabulary_adds_rows_of_zeros_that_change_nothing_and_are_not_written():
    model = UrgencyModel({"停产": (1.5, -0.25, -1.0)})
    before = _read(model, {"停产", "请问"}, {}).probabilities
    model.cover(["停产", "请问", "下周"])
    assert set(model.known({"停产", "请问", "明天"})) == {"停产", "请问"}
    assert model.read(["停产", "请问"], {}).probabilities == pytest.approx(before)
    assert model.weights == {"停产": (1.5, -0.25, -1.0)} and model.row("请问") == (0.0, 0.0, 0.0)


def test_a_base_is_where_learning_starts_and_what_it_is_pulled_back_to():
    base = UrgencyModel({"停产": (2.0, 0.0, -2.0), "月底": (-1.0, 2.0, -1.0)})
    # the team's examples say nothing of 月底: it keeps the base's weights
    adjusted = learn_urgency([({"停产"}, {}, "urgent"), ({"请问"}, {}, "normal")], {"停产", "请问", "月底"}, base=base)
    assert adjusted.weights["月底"] == (-1.0, 2.0, -1.0)
    assert adjusted.weights["停产"][0] >= 2.0 and _read(adjusted, {"请问"}, {}).best == "normal"


def test_signals_name_what_the_rules_found():
    scores = {"urgency:urgent": 4.5, "urgency:important": 1.5, "urgency:normal": 0.0}
    assert signals(scores, "urgent", "urgent_wins", "fault") == {
        "(bias)": 1.0,
        "(rules: urgent)": 1.0,
        "(decided by: urgent_wins)": 1.0,
        "(type: fault)": 1.0,
        "(keywords: urgent)": 1.0,  # capped at 3, scaled to 1
        "(any keyword: urgent)": 1.0,
        "(keywords: important)": 0.5,
        "(any keyword: important)": 1.0,
    }


# ---------------------------------------------------------------- the file


LEXICON_TSV = "term\tinquiry\tcomplaint\tfault\trequest\tsuggestion\turgent\timportant\tnormal\n(examples)\t10\t10\t10\t10\t10\t10\t10\t30\nprinter\t1\t1\t8\t1\t0\t4\t4\t3\n"


def _lexicon_with(section: str) -> str:
    return LEXICON_TSV + "# the learned urgency\n" + SECTION_HEADER + "\n" + section


def test_the_section_is_written_and_read_back(tmp_path):
    model = learn_urgency(_examples(), VOCABULARY)
    lexicon = learn([("停产 printer", "fault", "urgent"), ("请问 printer", "inquiry", "normal")] * 3)
    text = render(Lexicon("", lexicon.examples, lexicon.counts, 1.0, model), ["a header"])
    assert SECTION_HEADER in text.splitlines()
    path = tmp_path / "lex.tsv"
    path.write_text(text, encoding="utf-8")
    back = load_lexicon(path)
    assert back.counts == lexicon.counts and back.urgency is not None
    assert back.urgency.weights == model.weights  # three decimals, written in full
    assert load_lexicon(_write(tmp_path / "old.tsv", LEXICON_TSV)).urgency is None  # a lexicon of counts alone is still a lexicon


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "section, words",
    [
        ("停产\t1\t2\n", "expected a feature and 3 weights"),
        ("停产\t1\tx\t2\n", "'停产': weights must be numbers, got 1 x 2"),
        ("停产\t1\t51\t2\n", "weights must lie between -50 and 50"),
        ("停产\tnan\t0\t0\n", "weights must lie between"),
        ("停产\t1\t0\t0\n停产\t0\t0\t1\n", "'停产' is listed twice"),
        ("\t1\t0\t0\n", "an empty feature"),
        # a misspelt signal of the rules
        ("(bais)\t1\t0\t0\n", "'(bais)' is no signal of the rules (did you mean '(bias)'?)"),
        ("(rules: urgnet)\t1\t0\t0\n", "did you mean '(rules: urgent)'"),
    ],
)
def test_a_bad_weight_row_names_the_file_and_the_line(tmp_path, section, words):
    path = _write(tmp_path / "lex.tsv", _lexicon_with(section))
    with pytest.raises(RulesError) as err:
        load_lexicon(path)
    assert err.value.path == str(path) and err.value.line == len(_lexicon_with(section).splitlines())
    assert words in str(err.value)


# ---------------------------------------------------------------- the rules and the classifier


RULES = """[defaults]
type = "inquiry"
urgency = "normal"

[defaults.urgency_of_type]
suggestion = "normal"

[no_rush]
phrases = ["no rush"]

[lexicon]
file = "lex.tsv"
weight = 0
{extra}

[[rules]]
name = "suggestion"
target = "type:suggestion"
weight = 2
keywords = ["suggest"]

[[rules]]
name = "urgent"
target = "urgency:urgent"
weight = 2
keywords = ["urgent"]
"""
# the model: 'stopped' says urgent, 'urgent' alone (the rules' word) is weighed down by 'test',
# and with no evidence a message leans normal
SECTION = "stopped\t3\t0\t-3\ntest\t-3\t0\t3\n(rules: urgent)\t1\t0\t0\n(bias)\t0\t0\t0.5\n"


# the lexicon's counts of the model's terms: a term's weights are read only with its counts
COUNTED = "stopped\t1\t1\t1\t1\t1\t1\t1\t1\ntest\t1\t1\t1\t1\t1\t1\t1\t1\n"


def _rules(tmp_path: Path, extra: str, section: str | None = SECTION) -> Path:
    counted = LEXICON_TSV + COUNTED
    _write(tmp_path / "lex.tsv", counted + "# the learned urgency\n" + SECTION_HEADER + "\n" + section if section is not None else counted)
    return _write(tmp_path / "rules.toml", RULES.format(extra=extra))


def test_the_learned_urgency_decides_and_says_so_beside_the_rules_call(tmp_path):
    classifier = Classifier.from_file(_rules(tmp_path, "learned_urgency = true\nurgent_lean = 0"))
    r = classifier.classify("line stopped", "")
    assert r.urgency == "urgent" and r.flagged
    d = r.decision["urgency"]
    assert (d["how"], d["rules"], d["rules_decision"]["how"], d["terms"], d["tipped"]) == ("learned", "normal", "no_match", ["stopped"], False)
    assert "the learned urgency: urgent" in r.explain() and "the rules alone: normal (no keyword matched: the default)" in r.explain()
    assert "学到的紧急程度" in r.explain("zh")
    # the rules' urgent word weighed against a word the model learned to read as routine
    assert classifier.classify("urgent test", "").urgency == "normal"
    # agreeing with the rules says so, and how the rules decided, and names no terms
    hello = classifier.classify("hello", "")
    agreed = hello.decision["urgency"]
    assert agreed["how"] == "learned" and agreed["chosen"] == agreed["rules"] == "normal" and agreed["terms"] == []
    assert "as the rules say (no keyword matched: the default)" in hello.explain()
    json.dumps(hello.to_dict(), allow_nan=False)  # stored on the ticket as it is
    # off: the rules alone
    off = Classifier.from_file(_rules(tmp_path, "learned_urgency = false"))
    assert off.classify("line stopped", "").urgency == "normal"
    assert off.classify("urgent test", "").urgency == "urgent"


def test_the_rules_keep_the_last_word_on_a_fixed_urgency_and_on_no_rush(tmp_path):
    classifier = Classifier.from_file(_rules(tmp_path, "learned_urgency = true"))
    calm = classifier.classify("line stopped", "no rush")
    assert calm.urgency == "normal" and calm.decision["urgency"]["how"] == "no_rush"
    fixed = classifier.classify("suggest", "line stopped")
    assert fixed.type == "suggestion" and fixed.urgency == "normal" and fixed.decision["urgency"]["how"] == "type"


def test_weights_of_a_term_the_lexicon_does_not_count_are_not_read(tmp_path):
    """Deleting a term's counts from the file deletes it from the learned urgency too."""
    path = _rules(tmp_path, "learned_urgency = true\nurgent_lean = 0")
    path.with_name("lex.tsv").write_text(LEXICON_TSV + "test\t1\t1\t1\t1\t1\t1\t1\t1\n" + SECTION_HEADER + "\n" + SECTION, encoding="utf-8")
    classifier = Classifier.from_file(path)
    assert classifier.classify("line stopped", "").urgency == "normal"
    assert classifier.ruleset.lexicon is not None and classifier.ruleset.lexicon.urgency is not None
    assert "stopped" not in classifier.ruleset.lexicon.urgency.weights and "test" in classifier.ruleset.lexicon.urgency.weights


def test_the_lean_goes_to_urgent_and_the_explanation_says_it_tipped_the_call(tmp_path):
    # 'stopped test' sums to 0 for urgent and important, 0.5 (the bias) for normal: a lean above that decides
    assert Classifier.from_file(_rules(tmp_path, "learned_urgency = true\nurgent_lean = 0.25")).classify("stopped test", "").urgency == "normal"
    r = Classifier.from_file(_rules(tmp_path, "learned_urgency = true\nurgent_lean = 0.75")).classify("stopped test", "")
    assert r.urgency == "urgent" and r.decision["urgency"]["tipped"] and r.decision["urgency"]["probability"] < 0.5
    assert "tipped by urgent_lean" in r.explain() and "urgent_lean" in r.explain("zh")
    # the default lean is the shipped one
    assert load_rules(_rules(tmp_path, "learned_urgency = true")).urgent_lean == 2.0


@pytest.mark.parametrize(
    "extra, key, words",
    [
        ('learned_urgency = "yes"', "learned_urgency", "learned_urgency must be true or false, got 'yes'"),
        ("urgent_lean = true", "urgent_lean", "urgent_lean must be a number"),
        ("learned_urgency = true\nurgent_lean = -1", "urgent_lean", "urgent_lean must lie between 0 and 50, got -1"),
        ("learned_urgency = true\nurgent_lean = 1e9", "urgent_lean", "urgent_lean must lie between 0 and 50"),
    ],
)
def test_bad_settings_are_refused_with_their_line(tmp_path, extra, key, words):
    path = _rules(tmp_path, extra)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert err.value.line == next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(key))
    assert words in str(err.value)


def test_learned_urgency_on_a_lexicon_without_it_names_the_key_and_the_remedy(tmp_path):
    path = _rules(tmp_path, "learned_urgency = true", section=None)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert err.value.path == str(path) and "has no learned urgency" in str(err.value) and "intake rules learn" in str(err.value)
    assert load_rules(path, read_lexicon=False).learned_urgency  # `intake rules learn` can still read the rules to replace it


def test_with_learned_urgency_learns_from_what_the_rules_say(tmp_path):
    rules = load_rules(_rules(tmp_path, ""), read_lexicon=False)
    rows = [("machine stopped", "", "urgent"), ("a test", "", "normal"), ("urgent!", "no rush", "normal")] * 10
    lexicon = learn([(f"{s} {b}", "fault", u) for s, b, u in rows], min_examples=1)
    learned = with_learned_urgency(lexicon, rules, rows)
    assert learned.urgency is not None and learned.counts == lexicon.counts
    assert _read(learned.urgency, {"stopped"}, {"(bias)": 1.0}).best == "urgent"
    # the rules' no rush had the last word on the third row: not learned from ('rush' never weighed)
    assert "rush" not in learned.urgency.weights
    assert {n for n in learned.urgency.weights if n.startswith("(rules: ")} == {"(rules: normal)"}
    assert set(URGENCY) == {"urgent", "important", "normal"}


def test_a_lean_without_the_learned_urgency_and_a_retired_key_are_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="intake.classify.rules"):
        load_rules(_rules(tmp_path, "urgent_lean = 1\nimportant_or_normal = 1.5"))
    assert "urgent_lean has no effect without learned_urgency = true" in caplog.text
    assert "important_or_normal is no longer read" in caplog.text


@pytest.mark.parametrize("header", [SECTION_HEADER + "\t", SECTION_HEADER.upper(), SECTION_HEADER.replace("\t", " ", 1)])
def test_a_section_header_not_quite_right_says_what_it_must_read(tmp_path, header):
    path = _write(tmp_path / "lex.tsv", LEXICON_TSV + header + "\nprinter\t1\t0\t0\n")
    with pytest.raises(RulesError) as err:
        load_lexicon(path)
    assert err.value.line == 4 and "the learned urgency's header must read exactly" in str(err.value)


def test_an_empty_section_is_no_learned_urgency(tmp_path):
    _write(tmp_path / "lex.tsv", _lexicon_with(""))
    assert load_lexicon(tmp_path / "lex.tsv").urgency is None
    path = _write(tmp_path / "rules.toml", RULES.format(extra="learned_urgency = true"))
    with pytest.raises(RulesError, match="has no learned urgency"):
        load_rules(path)


def test_lexicons_compare_by_what_they_hold_and_can_be_replaced(tmp_path):
    path = _write(tmp_path / "lex.tsv", _lexicon_with("printer\t1\t0\t-1\n(bias)\t0\t0\t1\n"))
    assert load_lexicon(path) == load_lexicon(path)
    rules = _write(tmp_path / "rules.toml", RULES.format(extra=""))
    assert load_rules(rules) == load_rules(rules)
    lexicon = load_lexicon(path)
    other = replace(lexicon, smoothing=2.0)
    assert other.urgency == lexicon.urgency and other.urgency is not lexicon.urgency
    assert _read(other.urgency, {"printer"}, {"(bias)": 1.0}).best == _read(lexicon.urgency, {"printer"}, {"(bias)": 1.0}).best == "urgent"
