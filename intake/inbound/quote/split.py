"""Where the quoted earlier message starts, and what the writer added around it.

The quote starts at the first of:
- a client's marker: an attribution line, an "Original Message" line, a rule above a
  header block, a header block (intake.inbound.quote.markers);
- for staff replies, the first run of lines that are our own sent text (intake.inbound.quote.known),
  together with the header block or attribution line just above it, whatever its language.

Kept: the text above the quote without '>' lines; below a '>'-style quote, the writer's
lines between quoted blocks (interleaved answers), or everything after it when the
reply is bottom-posted. Then the signature goes: '-- ', a mobile line ("Sent from my
iPhone", "发自我的iPhone"), the writer's own signature text or bare address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from intake.inbound.quote import markers
from intake.inbound.quote.known import KnownText, normalise

_RUN_LONG = 40  # one line of ours this long is a quote by itself (HTML converted into one line)


def split(text: str, known: KnownText | None = None, signatures: Iterable[str] = (), own_addresses: Iterable[str] = ()) -> str:
    """The new text of a reply: quotes, our own text and signatures removed; may be ''."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut, marker_lines = _first_marker(lines)
    if known:
        run = _first_run_of_ours(lines, known)
        if run is not None and (cut is None or run < cut):
            cut, marker_lines = _back_over_header(lines, run), 0
        above = _attribution_above_our_quote(lines, known)
        if above is not None and (cut is None or above[0] < cut):
            cut, marker_lines = above
    if cut is None:
        kept = [line for line in lines if not markers.QUOTED.match(line)]
    else:
        head = [line for line in lines[:cut] if not markers.QUOTED.match(line)]
        answers = _answers_in_quote(lines[cut + marker_lines :], bottom_posted=not _has_content(head), known=known)
        while head and not head[-1].strip() and answers:
            head.pop()
        kept = head + answers
    kept = _drop_signature(kept, signatures, own_addresses)
    return "\n".join(line.rstrip() for line in kept).strip()


def _has_content(lines: list[str]) -> bool:
    return any(line.strip() and not markers.QUOTED.match(line) for line in lines)


def _first_content(lines: list[str]) -> int:
    """The index of the first line of content (len(lines): none). `lines[:i]` has content
    exactly when this is below i: found once, where asking per i cost a pass per line
    ("Hello" then 30,000 lines of '***': 1.4 s at 125 KB, 7 s at 250 KB)."""
    return next((i for i, line in enumerate(lines) if line.strip() and not markers.QUOTED.match(line)), len(lines))


def _first_marker(lines: list[str]) -> tuple[int | None, int]:
    for i in range(min(len(lines), markers.MAX_SCAN_LINES)):
        n = markers.quote_start(lines, i)
        if n:
            return i, n
    return None, 0


def _first_run_of_ours(lines: list[str], known: KnownText) -> int | None:
    """The first unquoted line of ours followed by another (or long enough alone); lines
    that are only the customer's words (a staff member citing them) start no run."""
    for i, line in enumerate(lines[: markers.MAX_SCAN_LINES]):
        if not line.strip() or markers.QUOTED.match(line) or not known.matches(line):
            continue
        following = next((lines[j] for j in range(i + 1, min(len(lines), i + 50)) if lines[j].strip()), None)
        if following is None or len(normalise(line)) >= _RUN_LONG:
            if not known.is_customers(line):
                return i
        elif known.matches(following) and not (known.is_customers(line) and known.is_customers(following)):
            return i
    return None


def _attribution_above_our_quote(lines: list[str], known: KnownText) -> tuple[int, int] | None:
    """A '>' block of our text with one or two lines ending in ':' right above it: the
    attribution of a client in a language the marker tables do not know ('… skrev X <' +
    'x@y>:'). Returns (its first line, how many lines up to the block)."""
    for i in range(1, min(len(lines), markers.MAX_SCAN_LINES)):
        if not markers.QUOTED.match(lines[i]) or markers.QUOTED.match(lines[i - 1]):
            continue
        block = [line for line in lines[i : i + 12] if markers.QUOTED.match(line) and line.strip("> \t")]
        if sum(known.matches(line) and not known.is_customers(line) for line in block) < 2:
            continue
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j < 0 or not lines[j].rstrip().endswith((":", "：")):
            return None
        top = j - 1 if j >= 1 and lines[j - 1].strip() and not markers.QUOTED.match(lines[j - 1]) and len(lines[j - 1]) < 120 else j
        if top < j and not any(c.isdigit() for c in lines[top] + lines[j]):
            top = j  # a wrapped attribution carries a date
        return top, i - top
    return None


