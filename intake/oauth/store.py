"""Files under paths.var/oauth: refresh tokens (the providers' caches) and each token's
expiry. Written atomically (temp file in the same folder, fsync, rename, folder fsync)
with mode 0600, so a crash leaves the old file or the new one, never half of one, and a
rotated refresh token is on disk before it is used."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path


def oauth_dir(var: Path) -> Path:
    return Path(var) / "oauth"


def file_for(var: Path, label: str, suffix: str) -> Path:
    """var/oauth/<label>.<suffix>, the label made safe as a file name (imap:support -> imap_support)."""
    return oauth_dir(var) / f"{re.sub(r'[^A-Za-z0-9._-]', '_', label)}.{suffix}"


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def read_private(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def record_expiry(var: Path, label: str, expires_at: datetime) -> None:
    """Write the expiry of the access token just acquired (no secret in it)."""
    state = {"label": label, "expires_at": expires_at.isoformat(), "acquired_at": datetime.now(UTC).isoformat()}
    write_private(file_for(var, label, "state.json"), json.dumps(state).encode())


def token_states(var: Path) -> dict[str, dict]:
    """{label: {"expires_at": datetime, "acquired_at": datetime}} of every OAuth login so far."""
    states: dict[str, dict] = {}
    folder = oauth_dir(var)
    if not folder.is_dir():
        return states
    for path in sorted(folder.glob("*.state.json")):
        try:
            data = json.loads(path.read_text())
            states[data["label"]] = {
                "expires_at": datetime.fromisoformat(data["expires_at"]),
                "acquired_at": datetime.fromisoformat(data["acquired_at"]),
            }
        except (OSError, ValueError, KeyError):
            continue  # being replaced, or not ours: the next look sees it
    return states
