"""A writer's signature learned from their earlier replies: the closing lines that end
what they wrote in at least two of them (a sign-off with name, department, phone)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from intake.inbound.quote.known import normalise
from intake.inbound.quote.split import split

MAX_LINES = 6


def learned_signature(earlier: Iterable[str], *, min_replies: int = 2) -> str:
    """The longest run of 2 to 6 lines ending the new text of `min_replies` earlier
    replies, each with text above it; '' when there is none. A single closing line
    ("谢谢！") is part of the answer, never a signature, and so is a run holding a line that
    starts with '#': a staff command (intake/staffmail/commands.py) that a member ends
    several replies with ("#urgency urgent / 已转技术部。") would otherwise be cut off as
    their signature, and the command and the answer dropped."""
    tails = []
    for text in earlier:
        lines = [line.strip() for line in split(text).splitlines() if line.strip()]
        tails.append(lines)
    for size in range(MAX_LINES, 1, -1):
        seen = Counter(tuple(normalise(line) for line in lines[-size:]) for lines in tails if len(lines) > size)
        for key, count in seen.most_common():
            if count < min_replies:
                break
            if sum(len(n) for n in key) >= 6 and not any(line.startswith("#") for line in key):
                lines = next(lines for lines in tails if len(lines) > size and tuple(normalise(x) for x in lines[-size:]) == key)
                return "\n".join(lines[-size:])
    return ""
