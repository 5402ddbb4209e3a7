"""Proposing keyword rules from labelled examples (staff corrections, a team's labelled files).

The method, simple enough to explain to the team that decides:

1. Each example's text (subject and body, normalised like the classifier's, quoted lines
   dropped) becomes a set of terms: Chinese character n-grams of 2 to 4 characters inside
   runs of Chinese characters (none starting or ending with 的, 我, 是, ...), and English words (3 letters or more, no stop words) and
   word pairs. Character n-grams need no dictionary, so they also catch typos (登陆),
   trade jargon and product names a segmenter such as jieba would cut wrongly.
2. The examples are split by a hash of their text: about one in `holdout` is held out,
   the same way on every run. The held-out part is never used to choose a term.
3. For each label (type:fault, urgency:urgent, ...), on the training part: a term's support
   is the number of examples of that label holding it, its precision the share of the
   examples holding it that have that label (among examples labelled on that axis).
   Candidates have support >= min_support and precision >= min_precision. Terms are taken
   only from the text the current rules do not already match on that axis (their keywords,
   and for urgency their time expressions): nothing they match is proposed again, nor a
   piece of it ('少钱' of '多少钱').
4. Ranked by precision counted with one imaginary counter-example (support / (matched + 1),
   so 10 of 10 comes before 3 of 3), then support, then length. A term that says nothing a
   term taken already does not (inside it or holding it, the very same examples, or
   overlapping it with no example of its own) is skipped. At most `top` per label.
5. Each candidate's effect: the held-out examples are classified with the current rules,
   then with the current rules plus that one keyword (at the median weight of the current
   rules of its target): how many it puts right, how many it puts wrong.

Cost: one pass over the text of each example for the terms; per candidate, one automaton
build and the held-out examples that contain it classified again.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from classify.classifier import Classifier
from classify.matcher import Matcher
from classify.normalize import drop_quoted, normalize
from classify.rules import FIELDS, TYPES, URGENCIES, Keyword, Rule, RuleSet
from classify.timeexpr import find_deadlines

AXES = {"type": TYPES, "urgency": URGENCIES}
MAX_CHARS = 4000  # of each example: the terms of a long mail come from its opening
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z][a-z0-9'_-]*[a-z0-9]|[a-z]")
_CLAUSE = re.compile(r"[.!?;,:()\[\]\"\n。！？；，：、（）]+")
# a Chinese term starting or ending with one of these is a piece of two words ('的电', '我是')
EDGE_CHARS = frozenset("的我你他她们这那和与也都就吗呢吧啊个是在")
STOP_WORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have i if in is it its me my of on or our "
    "please so that the their them there this to us was we were will with would you your hi hello dear thanks thank "
    "regards best".split()
)


@dataclass(frozen=True)
class Example:
    subject: str
    body: str
    type: str | None = None  # None: not labelled on this axis
    urgency: str | None = None
    source: str = ""

    def label(self, axis: str) -> str | None:
        return self.type if axis == "type" else self.urgency


@dataclass
class Candidate:
    target: str  # "type:fault"
    keyword: str  # normalised term
    support: int  # training examples of the label holding it
    matched: int  # training examples labelled on the axis holding it
    precision: float
    weight: float = 1.0
    # held-out figures: examples labelled on the axis holding the term, of them with the label,
    # right → wrong and wrong → right when the keyword is added
    held_matched: int = 0
    held_right: int = 0
    fixes: int = 0
    breaks: int = 0
    examples: frozenset[int] = field(default_factory=frozenset, repr=False)

    @property
    def net(self) -> int:
        return self.fixes - self.breaks


@dataclass
class Suggestions:
    candidates: list[Candidate]
    training: int
    held_out: int
    held_out_labelled: dict[str, int]  # axis → held-out examples labelled on it
    baseline_right: dict[str, int]  # axis → of those, right with the current rules
    left_out_worse: list[Candidate]  # candidates worse on the held-out part: not proposed
    together_right: dict[str, int] = field(default_factory=dict)  # axis → right with every proposed rule added


def text_of(example: Example) -> str:
    """Subject and body as the classifier reads them (normalised, quoted lines dropped)."""
    return (normalize(example.subject or "") + "\n" + normalize(drop_quoted(example.body or "")))[:MAX_CHARS]


def terms(text: str, *, min_n: int = 2, max_n: int = 4) -> set[str]:
    """Chinese character n-grams (none starting or ending with a function character) and
    English words and word pairs of a normalised text."""
    found: set[str] = set()
    for run in _CJK_RUN.findall(text):
        for n in range(min_n, max_n + 1):
            for i in range(len(run) - n + 1):
                if run[i] not in EDGE_CHARS and run[i + n - 1] not in EDGE_CHARS:
                    found.add(run[i : i + n])
    for clause in _CLAUSE.split(text):
        words = _WORD.findall(clause)
        for i, word in enumerate(words):
            if len(word) >= 3 and word not in STOP_WORDS and not word.isdigit():
                found.add(word)
            if i + 1 < len(words) and not (word in STOP_WORDS and words[i + 1] in STOP_WORDS):
                found.add(f"{word} {words[i + 1]}")
    return found


def held_out(example: Example, holdout: int) -> bool:
    """About one example in `holdout`, chosen by a hash of its text: the same on every run."""
    digest = hashlib.sha256(f"{example.subject}\n{example.body}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % holdout == 0


def _same_phrase(c: Candidate, taken: Candidate) -> bool:
    """Whether c says nothing a term taken already does not: it lies inside it or holds it,
    it holds exactly the same examples, or it overlaps it (a word or two characters in
    common: '台扫不出' and '扫不出来') and all its examples hold that term too."""
    if _inside(c.keyword, taken.keyword) or _inside(taken.keyword, c.keyword) or c.examples == taken.examples:
        return True
    return c.examples <= taken.examples and _overlap(c.keyword, taken.keyword)


def _overlap(a: str, b: str) -> bool:
    if a.isascii() and b.isascii():
        return bool(set(a.split()) & set(b.split()))
    return any(a[i : i + 2] in b for i in range(len(a) - 1))


def _inside(part: str, whole: str) -> bool:
    """A term inside another: characters for Chinese, whole words for English."""
    if part.isascii():
        return f" {part} " in f" {whole} "
    return part in whole


class _Known:
    """What the current rules already match, on one axis: their keywords, and for urgency
    the time expressions of [time]. Terms are taken only from the rest of the text, so a
    piece of a known keyword ('少钱' of '多少钱') is never proposed."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset, self.matcher = ruleset, Matcher(ruleset)

    def spans(self, text: str, axis: str) -> list[tuple[int, int]]:
        """Character spans of the text matched on this axis."""
        raw, hits, _ = self.matcher.scan(text)
        spans = []
        if hits:
            offsets = _char_offsets(raw)
            spans = [(offsets[h.start], offsets[h.end]) for h in hits if self.ruleset.rules[h.rule].target.startswith(axis + ":")]
        if axis == "urgency" and self.ruleset.time_weights:
            spans += [(d.start, d.end) for d in find_deadlines(text)]
        return spans

    def masked(self, text: str, axis: str) -> str:
        """The text with what the rules match on this axis cut out (a line break: no term spans it)."""
        spans = sorted(self.spans(text, axis))
        if not spans:
            return text
        parts, at = [], 0
        for start, end in spans:
            if end > at:
                parts.append(text[at : max(at, start)])
                at = end
        parts.append(text[at:])
        return "\n".join(parts)

    def matches(self, term: str, axis: str) -> bool:
        return bool(self.spans(term, axis))


