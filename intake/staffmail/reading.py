"""Reading a staff member's reply, as plain data: their own text (quotes and signature
gone), the commands in it, and whether what is left may go to the customer.

The relay (relay.py) acts on a Reading; the reply corpus (tests, bench/reply_corpus.py)
reads the same way, so its figures are the daemon's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from intake.inbound.htmltext import html_to_text
from intake.inbound.message import ParsedMessage
from intake.inbound.quote import KnownText, staff_reply_text
from intake.staffmail import commands


@dataclass
class Reading:
    new_text: str  # what they wrote above (and between) the quote, signature gone
    parsed: commands.Parsed  # commands, errors, and the body to relay
    leaked: list[str] = field(default_factory=list)  # lines of our staff-only mail left in the body

    @property
    def relayable(self) -> bool:
        return not self.leaked and not self.parsed.errors and not self.parsed.internal and bool(self.parsed.body)


def read_reply(
    msg: ParsedMessage, known: KnownText, *, signatures: list[str], own_addresses: list[str], staff_lookup: Callable[[str], str | None], today: date
) -> Reading:
    # the HTML part only when the text was made from it (no text/plain part): cut on its structure first
    html = msg.html if msg.html and (not msg.text or msg.text == html_to_text(msg.html, [])) else None
    new_text = staff_reply_text(msg.text, html, known, signatures=signatures, own_addresses=own_addresses)
    parsed = commands.parse(new_text, staff_lookup=staff_lookup, today=today)
    leaked = [] if parsed.internal else [line.strip() for line in parsed.body.splitlines() if known.is_internal(line)]
    return Reading(new_text, parsed, leaked)
