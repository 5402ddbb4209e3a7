"""Regression guards: the default rules keep their accuracy on the labelled evaluation sets."""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("classify_eval", ROOT / "bench" / "classify_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_set_is_large_and_varied():
    """At least 300 messages, about two thirds Chinese, every type and urgency, a held-out third."""
    rows = _bench().load_set()
    assert len(rows) >= 300
    langs = Counter(r["lang"] for r in rows)
    assert 0.6 <= (langs["zh"] + langs["zh-hant"]) / len(rows) <= 0.72 and langs["zh-hant"] >= 20
    assert set(Counter(r["type"] for r in rows)) == {"inquiry", "complaint", "fault", "request", "suggestion"}
    assert set(Counter(r["urgency"] for r in rows)) == {"urgent", "important", "normal"}
    assert 0.28 <= sum(r["split"] == "heldout" for r in rows) / len(rows) <= 0.4


def test_default_rules_accuracy_on_whole_eval_set():
    """Type accuracy ≥ 0.90 and urgency accuracy ≥ 0.85 over the whole evaluation set with config/rules.toml."""
    bench = _bench()
    results = bench.evaluate(bench.Classifier.from_file(ROOT / "config" / "rules.toml"), bench.load_set())
    type_acc, urgency_acc = bench.accuracy(results, "type"), bench.accuracy(results, "urgency")
    assert type_acc >= 0.90, f"type accuracy fell to {type_acc:.3f}"
    assert urgency_acc >= 0.85, f"urgency accuracy fell to {urgency_acc:.3f}"


def test_default_rules_do_not_get_worse_on_unseen_messages():
    """On messages never tuned on (unseen.jsonl) the rules stay at least at today's level:
    a floor just under what they score now (0.813 type, 0.840 urgency at the end of session 8),
    not a target."""
    bench = _bench()
    rows = bench.load_set(bench.UNSEEN_SET)
    assert len(rows) >= 100 and all(r["split"] == "heldout" for r in rows)
    results = bench.evaluate(bench.Classifier.from_file(ROOT / "config" / "rules.toml"), rows)
    assert bench.accuracy(results, "type") >= 0.79
    assert bench.accuracy(results, "urgency") >= 0.82


def test_default_rules_do_not_get_worse_on_fresh_batches():
    """On the fresh batches (written before the rule rewrite) the rules stay at least at today's
    level: floors just under what they score now (fresh 0.913 / 0.820, fresh2 0.859 / 0.808)."""
    bench = _bench()
    classifier = bench.Classifier.from_file(ROOT / "config" / "rules.toml")
    floors = {"fresh": (0.88, 0.79), "fresh2": (0.83, 0.78)}
    assert set(floors) <= {path.stem for path in bench.FRESH_SETS}
    for path in (p for p in bench.FRESH_SETS if p.stem in floors):  # a later batch gets its floor when scored
        rows = bench.load_set(path)
        assert len(rows) >= 99 and all(r["split"] == "fresh" for r in rows)
        results = bench.evaluate(classifier, rows)
        type_floor, urgency_floor = floors[path.stem]
        assert bench.accuracy(results, "type") >= type_floor, path.stem
        assert bench.accuracy(results, "urgency") >= urgency_floor, path.stem


def test_errors_of_a_held_out_set_are_refused():
    """The writer sets are reported each on its own, tuned or held out; listing the errors of a
    held-out set is refused (reading them would make its figures dishonest), a tuned set's are listed."""
    import subprocess
    import sys

    bench = _bench()
    sets = bench.writer_sets()
    assert {"writer-a", "writer-b", "writer-c"} <= set(sets)
    assert bench.is_tuned("writer-a") and bench.is_tuned("tune") and not bench.is_tuned("writer-c")
    classifier = bench.Classifier.from_file(ROOT / "config" / "rules.toml")
    for held_out in ("writer-c", "writer-d", "writer-e", "writer-f", "unseen", "fresh2", "heldout"):
        try:
            bench.tuned_errors(classifier, [], held_out)
        except ValueError as exc:
            assert "held out" in str(exc)
        else:
            raise AssertionError(f"{held_out}: errors listed")
    assert "## writer-a errors" in bench.tuned_errors(classifier, [], "writer-a")
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "classify_eval.py"), "--errors", "writer-c"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0 and "held-out" in run.stderr and "writer-c errors" not in run.stdout
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "classify_eval.py")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0
    for name, use in (("writer-a", "tuned"), ("writer-b", "tuned"), ("writer-c", "held out")):
        for group in ("all", "zh", "en", "easy", "hard"):
            assert f"| {name} | {use} | {group} |" in run.stdout
    assert "errors" not in run.stdout


