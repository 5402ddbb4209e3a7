"""Web-form submissions: the spool/JSON format, its validation, and its parsing into a ParsedMessage.

The format (DESIGN.md), one JSON object per submission:
    {"name", "email", "phone", "company", "subject", "message", "type"?, "lang"?,
     "attachments"?: [{"filename", "content_type", "data_base64"}], "submitted_at"?, ...}
`name`, `email` or `phone`, and `message` are required; more fields are allowed and kept.
Pure functions on plain data: the HTTP endpoint, the spool source and the pipeline share them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from intake.inbound.charsets import cjk_share
from intake.inbound.message import ZH_SHARE, Attachment, ParsedMessage, UnparseableMessage, checked_message_id
from intake.vocabulary import TYPES

LANGS = ("zh", "en")
TEXT_FIELDS = ("name", "email", "phone", "company", "subject", "message", "type", "lang", "submitted_at", "message_id", "case", "case_sig")
MAX_LEN = {"name": 200, "email": 254, "phone": 40, "company": 200, "subject": 300, "message": 20_000}
MAX_ATTACHMENTS = 10

# A pragmatic address check: one @, no spaces, a dot in the domain. Full RFC 5322
# would accept addresses no mail server here delivers to; a typo is what we catch.
EMAIL_RE = re.compile(r"^[^@\s<>\"',;\x00-\x1f\x7f]+@[^@\s<>\"',;\x00-\x1f\x7f]+\.[^@\s<>\"',;.\x00-\x1f\x7f]{2,}$")


def plain_address(address: str) -> bool:
    """An address we may write into a To header and an SMTP RCPT as it is: EMAIL_RE, at
    most 254 characters (RFC 5321's path limit)."""
    return len(address) <= 254 and EMAIL_RE.fullmatch(address) is not None


# Phone: digits with the usual separators; 6 to 20 digits ("+86 138-1234-5678", "(021) 6123 4567 ext 8").
PHONE_CHARS_RE = re.compile(r"^[0-9+\-()\s./extEXT#转]*$")

MESSAGES = {
    "required": {"zh": "请填写此项。", "en": "Please fill in this field."},
    "contact": {"zh": "请填写电子邮箱或电话，至少一项。", "en": "Please give an email address or a phone number."},
    "email": {"zh": "电子邮箱格式不正确，例如 name@example.com。", "en": "This email address does not look right, e.g. name@example.com."},
    "phone": {"zh": "电话号码格式不正确（6–20 位数字）。", "en": "This phone number does not look right (6–20 digits)."},
    "too_long": {"zh": "内容过长（最多 {max} 个字符）。", "en": "Too long (at most {max} characters)."},
    "not_text": {"zh": "此项必须是文本。", "en": "This field must be text."},
    "type": {"zh": "请从列表中选择类型。", "en": "Please choose a type from the list."},
    "lang": {"zh": "语言只能是 zh 或 en。", "en": "Language must be zh or en."},
    "attachments": {"zh": "附件格式不正确。", "en": "The attachments are not in the expected format."},
    "too_many": {"zh": "附件过多（最多 {max} 个）。", "en": "Too many attachments (at most {max})."},
    "file_too_big": {"zh": "文件“{name}”过大（最大 {max}）。", "en": "The file “{name}” is too large (at most {max})."},
    "file_type": {"zh": "不支持文件“{name}”的类型。可上传：{allowed}。", "en": "The file type of “{name}” is not accepted. Accepted: {allowed}."},
    "file_content": {"zh": "文件“{name}”的内容与其扩展名不符。", "en": "The content of “{name}” does not match its file name."},
    "not_object": {"zh": "提交内容必须是 JSON 对象。", "en": "The submission must be a JSON object."},
}


def msg(key: str, lang: str, **values: Any) -> str:
    """One error message in the submitter's language."""
    return MESSAGES[key]["zh" if lang == "zh" else "en"].format(**values)


def detect_language(text: str) -> str:
    """ "zh" when Han characters make up a real share of the letters (the email parser's rule), else "en"."""
    return "zh" if cjk_share(text) >= ZH_SHARE else "en"


def submission_language(data: dict) -> str:
    """The language to answer in: `lang` when given and known, else detected from what was written."""
    lang = data.get("lang")
    if isinstance(lang, str) and lang.strip().lower() in LANGS:
        return lang.strip().lower()
    parts = [data.get(k) for k in ("subject", "message")]  # what they wrote, not their company's name
    return detect_language(" ".join(p for p in parts if isinstance(p, str)))


def human_size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g} MB"
    return f"{n / 1000:g} KB"


