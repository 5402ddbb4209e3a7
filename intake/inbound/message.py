"""Parse the raw bytes of one email into a ParsedMessage: decoded headers, readable
text, the new part of a reply, attachments, and notes of whatever degraded.

Pure logic, no I/O. A part that cannot be decoded degrades alone and leaves a note
in `defects`; only input that is not an email at all raises UnparseableMessage.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from email.policy import Compat32

from intake.inbound.charsets import cjk_share, decode_bytes, decode_header, raw_header_bytes
from intake.inbound.htmltext import html_to_text
from intake.inbound.quote import strip_quoted

log = logging.getLogger("intake.parse")

MAX_DEPTH = 30  # MIME nesting deeper than any real mail; guards against hostile input
ZH_SHARE = 0.1  # Han characters / (Han + Latin letters) from which a text counts as Chinese

# A header block must name at least one of these to be an email rather than random text.
_KNOWN_HEADERS = frozenset(
    "from to cc subject date message-id received return-path mime-version content-type "
    "sender reply-to delivered-to in-reply-to references x-mailer user-agent".split()
)
_MSGID = re.compile(r"<\s*([^<>\s]+?)\s*>")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_MBOX_FROM = re.compile(rb"\AFrom [^\r\n]*\r?\n")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')


@dataclass
class Attachment:
    """One attached file, decoded."""

    filename: str  # decoded and sanitised; never empty ("attachment-1.bin")
    content_type: str  # lower-case "type/subtype"
    size: int  # size of the decoded content
    data: bytes  # b"" when over the size limit (then truncated=True)
    truncated: bool = False


@dataclass
class ParsedMessage:
    """What the pipeline needs to know about one email."""

    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    from_addr: str
    from_name: str
    reply_to: str | None
    to_addrs: list[str]
    cc_addrs: list[str]
    subject: str
    date: datetime | None
    text: str
    html: str | None
    new_text: str
    language: str
    attachments: list[Attachment]
    headers: list[tuple[str, str]]
    defects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), decoded; None if absent."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    def header_all(self, name: str) -> list[str]:
        """Every value of header `name` (any case), decoded, in order."""
        name = name.lower()
        return [value for key, value in self.headers if key == name]


# Header values are cut to these sizes as they are read, before the standard library
# parses them: its parameter parser (get_param, get_boundary) takes time quadratic in
# the number of ";" (a Content-Type of 80,000 took 7.6 s). The raw bytes stay whole.
MAX_HEADER_CHARS = 65_536  # any header (a To of a thousand recipients is ~40 KB)
MAX_PARAMETER_HEADER_CHARS = 8_192  # Content-Type, Content-Disposition: a long RFC 2231 file name is ~3 KB
MAX_PARAMETERS = 64  # ";" in those (a file name in RFC 2231 sections takes a few dozen)
_PARAMETER_HEADERS = frozenset({"content-type", "content-disposition"})


class _RawHeaders(Compat32):
    """compat32, except that header values come back exactly as received, cut to size.
    compat32 turns raw 8-bit bytes into U+FFFD; we keep them (as surrogate escapes) so
    that an undeclared GBK subject or file name can still be decoded by guess. A policy
    is made for each message: `cut` collects a note per header cut to size."""

    cut: list[str] | None = None

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        value, note = _cut_to_size(name, value)
        if note and self.cut is not None:
            self.cut.append(f"{name.strip()}: {note}")
        return name, value


def _cut_to_size(name: str, value: str) -> tuple[str, str | None]:
    """The value within the limits above, and a note when it was cut."""
    note = None
    limit = MAX_PARAMETER_HEADER_CHARS if name.strip().lower() in _PARAMETER_HEADERS else MAX_HEADER_CHARS
    if len(value) > limit:
        note = f"{len(value)} characters, cut to {limit}"
        value = value[:limit]
    if limit == MAX_PARAMETER_HEADER_CHARS:
        end = -1
        for _ in range(MAX_PARAMETERS + 1):
            end = value.find(";", end + 1)
            if end < 0:
                break
        if end >= 0:
            note = f"more than {MAX_PARAMETERS} parameters, cut after the {MAX_PARAMETERS}th"
            value = value[:end]
    return value, note


class UnparseableMessage(Exception):
    """The input is not an email message at all; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_message(raw: bytes, *, max_attachment_bytes: int = 10_000_000) -> ParsedMessage:
    """Parse raw email bytes. Raises only UnparseableMessage."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise UnparseableMessage(f"input is {type(raw).__name__}, not bytes")
    raw = bytes(raw)
    if not raw.strip():
        raise UnparseableMessage("empty input")
    try:
        return _parse(raw, max_attachment_bytes)
    except UnparseableMessage:
        raise
    except RecursionError:
        raise UnparseableMessage("MIME structure nested too deeply to parse") from None
    except Exception as exc:  # a parser bug must quarantine one message, not stop the daemon
        log.exception("parser failed")
        raise UnparseableMessage(f"internal parser error: {type(exc).__name__}: {exc}") from exc


@dataclass
class _Body:
    """What the walk over the MIME tree collects."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    # Bodies found inside winmail.dat: used only when the MIME parts carry no text,
    # since Outlook usually sends the same body as text/plain beside it.
    tnef_plain: list[str] = field(default_factory=list)
    tnef_html: list[str] = field(default_factory=list)


