"""Our own text, recognised in a reply however the client quoted it.

We store every mail we send (intake.outgoing.queue.queue_mail: the outbox keeps its bytes
and Message-ID). A staff member's reply to a notification quotes it: with or without
'>' prefixes, re-wrapped, converted from HTML, with other whitespace. Lines are
compared normalised (NFKC, quote prefixes, whitespace and mailto: decorations gone,
lower case), whole or as a piece of our text, so a re-wrapped line still matches.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MIN_LINE = 6  # shorter lines ("您好：", "Hi Li,") say nothing about where they came from
MIN_PIECE = 12  # a piece of one of our lines, cut by a client's re-wrapping
_PREFIX = re.compile(r"^[\s>|]+")
_MAILTO = re.compile(r"[<\[(]mailto:[^>\])]*[>\])]", re.IGNORECASE)
_SPACE = re.compile(r"[\s\u200b\ufeff]+")


def normalise(line: str) -> str:
    """The line's characters that survive any client's quoting: no '>' prefix, no spaces."""
    line = unicodedata.normalize("NFKC", line)
    line = _MAILTO.sub("", _PREFIX.sub("", line))
    return _SPACE.sub("", line).lower()


class KnownText:
    """Texts we sent on a ticket. `internal` texts went to staff only (notifications,
    reminders, error replies); `public` ones the customer saw (acknowledgement, survey);
    `customer`: what the customer wrote (our notifications quote it, and so may a staff
    member's answer: a run of only their lines does not start the quote).
    `theirs`: the staff member's own earlier replies, which our error replies echo:
    their lines are neither ours to cut at nor internal. An earlier reply is stored as it
    came, with the notification it quoted: `ours_alone` are the texts we wrote ourselves
    (every mail but those echoing staff text), and a line of them is never taken for the
    staff member's own (else one quoting reply would disarm the cut and the safety net
    for every later reply on the ticket)."""

    def __init__(
        self,
        internal: Iterable[str] = (),
        public: Iterable[str] = (),
        theirs: Iterable[str] = (),
        customer: Iterable[str] = (),
        ours_alone: Iterable[str] | None = None,
    ) -> None:
        internal, public = list(internal), list(public)
        written_by_us = {normalise(line) for text in (internal + public if ours_alone is None else ours_alone) for line in text.splitlines()}
        own = {normalise(line) for text in theirs for line in text.splitlines()} - written_by_us
        customer_lines = [n for n in (normalise(line) for text in customer for line in text.splitlines()) if n not in own]
        internal_lines = [n for n in (normalise(line) for text in internal for line in text.splitlines()) if n not in own]
        public_lines = customer_lines + [n for n in (normalise(line) for text in public for line in text.splitlines()) if n not in own]
        self._customer_lines = {n for n in customer_lines if n}
        self._customer_blob = "\n".join(customer_lines)
        self._lines = {n for n in internal_lines + public_lines if len(n) >= MIN_LINE}
        self._blob = "\n".join(("".join(internal_lines), "".join(public_lines)))
        public_set = set(public_lines)
        private = [n for n in internal_lines if n not in public_set]
        self._private_lines = {n for n in private if len(n) >= MIN_LINE}
        self._private_blob = "\n".join(private)

    def __bool__(self) -> bool:
        return bool(self._lines)

    def matches(self, line: str) -> bool:
        """This line (or a re-wrapped piece of it) is one of ours."""
        n = normalise(line)
        return len(n) >= MIN_LINE and (n in self._lines or (len(n) >= MIN_PIECE and n in self._blob))

    def is_customers(self, line: str) -> bool:
        """This line (or a piece of one) is the customer's own writing."""
        n = normalise(line)
        return bool(n) and (n in self._customer_lines or (len(n) >= MIN_PIECE and n in self._customer_blob))

    def is_internal(self, line: str) -> bool:
        """This line is from a staff-only mail and from no text the customer has seen."""
        n = normalise(line)
        if len(n) < MIN_LINE:
            return False
        return n in self._private_lines or (len(n) >= MIN_PIECE and any(n in p for p in self._private_blob.split("\n") if len(p) >= len(n)))
