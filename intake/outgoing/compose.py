"""Outgoing mail as bytes: built once, stored in the outbox, sent as stored."""

from __future__ import annotations

import base64
import re
import secrets
from email.policy import Compat32
from email.utils import format_datetime, formataddr

from intake.outgoing.templates import RenderedMail
from intake.store.models import utcnow


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
    """The mail as compat32's MIMEText (or MIMEMultipart of a text and an HTML part)
    would write it: UTF-8 parts in base64, RFC 5322 line ends. Written directly:
    building the email package's objects and running its generator cost a sixth of
    the pipeline's CPU for the two mails of a new ticket."""
    # display names come from customers: one line, whatever they typed
    from_name, to_name = " ".join(from_name.split()), " ".join(to_name.split())
    _refuse_line_breaks(
        {
            "From": from_addr,
            "To": to_addr,
            "Subject": mail.subject,
            "Message-ID": message_id,
            "In-Reply-To": in_reply_to or "",
            "References": " ".join(references or []),
            "Auto-Submitted": auto_submitted or "",
            **(extra_headers or {}),
        }
    )
    headers = [
        ("From", _address("From", from_name, from_addr)),
        ("To", _address("To", to_name, to_addr)),
        ("Subject", folded_words(mail.subject)),
        ("Date", format_datetime(utcnow())),
        ("Message-ID", f"<{message_id}>"),
    ]
    if in_reply_to:
        headers.append(("In-Reply-To", f"<{in_reply_to}>"))
        headers.append(("References", " ".join(f"<{r}>" for r in [*(references or []), in_reply_to] if r)))
    if auto_submitted:
        # RFC 3834: tells other responders not to answer us, which ends mail loops
        headers.append(("Auto-Submitted", auto_submitted))
        headers.append(("X-Auto-Response-Suppress", "All"))
    headers += (extra_headers or {}).items()
    if not mail.html:
        return _header_block([*_TEXT_PART["plain"], *headers]) + b"\r\n" + _base64_lines(mail.text)
    # base64 bodies never hold "_": the boundary cannot occur inside a part
    boundary = f"=_intake_{secrets.token_hex(12)}"
    delimiter = f"--{boundary}\r\n".encode("ascii")
    top = [("Content-Type", f'multipart/alternative; boundary="{boundary}"'), ("MIME-Version", "1.0")]
    return b"".join(
        [
            _header_block([*top, *headers]),
            b"\r\n",
            delimiter,
            _header_block(_TEXT_PART["plain"]),
            b"\r\n",
            _base64_lines(mail.text),
            b"\r\n",
            delimiter,
            _header_block(_TEXT_PART["html"]),
            b"\r\n",
            _base64_lines(mail.html),
            b"\r\n",
            f"--{boundary}--\r\n".encode("ascii"),
        ]
    )


_LINE_BREAK = re.compile(r"[\r\n\x00]")


class HeaderInjection(ValueError):
    """A header value would end its line (and could end the header block) early."""


def _refuse_line_breaks(values: dict[str, str]) -> None:
    """No value from anywhere may carry a line break (or a NUL) into our headers: a bare
    line there ends the header block, and what follows (our Auto-Submitted, say) is
    lost. Values are checked before folding adds its own. Input is cleaned where it is
    read (Message-IDs, subjects, names); this is the last line of defence."""
    for name, value in values.items():
        if _LINE_BREAK.search(value):
            raise HeaderInjection(f"{name} header value contains a line break: {value[:80]!r}")


def _address(header: str, name: str, addr: str) -> str:
    """A mailbox as formataddr writes it, with the address on a line of its own when
    the encoded name leaves no room for it: formataddr's one line for a name such as
    "客户服务中心 Customer Service" sent the header down compat32's slow folding path
    (Header objects) on every mail."""
    if not name:
        return addr
    if name.isascii():
        return formataddr((name, addr))
    word = folded_words(name)
    if "\r\n" in word:  # a name of several words: some readers would show spaces between them
        return formataddr((name, addr), charset="utf-8")
    separator = " " if len(header) + 2 + len(word) + 3 + len(addr) <= 77 else "\r\n "  # the address on a line of its own
    return f"{word}{separator}<{addr}>"


_TEXT_PART = {
    subtype: [("Content-Type", f'text/{subtype}; charset="utf-8"'), ("MIME-Version", "1.0"), ("Content-Transfer-Encoding", "base64")]
    for subtype in ("plain", "html")
}


def _header_block(headers) -> bytes:
    # compat32's own folding, with the fast path for what is folded already
    return b"".join(_CRLF.fold_binary(name, value) for name, value in headers)


def _base64_lines(text: str) -> bytes:
    """UTF-8 in base64 lines of 76 characters (as email.base64mime writes a body)."""
    return base64.encodebytes(text.encode("utf-8", "replace")).replace(b"\n", b"\r\n")
