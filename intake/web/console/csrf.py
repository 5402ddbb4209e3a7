"""CSRF tokens of the console's forms: the web form's timed HMAC tokens (intake/web/security.py),
bound to the session's nonce when signed in, else to a pre-session cookie's nonce (the sign-in form)."""

from __future__ import annotations

from intake.web.security import csrf_token, csrf_valid, new_nonce

FIELD = "csrf_token"
PRE_SESSION_COOKIE = "intake_console_pre"

__all__ = ["FIELD", "PRE_SESSION_COOKIE", "csrf_token", "csrf_valid", "new_nonce", "token_for", "valid_for"]


def token_for(secret: bytes, nonce: str) -> str:
    return csrf_token(secret, "console|" + nonce)


def valid_for(secret: bytes, nonce: str | None, token: str | None) -> bool:
    return bool(nonce) and csrf_valid(secret, "console|" + (nonce or ""), token)
