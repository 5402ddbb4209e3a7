"""Accuracy of the keyword rules on the labelled evaluation set.

    .venv/bin/python bench/classify_eval.py [--rules config/rules.toml] [--errors] [--write]

Prints type and urgency accuracy and both confusion matrices for the tuning split,
the held-out split and overall. --errors lists misclassified messages of the
tuning split only: the held-out third is never looked at while tuning rules.
--write puts the figures into bench/classify_eval.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classify import TYPES, URGENCIES, Classifier  # noqa: E402

EVAL_SET = ROOT / "tests" / "classify_eval" / "messages.jsonl"
NOTES = "## Notes"


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


def report(results: list[dict]) -> str:
    parts = []
    splits = [("tuning", [r for r in results if r["split"] == "tune"]),
              ("held-out", [r for r in results if r["split"] == "heldout"]),
              ("overall", results)]
    parts.append("| split | messages | type accuracy | urgency accuracy |\n|---|---|---|---|")
    for name, rows in splits:
        parts.append(f"| {name} | {len(rows)} | {accuracy(rows, 'type'):.1%} | {accuracy(rows, 'urgency'):.1%} |")
    parts.append("\n| batch | messages | type accuracy | urgency accuracy |\n|---|---|---|---|")
    for batch in sorted({r.get("batch", 1) for r in results}):
        rows = [r for r in results if r.get("batch", 1) == batch]
        parts.append(f"| {batch} | {len(rows)} | {accuracy(rows, 'type'):.1%} | {accuracy(rows, 'urgency'):.1%} |")
    parts.append("\n| language | messages | type accuracy | urgency accuracy |\n|---|---|---|---|")
    for lang in sorted({r["lang"] for r in results}):
        rows = [r for r in results if r["lang"] == lang]
        parts.append(f"| {lang} | {len(rows)} | {accuracy(rows, 'type'):.1%} | {accuracy(rows, 'urgency'):.1%} |")
    for name, rows in splits:
        parts.append(f"\n### {name}: type\n\n{confusion(rows, 'type', TYPES)}")
        parts.append(f"\n### {name}: urgency\n\n{confusion(rows, 'urgency', URGENCIES)}")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=ROOT / "config" / "rules.toml")
    parser.add_argument("--errors", action="store_true", help="list misclassified messages of the tuning split")
    parser.add_argument("--batch", type=int, help="only this batch of messages (1: written before the rules, 2: after)")
    parser.add_argument("--write", action="store_true", help="write the figures to bench/classify_eval.md")
    args = parser.parse_args()
    rows = [r for r in load_set() if args.batch is None or r.get("batch", 1) == args.batch]
    results = evaluate(Classifier.from_file(args.rules), rows)
    text = report(results)
    print(text)
    if args.errors:
        print("\n## tuning-split errors")
        for r in results:
            if r["split"] == "tune" and (r["type"] != r["pred_type"] or r["urgency"] != r["pred_urgency"]):
                print(f"- {r['type']}/{r['urgency']} → {r['pred_type']}/{r['pred_urgency']}: {r['subject']} | {r['body'][:90]!r}")
    if args.write:
        # The hand-written notes (how the figures came about) below the figures are kept.
        md = ROOT / "bench" / "classify_eval.md"
        old = md.read_text(encoding="utf-8") if md.exists() else ""
        notes = old[old.index(NOTES):] if NOTES in old else NOTES + "\n"
        header = ("# Classification accuracy of the default rules\n\n"
                  f"`bench/classify_eval.py --write` on `tests/classify_eval/messages.jsonl` ({len(results)} messages) "
                  "with `config/rules.toml`. Rules were tuned on the `tune` split only; read the notes below "
                  "before trusting the overall figure.\n\n## Figures\n\n")
        md.write_text(header + text + "\n\n" + notes, encoding="utf-8")


if __name__ == "__main__":
    main()