def _parse(raw: bytes, max_bytes: int) -> ParsedMessage:
    raw = _MBOX_FROM.sub(b"", raw.lstrip(b"\r\n"), count=1)
    cut: list[str] = []
    # A policy takes any of its class attributes as a keyword (email._policybase); typeshed lists only the base ones.
    policy = _RawHeaders(cut=cut)  # type: ignore[call-arg]
    msg = message_from_bytes(raw, policy=policy)
    names = {str(key).lower() for key in msg.keys()}
    if not names & _KNOWN_HEADERS:
        raise UnparseableMessage("no header block: not an RFC 5322 message")

    defects: list[str] = [f"header {note}" for note in cut]
    headers: list[tuple[str, str]] = []
    for key, value in msg.items():
        text, header_defects = decode_header(str(value))
        headers.append((_storable(str(key)).lower(), _storable(text).strip()))
        defects.extend(f"{key}: {d}" for d in header_defects)

    body = _Body()
    _walk(msg, body, 0, max_bytes)
    defects.extend(body.defects)
    if not any(t.strip() for t in body.plain + body.html):
        body.plain, body.html = body.tnef_plain, body.tnef_html
    html = "\n".join(body.html) if body.html else None
    text = "\n\n".join(t for t in body.plain if t.strip())
    if not text.strip() and html:
        text = html_to_text(html, defects)
    text = _storable(text).replace("\r\n", "\n").replace("\r", "\n").strip()
    html = _storable(html) if html is not None else None

    from_name, from_addr = _first_address(msg, "from", defects)
    if not from_addr:
        from_name, from_addr = _first_address(msg, "sender", defects)
    if not from_addr and not text and not body.attachments:
        raise UnparseableMessage("no sender address and no body")
    reply_to = _first_address(msg, "reply-to", defects)[1] or None

    subject = " ".join(_header_text(msg, "subject").split())
    new_text = strip_quoted(text)
    return ParsedMessage(
        message_id=_message_id(_header_text(msg, "message-id"), defects),
        in_reply_to=_ids(_header_text(msg, "in-reply-to"), defects, "In-Reply-To"),
        references=_ids(" ".join(_raw_all(msg, "references")), defects, "References"),
        from_addr=from_addr,
        from_name=from_name,
        reply_to=reply_to,
        to_addrs=[addr for _, addr in _addresses(msg, "to", defects)],
        cc_addrs=[addr for _, addr in _addresses(msg, "cc", defects)],
        subject=subject,
        date=_date(_header_text(msg, "date"), defects),
        text=text,
        html=html,
        new_text=new_text,
        language="zh" if cjk_share(subject + "\n" + new_text) >= ZH_SHARE else "en",
        attachments=body.attachments,
        headers=headers,
        defects=list(dict.fromkeys(defects)),  # once each, in order
    )


