"""Learning the learned urgency (classify/urgency_model.py) from labelled examples: the
weights of the lexicon file's last section.

Learned by stochastic gradient descent on the log loss (AdaGrad steps, an L2 pull toward
the base weights or toward 0), a fixed number of passes in an order seeded the same way on
every run: the same examples give the same file. Each example is classified by the keyword
rules first (the signals the model is given at classification time), so this module uses
the classifier, which reads the model: learning lives apart from reading.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable
from dataclasses import replace

from classify.classifier import Classifier
from classify.lexicon import Lexicon, terms
from classify.normalize import drop_quoted, normalize
from classify.rules import RuleSet
from classify.urgency_model import MAX_WEIGHT, URGENCY, UrgencyModel, add_weighted, signals, softmax


def learn_urgency(
    examples: Iterable[tuple[Iterable[str], dict[str, float], str]],
    vocabulary: Collection[str],
    *,
    base: UrgencyModel | None = None,
    passes: int = 15,
    step: float = 0.1,
    pull: float = 1e-3,
) -> UrgencyModel:
    """A model from (terms, signals, urgency) examples: terms outside `vocabulary` (the
    lexicon's terms) are not features. With a `base`, learning starts from its weights and
    is pulled toward them (a team's corrections adjust the shipped model, not replace it).
    Chosen on the tuned writer sets, leaving one out at a time (bench/classify_eval.md): 15
    passes, step 0.1, pull 1e-3 (1e-4 and 1e-2 each cost urgency or urgent cases)."""
    rows: list[tuple[dict[str, float], int]] = []
    for message_terms, rules_signals, urgency in examples:
        # sorted: the sums' order, hence the floats, the same whatever the hash seed
        features = {t: 1.0 for t in sorted(message_terms) if t in vocabulary}
        features.update(rules_signals)
        rows.append((features, URGENCY.index(urgency)))
    prior = {name: list(row) for name, row in (base.weights.items() if base is not None else ())}
    weights: dict[str, list[float]] = {name: list(row) for name, row in prior.items()}
    squares: dict[str, list[float]] = {}
    order = list(range(len(rows)))
    shuffle = random.Random(15).shuffle
    zero = [0.0, 0.0, 0.0]
    for _ in range(passes):
        shuffle(order)
        for i in order:
            features, label = rows[i]
            sums = [0.0, 0.0, 0.0]
            add_weighted(sums, features, weights)
            p = softmax(sums)
            errors = [p[c] - (c == label) for c in range(3)]
            for name, value in features.items():
                row = weights.setdefault(name, [0.0, 0.0, 0.0])
                square = squares.setdefault(name, [0.0, 0.0, 0.0])
                centre = prior.get(name, zero)
                for c in range(3):
                    gradient = errors[c] * value + pull * (row[c] - centre[c])
                    square[c] += gradient * gradient
                    row[c] -= step * gradient / (math.sqrt(square[c]) + 1e-8)
    learned = {}
    for name, row in weights.items():
        rounded = tuple(round(max(-MAX_WEIGHT, min(MAX_WEIGHT, w)), 3) + 0.0 for w in row)  # + 0.0: no "-0" in the file
        if any(rounded):
            learned[name] = (rounded[0], rounded[1], rounded[2])
    return UrgencyModel(learned)


def training_examples(classifier: Classifier, rows: Iterable[tuple[str, str, str]]) -> list[tuple[set[str], dict[str, float], str]]:
    """(subject, body, urgency) rows as the learning reads them: the message's terms and
    the rules' signals, each classified with the learned urgency switched off (what the model
    is given at classification time)."""
    rules_alone = Classifier(replace(classifier.ruleset, learned_urgency=False))
    examples = []
    for subject, body, urgency in rows:
        result = rules_alone.classify(subject, body)
        how = result.decision["urgency"]["how"]
        if how in ("type", "no_rush"):
            continue  # the rules keep the last word there: nothing for the model to learn
        text = normalize(subject or "") + "\n" + normalize(drop_quoted(body or ""))  # as the classifier reads it
        examples.append((terms(text), signals(result.scores, result.urgency, how, result.type), urgency))
    return examples


def with_learned_urgency(
    lexicon: Lexicon, ruleset: RuleSet, rows: Iterable[tuple[str, str, str | None]], base: UrgencyModel | None = None
) -> Lexicon:
    """The lexicon with an urgency learned from (subject, body, urgency) rows (rows without
    an urgency are skipped): the rules of `ruleset` give the signals, with this lexicon in
    force for the type; its terms are the model's vocabulary."""
    classifier = Classifier(replace(ruleset, lexicon=lexicon))
    labelled = [(subject, body, urgency) for subject, body, urgency in rows if urgency is not None]
    model = learn_urgency(training_examples(classifier, labelled), lexicon.counts, base=base)
    return Lexicon(lexicon.path, lexicon.examples, lexicon.counts, lexicon.smoothing, model)
