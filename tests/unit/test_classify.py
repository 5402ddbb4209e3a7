"""Unit tests of keyword matching and scoring on small rule files (plain data, no servers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classify import Classifier
from classify.normalize import normalize

RULES = """
[defaults]
type = "inquiry"
urgency = "normal"
subject_weight = 3.0
negation_window = 4

[defaults.urgency_by_type]
fault = "important"

[routing]
complaint = ["after_sales"]
fault = ["after_sales", "tech"]

[negation_sets]
not_urgent = ["不急", "不紧急", "并不紧急", "not urgent", "no rush"]

[[rules]]
name = "complaint"
target = "type:complaint"
weight = 2
keywords = ["投诉", "complaint"]
negations = ["不是投诉"]

[[rules]]
name = "fault"
target = "type:fault"
weight = 2
keywords = ["故障", "bug", "crash*"]

[[rules]]
name = "request"
target = "type:request"
weight = 1
keywords = ["希望增加"]

[[rules]]
name = "urgent"
target = "urgency:urgent"
weight = 3
keywords = ["紧急", "urgent", "急"]
negation_sets = ["not_urgent"]
"""


@pytest.fixture
def clf(tmp_path: Path) -> Classifier:
    path = tmp_path / "rules.toml"
    path.write_text(RULES, encoding="utf-8")
    return Classifier.from_file(path)


def test_normalize_maps_fullwidth_case_and_traditional():
    """NFKC turns full-width into half-width, case is folded, traditional becomes simplified."""
    assert normalize("ＵＲＧＥＮＴ　ＡＳＡＰ") == "urgent asap"
    assert normalize("投訴 緊急 系統癱瘓") == "投诉 紧急 系统瘫痪"


def test_traditional_and_fullwidth_keywords_count_like_simplified(clf: Classifier):
    """投訴 from a Big5 customer and full-width ＢＵＧ score like 投诉 and bug."""
    assert clf.classify("", "我要投訴你們").type == "complaint"
    r = clf.classify("", "發現一個ＢＵＧ,很緊急")
    assert (r.type, r.urgency) == ("fault", "urgent")


def test_english_keywords_respect_word_boundaries(clf: Classifier):
    """'bug' does not match inside 'debug'; 'crash*' matches 'crashes'."""
    assert clf.classify("", "please debug this").type == "inquiry"
    assert clf.classify("", "it has a bug").type == "fault"
    assert clf.classify("", "the app crashes daily").type == "fault"


def test_negation_cancels_nearby_hit(clf: Classifier):
    """不急 / not urgent cancel the urgency keyword they overlap or stand next to."""
    r = clf.classify("", "系统有故障,不急,有空看看")
    assert r.urgency == "important"  # fault's default urgency, the 急 hit was cancelled
    cancelled = [m for m in r.matches if m.negated]
    assert cancelled and cancelled[0].negated_by == "不急" and cancelled[0].target == "urgency:urgent"
    assert clf.classify("", "This bug is not urgent").urgency == "important"
    assert clf.classify("", "这个并不紧急").urgency == "normal"
    assert clf.classify("", "我不是投诉,只是问问").type == "inquiry"


def test_negation_outside_window_or_sentence_does_not_cancel(clf: Classifier):
    """A negation further than the window, or in another sentence, leaves the hit standing."""
    assert clf.classify("", "No rush on the invoice question. But this bug is urgent").urgency == "urgent"
    assert clf.classify("", "不急。紧急:系统故障").urgency == "urgent"


def test_subject_weighs_more_than_body(clf: Classifier):
    """A keyword in the subject beats a same-weight keyword in the body."""
    r = clf.classify("投诉", "系统故障")
    assert r.type == "complaint"
    assert r.scores["type:complaint"] == 6.0 and r.scores["type:fault"] == 2.0
    assert clf.classify("故障", "投诉").type == "fault"


def test_no_match_and_ties_fall_back_to_defaults(clf: Classifier):
    """Nothing matched gives the default type and urgency; a tie at the top gives the default too."""
    r = clf.classify("hello", "nothing to see here")
    assert (r.type, r.urgency, r.matches) == ("inquiry", "normal", [])
    tie = clf.classify("", "投诉 故障")
    assert tie.scores["type:complaint"] == tie.scores["type:fault"] == 2.0
    assert tie.type == "inquiry" and tie.decision["type"] == {
        "how": "tie",
        "score": 2.0,
        "tied": ["complaint", "fault"],
        "fallback": "inquiry",
        "chosen": "inquiry",
    }
    assert "tie between complaint, fault at 2: the default" in tie.explain()
    assert r.decision["urgency"]["how"] == "no_match" and "未匹配关键词" in r.explain("zh")


def test_quoted_lines_are_ignored(clf: Classifier):
    """Lines starting with '>' (an earlier reply) never count."""
    r = clf.classify("Re: order", "thanks, that's all\n> this is a complaint, urgent\n  > 紧急故障")
    assert (r.type, r.urgency, r.matches) == ("inquiry", "normal", [])


def test_each_keyword_counts_once_per_field(clf: Classifier):
    """Repeating a word does not multiply its weight."""
    assert clf.classify("", "投诉投诉投诉投诉").scores["type:complaint"] == 2.0


def test_routing_flag_explain_and_json(clf: Classifier):
    """An urgent fault goes to after-sales then tech, is flagged, and says why in both languages."""
    r = clf.classify("系统故障", "紧急")
    assert r.departments == ["after_sales", "tech"] and r.flagged
    en, zh = r.explain(), r.explain("zh")
    assert "'故障' in subject → type fault +6 (rule fault)" in en
    assert "正文中的“紧急” → 紧急(urgent) +3(规则 urgent)" in zh and "加急" in zh
    data = json.loads(json.dumps(r.to_dict(), ensure_ascii=False))
    assert data["type"] == "fault" and {m["keyword"] for m in data["matches"]} >= {"故障", "紧急"}


def test_rule_fields_restrict_where_a_keyword_counts(tmp_path: Path):
    """A rule limited to the subject ignores the body."""
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nname = "s"\ntarget = "type:fault"\nkeywords = ["down"]\nfields = ["subject"]\n')
    clf = Classifier.from_file(path)
    assert clf.classify("site down", "").type == "fault"
    assert clf.classify("hello", "site down").type == "inquiry"


def test_default_rules_classify_typical_messages():
    """The shipped rules get plain cases right in both languages."""
    clf = Classifier.from_file(Path(__file__).resolve().parents[2] / "config" / "rules.toml")
    r = clf.classify("系统瘫痪", "所有用户都无法登录,业务全部停了")
    assert (r.type, r.urgency, r.departments, r.flagged) == ("fault", "urgent", ["after_sales", "tech"], True)
    r = clf.classify("Feature request", "Could you add a dark mode? No rush.")
    assert (r.type, r.urgency, r.departments) == ("request", "normal", ["product"])
    assert clf.classify("投訴客服態度", "態度非常惡劣").type == "complaint"


def test_negation_window_counts_characters_not_bytes(clf: Classifier):
    """The window (4 here) is in characters: two Chinese characters between 不急 and 紧急 are
    within it, five are not, though both gaps are longer than 4 UTF-8 bytes."""
    assert clf.classify("", "不急啊啊紧急").urgency == "normal"
    assert clf.classify("", "不急啊啊啊啊啊紧急").urgency == "urgent"


def test_larger_rule_set_gives_the_same_answers(clf: Classifier, tmp_path: Path):
    """Adding many rules with unrelated keywords changes nothing for existing keywords."""
    extra = "".join(f'\n[[rules]]\nname = "x{i}"\ntarget = "type:suggestion"\nkeywords = ["词{i}号", "zzword{i}"]\n' for i in range(500))
    path = tmp_path / "big.toml"
    path.write_text(RULES + extra, encoding="utf-8")
    big = Classifier.from_file(path)
    for subject, body in [("投诉", "紧急"), ("", "发現一個ＢＵＧ"), ("", "不急啊啊紧急"), ("Re: x", "> 投诉\nthis bug")]:
        assert big.classify(subject, body).to_dict() == clf.classify(subject, body).to_dict()
    r = big.classify("", "词7号 zzword9 zzword99x")
    assert r.type == "suggestion" and r.scores["type:suggestion"] == 2.0


def test_tie_order_decides_ties_when_configured(tmp_path: Path):
    """With [defaults] type_tie_order a tie goes to the first tied type in that order, not the default."""
    path = tmp_path / "rules.toml"
    path.write_text(RULES.replace("negation_window = 4", 'negation_window = 4\ntype_tie_order = ["fault", "complaint"]'), encoding="utf-8")
    clf = Classifier.from_file(path)
    tie = clf.classify("", "投诉 故障")
    assert tie.type == "fault" and "first in the tie order" in tie.explain()
    assert clf.classify("", "投诉 希望增加").type == "complaint"  # weights 2 vs 1: no tie


def test_longer_keyword_wins_on_its_axis_only(tmp_path: Path):
    """'离线模式' (a request) hides '离线' (a fault) inside it, while '瘫痪' inside '系统瘫痪'
    still counts for urgency, which is another axis."""
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[[rules]]
name = "fault"
target = "type:fault"
keywords = ["离线", "系统瘫痪"]
[[rules]]
name = "request"
target = "type:request"
keywords = ["离线模式"]
[[rules]]
name = "urgent"
target = "urgency:urgent"
keywords = ["瘫痪"]
""",
        encoding="utf-8",
    )
    clf = Classifier.from_file(path)
    r = clf.classify("", "希望APP有离线模式")
    assert r.type == "request" and [m.keyword for m in r.matches] == ["离线模式"]
    assert clf.classify("", "设备离线了").type == "fault"
    r = clf.classify("", "系统瘫痪")
    assert (r.type, r.urgency) == ("fault", "urgent")


