"""Turn the bytes of a mail part or header into text, whatever charset was declared.

Customers' mail clients lie about charsets: "gb2312" over GBK or GB18030 bytes,
"big5" over HKSCS characters, "utf-8" over GBK, "iso-8859-1" over GBK, or no label
at all on 8-bit headers. `decode_bytes` decodes with the declared charset when the
bytes agree with it, and otherwise falls back through an ordered list of the
charsets our customers use, checking each result for plausibility. It never raises.
"""

from __future__ import annotations

import codecs
import re

# Supersets stand in for the labels clients put on their bytes: GB2312 and GBK mail
# routinely carries GBK/GB18030-only characters; Big5 mail carries HKSCS ones.
ALIASES: dict[str, str] = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "csgb2312": "gb18030",
    "chinese": "gb18030",
    "gb_2312-80": "gb18030",
    "hz-gb-2312": "hz",
    "big5": "big5hkscs",
    "big-5": "big5hkscs",
    "x-big5": "big5hkscs",
    "csbig5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "cp950": "big5hkscs",
    "big5-hkscs": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "iso-8859-1": "cp1252",  # what "latin-1" senders actually write (curly quotes, euro)
    "latin1": "cp1252",
    "iso8859-1": "cp1252",
    "euc_kr": "cp949",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "windows-1252": "cp1252",
    "x-unknown": "",
    "unknown-8bit": "",
    "x-user-defined": "",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "shift-jis": "cp932",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
}

# Tried in order for undeclared bytes and for bytes that do not fit their label.
FALLBACKS: tuple[str, ...] = ("utf-8", "gb18030", "big5hkscs")
LAST_RESORT = "cp1252"

_ASCII_SAFE = {"utf-8", "gb18030", "big5hkscs", "cp1252", "cp949", "cp932"}  # ASCII-compatible, 8-bit
_CJK_DECLARED = {"gb18030", "big5hkscs"}
_WESTERN_DECLARED = {"cp1252", "iso8859-15", "iso-8859-15"}

# Characters a real Chinese or Western text is made of. Bytes decoded with the wrong
# multibyte table land in private-use areas, kana, Cyrillic, box drawing and the like.
_PLAUSIBLE = re.compile(
    "[\u0009\u000a\u000d\u0020-\u007e\u00a0-\u00ff\u2000-\u206f\u20ac\u2100-\u215f\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]"
)
_PLAUSIBLE_THRESHOLD = 0.95


def normalize_charset(label: str | None) -> str | None:
    """Map a declared charset label to the Python codec we decode it with.

    Returns None for a missing, empty or unknown label (then the caller falls back).
    """
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if not name:
        return None
    name = ALIASES.get(name, name)
    if not name:
        return None
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):
        return None
    # codecs.lookup resolves labels we alias only by spelling ("gb2312" -> "gb2312").
    return ALIASES.get(codec, codec) or None


def plausibility(text: str) -> float:
    """Share of characters that real Chinese or Western text is made of (1.0 = all)."""
    if not text:
        return 1.0
    return len(_PLAUSIBLE.findall(text)) / len(text)


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _looks_utf8(data: bytes) -> str | None:
    """The UTF-8 reading of non-ASCII bytes when they are valid UTF-8 with a few
    multibyte sequences: text in any other 8-bit charset is almost never valid UTF-8."""
    text = _strict(data, "utf-8")
    if text is None:
        return None
    multibyte = sum(1 for ch in text if ord(ch) > 0x7F)
    return text if multibyte >= 2 else None


