"""The per-ticket Reply-To token: support+<ref>.<mac>@domain.

The MAC is HMAC-SHA256 over the ticket reference with the configured key, cut to
`staff_mail.mac_length` hex characters. Only someone holding the key can make a
valid address for a ticket; a staff reply must come to such an address AND from a
person allowed to act on that ticket (see relay.py) — a forged From alone never passes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

KEY_FILE = "reply-token.key"


@dataclass(frozen=True)
class TokenAddress:
    """What a recipient address says, before the MAC is checked."""

    address: str
    ref: str
    mac: str


def load_key(config) -> bytes:
    """The configured key, or the one made for this installation under paths.var (read
    once per process: every staff notification signs with it)."""
    configured = config.staff_mail.key()
    if configured:
        return configured.encode("utf-8")
    path = Path(config.paths.var) / KEY_FILE
    key = _made_keys.get(path)
    if key is None:
        key = _made_keys[path] = _read_or_make(path)
    return key


_made_keys: dict[Path, bytes] = {}


def _read_or_make(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode())
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # the first process to make it wins; the others read its key
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_bytes().strip()


def mac(key: bytes, ref: str, length: int) -> str:
    # refs are compared without case: some mail systems lower-case local parts
    return hmac.new(key, ref.upper().encode("utf-8"), hashlib.sha256).hexdigest()[:length]


def make_address(key: bytes, ref: str, support_address: str, length: int) -> str:
    local, domain = support_address.split("@", 1)
    return f"{local}+{ref}.{mac(key, ref, length)}@{domain}"


def parse_address(address: str, support_address: str) -> TokenAddress | None:
    """`support+REF.MAC@domain` → its parts; None for any other address."""
    local, domain = support_address.lower().split("@", 1)
    m = re.fullmatch(re.escape(local) + r"\+([A-Za-z0-9][A-Za-z0-9\-]*)\.([0-9A-Fa-f]+)@" + re.escape(domain), address.strip().lower())
    if m is None:
        return None
    return TokenAddress(address=address, ref=m.group(1), mac=m.group(2).lower())


def verify(key: bytes, token: TokenAddress, ref: str, length: int) -> bool:
    """Constant-time check of the MAC against the ticket's stored reference."""
    return len(token.mac) == length and hmac.compare_digest(token.mac, mac(key, ref, length))