def _text(data: dict, key: str) -> str:
    value = data.get(key)
    return value.strip() if isinstance(value, str) else ""


def validate_submission(
    data: Any,
    *,
    max_file_bytes: int | None = None,
    allowed_extensions: tuple[str, ...] | list[str] | None = None,
) -> dict[str, str]:
    """Every field error, field -> message in the submitter's language; empty when valid.

    `max_file_bytes` and `allowed_extensions` (without dots) are the web listener's limits;
    the spool accepts what other systems drop there without them."""
    if not isinstance(data, dict):
        return {"_": msg("not_object", "en")}
    lang = submission_language(data)
    errors: dict[str, str] = {}
    for key in TEXT_FIELDS:
        if key in data and data[key] is not None and not isinstance(data[key], str):
            errors[key] = msg("not_text", lang)
    for key, limit in MAX_LEN.items():
        if key not in errors and len(_text(data, key)) > limit:
            errors[key] = msg("too_long", lang, max=limit)

    if "name" not in errors and not _text(data, "name"):
        errors["name"] = msg("required", lang)
    if "message" not in errors and not _text(data, "message"):
        errors["message"] = msg("required", lang)
    email, phone = _text(data, "email"), _text(data, "phone")
    if "email" not in errors and "phone" not in errors and not email and not phone:
        errors["email"] = errors["phone"] = msg("contact", lang)
    if email and "email" not in errors and not EMAIL_RE.match(email):
        errors["email"] = msg("email", lang)
    if phone and "phone" not in errors:
        digits = sum(c.isdigit() for c in phone)
        if not PHONE_CHARS_RE.match(phone) or not 6 <= digits <= 20:
            errors["phone"] = msg("phone", lang)
    kind = _text(data, "type")
    if kind and "type" not in errors and kind.lower() not in TYPES:
        errors["type"] = msg("type", lang)
    given_lang = _text(data, "lang")
    if given_lang and "lang" not in errors and given_lang.lower() not in LANGS:
        errors["lang"] = msg("lang", lang)

    error = _attachments_error(data.get("attachments"), lang, max_file_bytes, allowed_extensions)
    if error:
        errors["attachments"] = error
    return errors


def _attachments_error(items: Any, lang: str, max_bytes: int | None, allowed: Any) -> str | None:
    if items is None:
        return None
    if not isinstance(items, list):
        return msg("attachments", lang)
    if len(items) > MAX_ATTACHMENTS:
        return msg("too_many", lang, max=MAX_ATTACHMENTS)
    allowed_set = {e.lower().lstrip(".") for e in allowed} if allowed else None
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str) or not item["filename"].strip():
            return msg("attachments", lang)
        if not isinstance(item.get("data_base64"), str):
            return msg("attachments", lang)
        name = item["filename"].strip()
        try:
            data = base64.b64decode(item["data_base64"], validate=True)
        except (binascii.Error, ValueError):
            return msg("attachments", lang)
        if max_bytes is not None and len(data) > max_bytes:
            return msg("file_too_big", lang, name=name, max=human_size(max_bytes))
        if allowed_set is not None:
            ext = extension(name)
            if ext not in allowed_set:
                return msg("file_type", lang, name=name, allowed=", ".join(sorted(allowed_set)))
            if not content_matches_extension(data, ext):
                return msg("file_content", lang, name=name)
    return None


def safe_filename(name: str) -> str:
    """The last path component, without control characters: names come from strangers."""
    base = re.split(r"[\\/]", name.strip())[-1]
    base = "".join(c for c in base if c.isprintable()).strip(" .")
    return base[:200] or "attachment.bin"


