"""The learned urgency: how much each term of a message, and each thing the keyword rules
found in it, says for urgent, important or normal.

Why: keyword rounds stopped moving urgency on writers the rules never saw (about 80 % right
on eighteen of them, against 85 % asked), and weighing the lexicon's naive-Bayes counts
against the keywords made it worse. What separates urgent from important from normal is
seldom one word: it is a blocked shop and a time today, a fault and people waiting, a
deadline and no word of hurry. A logistic regression learns how much each piece of
evidence counts next to the others, from the same labelled examples as the lexicon.

It stays readable: every feature has three weights (urgent, important, normal) in the
lexicon file, after its counts; a message's score for a label is the sum of its features'
weights for it, and the decision shows the rules' call and the terms that pushed the chosen
label most. Features are the message's terms (classify.lexicon.terms, those in the
lexicon) and the rules' signals (`signals()`): what the keywords scored, what the rules
decided and how, the type. The rules keep the last word where a person wrote one: a type
whose urgency is fixed, a customer who says there is no rush.

Learned from labelled examples by classify/urgency_learning.py (which classifies them
first, so it uses the classifier: it lives apart from this module, which the classifier reads).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from classify.labels import TYPES

URGENCY = ("urgent", "important", "normal")
SECTION_HEADER = "(learned urgency)\t" + "\t".join(URGENCY)  # "(": no term starts with one
MAX_WEIGHT = 50.0  # a weight beyond this is no learned weight: refused on load, clipped on learning

# Terms' weights are packed as for the lexicon (one integer a term, one field a label) so that
# a message's sums are one sum() in C; a field holds (weight + _OFFSET) in thousandths.
_SCALE = 1000
_OFFSET = 64
_BITS = 40
_MASK = (1 << _BITS) - 1
_META = 3 * _BITS  # a term's label and rank for explanations, above its three fields


_KEYWORDS = [(f"urgency:{label}", f"(keywords: {label})", f"(any keyword: {label})") for label in URGENCY]
# how the rules may have decided an urgency the model is asked about (classifier.py: not
# "type" or "no_rush", where the rules keep the last word)
HOWS = ("score", "tie", "no_match", "urgent_wins", "wording")


def signal_names() -> frozenset[str]:
    """Every name `signals()` can give: a section's parenthesised feature must be one of them."""
    names = {"(bias)", *(f"(rules: {u})" for u in URGENCY), *(f"(decided by: {h})" for h in HOWS), *(f"(type: {t})" for t in TYPES)}
    names |= {name for _, keywords, any_keyword in _KEYWORDS for name in (keywords, any_keyword)}
    return frozenset(names)


def signals(scores: dict[str, float], rules_urgency: str, how: str, type_: str) -> dict[str, float]:
    """The rules' evidence on a message's urgency as named features (their names are
    parenthesised: no term has a parenthesis): each urgency's keyword score (capped at 3,
    scaled to 1) and whether any keyword of it counted, what the rules decided and how,
    and the type."""
    found = {"(bias)": 1.0, f"(rules: {rules_urgency})": 1.0, f"(decided by: {how})": 1.0, f"(type: {type_})": 1.0}
    for key, keywords, any_keyword in _KEYWORDS:
        score = scores[key]
        if score > 0:
            found[keywords] = min(score, 3.0) / 3.0
            found[any_keyword] = 1.0
    return found


class UrgencyReading:
    """What the learned urgency says of one message (a plain class with slots: made for every
    message, where a frozen dataclass's construction was a third of the reading's time)."""

    __slots__ = ("best", "probabilities", "found", "tipped")

    def __init__(self, best: str, probabilities: tuple[float, float, float], found: list[str], tipped: bool = False) -> None:
        self.best = best  # with the lean
        self.probabilities = probabilities  # urgent, important, normal: the evidence's, without the lean
        self.found = found  # the message's terms that have weights
        self.tipped = tipped  # the lean made it urgent: without it another urgency scored higher

    def probability(self, label: str) -> float:
        return self.probabilities[URGENCY.index(label)]