# ---- headers ---------------------------------------------------------------------


def _storable(text: str) -> str:
    """Drop NUL characters: never meaningful in mail text, and refused by PostgreSQL."""
    return text.replace("\x00", "") if "\x00" in text else text


def _raw_all(msg: Message, name: str) -> list[str]:
    return [_FOLD.sub("", str(v)) for v in (msg.get_all(name) or [])]


def _header_text(msg: Message, name: str) -> str:
    values = _raw_all(msg, name)
    return _storable(decode_header(values[0])[0]).strip() if values else ""


def _ids(value: str, defects: list[str], name: str) -> list[str]:
    """The valid Message-IDs in In-Reply-To or References, once each; invalid ones are
    dropped (they would go into our own mail's headers) and noted."""
    found = _MSGID.findall(value)
    if not found:  # clients that drop the angle brackets still separate ids by white space
        found = [token for token in value.split() if "@" in token]
    valid = [i for i in dict.fromkeys(found) if valid_message_id(i)]
    if len(valid) < len(dict.fromkeys(found)):
        defects.append(f"{name}: {len(dict.fromkeys(found)) - len(valid)} invalid Message-ID(s) dropped")
    return valid


# A Message-ID goes into the headers of our own mail (In-Reply-To, References): it must
# be one RFC 5322 msg-id, left@right in visible ASCII, of a length real mailers use.
MAX_MESSAGE_ID = 250
_VALID_MSGID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")  # printable ASCII without "<", ">", white space


def valid_message_id(value: str) -> bool:
    return len(value) <= MAX_MESSAGE_ID and _VALID_MSGID.fullmatch(value) is not None


def checked_message_id(value: str | None, defects: list[str], *, source: str = "Message-ID") -> str | None:
    """`value` when it is a valid Message-ID (without its angle brackets); an invalid one
    is replaced by one made from it (the same value always gives the same id, so dedupe
    still works) and the defect is recorded; None when there is none."""
    if not value:
        return None
    if valid_message_id(value):
        return value
    shown = value[:80].encode("unicode_escape").decode("ascii")
    defects.append(f"{source} {shown!r} is not a valid Message-ID (syntax, length or control characters); replaced")
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"replaced.{digest}@invalid.intake"


def _message_id(value: str, defects: list[str]) -> str | None:
    ids = _MSGID.findall(value)
    if ids:
        return checked_message_id(ids[0], defects)
    value = value.strip().strip("<>").strip()
    return checked_message_id(value, defects)


def _addresses(msg: Message, name: str, defects: list[str]) -> list[tuple[str, str]]:
    """(decoded display name, lower-cased bare address) for every address in header `name`."""
    values = _raw_all(msg, name)
    if not values:
        return []
    try:
        pairs = email.utils.getaddresses(values)
    except Exception:
        defects.append(f"{name}: could not be read as addresses")
        return []
    result = []
    for raw_name, raw_addr in pairs:
        addr = raw_addr.strip()
        if not addr.isascii():
            addr = decode_bytes(raw_header_bytes(addr), "utf-8")[0]
        addr = addr.strip("<> ").lower()
        if "@" not in addr:
            continue
        result.append((" ".join(_storable(decode_header(raw_name)[0]).split()), _storable(addr)))
    return result


def _first_address(msg: Message, name: str, defects: list[str]) -> tuple[str, str]:
    found = _addresses(msg, name, defects)
    return found[0] if found else ("", "")


