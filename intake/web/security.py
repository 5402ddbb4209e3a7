"""Abuse guards of the web form: CSRF tokens, the rate limiter, the honeypot field. Plain logic, no I/O."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import deque

CSRF_COOKIE = "intake_csrf"
CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE = 4 * 3600  # a form left open for a long lunch still submits
HONEYPOT_FIELD = "website"  # hidden from people by CSS; bots fill every field they see


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(secret: bytes, nonce: str, now: float | None = None) -> str:
    """A token bound to the cookie's nonce and to the time it was issued."""
    issued = str(int(time.time() if now is None else now))
    mac = hmac.new(secret, f"{nonce}|{issued}".encode(), hashlib.sha256).hexdigest()
    return f"{issued}.{mac}"


def csrf_valid(secret: bytes, nonce: str | None, token: str | None, now: float | None = None) -> bool:
    """True when `token` was issued by us for this cookie's nonce, not too long ago."""
    if not nonce or not token or "." not in token:
        return False
    issued, _, mac = token.partition(".")
    if not issued.isdigit():
        return False
    now = time.time() if now is None else now
    if not 0 <= now - int(issued) <= CSRF_MAX_AGE:
        return False
    expected = hmac.new(secret, f"{nonce}|{issued}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, mac)


class RateLimiter:
    """At most `per_minute` events per key in any sliding 60 s window (keys: "ip:…", "email:…").

    In memory: one daemon serves the form; a restart forgives everyone, which is fine."""

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, *keys: str) -> int:
        """Record one event for every key; returns 0 when allowed, else the seconds to wait
        (nothing is recorded then, so a refused attempt does not extend the wait)."""
        if self.per_minute <= 0:
            return 0
        now = self.clock()
        with self._lock:
            wait = 0.0
            for key in keys:
                events = self._events.setdefault(key, deque())
                while events and now - events[0] >= 60:
                    events.popleft()
                if len(events) >= self.per_minute:
                    wait = max(wait, 60 - (now - events[0]))
            if wait:
                return max(1, math.ceil(wait))
            for key in keys:
                self._events[key].append(now)
            if len(self._events) > 10_000:  # forget idle keys so memory stays bounded
                self._events = {k: v for k, v in self._events.items() if v and now - v[-1] < 60}
            return 0
