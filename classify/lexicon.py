"""The learned wording: how often each term was seen in labelled messages of each type and
urgency, and what those counts say of a new message.

Keyword rules reach only as far as the words their writers thought of: on messages from
writers the rules never saw, they were right about the type three times in four. The
lexicon is the other half of the evidence: counts learned from labelled messages (the
staff's corrections, a team's own files, the project's evaluation sets) by
`intake rules learn`, written to a plain tab-separated file a person can read, sort in a
spreadsheet, correct or cut, and installed by a person (`[lexicon] file` in rules.toml).

A message's terms are what `terms()` finds: every two neighbouring Chinese characters,
English words and pairs of neighbouring words; each counts once a message. The
counts are read the naive-Bayes way: for each label, the share of the training examples
with that label, times, for each term of the message in the file, the smoothed share of
that label's term occurrences that were this term. Out come probabilities per axis
(type, urgency) and the terms that pushed the winner up most, which `explain()` shows.
How they are weighed against the keyword rules is the classifier's business.

File format (`config/lexicon.tsv`; `#` lines are comments):

    term	inquiry	complaint	fault	request	suggestion	urgent	important	normal
    (examples)	412	380	455	390	255	402	431	1059
    打不开	1	2	17	0	0	6	8	6

and, learned from the same examples, an optional last section: the learned urgency's weights
(classify/urgency_model.py), a feature and three numbers a row:

    (learned urgency)	urgent	important	normal
    (rules: normal)	-0.929	-1.165	1.276
    停产	1.2	-0.3	-0.8
"""

from __future__ import annotations

import difflib
import io
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from classify.errors import RulesError
from classify.labels import TYPES, URGENCIES
from classify.urgency_model import MAX_WEIGHT, SECTION_HEADER, UrgencyModel, render_section, signal_names

COLUMNS = (*TYPES, *URGENCIES)
SIGNAL_NAMES = signal_names()
HEADER = "term\t" + "\t".join(COLUMNS)
EXAMPLES_ROW = "(examples)"
MAX_CHARS = 4000  # of each text: the terms of a long mail come from its opening (linear time)

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
# an English word, or a clause boundary (a word pair never spans one)
_WORD_OR_BREAK = re.compile(r"[a-z][a-z0-9'_-]*[a-z0-9]|[a-z]|[.!?;,:()\[\]\"\n。！？；，：、（）]")
_LATIN = re.compile(r"[a-z]")
STOP_WORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have i if in is it its me my of on or our "
    "so that the their them there this to us was we were will with would you your hi hello dear regards best".split()
)


def terms(text: str) -> set[str]:
    """The terms of a normalised text (classify.normalize): every two neighbouring Chinese
    characters (single characters and runs of three were tried: no more right answers on
    writers not learned from, and twice the time), English words of 2 letters or more that are not stop words, and pairs of
    neighbouring words in one clause. Linear in the text (cut at MAX_CHARS)."""
    text = text[:MAX_CHARS]
    found: set[str] = set()
    for run in _CJK_RUN.findall(text):
        found.update([run[i : i + 2] for i in range(len(run) - 1)])
    if _LATIN.search(text):
        previous = None
        for token in _WORD_OR_BREAK.findall(text):
            if not ("a" <= token[0] <= "z"):
                previous = None
                continue
            if len(token) >= 2 and token not in STOP_WORDS:
                found.add(token)
            if previous is not None and not (previous in STOP_WORDS and token in STOP_WORDS):
                found.add(f"{previous} {token}")
            previous = token
    return found


