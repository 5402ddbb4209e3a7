"""`intake rules learn` through the real executable on a real SQLite database made by
`intake init`: it writes a lexicon that loads, reports its effect on held-out examples, learns
the staff's corrections (made by mail through the real staff-mail flow), adds to the lexicon in
force unless told --no-base, and never writes over the live rules or lexicon."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from classify import Classifier
from classify.lexicon import COLUMNS, load_lexicon, terms
from classify.suggest import Example, held_out, text_of
from intake.pipeline.runner import Pipeline
from intake.sources.base import SourceRef
from tests.integration.conftest import Clock
from tests.integration.test_staffmail_kit import MONDAY_10, complaint, deliver, reply_to, staff_config, to_addr

ROOT = Path(__file__).resolve().parents[2]

LABELLER = [  # faults in words the default rules do not know (as in test_corrections.py)
    "The labeller on line {n} skips labels since this morning.",
    "Labeller skips every third box on packing line {n}.",
    "Our labeller skips labels again, line {n}, please check.",
]


def _row(**labels: int) -> tuple[int, ...]:
    return tuple(labels.get(c, 0) for c in COLUMNS)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Site:
    """A folder set up as a team would: `intake init --config-dir conf` (rules.toml with the
    lexicon.tsv it names), a config naming a SQLite database, `intake init` to create it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.conf = tmp_path / "conf"
        self.db_url = f"sqlite:///{tmp_path / 'intake.db'}"
        self.config = self.conf / "intake.toml"

    def run(self, *args: str, config: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "intake.cli.main", *(["--config", str(self.config)] if config else []), *args],
            capture_output=True,
            timeout=180,
            env={**os.environ, "INTAKE_CONFIG": ""},
            cwd=self.tmp,
        )

    @property
    def rules(self) -> Path:
        return self.conf / "rules.toml"

    @property
    def lexicon(self) -> Path:
        return self.conf / "lexicon.tsv"

    def learn(self, *args: str) -> subprocess.CompletedProcess:
        return self.run("rules", "learn", *args)


@pytest.fixture
def site(tmp_path) -> Site:
    s = Site(tmp_path)
    made = s.run("init", "--config-dir", str(s.conf), config=False)
    assert made.returncode == 0, made.stderr.decode()
    # the shipped rules and the lexicon they name, copied beside each other
    assert s.rules.read_bytes() == (ROOT / "config" / "rules.toml").read_bytes()
    assert s.lexicon.read_bytes() == (ROOT / "config" / "lexicon.tsv").read_bytes()
    s.config.write_text(f'[database]\nurl = "{s.db_url}"\n[paths]\nvar = "{tmp_path / "var"}"\n', encoding="utf-8")
    created = s.run("init")
    assert created.returncode == 0, created.stderr.decode()
    assert (tmp_path / "intake.db").exists()
    return s