def _char_offsets(raw: str) -> dict[int, int]:
    """Byte offset → character offset in a byte-spelled text (classify/matcher.py), ends included."""
    offsets, chars = {}, 0
    for i, ch in enumerate(raw):
        if not 0x80 <= ord(ch) < 0xC0:  # a UTF-8 continuation byte starts no character
            offsets[i] = chars
            chars += 1
    offsets[len(raw)] = chars
    return offsets


def target_weight(ruleset: RuleSet, target: str) -> float:
    """The median weight of the current rules of this target (1.0 when there are none)."""
    weights = [r.weight for r in ruleset.rules if r.target == target and r.weight > 0]
    return float(statistics.median(weights)) if weights else 1.0


def rule_for(candidate: Candidate, ruleset: RuleSet) -> Rule:
    return Rule(
        name=rule_name(candidate),
        target=candidate.target,
        keywords=(Keyword(candidate.keyword, candidate.keyword, False),),
        weight=candidate.weight,
        fields=FIELDS,
        subject_weight=ruleset.subject_weight,
        negations=(),
    )


def rule_name(candidate: Candidate) -> str:
    return f"learned-{candidate.target.replace(':', '-')}-{candidate.keyword.replace(' ', '-')}"


def suggest(
    examples: list[Example], ruleset: RuleSet, *, min_support: int = 3, min_precision: float = 0.8, top: int = 10, holdout: int = 4
) -> Suggestions:
    texts = [text_of(e) for e in examples]
    is_held = [held_out(e, holdout) for e in examples]
    train = [i for i in range(len(examples)) if not is_held[i]]
    held = [i for i in range(len(examples)) if is_held[i]]

    known = _Known(ruleset)
    chosen: list[Candidate] = []
    for axis, labels in AXES.items():
        # 1, 3: term → training examples labelled on this axis holding it outside what the rules match
        labelled = {i for i in train if examples[i].label(axis) is not None}
        holding: dict[str, set[int]] = defaultdict(set)
        for i in labelled:
            for term in terms(known.masked(texts[i], axis)):
                holding[term].add(i)
        pool: dict[str, list[Candidate]] = {label: [] for label in labels}
        for term, on_axis in holding.items():
            if len(on_axis) < min_support:
                continue
            counts = Counter(examples[i].label(axis) for i in on_axis)
            label, support = counts.most_common(1)[0]
            precision = support / len(on_axis)
            if support < min_support or precision < min_precision or label not in pool:
                continue
            pool[label].append(Candidate(f"{axis}:{label}", term, support, len(on_axis), precision, examples=frozenset(on_axis)))
        for found in pool.values():
            found.sort(key=lambda c: (-c.support / (c.matched + 1), -c.support, -len(c.keyword), c.keyword))
            taken: list[Candidate] = []
            for c in found:
                if len(taken) >= top:
                    break
                # 4: one term for one phrase ('停线' or '停线了', not both)
                if any(_same_phrase(c, t) for t in taken):
                    continue
                if known.matches(c.keyword, axis):
                    continue
                c.weight = target_weight(ruleset, c.target)
                taken.append(c)
            chosen.extend(taken)

    # 5: the effect of each candidate on the held-out part
    current = Classifier(ruleset)
    baseline = {i: current.classify(examples[i].subject, examples[i].body) for i in held}
    held_labelled = {axis: [i for i in held if examples[i].label(axis) is not None] for axis in AXES}
    baseline_right = {axis: sum(getattr(baseline[i], axis) == examples[i].label(axis) for i in ids) for axis, ids in held_labelled.items()}
    proposed: list[Candidate] = []
    worse: list[Candidate] = []
    for c in chosen:
        axis, label = c.target.split(":", 1)
        touched = [i for i in held_labelled[axis] if c.keyword in texts[i]]  # only these can change
        c.held_matched = len(touched)
        c.held_right = sum(examples[i].label(axis) == label for i in touched)
        if touched:
            trial = Classifier(replace(ruleset, rules=ruleset.rules + (rule_for(c, ruleset),)))
            for i in touched:
                truth = examples[i].label(axis)
                before = getattr(baseline[i], axis) == truth
                after = getattr(trial.classify(examples[i].subject, examples[i].body), axis) == truth
                c.fixes += after and not before
                c.breaks += before and not after
        (worse if c.net < 0 else proposed).append(c)
    together = Classifier(replace(ruleset, rules=ruleset.rules + tuple(rule_for(c, ruleset) for c in proposed)))
    together_right = {axis: 0 for axis in AXES}
    for i in held:
        result = together.classify(examples[i].subject, examples[i].body)
        for axis in AXES:
            together_right[axis] += examples[i].label(axis) is not None and getattr(result, axis) == examples[i].label(axis)
    return Suggestions(proposed, len(train), len(held), {a: len(ids) for a, ids in held_labelled.items()}, baseline_right, worse, together_right)