def test_anchored_keyword_counts_only_at_a_sentence_or_clause_start(tmp_path: Path):
    """'^how' counts when a sentence or clause opens with it, not in the middle of one."""
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nname = "q"\ntarget = "type:suggestion"\nkeywords = ["^how", "^请问"]\n', encoding="utf-8")
    clf = Classifier.from_file(path)
    assert clf.classify("", "How do I add a user?").type == "suggestion"
    assert clf.classify("", "Hi, how do I add a user?").type == "suggestion"
    assert clf.classify("", "It broke. How come?").type == "suggestion"
    assert clf.classify("", "No idea how it broke").type == "inquiry"
    assert clf.classify("", "您好，请问发票怎么开").type == "suggestion"
    assert clf.classify("", "我想请问一下").type == "inquiry"
    assert clf.classify("", "somehow").type == "inquiry"


def test_to_dict_is_a_deep_plain_copy_of_every_field(tmp_path: Path):
    """to_dict is written out by hand for speed: it must keep giving what dataclasses.asdict
    gives (every field, a copy that later changes to the result do not reach)."""
    from dataclasses import asdict

    path = tmp_path / "rules.toml"
    path.write_text(RULES.replace("negation_window = 4", 'negation_window = 4\ntype_tie_order = ["fault", "complaint"]'), encoding="utf-8")
    clf = Classifier.from_file(path)
    for subject, body in [("投诉", "紧急 故障"), ("", "投诉 故障"), ("hello", ""), ("Re: x", "不急 bug")]:
        result = clf.classify(subject, body)
        data = result.to_dict()
        assert data == asdict(result)
        result.matches.clear(), result.departments.append("changed"), result.decision.clear()
        assert data != asdict(result) or not data["matches"]


