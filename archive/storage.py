"""Where archive files live: a small Protocol and its local-folder backend.

A backend stores bytes under relative POSIX paths. `put` is atomic (a reader sees the
old file or the new one, never a part) and durable when it returns. The backend never
decides retention: only archive.retention decides what may be deleted. It is told the
retention dates and legal holds (`retain_until`, `set_retention`, `set_legal_hold`) so a
backend that can enforce them itself (S3 Object Lock, archive.s3) does; the local folder
ignores them. `open_storage` picks the backend named in the config.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Protocol, runtime_checkable

from archive.naming import TEMP_PREFIX, check_relative
from intake.files import fsync_dir


@runtime_checkable
class Storage(Protocol):
    def put(self, path: PurePosixPath, data: bytes, *, retain_until: date | None = None) -> None:
        """Store `data` at `path` atomically and durably, replacing what was there; a backend
        that can lock it keeps it undeletable through the day `retain_until`."""

    def get(self, path: PurePosixPath) -> bytes:
        """The bytes at `path`; FileNotFoundError if there are none."""

    def delete(self, path: PurePosixPath) -> None:
        """Remove `path`; FileNotFoundError if it is not there."""

    def list(self, prefix: str = "") -> Iterator[PurePosixPath]:
        """Every stored path (under `prefix`), sorted."""

    def exists(self, path: PurePosixPath) -> bool: ...

    def set_retention(self, path: PurePosixPath, until: date) -> None:
        """Keep `path` through the day `until` (where enforced: only ever later)."""

    def set_legal_hold(self, path: PurePosixPath, on: bool) -> None:
        """Put `path` on legal hold or release it (where enforced)."""


class LocalStorage:
    """Files in a folder: temp file, fsync, rename, fsync the folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _full(self, path: PurePosixPath | str) -> Path:
        return self.root.joinpath(*check_relative(path).parts)

    def _makedirs(self, folder: Path) -> None:
        # Create missing parents one by one and fsync each one's parent, so the
        # new folder entries survive a power cut along with the file.
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            fsync_dir(d.parent)

    def put(self, path: PurePosixPath, data: bytes, *, retain_until: date | None = None) -> None:
        # retain_until: a folder cannot enforce it; archive.retention does, for this backend
        full = self._full(path)
        self._makedirs(full.parent)
        tmp = full.parent / f"{TEMP_PREFIX}{secrets.token_hex(6)}"
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, full)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(full.parent)

    def get(self, path: PurePosixPath) -> bytes:
        return self._full(path).read_bytes()

    def delete(self, path: PurePosixPath) -> None:
        full = self._full(path)
        full.unlink()
        fsync_dir(full.parent)

    def exists(self, path: PurePosixPath) -> bool:
        return self._full(path).is_file()

    def set_retention(self, path: PurePosixPath, until: date) -> None:
        """Nothing to do: a folder has no lock; the database's date is what guards it."""

    def set_legal_hold(self, path: PurePosixPath, on: bool) -> None:
        """Nothing to do: a folder has no lock; the database's hold is what guards it."""

    def list(self, prefix: str = "") -> Iterator[PurePosixPath]:
        base = self.root.joinpath(*PurePosixPath(prefix).parts) if prefix else self.root
        if not base.exists():
            return iter(())
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.root)
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    found.append(PurePosixPath(*rel.parts, name))
        return iter(sorted(found))


def open_storage(cfg) -> Storage:
    """The backend the [archive] config section names (`storage = "local" | "s3"`).
    The daemon and the CLI both open it here, so they always see the same archive."""
    if cfg.storage == "s3":
        from archive.s3 import S3Storage

        storage = S3Storage.from_config(cfg)
        storage.check_bucket()  # a bucket without Object Lock fails at start, not at the first file
        return storage
    return LocalStorage(cfg.path)
