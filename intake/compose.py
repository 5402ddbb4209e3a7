"""Outgoing mail as bytes: built once, stored in the outbox, sent as stored."""
from __future__ import annotations

import base64
import secrets
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import format_datetime, formataddr

from intake.models import utcnow
from intake.render import RenderedMail


class _Compat32CRLF(Compat32):
    """compat32 with RFC 5322 line ends. A plain ASCII header that fits on its line (or
    is folded already, by folded_words) is written as it is: compat32 would build an
    email.header.Header for every header just to return the same bytes, half the cost
    of composing a mail."""

    def fold_binary(self, name, value):
        if isinstance(value, str) and value.isascii():
            lines = f"{name}: {value}".split("\r\n ")  # folded already (folded_words), or one line
            if all(len(line) <= 77 and "\r" not in line and "\n" not in line for line in lines):
                return self.linesep.join(lines[:1] + [" " + line for line in lines[1:]]).encode("ascii") + self.linesep.encode("ascii")
        return super().fold_binary(name, value)


_CRLF = _Compat32CRLF(linesep="\r\n")

# UTF-8 bytes in one encoded-word: 56 base64 characters, 68 with =?utf-8?b?...?=
# (RFC 2047 allows 75), so that "Subject: " and the first word fit on one line
_WORD_BYTES = 42


def folded_words(text: str) -> str:
    """A header text as RFC 2047 writes it: ASCII as it is; otherwise base64 UTF-8
    encoded-words, each of whole characters and on its own folded line (a reader joins
    adjacent words). email.header.Header does the same at several times the cost,
    weighing base64 against quoted-printable for every character."""
    if text.isascii():
        return text
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in text:
        n = len(char.encode("utf-8", "surrogatepass"))
        if size + n > _WORD_BYTES:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += n
    words.append("".join(chunk))
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode('utf-8', 'surrogatepass')).decode('ascii')}?=" for w in words)


def new_message_id(kind: str, ticket_ref: str, domain: str) -> str:
    """Unique and stable: chosen once, stored with the outbox row, reused on every resend."""
    return f"{kind}.{ticket_ref}.{secrets.token_hex(8)}@{domain}"


def compose(
    mail: RenderedMail,
    *,
    message_id: str,
    from_name: str,
    from_addr: str,
    to_addr: str,
    to_name: str = "",
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    auto_submitted: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    # The compat32 MIME classes: byte-for-byte the same kind of mail as the modern
    # EmailMessage API, at a seventh of the cost (measured: 0.15 ms against 1.0 ms),
    # which matters on the acknowledgement path.
    text = MIMEText(mail.text, "plain", "utf-8")
    if mail.html:
        msg = MIMEMultipart("alternative")
        msg.attach(text)
        msg.attach(MIMEText(mail.html, "html", "utf-8"))
    else:
        msg = text
    # display names come from customers: one line, whatever they typed
    from_name, to_name = " ".join(from_name.split()), " ".join(to_name.split())
    msg["From"] = formataddr((from_name, from_addr), charset="utf-8")
    msg["To"] = formataddr((to_name, to_addr), charset="utf-8") if to_name else to_addr
    msg["Subject"] = folded_words(mail.subject)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = " ".join(f"<{r}>" for r in [*(references or []), in_reply_to] if r)
    if auto_submitted:
        # RFC 3834: tells other responders not to answer us, which ends mail loops
        msg["Auto-Submitted"] = auto_submitted
        msg["X-Auto-Response-Suppress"] = "All"
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    return msg.as_bytes(policy=_CRLF)  # RFC 5322 line ends: some servers refuse bare LF