def extension(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


# Magic numbers of the types customers attach. A file whose first bytes contradict its
# extension (an .exe renamed .pdf) is refused; text types must decode and hold no NULs.
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "pdf": (b"%PDF-",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "zip": (b"PK\x03\x04", b"PK\x05\x06"),
    "docx": (b"PK\x03\x04",),
    "xlsx": (b"PK\x03\x04",),
    "pptx": (b"PK\x03\x04",),
    "doc": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",),
    "xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",),
    "ppt": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",),
}
_TEXT_TYPES = {"txt", "csv", "log", "md"}


def content_matches_extension(data: bytes, ext: str) -> bool:
    """Sniffs the content: True when the bytes are what the extension claims."""
    if ext in _SIGNATURES:
        return data.startswith(_SIGNATURES[ext])
    if ext == "webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    if ext in _TEXT_TYPES:
        if b"\x00" in data[:65536]:
            return False
        for codec in ("utf-8", "gb18030", "big5"):
            try:
                data[:65536].decode(codec)
                return True
            except UnicodeDecodeError as exc:
                if exc.start >= 65530:  # cut inside a multi-byte character by our slice
                    return True
        return False
    return False  # an extension we know no signature for is not accepted


def submission_fields(raw: bytes) -> dict:
    """The submission as a dict for the pipeline (name, phone, company, type, extras),
    text fields stripped, attachments listed without their data."""
    data = _load(raw)
    fields = {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items() if k != "attachments"}
    fields["email"] = _text(data, "email").lower()
    fields["type"] = _text(data, "type").lower()
    fields["lang"] = submission_language(data)
    fields["attachments"] = [
        {"filename": a.get("filename"), "content_type": a.get("content_type")} for a in data.get("attachments") or [] if isinstance(a, dict)
    ]
    return fields


def _load(raw: bytes) -> dict:
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnparseableMessage(f"form submission is not UTF-8 JSON: {exc}") from exc
    except RecursionError:  # "[[[[…" deeper than the interpreter's stack
        raise UnparseableMessage("form submission is JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise UnparseableMessage("form submission is not a JSON object")
    return data


def parse_submission(raw: bytes) -> ParsedMessage:
    """A spool file or JSON body as the pipeline's ParsedMessage.

    Raises UnparseableMessage naming every field error. The Message-ID is derived from
    the bytes, so the same file offered twice is recognised as the same message, while
    two submissions (they differ at least in `submitted_at`) are two messages."""
    data = _load(raw)
    errors = validate_submission(data)
    if errors:
        raise UnparseableMessage("invalid form submission: " + "; ".join(f"{k}: {v}" for k, v in sorted(errors.items())))
    message = _text(data, "message")
    # one line: the subject goes into mail headers and subjects of ours
    subject = " ".join(_text(data, "subject").split()) or _first_line(message)
    attachments = [
        Attachment(
            filename=safe_filename(a["filename"]),
            content_type=(a.get("content_type") or "application/octet-stream").strip(),
            size=len(blob := base64.b64decode(a["data_base64"])),
            data=blob,
            truncated=False,
        )
        for a in data.get("attachments") or []
    ]
    # an integration may name its own Message-ID; it reaches our mail's headers, so it is
    # checked like an email's (an invalid one is replaced and the defect recorded)
    defects: list[str] = []
    message_id = checked_message_id(_text(data, "message_id").strip("<>"), defects, source="message_id field")
    message_id = message_id or f"form-{hashlib.sha256(raw).hexdigest()[:32]}@form.intake"
    headers = [("x-intake-form-" + k, _text(data, k)) for k in ("phone", "company", "type") if _text(data, k)]
    return ParsedMessage(
        message_id=message_id,
        in_reply_to=[],
        references=[],
        from_addr=_text(data, "email").lower(),
        from_name=_text(data, "name"),
        reply_to=None,
        to_addrs=[],
        cc_addrs=[],
        subject=subject,
        date=_parse_time(_text(data, "submitted_at")),
        text=message,
        html=None,
        new_text=message,
        language=submission_language(data),
        attachments=attachments,
        headers=headers,
        defects=defects,
    )


def _first_line(text: str, limit: int = 80) -> str:
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _parse_time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
