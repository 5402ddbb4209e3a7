"""Accuracy of the keyword rules on the labelled evaluation sets.

    .venv/bin/python bench/classify_eval.py [--rules config/rules.toml] [--errors] [--batch N] [--write]
    .venv/bin/python bench/classify_eval.py --tuned-only [--errors] [--rules FILE]

Two sets under tests/classify_eval/:
  messages.jsonl  the evaluation set: `tune` split (rules were tuned on it) and
                  `heldout` split (hash-chosen, never used for tuning)
  unseen.jsonl    messages written after the rules and scored once, never tuned
                  on: the honest figure for text the rules have not seen
  fresh*.jsonl    batches written before a rule rewrite by someone who had not
                  read the rules or the other sets (fresh.jsonl, fresh2.jsonl, ...);
                  each is reported as its own set, never tuned on
Prints type and urgency accuracy and both confusion matrices for the tuning
split, the held-out split, the whole evaluation set and the unseen set.
And the writer sets under tests/classify_eval/writers/ (issue 15): messages written by
independent writers who never saw the rules, labelled by ../shared/LABELS.md, each reported
on its own through classify/evaluate.py (by language and easy/hard, urgent called normal,
urgent missed). writer-a, -b, -g, -h, -i, -j, -k, -m, -n, -o, -r, -u, -v, -w, -aa, -ab, -ae, -af, -ao and -ap are tuning sets; every other writer set is held out.

--learn-lexicon writes config/lexicon.tsv, the default learned wording (classify/lexicon.py),
from the tuned sets alone: the `tune` split and the tuning writer sets. tests/unit check that
the shipped file is exactly what this gives, so nothing held out is in it.
--rules-only scores the keyword rules without the lexicon.

--lexicon-weights 1,1.5,2 [--lexicon-axes type,urgency] [--urgent-leans off,1,2] leaves one tuned writer out at a time
(the lexicon learned from the others) and scores it at each weight: how the shipped weight
and axes were chosen without reading a held-out set.

--tuned-only evaluates and prints the tuned sets alone (the `tune` split and the tuning
writer sets): what to run while tuning, so that no held-out figure is ever seen before the
rules are final.

--errors lists misclassified messages of the tuned sets only (the `tune` split, writer-a,
writer-b; `--errors writer-a` for one of them) and refuses a held-out set: reading a held-out
set's errors would make its figures dishonest. --write puts the figures into
bench/classify_eval.md (the hand-written notes there are kept).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classify import TYPES, URGENCIES, Classifier  # noqa: E402
from classify.evaluate import figures, groups, load_labelled, score, worst  # noqa: E402
from classify.lexicon import Lexicon, learn, render  # noqa: E402
from classify.rules import load_rules  # noqa: E402
from classify.suggest import Example, text_of  # noqa: E402
from classify.urgency_learning import with_learned_urgency  # noqa: E402

EVAL_SET = ROOT / "tests" / "classify_eval" / "messages.jsonl"
UNSEEN_SET = ROOT / "tests" / "classify_eval" / "unseen.jsonl"
FRESH_SETS = sorted((ROOT / "tests" / "classify_eval").glob("fresh*.jsonl"))
WRITERS_DIR = ROOT / "tests" / "classify_eval" / "writers"
# Writer sets whose errors may be read and tuned on; any other writer set is held out.
TUNED_WRITER_SETS = (
    "writer-a",
    "writer-b",
    "writer-g",
    "writer-h",
    "writer-i",
    "writer-j",
    "writer-k",
    "writer-m",
    "writer-n",
    "writer-o",
    "writer-r",
    "writer-u",
    "writer-v",
    "writer-w",
    "writer-aa",
    "writer-ab",
    "writer-ae",
    "writer-af",
    "writer-ao",
    "writer-ap",
)
LEXICON = ROOT / "config" / "lexicon.tsv"
NOTES = "## Notes"


def writer_sets() -> dict[str, Path]:
    """Every writer set present, by name (writer-a, writer-b, ...)."""
    return {path.stem: path for path in sorted(WRITERS_DIR.glob("*.jsonl"))}


def is_tuned(name: str) -> bool:
    """Whether the errors of a set may be read: the `tune` split and the tuning writer sets."""
    return name in ("tune", "all tuned", *TUNED_WRITER_SETS)


def load_set(path: Path = EVAL_SET) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(classifier: Classifier, rows: list[dict]) -> list[dict]:
    """Each row with the predicted type and urgency added."""
    out = []
    for row in rows:
        result = classifier.classify(row["subject"], row["body"])
        out.append({**row, "pred_type": result.type, "pred_urgency": result.urgency})
    return out


def accuracy(rows: list[dict], axis: str) -> float:
    return sum(r[axis] == r[f"pred_{axis}"] for r in rows) / len(rows) if rows else 0.0


def confusion(rows: list[dict], axis: str, labels: tuple[str, ...]) -> str:
    """A Markdown table: rows are the true label, columns the predicted one."""
    counts = Counter((r[axis], r[f"pred_{axis}"]) for r in rows)
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for true in labels:
        lines.append(f"| {true} | " + " | ".join(str(counts[(true, p)]) for p in labels) + " |")
    return "\n".join(lines)


def _table(groups: list[tuple[str, list[dict]]], title: str) -> str:
    lines = [f"| {title} | messages | type accuracy | urgency accuracy |", "|---|---|---|---|"]
    for name, rows in groups:
        lines.append(f"| {name} | {len(rows)} | {accuracy(rows, 'type'):.1%} | {accuracy(rows, 'urgency'):.1%} |")
    return "\n".join(lines)


def report(results: list[dict], unseen: list[dict], fresh: dict[str, list[dict]] | None = None) -> str:
    """All tables: per set, per batch, per language, then confusion matrices.
    `fresh` maps a fresh file's stem (fresh, fresh2) to its evaluated rows."""
    fresh = {name: rows for name, rows in (fresh or {}).items() if rows}
    parts = []
    splits = [
        ("tuning", [r for r in results if r["split"] == "tune"]),
        ("held-out", [r for r in results if r["split"] == "heldout"]),
        ("evaluation set", results),
    ]
    if unseen:
        splits.append(("unseen set", unseen))
    splits += [(f"{name} set", rows) for name, rows in fresh.items()]
    parts.append(_table(splits, "set"))
    everything = results + unseen
    batches = sorted({r.get("batch", 1) for r in everything})
    unseen_batches = {r.get("batch", 1) for r in unseen}
    parts.append(
        "\n"
        + _table(
            [(f"{b} ({'unseen' if b in unseen_batches else 'evaluation'})", [r for r in everything if r.get("batch", 1) == b]) for b in batches],
            "batch",
        )
    )
    parts.append(
        "\n"
        + _table([(lang, [r for r in results if r["lang"] == lang]) for lang in sorted({r["lang"] for r in results})], "language (evaluation set)")
    )
    if unseen:
        parts.append(
            "\n" + _table([(lang, [r for r in unseen if r["lang"] == lang]) for lang in sorted({r["lang"] for r in unseen})], "language (unseen set)")
        )
    for name, rows in fresh.items():
        parts.append(
            "\n" + _table([(lang, [r for r in rows if r["lang"] == lang]) for lang in sorted({r["lang"] for r in rows})], f"language ({name} set)")
        )
    for name, rows in splits:
        if rows:
            parts.append(f"\n### {name}: type\n\n{confusion(rows, 'type', TYPES)}")
            parts.append(f"\n### {name}: urgency\n\n{confusion(rows, 'urgency', URGENCIES)}")
    return "\n".join(parts)