def test_default_rules_stay_linear():
    """A message 16 times longer costs 16 times as much, not 256 (within a generous factor
    for a shared machine; least CPU of three runs). The speed itself, at least 10,000
    messages per CPU second (issue 15), is measured by bench/classify_speed.py with its
    figures beside it, not here: a timed floor in a suite that shares two cores failed on
    noise, while a ratio measured in one process does not."""
    classifier = _bench().Classifier.from_file(ROOT / "config" / "rules.toml")

    def cpu(text: str) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            classifier.classify("紧急", text)
            best = min(best, time.process_time() - start)
        return best

    unit = "客人在门口排队等着,收银机打不开,今天下午4点前必须修好。The line is down, customers are waiting. 不急 "
    short, long_ = cpu(unit * 200), cpu(unit * 3200)
    assert long_ < short * 16 * 3, f"{short:.3f}s for 200 units, {long_:.3f}s for 3200"


def test_default_rules_do_not_get_worse_on_the_writer_sets():
    """Regression guards on the writer sets of issue 15, each just under what the default rules
    and lexicon score (type / urgency / urgent called normal). Tuned at the end of session 8:
    a 0.983 / 0.942 / 0, b 0.983 / 0.908 / 0, g 0.993 / 0.940 / 0, h 0.933 / 0.940 / 0, i 0.960 /
    0.900 / 0, j 0.933 / 0.893 / 0, k 0.833 / 0.887 / 0.022, m 0.980 / 0.893 / 0, n 0.953 / 0.927 / 0,
    o 0.940 / 0.887 / 0. Held out, scored at the end of session 8 (once before and once after a
    review removed over-general keywords; nothing was tuned on them): c 0.858 / 0.833 / 0.029,
    d 0.900 / 0.733 / 0.086, e 0.800 / 0.730 / 0.067, f 0.820 / 0.720 / 0, l (written in session
    8, never opened by its rules work) 0.933 / 0.860 / 0.
    Session 9 (words of hurry before a deadline days away, writer-r tuned on: 0.947 / 0.793 / 0
    fresh, 0.967 / 0.840 / 0 after the review's fixes); held out, written in session 9 and scored once at its end:
    p 0.933 / 0.853 / 0, q 0.933 / 0.873 / 0, s 0.893 / 0.847 / 0, t 0.813 / 0.860 / 0.022
    (c 0.858 / 0.833, d 0.900 / 0.742, e 0.790 / 0.730, f 0.820 / 0.720, l 0.933 / 0.860 then).
    Session 10 (situations of the work standing still, an exam being sat; writer-u, -v, -w tuned
    on: fresh 0.900 / 0.833 / 0.031, 0.900 / 0.707 / 0.100, 0.847 / 0.747 / 0.065; after
    0.973 / 0.853 / 0.031, 0.953 / 0.773 / 0.067, 0.907 / 0.793 / 0); held out, written in
    session 10 and scored once at its end, before and after the change: x 0.847 / 0.787 / 0.067
    -> 0.860 / 0.787 / 0.067, y 0.847 / 0.807 / 0.034 -> 0.840 / 0.807 / 0.034, z 0.807 / 0.740 / 0
    -> 0.820 / 0.747 / 0. Then the learned wording's weight 1.0 -> 1.5, chosen by leaving one tuned writer
    out (type 90.2 -> 91.6 % over 14 folds, nothing held out read): x 0.900 / 0.793 / 0.067,
    y 0.900 / 0.813 / 0.034, z 0.887 / 0.747 / 0; c .925, d .925, e .820, f .900, l .960, p .947,
    q .960, s .913, t .887 type. Then writer-aa, -ab tuned on (restaurants, energy equipment; fresh
    0.907 / 0.773 / 0, 0.907 / 0.787 / 0; after 0.993 / 0.800 / 0, 1.0 / 0.813 / 0); held out, written
    then and scored once at the end: ac 0.907 / 0.813 / 0 (session start) -> 0.967 / 0.820 / 0,
    ad 0.873 / 0.780 / 0.143 -> 0.907 / 0.787 / 0.107. A third round: writer-ae, -af tuned on (construction,
    security; fresh 0.927 / 0.767 / 0, 0.887 / 0.807 / 0.029); held out ag 0.860 / 0.787 / 0.034 (session
    start) -> 0.927 / 0.780 / 0.034, ah 0.900 / 0.827 / 0.033 -> 0.967 / 0.820 / 0. Then [lexicon]
    important_or_normal = 1.5 (the wording may raise the rules' normal to important), chosen leaving
    one tuned writer out; writer-ai, -aj written for it and scored once: 0.883 / 0.760 / 0.017 at the
    session's start, 0.950 / 0.763 / 0 without it, 0.950 / 0.753 / 0 with it.
    Session 11: the learned urgency (classify/urgency_model.py), chosen leaving one tuned writer
    out; writer-ao, -ap tuned on (fresh 0.953 / 0.860 / 0, 0.813 / 0.753 / 0.067); held out,
    written before it and scored before and after: ak 0.980 / 0.793 / 0 -> 0.987 / 0.913 / 0,
    al 0.920 / 0.740 / 0.111 -> 0.920 / 0.820 / 0, am 0.920 / 0.700 / 0 -> 0.927 / 0.813 / 0.037,
    an 0.953 / 0.780 / 0.034 -> 0.953 / 0.893 / 0; the eighteen earlier held-out sets 80.3 -> 87.1 %
    urgency together. Written after the setting was chosen, scored once: aq 0.927 / 0.873 / 0.091
    (session start) -> 0.933 / 0.947 / 0.091, ar 0.867 / 0.740 / 0 -> 0.867 / 0.787 / 0.037. The tuned sets' urgency is now the model's training data (near 1.0).
    Floors, not targets, each about two points under the figure: the issue's targets (0.90 / 0.85 /
    under 2% on held-out sets) are met on the twenty-two held-out sets together (0.935 / 0.869 /
    0.011) and on c, f, l, p, q, s, x, ac, ah, aj, ak, an; on type alone on d, y, ag, ai, al, am, ad
    (ad also calls 3 of 28 urgent cases normal), not on e, t, z (type) or d, z (urgency)."""
    from classify.evaluate import figures, load_labelled, score

    bench = _bench()
    classifier = bench.Classifier.from_file(ROOT / "config" / "rules.toml")
    floors = {
        "writer-a": (0.97, 0.98, 0.03),
        "writer-b": (0.96, 0.98, 0.03),
        "writer-g": (0.98, 0.98, 0.03),
        "writer-h": (0.98, 0.98, 0.03),
        "writer-i": (0.97, 0.94, 0.03),
        "writer-j": (0.97, 0.98, 0.03),
        "writer-k": (0.84, 0.98, 0.03),
        "writer-m": (0.97, 0.98, 0.03),
        "writer-n": (0.97, 0.98, 0.03),
        "writer-o": (0.97, 0.96, 0.03),
        "writer-c": (0.93, 0.86, 0.05),
        "writer-d": (0.92, 0.75, 0.03),
        "writer-e": (0.82, 0.80, 0.06),
        "writer-f": (0.87, 0.83, 0.03),
        "writer-l": (0.94, 0.88, 0.03),
        "writer-r": (0.98, 0.96, 0.03),
        "writer-p": (0.94, 0.91, 0.03),
        "writer-q": (0.95, 0.88, 0.03),
        "writer-s": (0.90, 0.90, 0.03),
        "writer-t": (0.86, 0.90, 0.03),
        "writer-u": (0.97, 0.98, 0.03),
        "writer-v": (0.97, 0.98, 0.03),
        "writer-w": (0.96, 0.98, 0.03),
        "writer-x": (0.92, 0.86, 0.03),
        "writer-y": (0.90, 0.83, 0.06),
        "writer-z": (0.86, 0.76, 0.03),
        "writer-aa": (0.98, 0.98, 0.03),
        "writer-ab": (0.97, 0.98, 0.03),
        "writer-ac": (0.94, 0.88, 0.03),
        "writer-ad": (0.89, 0.85, 0.13),
        "writer-ae": (0.98, 0.98, 0.03),
        "writer-af": (0.97, 0.98, 0.03),
        "writer-ag": (0.91, 0.82, 0.06),
        "writer-ah": (0.93, 0.88, 0.03),
        "writer-ai": (0.92, 0.80, 0.03),
        "writer-aj": (0.93, 0.83, 0.03),
        "writer-ak": (0.96, 0.89, 0.03),
        "writer-al": (0.90, 0.80, 0.03),
        "writer-am": (0.90, 0.79, 0.06),
        "writer-an": (0.93, 0.87, 0.03),
        "writer-ao": (0.98, 0.98, 0.03),
        "writer-ap": (0.92, 0.97, 0.06),
        "writer-aq": (0.91, 0.92, 0.12),
        "writer-ar": (0.84, 0.76, 0.06),
    }
    sets = bench.writer_sets()
    assert set(floors) <= set(sets)
    for name, (type_floor, urgency_floor, urgent_normal_ceiling) in floors.items():
        rows = load_labelled(sets[name])
        # (writer-al writes English only, writer-ap Chinese only: the rest both)
        assert len(rows) >= 100 and {r["lang"] for r in rows} >= ({"en"} if name == "writer-al" else {"zh"} if name == "writer-ap" else {"zh", "en"})
        assert any(r["hard"] for r in rows)
        f = figures(score(classifier, rows))
        assert f["type_accuracy"] >= type_floor, (name, f["type_accuracy"])
        assert f["urgency_accuracy"] >= urgency_floor, (name, f["urgency_accuracy"])
        assert f["urgent_called_normal"] <= urgent_normal_ceiling, (name, f["urgent_called_normal"])


def test_tuned_only_prints_the_tuned_sets_and_nothing_held_out():
    """--tuned-only is what tuning runs: every tuned set, and no held-out figure at all."""
    import subprocess
    import sys

    bench = _bench()
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "classify_eval.py"), "--tuned-only"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    held_out_shown = (
        "held out" in run.stdout
        or any(f"| {name} |" in run.stdout for name in bench.writer_sets() if not bench.is_tuned(name))
        or any(word in run.stdout for word in ("unseen", "fresh", "heldout"))
    )
    assert not held_out_shown, "a held-out set's figures in the --tuned-only output"
    for name in ("tune", *bench.TUNED_WRITER_SETS, "all tuned"):
        assert f"| {name} | tuned | all |" in run.stdout
    refused = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "classify_eval.py"), "--tuned-only", "--write"], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0 and "--tuned-only with --write" in refused.stderr
