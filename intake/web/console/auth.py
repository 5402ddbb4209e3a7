"""Console users and sessions: argon2id password hashes (argon2-cffi), signed session cookies,
the lock-out after repeated failed sign-ins.

A session cookie is "user id.epoch.issued.nonce.mac": the MAC (HMAC-SHA256 under the
console's key) covers the rest, so it cannot be made or changed without the key; it is
refused after `session_minutes`, and at once when the user's session_epoch moved on
(signed out, new password, disabled) or the user is disabled. The nonce is what the
session's CSRF tokens are bound to."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.store.db import transaction
from intake.web.console import audit
from intake.web.console.models import ROLES, ConsoleFailedSignIn, ConsoleUser

SESSION_COOKIE = "intake_console"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
MIN_PASSWORD = 10

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# verified against when the name is unknown, so an unknown name takes as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
VERIFYING = 2  # argon2 checks at once (each takes the hasher's memory cost, 64 MiB by default)
_verifying = threading.BoundedSemaphore(VERIFYING)


class UserError(ValueError):
    """A bad name, role or password given to add/passwd: the message says which."""


@dataclass(frozen=True)
class SignedIn:
    """Who a valid session cookie belongs to."""

    user_id: int
    name: str
    roles: frozenset[str]
    nonce: str  # the session's CSRF binding
    issued: int


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_roles(roles: Iterable[str]) -> str:
    chosen = sorted({r.strip() for r in roles if r.strip()})
    unknown = [r for r in chosen if r not in ROLES]
    if not chosen or unknown:
        raise UserError(f"roles must be one or more of {', '.join(ROLES)}" + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    return ",".join(chosen)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")


def add_user(sessions: sessionmaker[Session], name: str, password: str, roles: Iterable[str]) -> ConsoleUser:
    if not NAME_PATTERN.match(name):
        raise UserError(f"user name {name!r}: use 1-100 letters, digits, '.', '_', '@' or '-'")
    check_password(password)
    role_text = check_roles(roles)
    with transaction(sessions) as session:
        if session.scalar(select(ConsoleUser).where(ConsoleUser.name == name)) is not None:
            raise UserError(f"user {name!r} exists already (intake users passwd / --role to change it)")
        user = ConsoleUser(name=name, password_hash=hash_password(password), roles=role_text, disabled=False, session_epoch=0)
        session.add(user)
        audit.record(session, "cli", "user_add", f"user:{name}", {"roles": role_text})
    return user


def set_password(sessions: sessionmaker[Session], name: str, password: str) -> None:
    check_password(password)
    with transaction(sessions) as session:
        user = _named(session, name)
        user.password_hash, user.session_epoch = hash_password(password), user.session_epoch + 1
        audit.record(session, "cli", "user_passwd", f"user:{name}")


def set_roles(sessions: sessionmaker[Session], name: str, roles: Iterable[str]) -> None:
    role_text = check_roles(roles)
    with transaction(sessions) as session:
        user = _named(session, name)
        user.roles, user.session_epoch = role_text, user.session_epoch + 1
        audit.record(session, "cli", "user_roles", f"user:{name}", {"roles": role_text})


def set_disabled(sessions: sessionmaker[Session], name: str, disabled: bool) -> None:
    with transaction(sessions) as session:
        user = _named(session, name)
        user.disabled, user.session_epoch = disabled, user.session_epoch + 1
        audit.record(session, "cli", "user_disable" if disabled else "user_enable", f"user:{name}")


def list_users(sessions: sessionmaker[Session]) -> list[ConsoleUser]:
    with sessions() as session:
        return list(session.scalars(select(ConsoleUser).order_by(ConsoleUser.name)))


def _named(session: Session, name: str) -> ConsoleUser:
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.name == name))
    if user is None:
        raise UserError(f"no user {name!r} (intake users list shows them)")
    return user


# -- signing in ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    outcome: str  # "ok", "bad" (unknown name, wrong password or disabled: the page says the same), "locked"
    user: ConsoleUser | None = None
    locked_until: datetime | None = None


def sign_in(sessions: sessionmaker[Session], name: str, password: str, *, ip: str, now: datetime, failures: int, minutes: int) -> Attempt:
    """Check a name and password; every attempt leaves an audit row. `failures` failed attempts
    on one name within `minutes` lock it for `minutes` from the last of them.

    The hash is checked between two short transactions, never inside one: on SQLite a
    transaction holds the one write lock from its BEGIN, and an argon2 check (tens of ms,
    64 MiB) inside it would let anyone who can reach the sign-in page hold up the pipeline.
    At most VERIFYING checks run at once, which bounds their memory whatever the load."""
    name = name.strip()[:100]
    window = now - timedelta(minutes=minutes)
    with sessions() as session:  # reads only; ends before the hash is checked
        recent = list(
            session.scalars(
                select(ConsoleFailedSignIn.at)
                .where(ConsoleFailedSignIn.name == name, ConsoleFailedSignIn.at > window)
                .order_by(ConsoleFailedSignIn.at)
            )
        )
        user = session.scalar(select(ConsoleUser).where(ConsoleUser.name == name))
    if len(recent) >= failures:
        until = recent[-1] + timedelta(minutes=minutes)
        with transaction(sessions) as session:
            audit.record(session, name, "sign_in_locked", f"user:{name}", {"until": until.isoformat()}, ip=ip, at=now)
        return Attempt("locked", locked_until=until)
    with _verifying:
        valid = _verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None and not user.disabled
        rehash = hash_password(password) if valid and user is not None and _hasher.check_needs_rehash(user.password_hash) else None
    with transaction(sessions) as session:
        if not valid:
            reason = "unknown user" if user is None else ("disabled" if user.disabled else "wrong password")
            # failures older than a day count for nothing: dropped as new ones come, so the table
            # stays small however many names are tried
            session.execute(delete(ConsoleFailedSignIn).where(ConsoleFailedSignIn.at < now - timedelta(days=1)))
            session.add(ConsoleFailedSignIn(name=name, ip=ip[:64], at=now, reason=reason))
            audit.record(session, name, "sign_in_failed", f"user:{name}", {"reason": reason, "failures": len(recent) + 1}, ip=ip, at=now)
            return Attempt("bad")
        assert user is not None
        user = session.get(ConsoleUser, user.id)  # as it is now, in this transaction
        if user is None or user.disabled:  # removed or disabled while the hash was checked
            return Attempt("bad")
        if rehash is not None:  # parameters raised since the hash was made
            user.password_hash = rehash
        user.last_sign_in_at = now
        session.execute(delete(ConsoleFailedSignIn).where(ConsoleFailedSignIn.name == name))
        audit.record(session, name, "sign_in", f"user:{name}", {"roles": user.roles}, ip=ip, at=now)
        return Attempt("ok", user=user)


def failed_count(sessions: sessionmaker[Session], name: str) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(ConsoleFailedSignIn).where(ConsoleFailedSignIn.name == name)) or 0


def sign_out(sessions: sessionmaker[Session], who: SignedIn, *, ip: str) -> None:
    """End every session of the user (the epoch in their cookies is no longer current)."""
    with transaction(sessions) as session:
        user = session.get(ConsoleUser, who.user_id)
        if user is not None:
            user.session_epoch += 1
        audit.record(session, who.name, "sign_out", f"user:{who.name}", ip=ip)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


# -- session cookies ------------------------------------------------------------------------


def _mac(key: bytes, payload: str) -> str:
    return hmac.new(key, ("session|" + payload).encode(), hashlib.sha256).hexdigest()


def session_cookie(key: bytes, user: ConsoleUser, issued: int) -> str:
    payload = f"{user.id}.{user.session_epoch}.{issued}.{secrets.token_urlsafe(18)}"
    return f"{payload}.{_mac(key, payload)}"


def read_session(key: bytes, value: str | None, session: Session, *, now: int, max_age: int) -> SignedIn | None:
    """The signed-in user of a cookie, or None: forged, expired, signed out, or the user disabled."""
    if not value or value.count(".") != 4:
        return None
    payload, _, mac = value.rpartition(".")
    if not hmac.compare_digest(_mac(key, payload), mac):
        return None
    user_id, epoch, issued, nonce = payload.split(".")
    if not (user_id.isdigit() and epoch.isdigit() and issued.isdigit()) or not 0 <= now - int(issued) <= max_age:
        return None
    user = session.get(ConsoleUser, int(user_id))
    if user is None or user.disabled or user.session_epoch != int(epoch):
        return None
    return SignedIn(user.id, user.name, user.role_set(), nonce, int(issued))
