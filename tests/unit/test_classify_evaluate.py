"""`intake classify eval`: figures a team can trust on its own labelled file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from classify.errors import RulesError
from classify.evaluate import Scored, figures, groups, load_labelled, worst


def s(type_, urgency, pred_type, pred_urgency, **kw) -> Scored:
    return Scored("", "", type_, urgency, pred_type, pred_urgency, **kw)


def test_figures_per_type_and_the_urgency_matrix():
    scored = [
        s("fault", "urgent", "fault", "urgent"),
        s("fault", "urgent", "inquiry", "normal"),  # urgent called normal: the costly error
        s("complaint", "urgent", "complaint", "important"),
        s("inquiry", "normal", "inquiry", "normal"),
        s("inquiry", "normal", "fault", "normal"),
    ]
    f = figures(scored)
    assert f["messages"] == 5 and f["type_accuracy"] == pytest.approx(3 / 5) and f["urgency_accuracy"] == pytest.approx(3 / 5)
    assert f["per_type"]["fault"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    assert f["per_type"]["inquiry"]["precision"] == pytest.approx(1 / 2) and f["per_type"]["inquiry"]["recall"] == pytest.approx(1 / 2)
    assert f["per_type"]["complaint"]["f1"] == pytest.approx(1.0)
    # macro-F1 over the types present (fault 0.5, complaint 1, inquiry 0.5)
    assert f["macro_f1"] == pytest.approx(2 / 3)
    assert f["urgency_confusion"]["urgent"] == {"urgent": 1, "important": 1, "normal": 1}
    assert f["urgent"] == 3 and f["urgent_called_normal"] == pytest.approx(1 / 3) and f["urgent_missed"] == pytest.approx(2 / 3)


def test_worst_errors_put_urgent_called_normal_first():
    scored = [
        s("inquiry", "normal", "fault", "normal", line=1),
        s("fault", "urgent", "fault", "important", line=2),
        s("fault", "urgent", "fault", "normal", line=3),
        s("fault", "normal", "fault", "normal", line=4),
    ]
    assert [x.line for x in worst(scored)] == [3, 2, 1]


def test_groups_split_by_language_and_hardness_only_when_labelled():
    scored = [s("fault", "urgent", "fault", "urgent", lang="zh", hard=True), s("fault", "urgent", "fault", "urgent", lang="en")]
    assert {k: len(v) for k, v in groups(scored).items()} == {"all": 2, "en": 1, "zh": 1, "easy": 1, "hard": 1}
    assert list(groups([s("fault", "urgent", "fault", "urgent")])) == ["all"]


def test_load_labelled_reads_jsonl_and_csv_and_names_the_bad_line(tmp_path):
    good = tmp_path / "team.jsonl"
    good.write_text(
        json.dumps({"subject": "", "message": "打印机卡纸", "type": "fault", "urgency": "normal", "hard": "yes"}, ensure_ascii=False) + "\n\n",
        encoding="utf-8",
    )
    (row,) = load_labelled(good)
    assert row["body"] == "打印机卡纸" and row["hard"] is True and row["line"] == 1

    table = tmp_path / "team.csv"
    table.write_text("subject,body,type,urgency,lang\n发票,怎么开发票,inquiry,normal,zh\nX,broken,fault,soon,en\n", encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_labelled(table)
    assert str(info.value).startswith(f"{table} line 3: urgency must be one of")

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"body": "a", "type": "fault", "urgency": "normal"}\n{nope\n', encoding="utf-8")
    with pytest.raises(RulesError, match="line 2: not JSON"):
        load_labelled(broken)


def test_cli_eval_on_a_labelled_file(tmp_path):
    rows = [
        {"subject": "系统崩溃 全厂停产", "body": "MES 系统崩溃了,整条产线停了,马上处理!", "type": "fault", "urgency": "urgent", "lang": "zh"},
        {
            "subject": "How do I export invoices?",
            "body": "Where can I find the export button? No rush.",
            "type": "inquiry",
            "urgency": "normal",
            "lang": "en",
        },
    ]
    path = tmp_path / "ours.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "intake.cli.main", "classify", "eval", str(path), *args]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)

    text = run()
    assert text.returncode == 0, text.stderr
    assert "| all | 2 |" in text.stdout and "| en | 1 |" in text.stdout and "urgency: true \\ predicted" in text.stdout
    data = json.loads(run("--json").stdout)
    assert data["figures"]["all"]["messages"] == 2 and set(data["figures"]) == {"all", "en", "zh"}

    bad = subprocess.run(
        [sys.executable, "-m", "intake.cli.main", "classify", "eval", str(tmp_path / "missing.jsonl")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "missing.jsonl: cannot read" in bad.stderr and "Traceback" not in bad.stderr