def writer_report(scored_sets: dict[str, list]) -> str:
    """Per writer set (tuned or held out): all, by language, easy/hard; and its urgency matrix."""
    lines = [
        "| writer set | use | group | messages | type | urgency | macro-F1 | urgent→normal | urgent missed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, scored in scored_sets.items():
        use = "tuned" if is_tuned(name) else "held out"
        for group, rows in groups(scored).items():
            f = figures(rows)
            lines.append(
                f"| {name} | {use} | {group} | {f['messages']} | {f['type_accuracy']:.1%} | {f['urgency_accuracy']:.1%} | "
                f"{f['macro_f1']:.3f} | {f['urgent_called_normal']:.1%} | {f['urgent_missed']:.1%} |"
            )
    for name, scored in scored_sets.items():
        f = figures(scored)
        lines += [
            "",
            f"### {name} ({'tuned' if is_tuned(name) else 'held out'}): urgency",
            "",
            "| true \\ predicted | " + " | ".join(URGENCIES) + " |",
            "|---" * (len(URGENCIES) + 1) + "|",
        ]
        lines += [f"| {u} | " + " | ".join(str(row[p]) for p in URGENCIES) + " |" for u, row in f["urgency_confusion"].items()]
        lines += ["", "| type | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {t} | {v['precision']:.1%} | {v['recall']:.1%} | {v['f1']:.3f} | {v['support']} |" for t, v in f["per_type"].items()]
    return "\n".join(lines)


def tuned_report(classifier: Classifier) -> str:
    """The figures of the tuned sets alone: the `tune` split of the evaluation set and the
    tuning writer sets present. Nothing held out is read."""
    tune = [r for r in load_set() if r["split"] == "tune"]
    scored = {"tune": score(classifier, load_labelled_rows(tune))}
    sets = writer_sets()
    for name in TUNED_WRITER_SETS:
        if name in sets:
            scored[name] = score(classifier, load_labelled(sets[name]))
    scored["all tuned"] = [s for rows in list(scored.values()) for s in rows]
    return writer_report(scored)


def tuned_rows() -> list[dict]:
    """Every tuned message, in a fixed order."""
    rows = [r for r in load_set() if r["split"] == "tune"]
    sets = writer_sets()
    return rows + [r for name in TUNED_WRITER_SETS if name in sets for r in load_set(sets[name])]


def learned_lexicon(rows: list[dict], ruleset) -> Lexicon:
    """The lexicon these rows give: the counts, then the urgency learned with `ruleset`'s rules."""
    lexicon = learn([(text_of(Example(r["subject"], r["body"])), r["type"], r["urgency"]) for r in rows])
    return with_learned_urgency(lexicon, ruleset, [(r["subject"], r["body"], r["urgency"]) for r in rows])


def learned_lexicon_text(ruleset) -> str:
    """config/lexicon.tsv as the tuned sets give it, with the rules of `ruleset`."""
    lexicon = learned_lexicon(tuned_rows(), ruleset)
    header = [
        "The learned wording of the default rules (classify/lexicon.py; [lexicon] in rules.toml).",
        f"Learned by `bench/classify_eval.py --learn-lexicon` from {lexicon.trained_on} labelled customer messages: the `tune`",
        f"split of tests/classify_eval/messages.jsonl and the writer sets {', '.join(TUNED_WRITER_SETS)}; no held-out set.",
        "Each row: a term and the number of training messages holding it, per type and per urgency. A team learns its",
        "own with `intake rules learn`; edit a count or delete a row and save, and the daemon reloads the rules.",
        "The last section is the urgency learned from the same messages with the default rules ([lexicon] learned_urgency).",
    ]
    return render(lexicon, header)


def leave_one_writer_out(
    ruleset, weights: list[float], axes: tuple[str, ...] = ("type",), leans: list[float | None] | None = None
) -> dict[tuple[float, float | None], tuple[float, float, int, int]]:
    """How the learned wording does on writers it has not seen, using tuned sets alone: for each
    tuning writer set, the lexicon (counts and learned urgency) learned from the others (and the
    `tune` split) and that set scored with each `[lexicon] weight` and `urgent_lean` (None: the
    learned urgency off; default: the rules file's settings).
    Gives (type accuracy, urgency accuracy, urgent called normal, urgent cases) per setting,
    over all folds. What chose the shipped settings: nothing held out is read."""
    leans_: list[float | None] = list(leans) if leans is not None else [ruleset.urgent_lean if ruleset.learned_urgency else None]
    pairs = [(w, lean) for w in weights for lean in leans_]
    sets = writer_sets()
    tune = [r for r in load_set() if r["split"] == "tune"]
    totals = {pair: [0, 0, 0, 0, 0] for pair in pairs}
    for held in TUNED_WRITER_SETS:
        rows = tune + [r for name in TUNED_WRITER_SETS if name != held for r in load_set(sets[name])]
        lexicon = learned_lexicon(rows, ruleset)
        test = load_set(sets[held])
        for weight, lean in pairs:
            classifier = Classifier(
                replace(
                    ruleset,
                    lexicon=lexicon,
                    lexicon_weight=weight,
                    lexicon_axes=axes,
                    learned_urgency=lean is not None,
                    urgent_lean=lean or 0.0,
                )
            )
            total = totals[(weight, lean)]
            for r in test:
                result = classifier.classify(r["subject"], r["body"])
                total[0] += 1
                total[1] += result.type == r["type"]
                total[2] += result.urgency == r["urgency"]
                total[3] += r["urgency"] == "urgent" and result.urgency == "normal"
                total[4] += r["urgency"] == "urgent"
    return {pair: (t[1] / t[0], t[2] / t[0], t[3], t[4]) for pair, t in totals.items()}


def load_labelled_rows(rows: list[dict]) -> list[dict]:
    """Rows of the evaluation set in the shape classify.evaluate.score reads (line numbers from 1)."""
    return [{**r, "line": n} for n, r in enumerate(rows, 1)]


def tuned_errors(classifier: Classifier, results: list[dict], which: str) -> str:
    """The misclassified messages of the tuned sets (`which`: "tuned" for all of them, or one
    name). Raises ValueError for a held-out set: its errors are never read."""
    if which != "tuned" and not is_tuned(which):
        raise ValueError(f"{which} is held out: its errors are never read (tuned sets: tune, {', '.join(TUNED_WRITER_SETS)})")
    lines = []
    if which in ("tuned", "tune"):
        lines.append("\n## tuning-split errors")
        for r in results:
            if r["split"] == "tune" and (r["type"] != r["pred_type"] or r["urgency"] != r["pred_urgency"]):
                lines.append(f"- {r['type']}/{r['urgency']} → {r['pred_type']}/{r['pred_urgency']}: {r['subject']} | {r['body'][:90]!r}")
    sets = writer_sets()
    for name in TUNED_WRITER_SETS if which == "tuned" else (() if which == "tune" else (which,)):
        if name not in sets:
            continue
        scored = score(classifier, load_labelled(sets[name]))
        wrong = worst(scored, limit=len(scored))
        lines.append(f"\n## {name} errors ({len(wrong)})")
        for x in wrong:
            text = " ".join(f"{x.subject} | {x.body}".split())
            lines.append(f"- line {x.line}: {x.type}/{x.urgency} → {x.pred_type}/{x.pred_urgency}: {text[:300]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=ROOT / "config" / "rules.toml")
    parser.add_argument(
        "--errors",
        nargs="?",
        const="tuned",
        metavar="SET",
        help="list misclassified messages of the tuned sets (or of one: tune, writer-a, writer-b, writer-g); refused for a held-out set",
    )
    parser.add_argument("--batch", type=int, help="only this batch of messages (1: written before the rules, 2: after)")
    parser.add_argument("--write", action="store_true", help="write the figures to bench/classify_eval.md")
    parser.add_argument("--tuned-only", action="store_true", help="evaluate and print only the tuned sets (while tuning: no held-out figure)")
    parser.add_argument("--rules-only", action="store_true", help="the keyword rules without the learned wording ([lexicon])")
    parser.add_argument("--learn-lexicon", action="store_true", help=f"write {LEXICON.relative_to(ROOT)} from the tuned sets, then stop")
    parser.add_argument(
        "--lexicon-weights",
        metavar="W,W,...",
        help="leave one tuned writer out at a time and score the learned wording at these [lexicon] weights (tuned sets only), then stop",
    )
    parser.add_argument("--lexicon-axes", default="type", help="with --lexicon-weights: type, or type,urgency")
    parser.add_argument(
        "--urgent-leans", metavar="W,W,...", help="with --lexicon-weights: the learned urgency at these urgent_lean ('off': without it)"
    )
    args = parser.parse_args()
    if args.lexicon_weights:
        weights = [float(w) for w in args.lexicon_weights.split(",")]
        axes = tuple(args.lexicon_axes.split(","))
        leans = [None if w == "off" else float(w) for w in args.urgent_leans.split(",")] if args.urgent_leans else None
        folds = leave_one_writer_out(load_rules(args.rules, read_lexicon=False), weights, axes, leans)
        for (weight, lean), (type_acc, urgency_acc, urgent_normal, urgent) in folds.items():
            learned = "off" if lean is None else f"urgent_lean {lean:g}"
            print(
                f"weight {weight:g}, learned urgency {learned}: type {type_acc:.1%}, urgency {urgency_acc:.1%}, "
                f"urgent called normal {urgent_normal}/{urgent}"
            )
        return
    if args.learn_lexicon:
        LEXICON.write_text(learned_lexicon_text(load_rules(args.rules, read_lexicon=False)), encoding="utf-8")
        print(f"{LEXICON.relative_to(ROOT)}: {len(LEXICON.read_text(encoding='utf-8').splitlines())} lines")
        return
    if args.tuned_only and args.write:
        parser.error("--tuned-only with --write: bench/classify_eval.md reports every set")
    if args.errors and args.errors != "tuned" and not is_tuned(args.errors):
        parser.error(f"--errors {args.errors}: a held-out set; its errors are never read")
    classifier = Classifier.from_file(args.rules)
    if args.rules_only:
        classifier = Classifier(replace(classifier.ruleset, lexicon=None))
    if args.tuned_only:
        print(tuned_report(classifier))
        if args.errors:
            print(tuned_errors(classifier, evaluate(classifier, [r for r in load_set() if r["split"] == "tune"]), args.errors))
        return
    keep = lambda r: args.batch is None or r.get("batch", 1) == args.batch  # noqa: E731
    results = evaluate(classifier, [r for r in load_set() if keep(r)])
    unseen = evaluate(classifier, [r for r in load_set(UNSEEN_SET) if keep(r)]) if UNSEEN_SET.exists() else []
    fresh = {path.stem: evaluate(classifier, [r for r in load_set(path) if keep(r)]) for path in FRESH_SETS}
    writers = {name: score(classifier, load_labelled(path)) for name, path in writer_sets().items()}
    text = report(results, unseen, fresh)
    if writers:
        text = "### Writer sets (issue 15)\n\n" + writer_report(writers) + "\n\n### Project sets\n\n" + text
    print(text)
    if args.errors:
        print(tuned_errors(classifier, results, args.errors))
    if args.write:
        # The hand-written notes (how the figures came about) below the figures are kept.
        md = ROOT / "bench" / "classify_eval.md"
        old = md.read_text(encoding="utf-8") if md.exists() else ""
        notes = old[old.index(NOTES) :] if NOTES in old else NOTES + "\n"
        header = (
            "# Classification accuracy of the default rules and learned wording\n\n"
            "`bench/classify_eval.py --write` with `config/rules.toml` on the writer sets of issue 15 "
            + ", ".join(f"`{n}` ({len(r)} messages, {'tuned' if is_tuned(n) else 'held out'})" for n, r in writers.items())
            + "; on the evaluation set "
            f"`tests/classify_eval/messages.jsonl` ({len(results)} messages) and the unseen set "
            f"`tests/classify_eval/unseen.jsonl` ({len(unseen)} messages), and the fresh sets "
            + ", ".join(f"`tests/classify_eval/{n}.jsonl` ({len(r)} messages)" for n, r in fresh.items())
            + ". Rules were tuned, and the lexicon learned (config/lexicon.tsv), on the `tune` split and on "
            + ", ".join(TUNED_WRITER_SETS)
            + "; the held-out writer sets, "
            "the `heldout` split, the unseen set and fresh2 were never tuned on (their errors never read); "
            "fresh's errors were read once, before issue 15. Read the notes below before trusting "
            "any figure.\n\n## Figures\n\n"
        )
        md.write_text(header + text + "\n\n" + notes, encoding="utf-8")


if __name__ == "__main__":
    main()