class Reading:
    """What the lexicon says of one message on one axis (type or urgency)."""

    __slots__ = ("labels", "probabilities", "best", "found", "learned_sum", "_strongest")

    def __init__(
        self,
        labels: tuple[str, ...],
        probabilities: list[float],
        found: list[str],
        strongest: Callable[[list[str], int], tuple[str, ...]],
        learned_sum: int | None = None,
    ) -> None:
        self.labels = labels
        self.probabilities = probabilities  # per label, in the order of `labels`, summing to 1
        self.best = labels[probabilities.index(max(probabilities))]  # the most probable label
        self.found = found  # the message's terms in the lexicon
        self.learned_sum = learned_sum  # the learned urgency's packed sum over `found` (UrgencyModel.read), if any
        self._strongest = strongest

    def probability(self, label: str) -> float:
        return self.probabilities[self.labels.index(label)]

    @property
    def terms(self) -> tuple[str, ...]:
        """The message's terms (at most 3) that favour `best` most."""
        return self._strongest(self.found, self.labels.index(self.best))


# A term's weights are kept as one integer: each label's -log weight in thousandths, in a
# field of _BITS bits (label i at bits _BITS*i). Adding the integers of a message's terms
# adds all eight labels' weights at once, in one sum() in C: half the time of eight sums of
# floats, which made the lexicon more than the rest of the classifier's time (issue 15 asks
# for 10,000 messages a CPU second). A thousandth is far finer than the counts' precision.
_SCALE = 1000
_BITS = 40  # a field holds 2**40 / 1000 / 20 (a weight of -20 is a share of 2e-9) = 5e7 terms
_MASK = (1 << _BITS) - 1
# Naive Bayes counts every term as independent evidence, so its probabilities are far too
# sure (99% on a few words is common); the log probabilities are divided by this before
# they are weighed against the keywords. 3 was best of 1-10 on writer sets h-k (tuned).
SOFTEN = 3.0
_AXES = {"type": (TYPES, slice(0, len(TYPES))), "urgency": (URGENCIES, slice(len(TYPES), len(COLUMNS)))}


