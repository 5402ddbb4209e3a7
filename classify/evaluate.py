"""Measuring rules on labelled messages: what `intake classify eval FILE` and bench/classify_eval.py print.

A labelled file is JSON Lines (one object a line) or CSV with a header row. Each message has a
`subject` (may be empty), a `body` (or `message`, as in a form submission), a `type` and an
`urgency` (the labels of ../shared/LABELS.md); `lang` and `hard` are optional and, when present,
split the figures. Pure data in, pure data out: the caller loads the rules and prints.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from classify.classifier import Classifier
from classify.errors import RulesError
from classify.rules import TYPES, URGENCIES


@dataclass(frozen=True)
class Scored:
    """One labelled message with what the rules made of it."""

    subject: str
    body: str
    type: str
    urgency: str
    pred_type: str
    pred_urgency: str
    lang: str = ""
    hard: bool = False
    line: int = 0

    @property
    def costly(self) -> int:
        """How bad the urgency error is: an urgent case called normal 2, called important 1."""
        if self.urgency != "urgent" or self.pred_urgency == "urgent":
            return 0
        return 2 if self.pred_urgency == "normal" else 1


def load_labelled(path: Path) -> list[dict]:
    """The messages of a JSONL or CSV file, each checked; raises RulesError naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(path, None, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() == ".csv":
        rows = [(n + 2, row) for n, row in enumerate(csv.DictReader(io.StringIO(text)))]
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RulesError(path, n, f"not JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise RulesError(path, n, "each line must be a JSON object")
            rows.append((n, row))
    out = []
    for n, row in rows:
        body = row.get("body", row.get("message"))
        if body is None:
            raise RulesError(path, n, "no 'body' (or 'message')")
        if row.get("type") not in TYPES:
            raise RulesError(path, n, f"type must be one of {', '.join(TYPES)}, got {row.get('type')!r}")
        if row.get("urgency") not in URGENCIES:
            raise RulesError(path, n, f"urgency must be one of {', '.join(URGENCIES)}, got {row.get('urgency')!r}")
        hard = row.get("hard", False)
        out.append(
            {
                **row,
                "subject": row.get("subject") or "",
                "body": body,
                "line": n,
                "hard": hard if isinstance(hard, bool) else str(hard).strip().lower() in ("1", "true", "yes"),
            }
        )
    if not out:
        raise RulesError(path, None, "no labelled messages")
    return out


def score(classifier: Classifier, rows: list[dict]) -> list[Scored]:
    scored = []
    for row in rows:
        result = classifier.classify(row["subject"], row["body"])
        scored.append(
            Scored(
                row["subject"],
                row["body"],
                row["type"],
                row["urgency"],
                result.type,
                result.urgency,
                str(row.get("lang") or ""),
                bool(row.get("hard")),
                int(row.get("line") or 0),
            )
        )
    return scored


def figures(scored: list[Scored]) -> dict:
    """Accuracy, per-type precision/recall/F1 and macro-F1, the urgency confusion matrix
    (true → predicted), and the costly urgency errors."""
    n = len(scored)
    per_type = {}
    for t in TYPES:
        tp = sum(s.type == t and s.pred_type == t for s in scored)
        predicted = sum(s.pred_type == t for s in scored)
        actual = sum(s.type == t for s in scored)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_type[t] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    present = [t for t in TYPES if per_type[t]["support"]]
    pairs = Counter((s.urgency, s.pred_urgency) for s in scored)
    urgent = sum(s.urgency == "urgent" for s in scored)
    return {
        "messages": n,
        "type_accuracy": sum(s.type == s.pred_type for s in scored) / n if n else 0.0,
        "urgency_accuracy": sum(s.urgency == s.pred_urgency for s in scored) / n if n else 0.0,
        "per_type": per_type,
        "macro_f1": sum(per_type[t]["f1"] for t in present) / len(present) if present else 0.0,
        "urgency_confusion": {u: {p: pairs[(u, p)] for p in URGENCIES} for u in URGENCIES},
        "urgent": urgent,
        "urgent_called_normal": pairs[("urgent", "normal")] / urgent if urgent else 0.0,
        "urgent_missed": (urgent - pairs[("urgent", "urgent")]) / urgent if urgent else 0.0,
    }


def groups(scored: list[Scored]) -> dict[str, list[Scored]]:
    """The whole set, then by language and easy/hard where the file says so."""
    out = {"all": scored}
    for lang in sorted({s.lang for s in scored if s.lang}):
        out[lang] = [s for s in scored if s.lang == lang]
    if any(s.hard for s in scored):
        out["easy"] = [s for s in scored if not s.hard]
        out["hard"] = [s for s in scored if s.hard]
    return out


def worst(scored: list[Scored], limit: int = 10) -> list[Scored]:
    """The errors to read first: urgent cases called normal, then called important, then type errors."""
    wrong = [s for s in scored if s.type != s.pred_type or s.urgency != s.pred_urgency]
    return sorted(wrong, key=lambda s: (-s.costly, s.type == s.pred_type, s.line))[:limit]


def render(scored: list[Scored], limit: int = 10) -> str:
    """The figures as text for people: a table per group, per-type figures, the matrix, the worst errors."""
    lines = ["| set | messages | type | urgency | macro-F1 | urgent→normal | urgent missed |", "|---|---|---|---|---|---|---|"]
    for name, rows in groups(scored).items():
        f = figures(rows)
        lines.append(
            f"| {name} | {f['messages']} | {f['type_accuracy']:.1%} | {f['urgency_accuracy']:.1%} | {f['macro_f1']:.3f} | "
            f"{f['urgent_called_normal']:.1%} | {f['urgent_missed']:.1%} |"
        )
    f = figures(scored)
    lines += ["", "| type | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for t, v in f["per_type"].items():
        lines.append(f"| {t} | {v['precision']:.1%} | {v['recall']:.1%} | {v['f1']:.3f} | {v['support']} |")
    lines += ["", "| urgency: true \\ predicted | " + " | ".join(URGENCIES) + " |", "|---" * (len(URGENCIES) + 1) + "|"]
    for u, row in f["urgency_confusion"].items():
        lines.append(f"| {u} | " + " | ".join(str(row[p]) for p in URGENCIES) + " |")
    bad = worst(scored, limit)
    if bad:
        lines += ["", f"worst {len(bad)} errors (label → rules):"]
        for s in bad:
            text = " ".join(f"{s.subject} | {s.body}".split())
            lines.append(f"- line {s.line}: {s.type}/{s.urgency} → {s.pred_type}/{s.pred_urgency}: {text[:110]}")
    return "\n".join(lines)