def _labelled(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A team's file: faults in words the default rules do not know, and inquiries."""
    lines = [{"subject": "", "body": LABELLER[n % 3].format(n=n), "type": "fault", "urgency": "important"} for n in range(24)]
    lines += [{"subject": "", "body": f"How do I print a label for order {n}?", "type": "inquiry", "urgency": "normal"} for n in range(12)]
    path = tmp_path / "team.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path, lines


def test_learn_from_a_file_writes_a_loadable_lexicon_with_held_out_figures(site, tmp_path):
    imported, lines = _labelled(tmp_path)
    out = tmp_path / "candidate.tsv"
    proc = site.learn("--no-stored", "--import", str(imported), "--out", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    assert f"terms written to {out}" in proc.stdout.decode()
    lexicon = load_lexicon(out)
    base = load_lexicon(site.lexicon)
    assert lexicon.trained_on == base.trained_on + len(lines)
    assert lexicon.counts["labeller"][COLUMNS.index("fault")] >= 24

    header = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    text = "\n".join(header)
    assert "stored corrections not read" in text and str(imported) in text
    # added to the shipped lexicon (not the live copy, which may hold an earlier run's corrections)
    from intake import resources

    assert f"added to: {resources.defaults() / 'lexicon.tsv'}" in text
    # the held-out quarter: chosen by a hash of each example's text, the same on every run
    held = [x for x in lines if held_out(Example(x["subject"], x["body"]), 4)]
    assert held, "the quarter held out is not empty with these examples"
    for axis in ("type", "urgency"):
        m = re.search(rf"^# held out \({axis}, (\d+) examples\): (\d+\.\d)% with the rules in force, (\d+\.\d)% with this lexicon$", text, re.M)
        assert m is not None, text
        assert int(m.group(1)) == len(held)
        assert 0 <= float(m.group(2)) <= 100 and 0 <= float(m.group(3)) <= 100
    # the same figures on standard error for the person running it
    assert f"held out (type, {len(held)} examples)" in proc.stderr.decode()
    # the words the rules do not know are learned: the held-out labeller faults come out right with it
    type_line = re.search(r"held out \(type, \d+ examples\): (\d+\.\d)% with the rules in force, (\d+\.\d)% with this lexicon", text)
    assert type_line is not None and float(type_line.group(2)) >= float(type_line.group(1))

    # without --out: the same lexicon on standard output, nothing written
    printed = site.learn("--no-stored", "--import", str(imported))
    assert printed.returncode == 0, printed.stderr.decode()
    again = tmp_path / "printed.tsv"
    again.write_bytes(printed.stdout)
    assert load_lexicon(again).counts == lexicon.counts and load_lexicon(again).examples == lexicon.examples


def test_out_over_the_live_lexicon_or_rules_is_refused(site, tmp_path):
    imported, _ = _labelled(tmp_path)
    before = {path: _sha(path) for path in (site.rules, site.lexicon)}
    for target in (site.lexicon, site.rules, site.conf / ".." / "conf" / "lexicon.tsv"):
        refused = site.learn("--no-stored", "--import", str(imported), "--out", str(target))
        assert refused.returncode == 2, (target, refused.stderr.decode())
        assert b"is in force" in refused.stderr
        assert {path: _sha(path) for path in before} == before
    # a lexicon named elsewhere by the rules is protected too
    moved = site.conf / "team" / "words.tsv"
    moved.parent.mkdir()
    moved.write_bytes(site.lexicon.read_bytes())
    site.rules.write_text(site.rules.read_text(encoding="utf-8").replace('file = "lexicon.tsv"', 'file = "team/words.tsv"'), encoding="utf-8")
    moved_hash = _sha(moved)
    refused = site.learn("--no-stored", "--import", str(imported), "--out", str(moved))
    assert refused.returncode == 2 and _sha(moved) == moved_hash
    # the old file is no longer in force: writing there is allowed
    assert site.learn("--no-stored", "--import", str(imported), "--out", str(site.lexicon)).returncode == 0
    assert load_lexicon(site.lexicon).counts["labeller"][COLUMNS.index("fault")] >= 24


def _figures(text: str, axis: str) -> tuple[int, float, float]:
    m = re.search(rf"^# held out \({axis}, (\d+) examples\): (\d+\.\d)% with the rules in force, (\d+\.\d)% with this lexicon$", text, re.M)
    assert m is not None, text
    return int(m.group(1)), float(m.group(2)), float(m.group(3))


IDEAS = "The flimflam of the zorbulator could glow {n} shades bluer."


def _team_file(site: Site, tmp_path: Path, bodies: list[str]) -> tuple[Path, str]:
    """A team's messages in their own words (no keyword of the default rules), labelled with a type
    the rules in force give none of them (so that the rules in force get none of them right)."""
    rules = Classifier.from_file(site.rules)
    given = {rules.classify("", body).type for body in bodies}
    label = next(t for t in ("request", "suggestion", "complaint", "fault", "inquiry") if t not in given)
    path = tmp_path / "team-words.jsonl"
    path.write_text(
        "\n".join(json.dumps({"subject": "", "body": body, "type": label, "urgency": "normal"}) for body in bodies) + "\n", encoding="utf-8"
    )
    return path, label


def test_the_held_out_figures_measure_the_lexicon(site, tmp_path):
    out = tmp_path / "ours.tsv"
    team, _ = _team_file(site, tmp_path, [IDEAS.format(n=n) for n in range(40)])
    assert site.learn("--no-stored", "--no-base", "--import", str(team), "--out", str(out)).returncode == 0
    n, now, then = _figures(out.read_text(encoding="utf-8"), "type")
    assert n > 0 and now == 0.0 and then == 100.0  # the rules call them inquiries; the words learned call them requests


def test_the_held_out_figures_measure_the_lexicon_for_rules_without_one_yet(site, tmp_path):
    text = site.rules.read_text(encoding="utf-8")
    start = text.index("\n[lexicon]\n") + 1
    table = text[start : text.index("\n\n", start)]
    assert "file" in table and "[[" not in table
    site.rules.write_text(text.replace(table, ""), encoding="utf-8")
    out = tmp_path / "first.tsv"
    team, _ = _team_file(site, tmp_path, [IDEAS.format(n=n) for n in range(40)])
    proc = site.learn("--no-stored", "--import", str(team), "--out", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    n, now, then = _figures(out.read_text(encoding="utf-8"), "type")
    assert n > 0 and now == 0.0 and then == 100.0


def test_no_examples_at_all_is_an_error(site, tmp_path):
    out = tmp_path / "x.tsv"
    proc = site.learn("--out", str(out))  # no correction stored, no file
    assert proc.returncode == 1 and b"no labelled examples" in proc.stderr and not out.exists()


def test_no_base_counts_the_examples_alone_and_the_default_adds_to_the_lexicon_in_force(site, tmp_path):
    imported, lines = _labelled(tmp_path)
    alone_path, added_path = tmp_path / "alone.tsv", tmp_path / "added.tsv"
    assert site.learn("--no-stored", "--no-base", "--import", str(imported), "--out", str(alone_path)).returncode == 0
    assert site.learn("--no-stored", "--import", str(imported), "--out", str(added_path)).returncode == 0
    alone, added, base = load_lexicon(alone_path), load_lexicon(added_path), load_lexicon(site.lexicon)

    # alone: the examples and nothing else, counted here by hand
    assert alone.examples == {"inquiry": 12, "complaint": 0, "fault": 24, "request": 0, "suggestion": 0, "urgent": 0, "important": 24, "normal": 12}
    assert alone.counts["labeller"] == _row(fault=24, important=24)
    assert alone.counts["skips"] == _row(fault=24, important=24)
    assert alone.counts["label"] == _row(inquiry=12, normal=12)
    assert alone.counts["labels"] == _row(fault=16, important=16)  # LABELLER[0] and [2]
    assert "我们" not in alone.counts and "added to: nothing (--no-base)" in alone_path.read_text(encoding="utf-8")
    # no urgent example and no base to learn onward from: no learned urgency, and the file says why
    # (from a few dozen examples a model would call everything urgent)
    assert alone.urgency is None
    assert "no learned urgency: 0 urgent, 24 important, 12 normal examples" in alone_path.read_text(encoding="utf-8")
    every_term = set().union(*(terms(text_of(Example(x["subject"], x["body"]))) for x in lines))
    assert set(alone.counts) <= every_term

    # added: the lexicon in force plus the examples, its urgency learned onward from the base's
    assert added.examples == {c: base.examples[c] + alone.examples[c] for c in COLUMNS}
    assert added.urgency is not None and "the learned urgency: onward from" in added_path.read_text(encoding="utf-8")
    assert added.trained_on == base.trained_on + len(lines)
    for term, row in alone.counts.items():
        old = base.counts.get(term, _row())
        assert added.counts[term] == tuple(a + b for a, b in zip(old, row, strict=True)), term
    for term in ("我们", "问题", "电话"):  # no Chinese in the examples: the base's counts as they were
        assert added.counts[term] == base.counts[term]
    assert set(base.counts) <= set(added.counts)
    # --base FILE adds to that file instead
    other = tmp_path / "other.tsv"
    assert site.learn("--no-stored", "--base", str(alone_path), "--import", str(imported), "--out", str(other)).returncode == 0
    doubled = load_lexicon(other)
    assert doubled.counts["labeller"] == _row(fault=48, important=48) and doubled.trained_on == 72


def test_a_learned_urgency_from_nothing_needs_examples_it_can_learn_from(site, tmp_path):
    """Twenty examples of each urgency, but the normal ones are suggestions, whose urgency the
    rules fix: nothing normal to learn from, so no learned urgency (one learned from the urgent
    and important alone called plain questions urgent). Forty of each learnable: one is learned."""
    lines = [{"subject": "", "body": f"The gate scanner {n} is down, trucks are queuing", "type": "fault", "urgency": "urgent"} for n in range(20)]
    lines += [
        {"subject": "", "body": f"Report {n} shows the wrong totals for last month", "type": "fault", "urgency": "important"} for n in range(20)
    ]
    lines += [{"subject": "", "body": f"Suggestion {n}: maybe a dark mode some day", "type": "suggestion", "urgency": "normal"} for n in range(20)]
    team = tmp_path / "team.jsonl"
    team.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    out = tmp_path / "alone.tsv"
    assert site.learn("--no-stored", "--no-base", "--import", str(team), "--out", str(out)).returncode == 0
    assert load_lexicon(out).urgency is None
    assert "no learned urgency: 20 urgent, 20 important, 0 normal examples to learn from" in out.read_text(encoding="utf-8")
    lines += [{"subject": "", "body": f"How do I export invoice {n} as PDF?", "type": "inquiry", "urgency": "normal"} for n in range(20)]
    team.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    assert site.learn("--no-stored", "--no-base", "--import", str(team), "--out", str(out)).returncode == 0
    assert load_lexicon(out).urgency is not None and "the learned urgency: from these examples alone" in out.read_text(encoding="utf-8")


# ---------------------------------------------------------------- stored corrections

ZORB = "我要投诉：你们的 zorbulator 第{n}次坏了，维修人员答应上门却一直没来，请给个说法。"


def _corrections(make_ctx, smtp_server, site: Site, n: int) -> None:
    """n complaints in the database of `site`, each re-typed fault and rated urgent by its
    assignee replying to the notification mail (the real staff-mail flow)."""
    ctx = make_ctx(site.db_url, Clock(MONDAY_10), **staff_config(smtp_server))
    pipeline = Pipeline(ctx)
    for i in range(n):
        sender = f"客户{i} <customer{i}@kehu.example.cn>"
        pipeline.take(complaint(ZORB.format(n=i), subject=f"投诉 zorbulator {i}", sender=sender), SourceRef("t", f"open{i}"))
        [note] = [m for m in deliver(ctx, smtp_server) if to_addr(m) == "li.na@example.com"]
        # each reply ends differently: lines that end every reply are taken for a signature and left out
        reply = reply_to(note.as_bytes(), sender="李娜 <li.na@example.com>", body=f"#type fault\n#urgency urgent\n第{i + 1}张工单已转技术部。")
        result = pipeline.take(reply, SourceRef("t", f"reply{i}"))
        assert result.outcome == "appended" and "type, urgency" in (result.reason or ""), result
        deliver(ctx, smtp_server)


def test_stored_corrections_are_learned(site, tmp_path, make_ctx, smtp_server):
    base = load_lexicon(site.lexicon)
    assert "zorbulator" not in base.counts
    _corrections(make_ctx, smtp_server, site, 3)

    out = tmp_path / "ours.tsv"
    proc = site.learn("--out", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    text = out.read_text(encoding="utf-8")
    assert "# examples: 3 corrected tickets" in text
    lexicon = load_lexicon(out)
    # the corrections' terms, counted for the labels the staff set
    assert lexicon.counts["zorbulator"] == _row(fault=3, urgent=3)
    assert lexicon.examples == {c: base.examples[c] + (3 if c in ("fault", "urgent") else 0) for c in COLUMNS}
    for term in ("坏了", "上门", "维修"):  # in every correction and in the base: added up
        assert lexicon.counts[term] == tuple(b + (3 if c in ("fault", "urgent") else 0) for b, c in zip(base.counts[term], COLUMNS, strict=True))
    # the learned urgency goes on from the base's: the corrections' new word leans urgent, a
    # word none of them holds keeps the base's weights, and the file says so in its section
    assert lexicon.urgency is not None and base.urgency is not None
    zorbulator = lexicon.urgency.row("zorbulator")
    assert zorbulator[0] > max(zorbulator[1:]), zorbulator
    assert "电话" not in ZORB and lexicon.urgency.row("电话") == base.urgency.row("电话") != (0.0, 0.0, 0.0)

    # with a file as well: both are learned
    imported, lines = _labelled(tmp_path)
    both = tmp_path / "both.tsv"
    assert site.learn("--no-base", "--import", str(imported), "--out", str(both)).returncode == 0
    learned = load_lexicon(both)
    assert learned.counts["zorbulator"] == _row(fault=3, urgent=3) and learned.counts["labeller"] == _row(fault=24, important=24)
    assert learned.trained_on == 3 + len(lines)
    # --no-stored leaves them out
    assert site.learn("--no-stored", "--no-base", "--import", str(imported), "--out", str(both)).returncode == 0
    assert "zorbulator" not in load_lexicon(both).counts


def test_the_learned_lexicon_put_in_force_classifies_by_the_new_words(site, tmp_path):
    """What the team is told to do: read it, copy it over the live lexicon; then `intake classify`
    reads a message in the team's own words (none a keyword) as the team labelled them."""
    message = tmp_path / "new.eml"
    message.write_bytes(b"From: a@b.example\r\nTo: support@example.com\r\nSubject: zorbulator\r\n\r\nThe zorbulator flimflam, once more.\r\n")

    def classified() -> dict:
        proc = site.run("classify", "--json", str(message))
        assert proc.returncode == 0, proc.stderr.decode()
        return json.loads(proc.stdout.decode().splitlines()[0])

    before = classified()
    team, label = _team_file(site, tmp_path, [IDEAS.format(n=n) for n in range(20)] + ["The zorbulator flimflam, once more."])
    out = tmp_path / "new.tsv"
    assert site.learn("--no-stored", "--import", str(team), "--out", str(out)).returncode == 0
    site.lexicon.write_bytes(out.read_bytes())
    after = classified()
    assert before["matches"] == after["matches"] == []
    assert before["type"] != label and after["type"] == label, (label, before, after)


def test_a_broken_lexicon_in_force_can_be_replaced_by_learning_a_new_one(site, tmp_path):
    """The lexicon in force is refused (a hand edit gone wrong): `rules learn` still writes a
    new one from the shipped lexicon and the examples, measured against the keywords alone,
    and says so; a broken rules file itself still stops it with its line."""
    imported, lines = _labelled(tmp_path)
    site.lexicon.write_text(site.lexicon.read_text(encoding="utf-8") + "labeller\tnot a number\n", encoding="utf-8")
    out = tmp_path / "repaired.tsv"
    proc = site.learn("--no-stored", "--import", str(imported), "--out", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    err = proc.stderr.decode()
    assert "the lexicon in force is refused" in err and str(site.lexicon) in err and "keyword rules alone" in err
    from intake import resources

    assert load_lexicon(out).trained_on == load_lexicon(resources.defaults() / "lexicon.tsv").trained_on + len(lines)

    site.rules.write_text(site.rules.read_text(encoding="utf-8").replace("\n[defaults]\n", "\n[defaults]\nbogus = 1\n", 1), encoding="utf-8")
    refused = site.learn("--no-stored", "--import", str(imported), "--out", str(tmp_path / "never.tsv"))
    assert refused.returncode != 0 and "bogus" in refused.stderr.decode()
    assert not (tmp_path / "never.tsv").exists()