class UrgencyModel:
    """The learned weights. A term's three are kept only packed (15,000 terms: a few MB less in
    every classifying process than as tuples of floats); `row()` and `weights` decode them."""

    __slots__ = ("_packed", "_shift", "_signals")

    def __init__(self, weights: dict[str, tuple[float, float, float]]) -> None:
        self._shift = 0  # where its fields start in the integers of _packed (see adopt)
        self._signals = {name: row for name, row in weights.items() if name.startswith("(")}
        if any(abs(w) > MAX_WEIGHT for row in weights.values() for w in row):
            raise ValueError(f"a learned urgency weight beyond ±{MAX_WEIGHT:g}")  # a field would go negative
        terms = {name: row for name, row in weights.items() if not name.startswith("(")}
        # above the three fields, what explains a call (strongest): the label a term weighs
        # most for (3: none, a tie) and its rank among all terms by how far ahead it is, in
        # thousandths as the fields hold them (ties then go by name, not by float noise)
        margins = {}
        for name, row in terms.items():
            fields = [round(w * _SCALE) for w in row]
            ordered = sorted(fields, reverse=True)
            margins[name] = (fields.index(ordered[0]) if ordered[0] > ordered[1] else 3, ordered[0] - ordered[1])
        ranked = sorted(terms, key=lambda name: (-margins[name][1], name))
        self._packed = {
            name: sum(round((w + _OFFSET) * _SCALE) << (_BITS * c) for c, w in enumerate(terms[name])) + ((rank << 2 | margins[name][0]) << _META)
            for rank, name in enumerate(ranked)
        }

    @property
    def adopted(self) -> bool:
        """Whether its term weights live in a lexicon's table (adopt)."""
        return self._shift != 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UrgencyModel) and self.weights == other.weights

    __hash__ = None  # type: ignore[assignment]  # mutable until adopted; compared by its weights

    def row(self, name: str) -> tuple[float, float, float]:
        """A feature's weights for urgent, important, normal (0, 0, 0 when it has none)."""
        if name.startswith("("):
            return self._signals.get(name, (0.0, 0.0, 0.0))
        packed = self._packed.get(name)
        if packed is None:
            return (0.0, 0.0, 0.0)
        packed >>= self._shift
        w = [round(((packed >> (_BITS * c)) & _MASK) / _SCALE - _OFFSET, 3) + 0.0 for c in range(3)]
        return (w[0], w[1], w[2])

    @property
    def weights(self) -> dict[str, tuple[float, float, float]]:
        """Every feature's weights (the rules' signals first; no term's row of zeros, as `cover` adds)."""
        return {**self._signals, **{name: row for name in self._packed if any(row := self.row(name))}}

    def cover(self, vocabulary: Iterable[str]) -> None:
        """Give every term of `vocabulary` (the lexicon's) a row, of zeros where it had none: the
        lexicon's list of a message's known terms is then this model's too, with no second lookup."""
        if self._shift:
            raise ValueError("the model's weights already live in a lexicon's table (adopt)")
        zero = sum(_OFFSET * _SCALE << (_BITS * c) for c in range(3)) + (3 << _META)  # weights 0, favouring no label
        for term in vocabulary:
            self._packed.setdefault(term, zero)

    def adopt(self, packed: dict[str, int], shift: int) -> None:
        """Keep the terms' weights in the lexicon's integers from bit `shift` on, where their
        sums come out of the lexicon's one sum() (Reading.learned_sum), instead of a second
        table of 15,000 integers. Call after cover(): every term of `packed` gets its fields;
        weights of a term `packed` lacks (one whose counts were deleted) are dropped with it."""
        if self._shift:
            raise ValueError("the model's weights already live in a lexicon's table")
        for term, fields in self._packed.items():
            if term in packed:
                packed[term] += fields << shift
        self._packed, self._shift = packed, shift

    def known(self, message_terms: Iterable[str]) -> list[str]:
        """The message's terms that have weights."""
        return [t for t in message_terms if t in self._packed]

    def read(self, found: list[str], rules_signals: dict[str, float], lean: float = 0.0, packed_sum: int | None = None) -> UrgencyReading:
        """The probabilities of urgent, important and normal for a message with these known
        terms (`known()`, or the lexicon's list where the model `cover`s the lexicon) and
        signals; `lean` is added to urgent's score when choosing (calling an urgent case
        anything else is the costly error), not to the probabilities, which are the evidence's.
        `packed_sum`: the terms' sum as the lexicon's reading made it."""
        total = sum(map(self._packed.__getitem__, found)) >> self._shift if packed_sum is None else packed_sum
        sums = [((total >> (_BITS * c)) & _MASK) / _SCALE - _OFFSET * len(found) for c in range(3)]
        add_weighted(sums, rules_signals, self._signals)
        p = softmax(sums)
        probabilities = (p[0], p[1], p[2])  # the evidence's, without the lean
        unleaned = sums.index(max(sums))
        sums[0] += lean
        best = sums.index(max(sums))
        return UrgencyReading(URGENCY[best], probabilities, found, tipped=best != unleaned)

    def strongest(self, reading: UrgencyReading) -> tuple[str, ...]:
        """Up to 3 terms of the message that favour its best urgency most, the strongest first
        (ranked once, at load: sorting a message's terms by margins computed then cost 20 µs)."""
        best = URGENCY.index(reading.best)
        packed, at = self._packed, self._shift + _META
        ranked = []
        for term in reading.found:
            meta = packed[term] >> at
            if meta & 3 == best:
                ranked.append((meta >> 2, term))
        ranked.sort()
        return tuple(term for _, term in ranked[:3])


def add_weighted(sums: list[float], features: dict[str, float], weights: Mapping[str, Sequence[float]]) -> None:
    """Add each feature's value times its three weights (if it has any) to the three sums."""
    for name, value in features.items():
        row = weights.get(name)
        if row is not None:
            sums[0] += row[0] * value
            sums[1] += row[1] * value
            sums[2] += row[2] * value


def softmax(sums: list[float]) -> list[float]:
    top = max(sums)
    exp = [math.exp(s - top) for s in sums]
    norm = exp[0] + exp[1] + exp[2]
    return [e / norm for e in exp]


def render_section(model: UrgencyModel) -> list[str]:
    """The model as the lexicon file's last section: its header, then the rules' signals,
    then the terms, strongest first."""
    lines = [
        "#",
        "# The learned urgency (classify/urgency_model.py): each feature's weight for urgent,",
        "# important and normal; a message's score for a label is the sum over its features.",
        "# Parenthesised features are what the keyword rules found; the others are terms, read only",
        "# with their counts above (delete a term's counts and its weights go too).",
        SECTION_HEADER,
    ]

    def strength(item: tuple[str, tuple[float, float, float]]) -> tuple[bool, float, str]:
        name, row = item
        return (not name.startswith("("), -max(map(abs, row)), name)

    for name, row in sorted(model.weights.items(), key=strength):
        lines.append(name + "\t" + "\t".join(f"{w:g}" for w in row))
    return lines
