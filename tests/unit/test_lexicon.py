"""classify/lexicon.py, the learned wording beside the keyword rules (issue 15): the terms of a
text, learning and writing a lexicon and reading it back, what it says of a message (checked
against naive Bayes computed here with plain floats), the errors of a broken file, how the
classifier weighs it against the keywords, the shipped lexicon, and hot reload of it."""

from __future__ import annotations

import importlib.util
import math
import os
import queue
import random
import time
from dataclasses import replace
from pathlib import Path

import pytest

from classify import Classifier, RulesError, RulesWatcher, load_rules
from classify.labels import TYPES, URGENCIES
from classify.lexicon import COLUMNS, HEADER, MAX_CHARS, SOFTEN, Lexicon, learn, load_lexicon, render, terms
from classify.normalize import normalize
from classify.urgency_model import SECTION_HEADER

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- terms()


def test_chinese_terms_are_pairs_of_neighbouring_characters():
    assert terms("打印机坏了") == {"打印", "印机", "机坏", "坏了"}
    assert terms("好") == set()  # a single character is no term
    # punctuation and spaces end a run: no pair across them
    assert terms("打印,坏了") == {"打印", "坏了"}
    assert terms("打印。坏了") == {"打印", "坏了"}
    assert terms("打印 坏了") == {"打印", "坏了"}


def test_english_terms_are_words_without_stop_words_and_word_pairs():
    assert terms("the printer jams") == {"printer", "jams", "the printer", "printer jams"}
    # two stop words make no pair; a one-letter word is no term but pairs with its neighbour
    assert terms("it is") == set()
    assert terms("plan b") == {"plan", "plan b"}
    # each term once, however often it is written
    assert terms("printer printer") == {"printer", "printer printer"}
    assert "the" not in terms("the printer") and "your" not in terms("your invoice")


@pytest.mark.parametrize("brk", [",", "。", ".", "!", "?", ";", "，", "\n", "(", "、"])
def test_word_pairs_stop_at_a_clause_break(brk):
    """The subject and body are joined by a newline: no pair across them either."""
    found = terms(f"printer{brk}jams")
    assert {"printer", "jams"} <= found
    assert "printer jams" not in found
    assert "printer jams" in terms("printer jams")


def test_mixed_text_gives_both_kinds_of_term():
    assert terms("打印机 printer jams") == {"打印", "印机", "printer", "jams", "printer jams"}


def test_only_the_first_max_chars_of_a_text_count():
    assert "printer" in terms(" " * (MAX_CHARS - len("printer")) + "printer")
    assert "printer" not in terms(" " * (MAX_CHARS - len("printer") + 1) + "printer")
    assert terms("。" * (MAX_CHARS - 2) + "打印") == {"打印"}
    assert terms("。" * (MAX_CHARS - 1) + "打印") == set()
    # a long mail costs no more than its opening
    opening = "打印机又坏了, the printer jams. " * 200
    assert len(opening) > MAX_CHARS
    assert terms(opening + "退款 refund " * 1000) == terms(opening[:MAX_CHARS])


def _cpu(text: str, repeat: int) -> float:
    """CPU seconds of `repeat` calls, the least of 3 runs."""
    best = math.inf
    for _ in range(3):
        start = time.process_time()
        for _ in range(repeat):
            terms(text)
        best = min(best, time.process_time() - start)
    return best


def _distinct_words(n: int) -> str:
    rng = random.Random(15)
    return " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(n))


def _cjk_run(n: int) -> str:
    rng = random.Random(15)
    return "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(n))