def test_no_rush_phrase_wins_over_every_urgency_keyword_of_the_message(tmp_path: Path):
    """[no_rush]: a customer saying there is no hurry anywhere in the message gets normal, even
    with an urgency keyword far from the phrase (out of the negation window), and the
    explanation names the phrase and shows the urgent keyword cancelled."""
    path = tmp_path / "rules.toml"
    path.write_text(RULES + '\n[no_rush]\nphrases = ["不着急", "No Rush"]\n', encoding="utf-8")
    clf = Classifier.from_file(path)
    text = "你们的加急配送服务怎么收费?紧急的时候想用。这次的单子按正常发就行,我们这边不着急。"
    assert clf.classify("", text.replace("不着急", "在等")).urgency == "urgent"
    result = clf.classify("", text)
    assert result.urgency == "normal" and result.decision["urgency"] == {"how": "no_rush", "phrase": "不着急"}
    assert result.scores["urgency:urgent"] == 0
    cancelled = [m for m in result.matches if m.target == "urgency:urgent"]
    assert cancelled and all(m.negated and m.negated_by == "不着急" for m in cancelled)
    assert "不着急" in result.explain("zh") and "no rush" in clf.classify("Urgent?", "No rush at all.").explain("en")
    assert clf.classify("Urgent?", "No rush at all.").urgency == "normal"
    # a phrase inside an exception says the opposite
    path.write_text(RULES + '\n[no_rush]\nphrases = ["不急"]\nexceptions = ["能不急吗"]\n', encoding="utf-8")
    clf = Classifier.from_file(path)
    assert clf.classify("", "全线停了,紧急!你说我能不急吗?").urgency == "urgent"
    assert clf.classify("", "紧急的事下次再说,这次不急").urgency == "normal"
    # without the table nothing changes
    assert Classifier.from_file(_write(tmp_path, RULES)).classify("", text).urgency == "urgent"


def test_no_rush_refuses_an_empty_phrase(tmp_path: Path):
    from classify.errors import RulesError

    with pytest.raises(RulesError, match="no_rush"):
        Classifier.from_file(_write(tmp_path, RULES + '\n[no_rush]\nphrases = ["  "]\n'))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "other.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_urgency_of_type_fixes_the_urgency_whatever_the_keywords(tmp_path: Path):
    """[defaults.urgency_of_type]: a suggestion is normal by the labelling guide even when it
    talks about urgent things; other types keep their keywords."""
    rules = (
        RULES.replace("[routing]", '[defaults.urgency_of_type]\nsuggestion = "normal"\n\n[routing]')
        + """
[[rules]]
name = "suggestion"
target = "type:suggestion"
weight = 5
keywords = ["建议"]
"""
    )
    clf = Classifier.from_file(_write(tmp_path, rules))
    result = clf.classify("", "建议紧急通知用红色显示")
    assert (result.type, result.urgency) == ("suggestion", "normal")
    assert result.decision["urgency"] == {"how": "type", "type": "suggestion"} and "fixed for a suggestion" in result.explain()
    assert clf.classify("", "系统故障,紧急").urgency == "urgent"
