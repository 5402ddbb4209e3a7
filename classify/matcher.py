"""One Aho–Corasick automaton over every keyword and negation phrase of a rule set.

A text is scanned once whatever the number of rules; the work afterwards is
proportional to the hits. Latin keywords respect word boundaries ('bug' does not
match 'debug'; 'crash*' matches 'crashes'); CJK keywords match anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import ahocorasick

from classify.normalize import normalize
from classify.rules import RuleSet

# A negation and its keyword must stand in the same sentence.
_SENTENCE_ENDS = frozenset("。.!?;\n")


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


@dataclass(frozen=True)
class Hit:
    rule: int        # index into RuleSet.rules
    keyword: str     # as written in the rules file
    start: int
    end: int         # exclusive


class Matcher:
    def __init__(self, ruleset: RuleSet) -> None:
        # pattern -> ([(rule index, keyword text, prefix)], negation id or -1)
        entries: dict[str, tuple[list[tuple[int, str, bool]], int]] = {}
        negation_ids: dict[str, int] = {}
        self.negation_text: list[str] = []
        self.rule_negations: list[frozenset[int]] = []
        for index, rule in enumerate(ruleset.rules):
            for kw in rule.keywords:
                entries.setdefault(kw.pattern, ([], -1))[0].append((index, kw.text, kw.prefix))
            ids = set()
            for phrase in rule.negations:
                pattern = normalize(phrase).strip()
                if pattern not in negation_ids:
                    negation_ids[pattern] = len(self.negation_text)
                    self.negation_text.append(phrase)
                ids.add(negation_ids[pattern])
            self.rule_negations.append(frozenset(ids))
        for pattern, nid in negation_ids.items():
            owners, _ = entries.get(pattern, ([], -1))
            entries[pattern] = (owners, nid)
        self.window = ruleset.negation_window
        self.automaton = ahocorasick.Automaton()
        for pattern, (owners, nid) in entries.items():
            self.automaton.add_word(pattern, (len(pattern), tuple(owners), nid))
        if entries:
            self.automaton.make_automaton()
        self.empty = not entries

    def scan(self, text: str) -> tuple[list[Hit], list[tuple[int, int, int]]]:
        """Keyword hits and negation occurrences (negation id, start, end) in normalised text."""
        hits: list[Hit] = []
        negations: list[tuple[int, int, int]] = []
        if self.empty or not text:
            return hits, negations
        n = len(text)
        for last, (length, owners, nid) in self.automaton.iter(text):
            start, end = last - length + 1, last + 1
            left_ok = start == 0 or not (_is_word_char(text[start]) and _is_word_char(text[start - 1]))
            right_open = end < n and _is_word_char(text[end - 1]) and _is_word_char(text[end])
            if not left_ok:
                continue
            if nid >= 0 and not right_open:
                negations.append((nid, start, end))
            for rule, keyword, prefix in owners:
                if prefix or not right_open:
                    hits.append(Hit(rule, keyword, start, end))
        return hits, negations

    def negated_by(self, text: str, hit: Hit, negations: list[tuple[int, int, int]]) -> str | None:
        """The negation phrase that cancels this hit: one of its rule's phrases that
        overlaps it or stands within the window, in the same sentence."""
        wanted = self.rule_negations[hit.rule]
        if not wanted:
            return None
        for nid, start, end in negations:
            if nid not in wanted:
                continue
            if start < hit.end and hit.start < end:
                return self.negation_text[nid]
            if end <= hit.start:
                gap = text[end:hit.start]
            elif start >= hit.end:
                gap = text[hit.end:start]
            else:  # pragma: no cover - overlap handled above
                continue
            if len(gap) <= self.window and not _SENTENCE_ENDS.intersection(gap):
                return self.negation_text[nid]
        return None