def _date(value: str, defects: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append(f"Date header {value!r} could not be read")
        return None
    if parsed.tzinfo is None:  # "-0000": the sender's zone is unknown; RFC 5322 means UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


# ---- body ------------------------------------------------------------------------


def _walk(part: Message, body: _Body, depth: int, max_bytes: int) -> None:
    """Collect the text, HTML and attachments of `part` and everything below it."""
    if depth > MAX_DEPTH:
        body.defects.append(f"MIME parts nested deeper than {MAX_DEPTH} levels were skipped")
        return
    try:
        ctype = part.get_content_type().lower()
    except Exception:
        ctype = "text/plain"
    try:
        if ctype.startswith("message/"):
            _attach(body, _message_part_bytes(part), _filename(part, body), ctype, max_bytes)
        elif part.is_multipart():
            if ctype == "multipart/alternative":
                _alternative(part, body, depth, max_bytes)
            else:
                for sub in _subparts(part):
                    _walk(sub, body, depth + 1, max_bytes)
        else:
            _leaf(part, ctype, body, max_bytes)
    except RecursionError:
        raise
    except Exception as exc:
        # One broken part degrades alone; the rest of the message still counts.
        body.defects.append(f"a {ctype} part could not be read ({type(exc).__name__}: {exc}); skipped")


def _alternative(part: Message, body: _Body, depth: int, max_bytes: int) -> None:
    """multipart/alternative: text from the plain version, HTML from the HTML one."""
    versions = []
    for sub in _subparts(part):
        version = _Body()
        _walk(sub, version, depth + 1, max_bytes)
        versions.append(version)
    plain = next((v.plain for v in versions if any(t.strip() for t in v.plain)), [])
    html = next((v.html for v in versions if any(h.strip() for h in v.html)), [])
    body.plain.extend(plain)
    body.html.extend(html)
    for version in versions:
        body.attachments.extend(version.attachments)
        body.defects.extend(version.defects)
        body.tnef_plain.extend(version.tnef_plain)
        body.tnef_html.extend(version.tnef_html)


def _leaf(part: Message, ctype: str, body: _Body, max_bytes: int) -> None:
    filename = _filename(part, body)
    disposition = (part.get_content_disposition() or "").lower()
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = b""
    if ctype.startswith("multipart/"):
        # A multipart header whose boundary is missing or never appears: the parser
        # left the body as one string. Keep it readable rather than lose it.
        body.defects.append(f"{ctype} part without a usable boundary; read as plain text")
        ctype = "text/plain"
    if ctype == "application/ms-tnef" or (filename or "").lower() == "winmail.dat":
        _tnef(data, filename, ctype, body, max_bytes)
    elif ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        text, defect = decode_bytes(data, _charset(part))
        if defect:
            body.defects.append(f"{ctype} part: {defect}")
        (body.plain if ctype == "text/plain" else body.html).append(text)
    else:
        _attach(body, data, filename, ctype, max_bytes)


def _charset(part: Message) -> str | None:
    value = part.get_param("charset")
    if isinstance(value, tuple):  # RFC 2231 form, rare for charset
        value = value[2]
    return str(value) if value else None


def _subparts(part: Message) -> list[Message]:
    """The parts held by a part whose payload is a list (multipart/*, message/*). The parser
    puts only Message objects there; typeshed also allows a str, which only attach() could add."""
    payload = part.get_payload()
    assert isinstance(payload, list), "called only for a part whose payload is a list"
    subparts = [sub for sub in payload if isinstance(sub, Message)]
    assert len(subparts) == len(payload), "a parsed payload list holds only Message objects"
    return subparts


def _message_part_bytes(part: Message) -> bytes:
    if isinstance(part.get_payload(), list):
        return b"\n".join(sub.as_bytes() for sub in _subparts(part))
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _filename(part: Message, body: _Body) -> str | None:
    """The decoded file name from Content-Disposition filename or Content-Type name."""
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            value = part.get_param(param, None, header)
        except Exception:
            continue
        if value is None:
            continue
        if isinstance(value, tuple):  # RFC 2231: (charset, language, %-decoded latin-1 text)
            charset, _language, text = value
            try:
                raw = str(text).encode("latin-1", "surrogateescape")
            except UnicodeEncodeError:  # not what decode_params yields, but never lose the part
                raw = str(text).encode("utf-8", "surrogatepass")
            name, defect = decode_bytes(raw, charset or None)
        else:
            name, defects = decode_header(str(value))
            defect = defects[0] if defects else None
        if defect:
            body.defects.append(f"file name: {defect}")
        if name.strip():
            return name
    return None


def _sanitise(name: str | None, ctype: str, index: int) -> str:
    """Keep the last path component, drop control and reserved characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip().lstrip(".").strip()
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = stem[:190] + dot + ext[:9] if dot and len(ext) < 10 else name[:200]
    if name.strip("_ "):
        return name
    ext = ".eml" if ctype == "message/rfc822" else (mimetypes.guess_extension(ctype) or ".bin")
    return f"attachment-{index}{ext}"


def _attach(body: _Body, data: bytes, filename: str | None, ctype: str, max_bytes: int) -> None:
    name = _sanitise(filename, ctype, len(body.attachments) + 1)
    size = len(data)
    if size > max_bytes:
        body.defects.append(f"attachment {name!r} is {size} bytes, over the {max_bytes}-byte limit; content dropped")
        body.attachments.append(Attachment(name, ctype, size, b"", truncated=True))
    else:
        body.attachments.append(Attachment(name, ctype, size, data))


# ---- Outlook winmail.dat ---------------------------------------------------------


def _tnef(data: bytes, filename: str | None, ctype: str, body: _Body, max_bytes: int) -> None:
    """Unpack an Outlook TNEF part into its body and attachments; keep it whole if that fails."""
    from tnefparse import properties
    from tnefparse.tnef import TNEF

    try:
        tnef = TNEF(data, do_checksum=False)
        found = []
        for att in tnef.attachments:
            longs = [a.data for a in att.mapi_attrs if a.name == properties.MAPI_ATTACH_LONG_FILENAME]
            name = longs[0] if longs and isinstance(longs[0], str) else None
            if not name:
                raw = att._name if isinstance(att._name, bytes) else str(att._name).encode("utf-8", "replace")
                name = decode_bytes(raw.rstrip(b"\x00"), tnef.codepage)[0]
            name = name.strip("\x00")
            tags = [a.data for a in att.mapi_attrs if a.name == properties.MAPI_ATTACH_MIME_TAG]
            tag = tags[0].strip("\x00").strip().lower() if tags and isinstance(tags[0], str) else ""
            att_type = tag if "/" in tag else mimetypes.guess_type(name)[0] or "application/octet-stream"
            found.append((bytes(att.data), name, att_type))
        texts = []
        for value in (tnef.body, tnef.htmlbody):
            if isinstance(value, bytes):
                value = decode_bytes(value.rstrip(b"\x00"), tnef.codepage)[0]
            texts.append((value or "").strip("\x00").strip())
    except Exception as exc:
        body.defects.append(f"winmail.dat (TNEF) could not be unpacked ({type(exc).__name__}: {exc}); kept as is")
        _attach(body, data, filename or "winmail.dat", ctype, max_bytes)
        return
    plain, html = texts
    if not found and not plain and not html and not tnef._rtfbody:
        body.defects.append("winmail.dat (TNEF) held nothing readable; kept as is")
        _attach(body, data, filename or "winmail.dat", ctype, max_bytes)
        return
    for att_data, name, att_type in found:
        _attach(body, att_data, name, att_type, max_bytes)
    if plain:
        body.tnef_plain.append(plain)
    if html:
        body.tnef_html.append(html)
    if not plain and not html and tnef._rtfbody:
        body.defects.append("winmail.dat body is in RTF only; not converted to text")