def _back_over_header(lines: list[str], start: int) -> int:
    """Above our quoted text: blank lines, the client's attribution, the rule or 'Original
    Message' line, and its header block in any language ('Label: value' lines, two or
    more: a single 'Time: tomorrow 10:00' above a pasted quote is the writer's text)."""
    while start > 0:
        above = lines[start - 1]
        if not above.strip() or markers.is_rule(above) or markers.is_attribution(above):
            start -= 1
            continue
        top = start
        while top > 0 and lines[top - 1].strip() and _is_header_line(lines[top - 1]):
            top -= 1
        if start - top < 2:
            break
        start = top
    return start


def _is_header_line(line: str) -> bool:
    return bool(markers.header_role(line) or _GENERIC_HEADER.match(line))


# "Från: …", "Skickat: …": a header line of a language the marker tables do not know
_GENERIC_HEADER = re.compile(r"^[\s>*]*[^\W\d_][^\s:：]{0,19}(?:\s[^\s:：]{1,12}){0,2}\s*\*?\s*[:：]\s*\S")


def _answers_in_quote(tail: list[str], *, bottom_posted: bool, known: KnownText | None) -> list[str]:
    """The writer's own lines below the quote's start: only in '>'-style quotes, between
    quoted blocks (interleaved answers) or, bottom-posted, after them."""
    first = next((line for line in tail if line.strip()), "")
    if not markers.QUOTED.match(first):
        return []
    last_quoted = max(i for i, line in enumerate(tail) if markers.QUOTED.match(line))
    kept: list[str] = []
    for i, line in enumerate(tail):
        if markers.QUOTED.match(line) or markers.wraps_quoted_line(tail, i):
            continue
        if known and (known.matches(line) or _continues_our_quoted_line(tail, i, known)):
            continue
        if i < last_quoted or bottom_posted:
            if line.strip() and i < markers.MAX_SCAN_LINES and markers.quote_start(tail, i):
                break  # a second quote below the first: an old thread
            kept.append(line)
    if kept and any(line.strip() for line in kept):
        return [""] + kept
    return []


def _continues_our_quoted_line(tail: list[str], i: int, known: KnownText) -> bool:
    """A client that wraps long quoted lines without '>' on the continuation (Android's
    Gmail): the '>' line above and this one together are a line of ours."""
    if i == 0 or not markers.QUOTED.match(tail[i - 1]) or not tail[i].strip():
        return False
    return known.matches(tail[i - 1].lstrip().lstrip(">").strip() + tail[i].strip())


def _drop_signature(lines: list[str], signatures: Iterable[str], own_addresses: Iterable[str]) -> list[str]:
    """Cut at '-- ' or a mobile line near the end, at the writer's known signature, and
    drop a trailing line that is only their address; never cut away all the content."""
    first = _first_content(lines)
    tail_start = max(0, len(lines) - markers.MAX_SIGNATURE_LINES - 1)
    for i in range(tail_start, len(lines)):
        if markers.is_signature_start(lines[i]) and first < i:
            lines = lines[:i]
            break
    for signature in signatures:
        lines = _cut_known_signature(lines, [normalise(s) for s in signature.splitlines() if normalise(s)])
    addresses = {normalise(a) for a in own_addresses if a}
    end = len(lines)
    while end > first + 1 and (not lines[end - 1].strip() or normalise(lines[end - 1]) in addresses or markers.is_rule(lines[end - 1])):
        end -= 1
    return lines[:end]


def _cut_known_signature(lines: list[str], signature: list[str]) -> list[str]:
    if not signature:
        return lines
    normalised = [normalise(line) for line in lines]
    first = _first_content(lines)
    for i in range(len(lines) - 1, -1, -1):
        if normalised[i] != signature[0] or first >= i:
            continue
        rest = [n for n in normalised[i:] if n]
        if rest[: len(signature)] == signature:
            return lines[:i]
    return lines
