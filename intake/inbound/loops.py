"""Decide whether a message must get no automatic reply (RFC 3834 loop protection).

Pure: looks only at a ParsedMessage. An answer of None means a person wrote it.
"""

from __future__ import annotations

import re

from intake.inbound.message import ParsedMessage

_PRECEDENCE_NO_REPLY = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
_AUTORESPONSE_SUPPRESS = re.compile(r"\b(?:all|oof|autoreply)\b", re.IGNORECASE)
# Local parts that mean a machine sent the message (RFC 3834 section 2, and practice).
_MACHINE_SENDER = re.compile(
    r"^(?:mailer-daemon|postmaster|mail-daemon|maildaemon|mailerdaemon|listserv|majordomo"
    r"|no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|bounces?|bounce[-+].*"
    r"|auto[-_.]?reply|autoresponder|notifications?|daemon)(?:[-+].*)?$",
    re.IGNORECASE,
)
_REPORT_TYPES = ("multipart/report", "message/delivery-status", "message/disposition-notification")
# Phrases that only automatic replies put in a subject, wherever they stand ...
_OUT_OF_OFFICE = re.compile(
    r"out\s+of\s+(?:the\s+)?office|automatic\s+reply|auto[-\s]?reply|autoreply|auto[-\s]?response"
    r"|delivery\s+status\s+notification|mail\s+delivery\s+(?:failed|failure|subsystem)|returned\s+mail"
    r"|自动回复|自動回覆|自动答复|自動答覆|自动应答|不在办公室|不在辦公室|系统退信",
    re.IGNORECASE,
)
# ... and words a customer may well write ("我休假回来发现系统坏了", "vacation booking
# fails"), which mark an automatic reply only as the subject's first word.
_AUTO_SUBJECT_START = re.compile(
    r"^\s*(?:\[?auto\]?\s*:|vacation\b|on\s+(?:vacation|holiday|leave)\b|undeliverable\b|undelivered\b|休假|外出|退信)",
    re.IGNORECASE,
)


def auto_reply_reason(msg: ParsedMessage) -> str | None:
    """Why `msg` must get no automatic acknowledgement, or None if a person wrote it."""
    auto_submitted = (msg.header("auto-submitted") or "").strip().lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto_submitted}"

    precedence = (msg.header("precedence") or "").strip().lower()
    if precedence in _PRECEDENCE_NO_REPLY:
        return f"Precedence: {precedence}"

    for name in ("list-id", "list-unsubscribe"):
        if msg.header(name) is not None:
            return f"mailing list message ({name} present)"

    for name in ("x-autoreply", "x-autorespond"):
        value = msg.header(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return f"{name}: {value}"
    suppress = msg.header("x-auto-response-suppress") or ""
    if _AUTORESPONSE_SUPPRESS.search(suppress):
        return f"X-Auto-Response-Suppress: {suppress}"

    return_path = msg.header("return-path")
    if return_path is not None and return_path.strip().strip("<>").strip() == "":
        return "empty Return-Path (<>): a bounce or notification"
    if not msg.from_addr:
        return "no sender address"
    local = msg.from_addr.rsplit("@", 1)[0]
    if _MACHINE_SENDER.match(local):
        return f"machine sender {msg.from_addr}"

    content_type = (msg.header("content-type") or "").lower()
    for report in _REPORT_TYPES:
        if content_type.startswith(report) or any(a.content_type == report for a in msg.attachments):
            return f"delivery or read report ({report})"

    if _OUT_OF_OFFICE.search(msg.subject) or _AUTO_SUBJECT_START.match(msg.subject):
        return f"auto-reply subject: {msg.subject!r}"
    return None