@pytest.mark.parametrize(
    "text",
    [
        "打印机又坏了,the printer jams every morning. 请尽快派人来修理!invoice #12 is wrong; " * 60,
        _cjk_run(MAX_CHARS),  # one run of characters: thousands of distinct pairs
        _distinct_words(MAX_CHARS // 4),  # one clause of distinct words: thousands of distinct pairs
        "a'" * MAX_CHARS,  # one long word of letters and apostrophes
        "x-" * MAX_CHARS,
        "。a" * MAX_CHARS,  # a break before every word
    ],
    ids=["mixed", "chinese", "english", "apostrophes", "hyphens", "breaks"],
)
def test_terms_take_linear_time(text):
    """A text 16 times longer (still under MAX_CHARS) costs less than 16 x 3 the CPU."""
    short_len = 240
    assert 16 * short_len <= MAX_CHARS <= len(text)
    short, long = text[:short_len], text[: 16 * short_len]
    assert _cpu(long, 50) < 16 * 3 * _cpu(short, 50)


# ---------------------------------------------------------------- learn, render, load_lexicon

EXAMPLES = [
    ("the printer jams", "fault", "urgent"),
    ("printer jams again", "fault", "important"),
    ("invoice for the printer", "inquiry", "normal"),
    ("打印机坏了", "fault", "important"),
    ("打印发票", "request", "normal"),
]


def _row(**labels: int) -> tuple[int, ...]:
    return tuple(labels.get(c, 0) for c in COLUMNS)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_learn_counts_each_term_once_per_example_per_label():
    lex = learn(EXAMPLES, min_examples=1)
    assert lex.examples == {"inquiry": 1, "complaint": 0, "fault": 3, "request": 1, "suggestion": 0, "urgent": 1, "important": 2, "normal": 2}
    assert lex.trained_on == 5
    assert lex.counts["printer"] == _row(fault=2, inquiry=1, urgent=1, important=1, normal=1)
    assert lex.counts["printer jams"] == _row(fault=2, urgent=1, important=1)
    assert lex.counts["打印"] == _row(fault=1, request=1, important=1, normal=1)
    assert lex.counts["发票"] == _row(request=1, normal=1)
    assert "the" not in lex.counts and "for the" not in lex.counts
    # the same words written three times in one message count once
    assert learn([("printer printer printer", "fault", "urgent")], min_examples=1).counts["printer"] == _row(fault=1, urgent=1)


def test_render_and_load_give_back_the_same_counts_and_examples(tmp_path):
    lex = learn(EXAMPLES, min_examples=1)
    text = render(lex, ["first line of the header", "", "second: figures"])
    assert text.startswith("# first line of the header\n#\n# second: figures\n" + HEADER + "\n(examples)\t")
    back = load_lexicon(_write(tmp_path / "lex.tsv", text))
    assert back.counts == lex.counts and back.examples == lex.examples
    assert back.path == str(tmp_path / "lex.tsv") and back.trained_on == 5
    # most seen first
    sums = [sum(map(int, line.split("\t")[1:])) for line in text.splitlines()[5:]]
    assert sums == sorted(sums, reverse=True)
    # and written again, the same bytes
    assert render(back, ["first line of the header", "", "second: figures"]) == text


def test_min_examples_drops_rare_terms():
    lex = learn(EXAMPLES, min_examples=2)
    assert {"printer", "jams", "printer jams", "打印"} <= set(lex.counts)  # 3, 2, 2 and 2 examples
    assert not {"invoice", "again", "发票", "坏了"} & set(lex.counts)  # one example each
    assert lex.examples == learn(EXAMPLES, min_examples=1).examples  # every example still counts for the priors
    assert set(learn(EXAMPLES, min_examples=3).counts) == {"printer"}


def test_base_adds_counts_and_examples():
    base = learn([("refund invoice", "complaint", "important"), ("invoice copy", "inquiry", "normal")], min_examples=1)
    new = [("invoice wrong", "complaint", "urgent"), ("printer jams", "fault", "urgent"), ("printer jams", "fault", "important")]
    lex = learn(new, min_examples=2, base=base)
    # a term of the base takes its new counts, even in fewer than min_examples new examples
    assert lex.counts["invoice"] == _row(complaint=2, inquiry=1, important=1, normal=1, urgent=1)
    # a term only in the base keeps its counts; a new term needs min_examples
    assert lex.counts["refund"] == base.counts["refund"] == _row(complaint=1, important=1)
    assert lex.counts["printer jams"] == _row(fault=2, urgent=1, important=1)
    assert "wrong" not in lex.counts and "invoice wrong" not in lex.counts
    assert lex.examples == {"inquiry": 1, "complaint": 2, "fault": 2, "request": 0, "suggestion": 0, "urgent": 2, "important": 2, "normal": 1}
    assert lex.trained_on == 5
    # the base itself is not changed
    assert base.counts["invoice"] == _row(complaint=1, inquiry=1, important=1, normal=1)
    # learning the two parts one on the other is learning them together (terms common enough in both)
    both = learn([("refund invoice", "complaint", "important"), ("invoice copy", "inquiry", "normal"), *new], min_examples=1)
    assert all(lex.counts[t] == both.counts[t] for t in lex.counts)
    assert lex.examples == both.examples


def test_an_example_labelled_on_one_axis_counts_for_that_axis_only():
    lex = learn([("printer jams", "fault", None), ("printer jams", None, "urgent"), ("printer jams", None, None)], min_examples=1)
    assert lex.counts["printer"] == _row(fault=1, urgent=1)
    assert lex.examples == _examples(fault=1, urgent=1)
    assert lex.trained_on == 1  # examples with a type
    # an example with no label at all is not learned from
    assert learn([("printer jams", None, None)], min_examples=1).counts == {}


def _examples(**labels: int) -> dict[str, int]:
    return {c: labels.get(c, 0) for c in COLUMNS}


def test_min_examples_counts_examples_labelled_on_either_axis():
    lex = learn([("zorbulator", "fault", None), ("zorbulator", "fault", None), ("zorbulator", None, "urgent")], min_examples=3)
    assert lex.counts.get("zorbulator") == _row(fault=2, urgent=1)


# ---------------------------------------------------------------- Lexicon.read

LEXICON_TSV = f"""# a hand-made lexicon for the tests
{HEADER}
(examples)\t20\t20\t20\t20\t20\t20\t20\t60
printer\t1\t1\t30\t1\t0\t12\t16\t4
jams\t0\t1\t25\t0\t1\t10\t14\t3
invoice\t25\t3\t0\t2\t1\t0\t2\t29
refund\t1\t25\t0\t2\t0\t2\t20\t6
asap\t1\t2\t3\t3\t0\t25\t2\t0
打印\t0\t0\t30\t1\t0\t10\t15\t6
thanks\t40\t40\t40\t40\t40\t40\t40\t40
"""


def _naive_bayes(lex: Lexicon, message_terms: set[str], labels: tuple[str, ...]) -> list[float]:
    """The probabilities of the labels, computed the plain way with floats: log prior (add-one)
    plus, per known term, the log of its smoothed share of the label's term occurrences; the
    sum divided by SOFTEN and normalised."""
    vocabulary = len(lex.counts)
    logp = []
    for label in labels:
        c = COLUMNS.index(label)
        prior = (lex.examples[label] + 1) / (sum(lex.examples[x] for x in labels) + len(labels))
        occurrences = sum(row[c] for row in lex.counts.values())
        value = math.log(prior)
        for term in message_terms:
            if term in lex.counts:
                value += math.log((lex.counts[term][c] + lex.smoothing) / (occurrences + lex.smoothing * vocabulary))
        logp.append(value / SOFTEN)
    top = max(logp)
    weights = [math.exp(v - top) for v in logp]
    return [w / sum(weights) for w in weights]


@pytest.mark.parametrize("smoothing", [1.0, 0.3, 2.5])
def test_read_gives_the_naive_bayes_probabilities(tmp_path, smoothing):
    lex = load_lexicon(_write(tmp_path / "lex.tsv", LEXICON_TSV), smoothing=smoothing)
    messages = ["the printer jams", "invoice refund asap", "打印机 printer, thanks", "asap", "thanks for the invoice", "打印 refund jams asap"]
    for text in messages:
        found = terms(text)
        reading = lex.read(found)
        for axis, labels in (("type", TYPES), ("urgency", URGENCIES)):
            assert reading[axis].labels == labels
            expected = _naive_bayes(lex, found, labels)
            assert reading[axis].probabilities == pytest.approx(expected, abs=1e-3), (text, axis)
            assert abs(sum(reading[axis].probabilities) - 1) < 1e-9
            assert reading[axis].best == labels[expected.index(max(expected))]
            assert sorted(reading[axis].found) == sorted(found & set(lex.counts))
    # the one axis asked for
    assert set(lex.read(terms("printer"), ("type",))) == {"type"}


def test_read_on_the_shipped_lexicon_gives_the_naive_bayes_probabilities():
    """Thousands of terms and messages with dozens of known ones: the packed sums stay exact."""
    lex = load_lexicon(ROOT / "config" / "lexicon.tsv")
    messages = [
        "您好，我们公司的打印机从昨天开始一直卡纸，换了纸也不行，请尽快派人来看看，影响出货了。",
        "Hi, I was charged twice for my subscription this month. Please refund the duplicate charge as soon as possible.",
        "建议你们的app增加夜间模式，晚上看屏幕太刺眼了，谢谢。",
        "請問你們的寬頻套餐有沒有學生優惠？",
    ]
    for text in messages:
        found = terms(normalize(text))
        assert len(found & set(lex.counts)) >= 5
        reading = lex.read(found)
        for axis, labels in (("type", TYPES), ("urgency", URGENCIES)):
            assert reading[axis].probabilities == pytest.approx(_naive_bayes(lex, found, labels), abs=1e-3), (text, axis)


def test_read_with_no_known_term_gives_uniform_probabilities_when_the_labels_were_seen_alike(tmp_path):
    even = LEXICON_TSV.replace("(examples)\t20\t20\t20\t20\t20\t20\t20\t60", "(examples)\t20\t20\t20\t20\t20\t30\t30\t30")
    lex = load_lexicon(_write(tmp_path / "lex.tsv", even))
    for found in (set(), {"xyzzy", "plugh"}):
        reading = lex.read(found)
        assert reading["type"].probabilities == pytest.approx([1 / 5] * 5)
        assert reading["urgency"].probabilities == pytest.approx([1 / 3] * 3)
        assert reading["type"].found == [] and reading["type"].terms == ()


def test_reading_terms_favour_its_best_label(tmp_path):
    lex = load_lexicon(_write(tmp_path / "lex.tsv", LEXICON_TSV))
    reading = lex.read(terms("printer jams, invoice 打印机"))
    assert reading["type"].best == "fault"
    # the fault terms, the strongest first ('invoice' is known but favours inquiry)
    assert set(reading["type"].terms) == {"printer", "jams", "打印"} and "invoice" not in reading["type"].terms
    assert reading["type"].terms[-1] == "jams"  # the weakest of the three for fault
    assert reading["type"].probability("fault") == max(reading["type"].probabilities)
    urgent = lex.read(terms("asap please"))["urgency"]
    assert urgent.best == "urgent" and urgent.terms == ("asap",)
    # at most three
    many = "printer jams 打印 " + " ".join(f"w{n}" for n in range(10))
    extra = "".join(f"w{n}\t0\t0\t{20 + n}\t0\t0\t1\t1\t1\n" for n in range(10))
    big = load_lexicon(_write(tmp_path / "big.tsv", LEXICON_TSV + extra))
    assert len(big.read(terms(many))["type"].terms) == 3


# ---------------------------------------------------------------- errors

GOOD_ROW = "printer\t1\t1\t30\t1\t0\t12\t16\t4"
EXAMPLES_ROW = "(examples)\t20\t20\t20\t20\t20\t20\t20\t60"


@pytest.mark.parametrize(
    "lines, line, words",
    [
        (["# comment", "term\tinquiry\tcomplaint", EXAMPLES_ROW], 2, "column names"),
        (["# comment", "", EXAMPLES_ROW, HEADER], 3, "column names"),
        ([HEADER, EXAMPLES_ROW, "printer\t1\t2\t3"], 3, "got 4 fields"),
        ([HEADER, EXAMPLES_ROW, GOOD_ROW + "\t5"], 3, "got 10 fields"),
        ([HEADER, EXAMPLES_ROW, "printer 1 1 30 1 0 12 16 4"], 3, "got 1 fields"),
        ([HEADER, EXAMPLES_ROW, "printer\t1\t1\t3.5\t1\t0\t12\t16\t4"], 3, "whole numbers"),
        ([HEADER, EXAMPLES_ROW, "printer\t1\t1\tmany\t1\t0\t12\t16\t4"], 3, "whole numbers"),
        ([HEADER, "(examples)\t20\t20\t20\t20\t20\t20\t20\t"], 2, "whole numbers"),
        ([HEADER, EXAMPLES_ROW, "# ok", "printer\t1\t1\t-3\t1\t0\t12\t16\t4"], 4, "must not be negative"),
        ([HEADER, EXAMPLES_ROW, GOOD_ROW, "jams\t0\t1\t25\t0\t1\t10\t14\t3", GOOD_ROW], 5, "'printer' is listed twice"),
        ([HEADER, EXAMPLES_ROW, "\t1\t1\t30\t1\t0\t12\t16\t4"], 3, "an empty term"),
    ],
)
def test_a_bad_line_names_the_file_and_the_line(tmp_path, lines, line, words):
    path = _write(tmp_path / "team-lexicon.tsv", "\n".join(lines) + "\n")
    with pytest.raises(RulesError) as err:
        load_lexicon(path)
    assert err.value.line == line and err.value.path == str(path)
    assert words in str(err.value) and str(err.value).startswith(f"{path} line {line}: ")


def test_whole_file_problems_name_the_file(tmp_path):
    cases = {
        "no-examples.tsv": (HEADER + "\n" + GOOD_ROW + "\n").encode(),
        "empty.tsv": b"# only a comment\n\n",
        "latin1.tsv": (HEADER + "\n" + EXAMPLES_ROW + "\n").encode() + "caf\xe9\t1\t1\t30\t1\t0\t12\t16\t4\n".encode("latin-1"),
    }
    words = {"no-examples.tsv": "no '(examples)' row", "empty.tsv": "no column names", "latin1.tsv": "not UTF-8"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(RulesError) as err:
            load_lexicon(path)
        assert err.value.path == str(path) and words[name] in str(err.value) and str(err.value).startswith(str(path)), name
    with pytest.raises(RulesError) as err:
        load_lexicon(tmp_path / "missing.tsv")
    assert err.value.path == str(tmp_path / "missing.tsv") and "cannot read the lexicon" in str(err.value)


def test_windows_line_ends_and_comments_are_read(tmp_path):
    path = tmp_path / "crlf.tsv"
    path.write_bytes(("# made in a spreadsheet\r\n" + HEADER + "\r\n" + EXAMPLES_ROW + "\r\n" + GOOD_ROW + "\r\n").encode())
    lex = load_lexicon(path)
    assert lex.counts == {"printer": (1, 1, 30, 1, 0, 12, 16, 4)} and lex.examples["normal"] == 60


def test_a_lexicon_saved_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "from-a-spreadsheet.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + LEXICON_TSV.encode("utf-8"))
    assert load_lexicon(path).counts["printer"] == (1, 1, 30, 1, 0, 12, 16, 4)


RULES = """[defaults]
type = "inquiry"
urgency = "normal"

[defaults.urgency_by_type]
fault = "important"

[no_rush]
phrases = ["no rush", "不着急"]

[lexicon]
{lexicon}

[[rules]]
name = "complaint"
target = "type:complaint"
weight = 2
keywords = ["complaint", "投诉"]

[[rules]]
name = "slow"
target = "type:fault"
weight = 1.5
keywords = ["slow"]

[[rules]]
name = "urgent"
target = "urgency:urgent"
weight = 2
keywords = ["urgent"]
"""
LEXICON_TABLE = 'file = "lex.tsv"\nweight = 1.0\naxes = ["type"]'


def _rules(tmp_path: Path, lexicon: str = LEXICON_TABLE, lexicon_text: str = LEXICON_TSV) -> Path:
    _write(tmp_path / "lex.tsv", lexicon_text)
    return _write(tmp_path / "rules.toml", RULES.format(lexicon=lexicon))


def _line_of(path: Path, start: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.startswith(start))


def test_rules_naming_a_missing_lexicon_are_refused_naming_the_lexicon(tmp_path):
    path = _rules(tmp_path, 'file = "gone/lexicon.tsv"')
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert err.value.path == str(tmp_path / "gone" / "lexicon.tsv") and "cannot read the lexicon" in str(err.value)


def test_rules_naming_a_broken_lexicon_are_refused_with_its_line(tmp_path):
    path = _rules(tmp_path, lexicon_text=LEXICON_TSV.replace("jams\t0\t1\t25", "jams\t0\t1\tx25"))
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert err.value.path == str(tmp_path / "lex.tsv") and err.value.line == 5 and "whole numbers" in str(err.value)


@pytest.mark.parametrize(
    "table, key, words",
    [
        ('file = "lex.tsv"\nweight = -0.5', "weight", "weight must not be negative, got -0.5"),
        ('file = "lex.tsv"\nweight = "high"', "weight", "weight must be a number, got 'high'"),
        ('file = "lex.tsv"\nweight = true', "weight", "weight must be a number"),
        ('file = "lex.tsv"\naxes = ["type", "topic"]', "axes", "axes entry must be one of type, urgency, got 'topic'"),
        ('file = "lex.tsv"\naxes = "type"', "axes", "axes must be a list"),
        ('file = "lex.tsv"\nsmoothing = 0', "smoothing", "smoothing must be greater than 0"),
        ('file = "lex.tsv"\nwieght = 1.0', "wieght", "[lexicon]: unknown key 'wieght' (did you mean 'weight'?)"),
        ('flie = "lex.tsv"', "flie", "[lexicon]: unknown key 'flie' (did you mean 'file'?)"),
        ("weight = 1.0", "[lexicon]", "'file' is missing"),
        ("file = 3", "file", "[lexicon] file must be a non-empty string"),
    ],
)
def test_bad_lexicon_table_is_refused_with_its_line(tmp_path, table, key, words):
    path = _rules(tmp_path, table)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert err.value.path == str(path) and err.value.line == _line_of(path, key)
    assert words in str(err.value)


def test_lexicon_table_is_read(tmp_path):
    rs = load_rules(_rules(tmp_path, 'file = "lex.tsv"\nweight = 2.5\naxes = ["urgency", "type", "urgency"]\nsmoothing = 0.5\nnote = "ours"'))
    assert rs.lexicon is not None and rs.lexicon.path == str(tmp_path / "lex.tsv") and rs.lexicon.smoothing == 0.5
    assert (rs.lexicon_weight, rs.lexicon_axes) == (2.5, ("urgency", "type"))
    assert rs.lexicon.counts["printer"] == (1, 1, 30, 1, 0, 12, 16, 4)
    default = load_rules(_rules(tmp_path, 'file = "lex.tsv"'))
    assert (default.lexicon_weight, default.lexicon_axes, default.learned_urgency, default.urgent_lean) == (1.0, ("type",), False, 2.0)
    # an absolute path is taken as it is
    elsewhere = _write(tmp_path / "elsewhere.tsv", LEXICON_TSV.replace("printer\t1\t1\t30", "printer\t1\t1\t31"))
    assert load_rules(_rules(tmp_path, f'file = "{elsewhere}"')).lexicon.counts["printer"][2] == 31
    assert load_rules(_write(tmp_path / "plain.toml", RULES.replace("[lexicon]\n{lexicon}\n", ""))).lexicon is None


# ---------------------------------------------------------------- the classifier with a lexicon


def _classifier(tmp_path: Path, lexicon: str = LEXICON_TABLE) -> Classifier:
    return Classifier.from_file(_rules(tmp_path, lexicon))


def test_no_keyword_the_wording_decides_and_the_explanation_names_the_terms(tmp_path):
    r = _classifier(tmp_path).classify("", "The printer jams")
    assert r.matches == [] and r.type == "fault"
    d = r.decision["type"]
    assert d["how"] == "wording" and d["keywords"] is None and d["chosen"] == d["wording"] == "fault"
    assert d["terms"] == ["printer", "jams"] and d["trained_on"] == 100
    p = d["wording_probability"]
    assert 0.2 < p < 1
    assert f"type: fault — no keyword matched; the learned wording: fault {p:.0%} ('printer', 'jams')" in r.explain("en")
    assert f"类型:故障(fault) — 未匹配关键词;学到的措辞:故障 {p:.0%}(“printer”、“jams”)" in r.explain("zh")
    # the urgency is the rules' (axes = ["type"]): the fallback of the type
    assert r.urgency == "important" and r.decision["urgency"]["how"] == "no_match"
    zh = _classifier(tmp_path).classify("打印机", "")
    assert zh.type == "fault" and "“打印”" in zh.explain("zh") and "'打印'" in zh.explain("en")


def test_strong_keywords_beat_a_weak_wording(tmp_path):
    r = _classifier(tmp_path).classify("", "A complaint about the invoice")
    d = r.decision["type"]
    assert d["wording"] == "inquiry" and r.type == "complaint"  # the wording leans elsewhere, the keyword wins
    assert d["keywords"] == "complaint" and d["keywords_score"] == 2 and d["terms"] == []
    assert f"type: complaint — score 2, over the learned wording (inquiry {d['wording_probability']:.0%})" in r.explain()
    assert f"关键词得分 2,胜过学到的措辞(咨询 {d['wording_probability']:.0%})" in r.explain("zh")
    # with weight 1 one matched type always wins: its scaled score 1 is more than any difference of probabilities
    assert _classifier(tmp_path).classify("", "slow printer jams").type == "fault"
    assert _classifier(tmp_path).classify("", "complaint: printer jams, printer jams").type == "complaint"


def test_the_wording_outweighs_weak_keywords_and_the_reason_says_so(tmp_path):
    c = _classifier(tmp_path)
    r = c.classify("", "complaint: the printer jams, slow")
    assert r.scores["type:complaint"] == 2 and r.scores["type:fault"] == 1.5  # the keywords lean to complaint
    assert r.type == "fault"
    d = r.decision["type"]
    assert (d["keywords"], d["chosen"], d["wording"], d["score"]) == ("complaint", "fault", "fault", 1.5)
    p = d["wording_probability"]
    assert f"type: fault — keywords lean to complaint (score 2); the learned wording outweighs them: fault {p:.0%} ('printer', 'jams')" in r.explain()
    assert f"关键词倾向投诉(得分 2),学到的措辞更有力:故障 {p:.0%}(“printer”、“jams”)" in r.explain("zh")
    # the sum decides: complaint 2/2 + weight x p(complaint) against fault 1.5/2 + weight x p(fault)
    assert c.ruleset.lexicon is not None
    reading = c.ruleset.lexicon.read(terms("complaint: the printer jams, slow"))["type"]
    assert 0.75 + reading.probability("fault") > 1 + reading.probability("complaint")
    # a smaller weight leaves it to the keywords
    assert _classifier(tmp_path, 'file = "lex.tsv"\nweight = 0.5').classify("", "complaint: the printer jams, slow").type == "complaint"
    # a larger weight lets the wording beat even a single keyword
    assert _classifier(tmp_path, 'file = "lex.tsv"\nweight = 10').classify("", "complaint: the printer jams").type == "fault"


def test_a_retired_important_or_normal_is_read_and_changes_nothing(tmp_path):
    """[lexicon] important_or_normal (the wording raising the rules' normal to important) gave
    way to the learned urgency: a team's rules file that still sets it loads, and classifies as
    without it."""
    lexicon_text = LEXICON_TSV + "overdue\t1\t20\t1\t1\t0\t0\t40\t1\n"  # said almost only in important cases
    with_key = Classifier.from_file(_rules(tmp_path, 'file = "lex.tsv"\nimportant_or_normal = 50', lexicon_text))
    without = Classifier.from_file(_rules(tmp_path, 'file = "lex.tsv"', lexicon_text))
    for subject, body in [("", "complaint: the reply is overdue"), ("", "overdue overdue"), ("slow", "invoice")]:
        assert with_key.classify(subject, body).to_dict() == without.classify(subject, body).to_dict()
    assert with_key.classify("", "complaint: the reply is overdue").urgency == "normal"


MESSAGES = [
    ("", "The printer jams"),
    ("complaint", "about the invoice"),
    ("", "complaint: the printer jams, slow"),
    ("打印机", "asap, urgent"),
    ("", "printer jams asap, no rush"),
    ("hello", "thanks"),
]


def test_weight_zero_is_exactly_the_rules_alone(tmp_path):
    weighed = _classifier(tmp_path, 'file = "lex.tsv"\nweight = 0\naxes = ["type", "urgency"]')
    alone = Classifier.from_file(_write(tmp_path / "plain.toml", RULES.replace("[lexicon]\n{lexicon}\n", "")))
    for subject, body in MESSAGES:
        a, b = weighed.classify(subject, body), alone.classify(subject, body)
        assert a.to_dict() == b.to_dict() and a.explain() == b.explain() and a.explain("zh") == b.explain("zh")
        assert "wording" not in str(a.to_dict())
    # and no axis is the same as weight 0
    no_axes = _classifier(tmp_path, 'file = "lex.tsv"\naxes = []')
    assert [no_axes.classify(s, b).to_dict() for s, b in MESSAGES] == [alone.classify(s, b).to_dict() for s, b in MESSAGES]
    # while with weight 1 the wording changes the first message
    assert _classifier(tmp_path).classify(*MESSAGES[0]).type == "fault" != alone.classify(*MESSAGES[0]).type


def test_axes_type_leaves_urgency_to_the_rules_and_urgency_too_lets_the_wording_decide(tmp_path):
    type_only = _classifier(tmp_path)
    both = _classifier(tmp_path, 'file = "lex.tsv"\naxes = ["type", "urgency"]')
    r = type_only.classify("", "printer jams asap")
    assert (r.type, r.urgency, r.decision["urgency"]) == ("fault", "important", {"how": "no_match", "fallback": "important"})
    r = both.classify("", "printer jams asap")
    assert (r.type, r.urgency, r.flagged) == ("fault", "urgent", True)
    d = r.decision["urgency"]
    assert d["how"] == "wording" and d["keywords"] is None and d["terms"] == ["asap"]
    assert f"urgency: urgent — no keyword matched; the learned wording: urgent {d['wording_probability']:.0%} ('asap')" in r.explain()
    assert "紧急程度:紧急(urgent) — 未匹配关键词;学到的措辞:紧急" in r.explain("zh")
    # the customer saying there is no rush still wins
    for c in (type_only, both):
        calm = c.classify("", "printer jams asap, no rush")
        assert calm.urgency == "normal" and calm.decision["urgency"] == {"how": "no_rush", "phrase": "no rush"} and not calm.flagged
        calm = c.classify("打印机坏了 asap", "不着急")
        assert calm.urgency == "normal" and calm.decision["urgency"]["how"] == "no_rush"
    # an urgency keyword and the wording agree
    r = both.classify("", "printer jams asap, urgent")
    assert r.urgency == "urgent" and "score 2; the learned wording agrees (urgent" in r.explain()
    # the urgency alone: the type is the rules' again
    urgency_only = _classifier(tmp_path, 'file = "lex.tsv"\naxes = ["urgency"]')
    r = urgency_only.classify("", "printer jams asap")
    assert (r.type, r.urgency) == ("inquiry", "urgent") and r.decision["type"] == {"how": "no_match", "fallback": "inquiry"}
    assert r.decision["urgency"]["how"] == "wording"


def test_urgency_of_type_still_wins_over_the_wording(tmp_path):
    text = RULES.format(lexicon='file = "lex.tsv"\naxes = ["type", "urgency"]').replace(
        "[defaults.urgency_by_type]", '[defaults.urgency_of_type]\nfault = "normal"\n\n[defaults.urgency_by_type]'
    )
    _write(tmp_path / "lex.tsv", LEXICON_TSV)
    r = Classifier.from_file(_write(tmp_path / "rules.toml", text)).classify("", "printer jams asap")
    assert (r.type, r.urgency, r.decision["urgency"]) == ("fault", "normal", {"how": "type", "type": "fault"})


# ---------------------------------------------------------------- the shipped lexicon


def _bench():
    spec = importlib.util.spec_from_file_location("classify_eval", ROOT / "bench" / "classify_eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_lexicon_is_learned_from_the_tuned_sets_only():
    """config/lexicon.tsv is byte for byte what `bench/classify_eval.py --learn-lexicon` writes
    from the tuned sets, its learned urgency included: no held-out message is in it."""
    bench = _bench()
    shipped = (ROOT / "config" / "lexicon.tsv").read_bytes()
    assert bench.learned_lexicon_text(load_rules(ROOT / "config" / "rules.toml", read_lexicon=False)).encode("utf-8") == shipped
    tuned = bench.tuned_rows()
    lex = load_lexicon(ROOT / "config" / "lexicon.tsv")
    assert sum(lex.examples[t] for t in TYPES) == len(tuned) == lex.trained_on
    assert sum(lex.examples[u] for u in URGENCIES) == len(tuned)
    assert all(r["type"] is not None and r["urgency"] is not None for r in tuned)
    assert lex.urgency is not None and set(lex.urgency.weights) - set(lex.counts) == {n for n in lex.urgency.weights if n.startswith("(")}
    assert set(bench.TUNED_WRITER_SETS) <= set(bench.writer_sets())  # every tuned set was found and read


def test_the_default_rules_name_the_shipped_lexicon():
    rs = load_rules(ROOT / "config" / "rules.toml")
    assert rs.lexicon is not None and Path(rs.lexicon.path).resolve() == (ROOT / "config" / "lexicon.tsv").resolve()
    assert rs.lexicon_weight > 0 and rs.lexicon_axes == ("type",)
    assert len(rs.lexicon.counts) > 1000


@pytest.mark.parametrize("subject, body", [("", ""), ("xyzzy", "plugh qwerty")])
def test_no_evidence_at_all_gives_the_defaults_with_the_shipped_rules(subject, body):
    c = Classifier.from_file(ROOT / "config" / "rules.toml")
    alone = Classifier(replace(c.ruleset, lexicon=None))
    r, expected = c.classify(subject, body), alone.classify(subject, body)
    assert (expected.type, expected.urgency) == ("inquiry", "normal")
    assert (r.type, r.urgency) == (expected.type, expected.urgency)


# ---------------------------------------------------------------- hot reload


def _flipped(to: str) -> str:
    """The lexicon with 'printer' and 'jams' counted for `to` instead of fault."""
    column = COLUMNS.index(to) + 1
    out = []
    for line in LEXICON_TSV.splitlines():
        cells = line.split("\t")
        if cells[0] in ("printer", "jams", "打印"):
            cells[3], cells[column] = cells[column], cells[3]
        out.append("\t".join(cells))
    return "\n".join(out) + "\n"


def test_rewriting_only_the_lexicon_reloads_and_a_broken_one_is_refused(tmp_path):
    path = _rules(tmp_path)
    lexicon = tmp_path / "lex.tsv"
    in_force = {"rules": Classifier.from_file(path)}
    assert in_force["rules"].classify("", "the printer jams").type == "fault"
    reloads: queue.Queue = queue.Queue()
    errors: queue.Queue = queue.Queue()

    def reloaded(c: Classifier) -> None:
        in_force["rules"] = c
        reloads.put(c)

    rules_bytes = path.read_bytes()
    watcher = RulesWatcher(path, reloaded, errors.put, debounce=0.05)
    watcher.start()
    try:
        time.sleep(0.2)
        lexicon.write_text(_flipped("request"), encoding="utf-8")  # in place
        reloads.get(timeout=10)
        assert in_force["rules"].classify("", "the printer jams").type == "request"
        assert path.read_bytes() == rules_bytes

        lexicon.write_text(_flipped("request").replace("jams\t0\t1", "jams\t0\t-1"), encoding="utf-8")
        error = errors.get(timeout=10)
        assert isinstance(error, RulesError) and Path(error.path).resolve() == lexicon.resolve()
        assert error.line == 5 and "must not be negative" in str(error)
        assert in_force["rules"].classify("", "the printer jams").type == "request"
        assert reloads.empty()

        # an editor's save: a new file renamed over the lexicon
        tmp = tmp_path / ".lex.tsv.swp"
        tmp.write_text(_flipped("suggestion"), encoding="utf-8")
        os.replace(tmp, lexicon)
        reloads.get(timeout=10)
        assert in_force["rules"].classify("", "the printer jams").type == "suggestion"
    finally:
        watcher.stop()


def test_a_lexicon_created_beside_rules_that_used_the_shipped_one_takes_over_at_once(tmp_path):
    """A rules file copied alone reads the shipped lexicon; a lexicon.tsv written beside it
    later is what the next start would read, so the watcher reloads at once (before, it
    watched only the shipped file and the new one took effect at some restart)."""
    shipped_rules = (ROOT / "config" / "rules.toml").read_text(encoding="utf-8")
    path = tmp_path / "rules.toml"
    path.write_text(shipped_rules, encoding="utf-8")
    first = Classifier.from_file(path)
    assert first.ruleset.lexicon is not None and Path(first.ruleset.lexicon.path).resolve() == (ROOT / "config" / "lexicon.tsv").resolve()
    reloads: queue.Queue = queue.Queue()
    watcher = RulesWatcher(path, reloads.put, debounce=0.05)
    watcher.start()
    try:
        time.sleep(0.2)
        # the shipped rules let the learned urgency decide: a lexicon without it is refused
        (tmp_path / "lexicon.tsv").write_text(LEXICON_TSV + SECTION_HEADER + "\nprinter\t0.5\t0\t-0.5\n", encoding="utf-8")
        reloaded = reloads.get(timeout=10)
        assert Path(reloaded.ruleset.lexicon.path).resolve() == (tmp_path / "lexicon.tsv").resolve()
    finally:
        watcher.stop()


def test_a_symbolic_link_swapped_to_another_lexicon_reloads_and_an_edit_of_its_target_too(tmp_path):
    """Teams keep versions side by side and point a link at the one in force (`ln -sfn`): the
    swap replaces the link, not the file the old link pointed to; before, the watcher watched
    only that old target and missed it."""
    path = _rules(tmp_path)
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "v1.tsv").write_text(LEXICON_TSV, encoding="utf-8")
    (versions / "v2.tsv").write_text(_flipped("request"), encoding="utf-8")
    lexicon = tmp_path / "lex.tsv"
    lexicon.unlink(missing_ok=True)
    lexicon.symlink_to(versions / "v1.tsv")
    in_force = {"rules": Classifier.from_file(path)}
    assert in_force["rules"].classify("", "the printer jams").type == "fault"
    reloads: queue.Queue = queue.Queue()

    def reloaded(c: Classifier) -> None:
        in_force["rules"] = c
        reloads.put(c)

    watcher = RulesWatcher(path, reloaded, debounce=0.05)
    watcher.start()
    try:
        time.sleep(0.2)
        swap = tmp_path / ".lex.tsv.new"
        swap.symlink_to(versions / "v2.tsv")
        os.replace(swap, lexicon)  # what `ln -sfn` does: a new link renamed over the old
        reloads.get(timeout=10)
        assert in_force["rules"].classify("", "the printer jams").type == "request"

        (versions / "v2.tsv").write_text(_flipped("suggestion"), encoding="utf-8")  # the target edited in its own folder
        reloads.get(timeout=10)
        assert in_force["rules"].classify("", "the printer jams").type == "suggestion"
    finally:
        watcher.stop()
