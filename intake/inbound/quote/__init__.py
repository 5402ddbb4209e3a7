"""Find the new part of a reply: drop quoted earlier messages and signatures.

`strip_quoted` serves every mail (a customer's reply, the text shown to staff): client
markers only, and conservative, since a ticket that keeps a little quoted text is
better than one that lost what the customer wrote.

`staff_reply_text` serves staff replies, whose new text is relayed to a customer:
there we also know what we sent (KnownText), so our own quoted lines are recognised
whatever the client's markers look like, and HTML-only replies are cut at the
client's quote container before conversion.
"""

from __future__ import annotations

from collections.abc import Iterable

from intake.inbound.htmltext import html_to_text
from intake.inbound.quote.htmlcut import cut_html
from intake.inbound.quote.known import KnownText, normalise
from intake.inbound.quote.signature import learned_signature
from intake.inbound.quote.split import split

__all__ = ["KnownText", "learned_signature", "normalise", "staff_reply_text", "strip_quoted"]


def strip_quoted(text: str) -> str:
    """`text` without quoted earlier replies and signatures.

    Never returns an empty string for text that has content of its own: if nothing
    but quotes is left, the whole text (stripped) comes back."""
    return split(text) or text.strip()


def staff_reply_text(text: str, html: str | None, known: KnownText, *, signatures: Iterable[str] = (), own_addresses: Iterable[str] = ()) -> str:
    """What a staff member wrote above (and between) the quote; '' if nothing.

    `text` is the reply's text as parsed; `html` its HTML part when the text was made
    from it (no text/plain part), so the cut can happen on the client's structure first."""
    if html:
        text = html_to_text(cut_html(html), [])
    return split(text, known, signatures, own_addresses)
