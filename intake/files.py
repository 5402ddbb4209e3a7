"""Atomic file operations: a file is whole or absent, and a rename survives a power cut.

Temp name, fsync, rename, fsync the folder (as Mailman's switchboard and getmail's
updatefile do). Used by the folder sources, the spool writer, the local outgoing
Maildir and the archive's local storage.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, tmp_dir: Path | None = None, *, sync_dir: bool = True) -> None:
    """Temp file, fsync, rename, fsync the folder: the file is whole or absent. With
    sync_dir=False the caller fsyncs the folder itself, once for several files."""
    tmp_dir = tmp_dir or path.parent
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


def move(src: Path, dst: Path) -> Path:
    """Rename without ever replacing an existing file (a same-named earlier file gets kept)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    target, n = dst, 1
    while target.exists():
        target = dst.with_name(f"{dst.name}.{n}")
        n += 1
    os.rename(src, target)
    fsync_dir(target.parent)
    if target.parent != src.parent:
        fsync_dir(src.parent)
    return target
