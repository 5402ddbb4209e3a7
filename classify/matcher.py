"""One Aho–Corasick automaton over every keyword and negation phrase of a rule set.

A text is scanned once whatever the number of rules; the work afterwards is
proportional to the hits. Latin keywords respect word boundaries ('bug' does not
match 'debug'; 'crash*' matches 'crashes'); CJK keywords match anywhere. A keyword
written '^how' matches only at the start of a sentence or clause, so a question's
opening word can count without every 'how' in the middle of a report counting.

Keywords and texts go into the automaton as UTF-8 bytes (spelled as latin-1
characters), not as Unicode characters: pyahocorasick searches a trie node's
children one by one, and a large Chinese rule set gives the root node tens of
thousands of children (one per distinct first character), which made a 100×
rule set ~30× slower. Over bytes a node has at most 256 children. ASCII keeps its
byte values, so word-boundary checks read the same; positions are byte offsets.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import NamedTuple

import ahocorasick

from classify.normalize import normalize
from classify.rules import RuleSet


def to_bytes(text: str) -> str:
    """UTF-8 bytes of the text, one latin-1 character per byte."""
    return text.encode("utf-8").decode("latin-1")


# A negation and its keyword must stand in the same sentence.
_SENTENCE_ENDS = tuple(to_bytes(ch) for ch in "。.!?;\n")
# What may stand before an anchored ('^how') keyword: the start of the text or the end
# of a sentence or clause (after NFKC full-width ，：！？ are their ASCII forms).
_CLAUSE_ENDS = tuple(to_bytes(ch) for ch in "。.!?;\n,:、")


def _char_count(raw: str) -> int:
    """Characters in a byte-spelled string: UTF-8 continuation bytes do not start one."""
    return sum(1 for ch in raw if not 0x80 <= ord(ch) < 0xC0)


# ASCII letters, digits and '_': what a Latin keyword may not continue into ("bug" is not
# in "debug"). A set lookup: this test runs twice for every hit.
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _starts_clause(text: str, start: int) -> bool:
    """Whether only spaces lie between `start` and the text's start or a clause end.
    Reads back from `start` without copying the text before it (a copy per hit made a
    text full of anchored keywords cost quadratic time)."""
    while start > 0 and text[start - 1].isspace():
        start -= 1
    return start == 0 or text.endswith(_CLAUSE_ENDS, 0, start)


class Hit(NamedTuple):  # a named tuple: made for every keyword found, cheaper than a dataclass
    rule: int  # index into RuleSet.rules
    keyword: str  # as written in the rules file
    start: int
    end: int  # exclusive


class Matcher:
    def __init__(self, ruleset: RuleSet) -> None:
        # pattern -> ([(rule index, keyword text, prefix, anchored)], negation id or -1)
        entries: dict[str, tuple[list[tuple[int, str, bool, bool]], int]] = {}
        negation_ids: dict[str, int] = {}
        self.negation_text: list[str] = []
        self.rule_negations: list[frozenset[int]] = []
        for index, rule in enumerate(ruleset.rules):
            for kw in rule.keywords:
                entries.setdefault(kw.pattern, ([], -1))[0].append((index, kw.text, kw.prefix, kw.anchored))
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
            raw = to_bytes(pattern)
            self.automaton.add_word(raw, (len(raw), tuple(owners), nid))
        if entries:
            self.automaton.make_automaton()
        self.empty = not entries
        # How far from a hit (in bytes) a negation that cancels it can end: a window
        # of characters is at most 4 bytes each, and the negation's own length.
        self.reach = 4 * self.window + max((len(to_bytes(p)) for p in negation_ids), default=0)

    def scan(self, normalized: str) -> tuple[str, list[Hit], list[tuple[int, int, int]]]:
        """The text as bytes, its keyword hits and its negation occurrences (negation id,
        start, end) in the order of their ends, positions in bytes."""
        text = to_bytes(normalized)
        hits: list[Hit] = []
        negations: list[tuple[int, int, int]] = []
        if self.empty or not text:
            return text, hits, negations
        n = len(text)
        for last, (length, owners, nid) in self.automaton.iter(text):
            start, end = last - length + 1, last + 1
            left_ok = start == 0 or not (text[start] in _WORD_CHARS and text[start - 1] in _WORD_CHARS)
            right_open = end < n and text[end - 1] in _WORD_CHARS and text[end] in _WORD_CHARS
            if not left_ok:
                continue
            if nid >= 0 and not right_open:
                negations.append((nid, start, end))
            for rule, keyword, prefix, anchored in owners:
                if (prefix or not right_open) and (not anchored or _starts_clause(text, start)):
                    hits.append(Hit(rule, keyword, start, end))
        return text, hits, negations

    def negated_by(self, text: str, hit: Hit, negations: list[tuple[int, int, int]]) -> str | None:
        """The negation phrase that cancels this hit: one of its rule's phrases that
        overlaps it or stands within the window (in characters), in the same sentence.
        `text` and `negations` are what scan() returned (negations in the order of
        their ends). Only the negations ending within reach of the hit are looked at,
        found by bisection: the cost of a hit does not grow with the text."""
        wanted = self.rule_negations[hit.rule]
        if not wanted:
            return None
        first = bisect_left(negations, hit.start - self.reach, key=_end)
        last = bisect_right(negations, hit.end + self.reach, key=_end)
        for index in range(first, last):
            nid, start, end = negations[index]
            if nid not in wanted:
                continue
            if start < hit.end and hit.start < end:
                return self.negation_text[nid]
            if end <= hit.start:
                gap_start, gap_end = end, hit.start
            elif start >= hit.end:
                gap_start, gap_end = hit.end, start
            else:  # pragma: no cover - overlap handled above
                continue
            # a character is 1 to 4 bytes: count only when the byte length leaves doubt
            size = gap_end - gap_start
            if size > 4 * self.window:
                continue
            gap = text[gap_start:gap_end]
            near = size <= self.window or _char_count(gap) <= self.window
            if near and not any(end_mark in gap for end_mark in _SENTENCE_ENDS):
                return self.negation_text[nid]
        return None


def _end(negation: tuple[int, int, int]) -> int:
    return negation[2]
