"""Issue 13 section 1, the quote stripper: indentation costs nothing extra.

The stripper's line patterns (header labels, attributions, "… wrote:" lines) began with an
unbounded `\\s*` or `[\\s>*|]*` before a bounded `.{m,n}`: on an indented line the regex engine
tried every split of the indent, so 1 MB of lines indented by 200 spaces took 5.3 s, and lines
indented by 96 spaces that end like an attribution took 4.5 s (10 s per MB before the line cap).
A line's indentation is now skipped once before those patterns. Measured as a ratio against the
same lines without indentation (the machine's speed cancels out), not against a clock.
"""

from __future__ import annotations

import time

import pytest

from intake.inbound.quote import strip_quoted

LINES = 3_000
RATIO_BOUND = 6  # indented lines are longer (the indent is read once); before the fix: 40-100


def cpu(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        strip_quoted(text)
        best = min(best, time.process_time() - start)
    return max(best, 0.002)


@pytest.mark.parametrize(
    "line",
    [
        "plain text that says nothing in particular",
        "On Monday John Smith wrote am the thing that was here",  # attribution-like, no colon
        "From Li Na about the order and what happened then",  # header-label-like
        "2026-11-23 10:00 li@kehu.example.cn wrote something",  # dated, with an address
        "在 2026年11月23日 张三 说了一些话但没有写道",
    ],
)
def test_indented_lines_cost_about_what_plain_lines_cost(line):
    flat = "Hello,\n" + "\n".join(f"{line} {n}" for n in range(LINES))
    indented = "Hello,\n" + "\n".join(f"{' ' * 200}{line} {n}" for n in range(LINES))
    flat_time, indented_time = cpu(flat), cpu(indented)
    assert indented_time / flat_time < RATIO_BOUND, (line, flat_time, indented_time)


def test_indentation_does_not_hide_a_real_attribution():
    text = "Thanks, done.\n\n    On Mon, 23 Nov 2026 at 10:00, Support <support@example.com> wrote:\n    > old text\n"
    assert strip_quoted(text).strip() == "Thanks, done."


@pytest.mark.parametrize("rule", ["***", "* * *", "-----", "_____", ""])
def test_trailing_rule_lines_cost_linear_time(rule):
    """'Hello' then thousands of rule lines: the signature trim asked 'is there content above?'
    once per trailing line, each time over the whole text (250 KB: 7 s). Review finding."""
    small = "Hello\n" + f"{rule}\n" * 3_000
    big = "Hello\n" + f"{rule}\n" * 30_000
    small_time, big_time = cpu(small), cpu(big)
    assert big_time / small_time < 30, (rule, small_time, big_time)
    assert strip_quoted(big).strip().startswith("Hello")