def summary(s: Suggestions) -> list[str]:
    """Lines for people: the examples, the split, and the held-out accuracy with all proposed rules at once."""
    lines = [f"{s.training + s.held_out} examples: {s.training} to choose terms, {s.held_out} held out to measure them"]
    for axis, n in s.held_out_labelled.items():
        if n:
            lines.append(
                f"held out, {axis} ({n} labelled): {s.baseline_right[axis] / n:.1%} with the current rules, "
                f"{s.together_right.get(axis, 0) / n:.1%} with all {len(s.candidates)} candidates added"
            )
    return lines


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes (\\", \\\\, \\n, \\uXXXX) are TOML's too."""
    import json

    return json.dumps(value, ensure_ascii=False)


def note(c: Candidate, s: Suggestions) -> str:
    axis = c.target.split(":", 1)[0]
    n, right = s.held_out_labelled[axis], s.baseline_right[axis]
    text = (
        f"precision {c.precision:.1%} ({c.support}/{c.matched}), support {c.support} of {s.training} training examples; "
        f"held out: in {c.held_matched} of {n} labelled on {axis}, {c.held_right} of them {c.target.split(':', 1)[1]}"
    )
    if n:
        text += f"; fixes {c.fixes}, breaks {c.breaks}, {axis} accuracy {right / n:.1%} -> {(right + c.net) / n:.1%}"
    return text


def render_toml(s: Suggestions, header: list[str]) -> str:
    """The candidate rules in the format of config/rules.toml, a note per rule."""
    lines = [f"# {h}" for h in header]
    lines += [
        "#",
        "# Candidate rules: nothing here is live. Copy the [[rules]] tables you accept into",
        "# rules.toml (the daemon reloads it on save); measure before and after with",
        "# `intake classify eval FILE`.",
    ]
    if s.left_out_worse:
        lines.append(
            "# Left out, worse on the held-out part: "
            + ", ".join(f"{c.keyword!r} ({c.target}: fixes {c.fixes}, breaks {c.breaks})" for c in s.left_out_worse)
        )
    for c in s.candidates:
        lines += [
            "",
            "[[rules]]",
            f"name = {_toml_string(rule_name(c))}",
            f"target = {_toml_string(c.target)}",
            f"keywords = [{_toml_string(c.keyword)}]",
            f"weight = {c.weight:g}",
            f"note = {_toml_string(note(c, s))}",
        ]
    if not s.candidates:
        lines += ["", "# No candidate: too few examples, or no term separates the labels well enough."]
    return "\n".join(lines) + "\n"