def guess(data: bytes) -> tuple[str, str]:
    """Decode bytes of unknown charset; returns (text, codec used)."""
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    best: tuple[float, str, str] | None = None
    for codec in FALLBACKS[1:]:
        text = _strict(data, codec)
        if text is None:
            continue
        score = plausibility(text)
        if score >= _PLAUSIBLE_THRESHOLD:
            return text, codec
        if best is None or score > best[0]:
            best = (score, text, codec)
    if best is not None and best[0] >= 0.5:
        return best[1], best[2]
    return data.decode(LAST_RESORT, errors="replace"), LAST_RESORT


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode `data` declared as `declared` (a charset label or None).

    Returns (text, defect): defect is None when the bytes decoded cleanly with the
    declared charset (or were plain ASCII), else a human note of what was guessed.
    """
    try:
        return _decode(data, declared)
    except Exception as exc:  # a codec bug must not take the message down
        return data.decode("utf-8", errors="replace"), f"charset decoding failed ({exc!r}); decoded as utf-8 with replacements"


def _decode(data: bytes, declared: str | None) -> tuple[str, str | None]:
    codec = normalize_charset(declared)
    if codec is None or codec in _ASCII_SAFE:
        # ASCII bytes read the same in every charset we would pick.
        if data.isascii():
            return data.decode("ascii"), None
    if codec is None:
        text, used = guess(data)
        if declared and declared.strip().strip("\"'").lower() not in ("x-unknown", "unknown-8bit", "x-user-defined"):
            return text, f"unknown charset {declared!r}; decoded as {used}"
        return text, f"undeclared 8-bit text; decoded as {used}"

    strict = _strict(data, codec)
    if strict is not None:
        return _second_opinion(data, strict, codec, declared or codec)

    # The bytes do not fit the label: try the usual suspects.
    guessed, used = guess(data)
    if codec == "cp1252" and used == LAST_RESORT:
        # Latin-1 proper: the five bytes cp1252 leaves undefined are C1 controls there.
        return data.decode("latin-1"), None
    return guessed, f"declared charset {declared} does not match the bytes; decoded as {used}"


def _second_opinion(data: bytes, text: str, codec: str, declared: str) -> tuple[str, str | None]:
    """Catch labels that decode without error but wrongly (every byte is valid latin-1,
    most Big5 pairs are valid GBK, UTF-8 Chinese often passes as GB18030)."""
    if codec == "utf-8" or data.isascii():
        return text, None
    utf8 = _looks_utf8(data)
    if utf8 is not None and utf8 != text:
        return utf8, f"declared charset {declared} but the bytes are utf-8; decoded as utf-8"
    if codec in _WESTERN_DECLARED:
        gb = _strict(data, "gb18030")
        if gb is not None and _cjk_count(gb) >= 2 and plausibility(gb) >= _PLAUSIBLE_THRESHOLD:
            # Latin-1 text almost never forms valid GB18030 pairs that are all Chinese.
            if _is_mostly_cjk(gb):
                return gb, f"declared charset {declared} but the bytes are Chinese; decoded as gb18030"
        return text, None
    if codec in _CJK_DECLARED and plausibility(text) < _PLAUSIBLE_THRESHOLD:
        other = "big5hkscs" if codec == "gb18030" else "gb18030"
        alt = _strict(data, other)
        if alt is not None and plausibility(alt) > plausibility(text):
            return alt, f"declared charset {declared} but the bytes read as {other}; decoded as {other}"
    return text, None


_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")


def _cjk_count(text: str) -> int:
    return len(_CJK.findall(text))


def _is_mostly_cjk(text: str) -> bool:
    non_ascii = sum(1 for ch in text if ord(ch) > 0x7F)
    return non_ascii > 0 and _cjk_count(text) / non_ascii >= 0.6


def cjk_share(text: str) -> float:
    """Han characters as a share of Han characters plus Latin letters."""
    han = _cjk_count(text)
    if han == 0:
        return 0.0
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    return han / (han + latin)


# RFC 2047 encoded words, found leniently: glued to neighbouring text, with spaces or
# without, with a missing "?=" at the very end of the value tolerated.
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?\s]*?)(?:\?=|\??$)")
_SPACE_ONLY = re.compile(r"[ \t\r\n]*")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _word_bytes(encoding: str, payload: str) -> bytes:
    import base64
    import binascii
    import quopri

    if encoding in "bB":
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", payload)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
        try:
            return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            return b""
    return quopri.decodestring(payload.replace("_", " ").encode("ascii", "surrogateescape"), header=True)


def raw_header_bytes(value: str) -> bytes:
    """The original bytes of a header value read by the email package (which keeps
    undecodable 8-bit bytes as surrogate escapes)."""
    return value.encode("utf-8", "surrogateescape")


def decode_header(value: str) -> tuple[str, list[str]]:
    """Decode a raw header value: unfold, decode RFC 2047 words and raw 8-bit bytes.

    Adjacent encoded words in the same charset are joined before decoding, so a
    multibyte character split across two words comes out whole. Returns (text, defects).
    """
    value = _FOLD.sub("", value)
    defects: list[str] = []
    if "=?" not in value:
        return _decode_plain(value, defects), defects
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset: str | None = None
    pos = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending:
            text, defect = decode_bytes(b"".join(pending), pending_charset or None)
            out.append(text)
            if defect:
                defects.append(f"encoded header word: {defect}")
        pending, pending_charset = [], None

    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 language suffix: "utf-8*zh"
        # Whitespace between two encoded words is not part of the text (RFC 2047 6.2).
        if not (pending and _SPACE_ONLY.fullmatch(between)):
            flush()
            out.append(_decode_plain(between, defects))
        if pending and charset.lower() != (pending_charset or "").lower():
            flush()
        pending.append(_word_bytes(match.group(2), match.group(3)))
        pending_charset = charset
        pos = match.end()
    flush()
    out.append(_decode_plain(value[pos:], defects))
    return "".join(out), defects


def _decode_plain(text: str, defects: list[str]) -> str:
    """Unencoded header text: ASCII as is, raw 8-bit bytes (surrogates) decoded by guess."""
    if text.isascii():
        return text
    raw = raw_header_bytes(text)
    decoded, defect = decode_bytes(raw, None)
    if defect and "undeclared 8-bit" not in defect:
        defects.append(f"header: {defect}")
    return decoded