@dataclass(frozen=True)
class Lexicon:
    path: str
    examples: dict[str, int]  # label → training examples with it (the priors)
    counts: dict[str, tuple[int, ...]]  # term → examples holding it, per label in COLUMNS order
    smoothing: float = 1.0
    urgency: UrgencyModel | None = None  # the learned urgency, when the file has its section
    # derived once: term → its packed weights; the log priors (COLUMNS order); per axis, what
    # picks a message's terms that favour a label most
    _packed: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _priors: list[float] = field(default_factory=list, init=False, repr=False, compare=False)
    _strongest: dict[str, Callable[[list[str], int], tuple[str, ...]]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _trained_on: list[int] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._trained_on.append(sum(self.examples.get(t, 0) for t in TYPES))
        # a term's weight for a label: the smoothed share of that label's term occurrences it
        # makes up, packed at once (a table of all the weights first was megabytes more at load)
        columns = range(len(COLUMNS))
        size = len(self.counts) or 1
        smoothing = self.smoothing
        denominators = [sum(row[c] for row in self.counts.values()) + smoothing * size for c in columns]
        log, shifts = math.log, [_BITS * c for c in columns]
        for term, row in self.counts.items():
            self._packed[term] = sum(round(-log((row[c] + smoothing) / denominators[c]) * _SCALE) << shifts[c] for c in columns)
        if self.urgency is not None:
            # the model given is adopted: its term weights move into this lexicon's table (the
            # model object changes). One another lexicon adopted already (dataclasses.replace)
            # is copied first, with the terms of that lexicon.
            if self.urgency.adopted:
                object.__setattr__(self, "urgency", UrgencyModel(self.urgency.weights))
            assert self.urgency is not None
            # a message's known terms (Reading.found) are the model's too, and its sums come
            # out of the same sum() as the counts' (fields above theirs)
            self.urgency.cover(self.counts)
            self.urgency.adopt(self._packed, _BITS * len(COLUMNS))
        for axis, (labels, _) in _AXES.items():
            all_examples = sum(self.examples.get(label, 0) for label in labels)
            self._priors.extend(math.log((self.examples.get(label, 0) + 1) / (all_examples + len(labels))) for label in labels)
            self._strongest[axis] = partial(self._strongest_terms, axis)

    def _strongest_terms(self, axis: str, found: list[str], label: int) -> tuple[str, ...]:
        """Of a message's terms, the three that favour `label` of the axis most: terms that
        weigh most for it, by how far ahead of the axis's next label (then the longer, then
        alphabetical). From the packed weights when asked, only where the wording decided:
        two tables a term for it were megabytes in every classifying process."""
        _, cut = _AXES[axis]
        shifts = [_BITS * c for c in range(cut.start, cut.stop)]
        ranked = []
        for term in found:
            packed = self._packed[term]
            fields = [(packed >> shift) & _MASK for shift in shifts]  # -log weights in thousandths: the least weighs most
            least = min(fields)
            if fields.index(least) != label:
                continue
            runner_up = min(f for i, f in enumerate(fields) if i != label)
            ranked.append((least - runner_up, -len(term), term))
        return tuple(term for *_, term in sorted(ranked)[:3])

    @property
    def trained_on(self) -> int:
        """Training examples labelled with a type."""
        return self._trained_on[0]

    def read(self, message_terms: set[str], axes: tuple[str, ...] = ("type", "urgency")) -> dict[str, Reading]:
        """The probabilities of the labels of these axes for a message with these terms
        (`terms()` of its text)."""
        packed = self._packed
        found = [t for t in message_terms if t in packed]
        total = sum(map(packed.__getitem__, found))
        logp = [prior - ((total >> (_BITS * c)) & _MASK) / _SCALE for c, prior in enumerate(self._priors)]
        learned_sum = total >> (_BITS * len(COLUMNS)) if self.urgency is not None else None
        readings = {}
        for axis in axes:
            labels, cut = _AXES[axis]
            values = logp[cut]
            top = max(values)
            exp = [math.exp((v - top) / SOFTEN) for v in values]
            norm = sum(exp)
            readings[axis] = Reading(labels, [e / norm for e in exp], found, self._strongest[axis], learned_sum)
        return readings


def learn(examples: list[tuple[str, str | None, str | None]], *, min_examples: int = 3, base: Lexicon | None = None, path: str = "") -> Lexicon:
    """A lexicon from (normalised text, type or None, urgency or None) examples: every term
    found in at least `min_examples` labelled examples, with its count per label. With a
    `base`, its counts and the new ones are added (counts add up: learning from a team's
    corrections on top of the shipped lexicon is the sum of the two), and every term of the
    base takes its new counts whatever their number."""
    per_term: dict[str, Counter] = {}
    holding: Counter = Counter()  # term → labelled examples holding it (on either axis)
    labelled: Counter = Counter()
    for text, type_, urgency in examples:
        labels = [label for label in (type_, urgency) if label is not None]
        if not labels:
            continue
        labelled.update(labels)
        found = terms(text)
        holding.update(found)
        for term in found:
            per_term.setdefault(term, Counter()).update(labels)
    old = base.counts if base is not None else {}
    counts = {term: list(row) for term, row in old.items()}
    for term, by_label in per_term.items():
        if term in old or holding[term] >= min_examples:
            row = counts.setdefault(term, [0] * len(COLUMNS))
            for c, label in enumerate(COLUMNS):
                row[c] += by_label[label]
    before = base.examples if base is not None else {}
    return Lexicon(
        path,
        {c: before.get(c, 0) + labelled[c] for c in COLUMNS},
        {term: tuple(row) for term, row in counts.items()},
        base.smoothing if base is not None else 1.0,
    )


def render(lexicon: Lexicon, header: list[str]) -> str:
    """The lexicon as its file: the header as comments, then the rows, most seen first."""
    lines = [f"# {line}" if line else "#" for line in header]
    lines += [HEADER, EXAMPLES_ROW + "\t" + "\t".join(str(lexicon.examples.get(c, 0)) for c in COLUMNS)]
    for term, row in sorted(lexicon.counts.items(), key=lambda tr: (-sum(tr[1]), tr[0])):
        lines.append(term + "\t" + "\t".join(map(str, row)))
    if lexicon.urgency is not None:
        lines += render_section(lexicon.urgency)
    return "\n".join(lines) + "\n"


def load_lexicon(path: Path, *, smoothing: float = 1.0) -> Lexicon:
    """Read a lexicon file; a bad line raises RulesError naming the file and the line."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")  # a spreadsheet's byte-order mark is no term
    except OSError as exc:
        raise RulesError(path, None, f"cannot read the lexicon: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RulesError(path, None, f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    examples: dict[str, int] | None = None
    counts: dict[str, tuple[int, ...]] = {}
    weights: dict[str, tuple[float, float, float]] | None = None  # the learned urgency's section, once its header is seen
    header_seen = False
    # a line at a time (30,000 lines at once were megabytes more at load); any line end
    for number, line in enumerate(io.StringIO(text, newline=None), 1):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if weights is not None:
            _weight_row(weights, cells, path, number)
            continue
        if header_seen and line == SECTION_HEADER:
            weights = {}
            continue
        if header_seen and line.strip().lower().startswith(SECTION_HEADER.split("\t")[0]):
            raise RulesError(path, number, "the learned urgency's header must read exactly: " + SECTION_HEADER.replace("\t", " <tab> "))
        if not header_seen:
            if line != HEADER:
                raise RulesError(path, number, "the first line that is not a comment must be the column names: " + HEADER.replace("\t", " <tab> "))
            header_seen = True
            continue
        if len(cells) != len(COLUMNS) + 1:
            raise RulesError(path, number, f"expected a term and {len(COLUMNS)} counts separated by tabs, got {len(cells)} fields")
        term = cells[0].strip()
        try:
            row = tuple(int(cell) for cell in cells[1:])
        except ValueError:
            raise RulesError(path, number, f"'{term}': counts must be whole numbers, got {' '.join(cells[1:])}") from None
        if any(value < 0 for value in row):
            raise RulesError(path, number, f"'{term}': counts must not be negative")
        if any(value > 10**12 for value in row):
            raise RulesError(path, number, f"'{term}': counts above 10^12 are no counts of messages")
        if term == EXAMPLES_ROW:
            if examples is not None:
                raise RulesError(path, number, f"a second '{EXAMPLES_ROW}' row")
            examples = dict(zip(COLUMNS, row, strict=True))
        elif not term:
            raise RulesError(path, number, "an empty term")
        elif term in counts:
            raise RulesError(path, number, f"'{term}' is listed twice")
        else:
            counts[term] = row
    if not header_seen:
        raise RulesError(path, None, "no column names: not a lexicon file")
    if examples is None:
        raise RulesError(path, None, f"no '{EXAMPLES_ROW}' row: the number of training examples of each label")
    # an empty section is no learned urgency: rules that ask for one refuse it
    return Lexicon(str(path), examples, counts, smoothing, UrgencyModel(weights) if weights else None)


def _weight_row(weights: dict[str, tuple[float, float, float]], cells: list[str], path: Path, number: int) -> None:
    """One row of the learned urgency's section: a feature and its three weights."""
    if len(cells) != 4:
        raise RulesError(path, number, f"the learned urgency: expected a feature and 3 weights separated by tabs, got {len(cells)} fields")
    name = cells[0].strip()
    try:
        row = tuple(float(cell) for cell in cells[1:])
    except ValueError:
        raise RulesError(path, number, f"the learned urgency: '{name}': weights must be numbers, got {' '.join(cells[1:])}") from None
    if not all(math.isfinite(w) and abs(w) <= MAX_WEIGHT for w in row):
        raise RulesError(path, number, f"the learned urgency: '{name}': weights must lie between -{MAX_WEIGHT:g} and {MAX_WEIGHT:g}")
    if not name:
        raise RulesError(path, number, "the learned urgency: an empty feature")
    if name.startswith("(") and name not in SIGNAL_NAMES:
        close = difflib.get_close_matches(name, SIGNAL_NAMES, 1)
        raise RulesError(
            path, number, f"the learned urgency: '{name}' is no signal of the rules" + (f" (did you mean '{close[0]}'?)" if close else "")
        )
    if name in weights:
        raise RulesError(path, number, f"the learned urgency: '{name}' is listed twice")
    weights[name] = (row[0], row[1], row[2])
