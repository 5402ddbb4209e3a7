"""Issue 13, section 1: classification costs time linear in the text, and runs before
the item's transaction. 'not urgent urgent ' repeated took 11 s at 81 KB, inside the
transaction: on SQLite the write lock was held the whole time and a web-form post
waited 10 s for its answer.

Times are CPU seconds compared between a size and ten times it (tests/hostile/test_dos_parse.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from classify import Classifier
from intake.pipeline.runner import Pipeline
from tests.hostile.test_dos_parse import assert_linear, inbound, mail
from tests.integration.conftest import make_ctx  # noqa: F401  (fixture)
from tests.integration.test_pipeline import ref, ticket

RULES = Path(__file__).resolve().parents[2] / "config" / "rules.toml"  # the rules the daemon ships with


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_file(RULES)


def negated_keywords(size: int) -> str:
    """A negated keyword repeated: each cancelled hit was checked against every negation,
    copying the text between them (36 KB: 1.0 s, 72 KB: 6.6 s)."""
    return "not urgent urgent " * (size // 18)


def anchored_keywords(size: int) -> str:
    """'^how' counts only at a sentence's start: each hit copied the text before it to look."""
    return "how " * (size // 4)


def chinese_negations(size: int) -> str:
    return "不紧急，紧急紧急" * (size // 24)


def test_a_repeated_negated_keyword_costs_linear_time(classifier):
    assert_linear(lambda body: classifier.classify("订单", body), negated_keywords, 7_200)
    result = classifier.classify("订单", negated_keywords(1_000_000))
    assert result.urgency != "urgent"
    assert any(m.keyword == "urgent" and m.negated_by == "not urgent" for m in result.matches)


def test_a_repeated_chinese_negation_costs_linear_time(classifier):
    assert_linear(lambda body: classifier.classify("订单", body), chinese_negations, 7_200)
    assert any(m.negated for m in classifier.classify("订单", chinese_negations(100_000)).matches)


def test_a_repeated_anchored_keyword_costs_linear_time(classifier):
    assert_linear(lambda body: classifier.classify("订单", body), anchored_keywords, 40_000)
    result = classifier.classify("订单", anchored_keywords(1_000_000))
    assert [m.keyword for m in result.matches if m.keyword == "^how"] == ["^how"]  # the first only


class LockProbe:
    """The real classifier, which first looks whether another program could write to the
    SQLite database now (BEGIN IMMEDIATE with no wait), as a web-form post would."""

    def __init__(self, real: Classifier, path: str) -> None:
        self.real, self.path, self.lock_free = real, path, []

    def classify(self, subject: str, body: str):
        other = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            self.lock_free.append(True)
        except sqlite3.OperationalError:  # database is locked
            self.lock_free.append(False)
        finally:
            other.close()
        return self.real.classify(subject, body)

    def __getattr__(self, name: str):
        return getattr(self.real, name)


@pytest.mark.parametrize("take", ["one", "batch"])
def test_classification_runs_before_the_write_lock(make_ctx, tmp_path, take):
    """A message that takes long to classify holds no write lock meanwhile: classifying
    runs before the item's transaction, alone and in a batch's group."""
    path = tmp_path / "intake.db"
    ctx = make_ctx(f"sqlite:///{path}")
    probe = ctx.rules = LockProbe(ctx.rules, str(path))
    raws = [mail("", f"我们的系统完全无法登录，非常紧急！({n})" + negated_keywords(20_000)) for n in range(1 if take == "one" else 3)]
    pipeline = Pipeline(ctx)
    if take == "one":
        results = [pipeline.take(raws[0], ref())]
    else:
        results = pipeline.take_many([(raw, ref()) for raw in raws])
    assert [r.outcome for r in results] == ["opened"] * len(raws)
    assert len(probe.lock_free) == len(raws) and all(probe.lock_free), probe.lock_free
    opened, message = ticket(ctx, results[0].ticket), inbound(ctx, results[0].ticket)
    assert message.text.startswith("我们的系统完全无法登录")
    verdict = probe.real.classify(opened.subject, message.text)
    assert (opened.type, opened.urgency, opened.classification["matches"]) == (verdict.type, verdict.urgency, verdict.to_dict()["matches"])
