"""Proof that no archived file was changed, removed or slipped in: hashes, a hash chain, a manifest.

Every archived file has a row in `archive_files` with its SHA-256 and a place (`seq`)
in a hash chain: chain_hash = SHA-256(prev_hash + "\\n" + entry), entry being the
canonical JSON of what identifies the file. The same entries, with their prev and
chain hashes, are the lines of MANIFEST.jsonl at the archive root, so a file, a
manifest line or a database row removed from the middle breaks the chain.
The manifest is only ever extended, never rewritten with different history: if what is
on disk is not a prefix of the database's chain, `sync_manifest` refuses and `verify`
reports it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.models import ArchiveAudit, ArchiveFile
from archive.storage import Storage

MANIFEST = PurePosixPath("MANIFEST.jsonl")
GENESIS = "0" * 64


class ManifestMismatch(Exception):
    """The manifest on disk is not a prefix of the database's chain: tampering or loss."""


@dataclass(frozen=True)
class Problem:
    kind: str  # changed, missing, unexpected, chain, manifest, early_purge, original
    path: str | None
    detail: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_of(row: ArchiveFile) -> dict:
    """What the chain vouches for. Retention and holds change over time, so they are not in it."""
    return {
        "seq": row.seq,
        "path": row.path,
        "sha256": row.sha256,
        "size": row.size,
        "ticket_ref": row.ticket_ref,
        "version": row.version,
        "final": row.final,
        "created_at": _iso(row.created_at),
    }


def chain_hash(prev_hash: str, entry: dict) -> str:
    return sha256((prev_hash + "\n" + _canonical(entry)).encode("utf-8"))


def manifest_line(row: ArchiveFile) -> str:
    return _canonical({**entry_of(row), "prev": row.prev_hash, "chain": row.chain_hash})


def link(session: Session, row: ArchiveFile) -> ArchiveFile:
    """Give a new (unflushed) row its place at the end of the chain. Two writers racing
    for the same place collide on the unique `seq`; the loser's commit fails and it retries."""
    last = session.scalars(select(ArchiveFile).order_by(ArchiveFile.seq.desc()).limit(1)).first()
    row.seq = (last.seq + 1) if last else 1
    row.prev_hash = last.chain_hash if last else GENESIS
    if row.created_at is None:
        row.created_at = datetime.now(UTC)
    row.chain_hash = chain_hash(row.prev_hash, entry_of(row))
    return row


def _chain_rows(session: Session) -> list[ArchiveFile]:
    return list(session.scalars(select(ArchiveFile).order_by(ArchiveFile.seq)))


def read_manifest(storage: Storage) -> list[str]:
    if not storage.exists(MANIFEST):
        return []
    return storage.get(MANIFEST).decode("utf-8").splitlines()


def sync_manifest(session: Session, storage: Storage) -> int:
    """Append the database's newer chain entries to the manifest (atomic rewrite).
    Returns how many lines were added; ManifestMismatch if the manifest on disk is not a
    prefix of the database's chain (it is then left untouched, as evidence)."""
    rows = _chain_rows(session)
    expected = [manifest_line(r) for r in rows]
    current = read_manifest(storage)
    if current != expected[: len(current)]:
        raise ManifestMismatch("MANIFEST.jsonl differs from the database's chain; run `intake archive verify`")
    if len(current) == len(expected):
        return 0
    storage.put(MANIFEST, ("\n".join(expected) + "\n").encode("utf-8"))
    return len(expected) - len(current)


def _check_chain(entries: list[tuple[dict, str, str]], where: str) -> list[Problem]:
    """entries: (entry, prev, chain) in seq order."""
    problems = []
    prev = GENESIS
    for i, (entry, claimed_prev, claimed_chain) in enumerate(entries, start=1):
        path = entry.get("path")
        if entry.get("seq") != i:
            problems.append(Problem("chain", path, f"{where}: entry {i} has seq {entry.get('seq')} (an entry is missing or out of order)"))
        if claimed_prev != prev:
            problems.append(Problem("chain", path, f"{where}: seq {entry.get('seq')} does not follow the entry before it (prev hash mismatch)"))
        if chain_hash(claimed_prev, entry) != claimed_chain:
            problems.append(Problem("chain", path, f"{where}: seq {entry.get('seq')} was altered (chain hash mismatch)"))
        prev = claimed_chain
    return problems


def verify(session: Session, storage: Storage, *, actor: str = "system", record: bool = True) -> list[Problem]:
    """Check every archived file against its recorded hash, the database chain, the manifest,
    and look for files nobody archived. Records a `verify` audit entry (the caller commits)."""
    problems: list[Problem] = []
    rows = _chain_rows(session)
    problems += _check_chain([(entry_of(r), r.prev_hash, r.chain_hash) for r in rows], "database")

    # The manifest, on its own and against the database.
    parsed = []
    for n, line in enumerate(read_manifest(storage), start=1):
        try:
            obj = json.loads(line)
            prev, chain = obj.pop("prev"), obj.pop("chain")
            parsed.append((obj, prev, chain))
        except (ValueError, KeyError, AttributeError):
            problems.append(Problem("manifest", None, f"manifest line {n} is not a valid entry"))
    problems += _check_chain(parsed, "manifest")
    by_seq = {obj.get("seq"): (obj, chain) for obj, _, chain in parsed}
    for r in rows:
        got = by_seq.pop(r.seq, None)
        if got is None:
            problems.append(Problem("manifest", r.path, f"seq {r.seq} is in the database but not in the manifest"))
        elif got[0] != entry_of(r) or got[1] != r.chain_hash:
            problems.append(Problem("manifest", r.path, f"seq {r.seq} differs between manifest and database"))
    for seq, (obj, _) in sorted(by_seq.items(), key=lambda kv: str(kv[0])):
        problems.append(Problem("manifest", obj.get("path"), f"seq {seq} is in the manifest but not in the database"))

    # The files themselves.
    known = {r.path: r for r in rows}
    purges = {a.path for a in session.scalars(select(ArchiveAudit).where(ArchiveAudit.action == "purge"))}
    for r in rows:
        if r.purged_at is not None:
            if r.path not in purges:
                problems.append(Problem("early_purge", r.path, "marked purged but no purge is in the audit log"))
            elif r.legal_hold or r.retention_until is None or r.retention_until >= r.purged_at.date():
                problems.append(Problem("early_purge", r.path, "purged before its retention date or while on hold"))
            if storage.exists(PurePosixPath(r.path)):
                problems.append(Problem("unexpected", r.path, "purged, yet still present"))
            continue
        try:
            data = storage.get(PurePosixPath(r.path))
        except FileNotFoundError:
            problems.append(Problem("missing", r.path, f"archived {r.created_at:%Y-%m-%d}, not purged, file is gone"))
            continue
        if sha256(data) != r.sha256:
            problems.append(Problem("changed", r.path, f"SHA-256 {sha256(data)} ≠ recorded {r.sha256}"))
    for path in storage.list():
        if path != MANIFEST and str(path) not in known:
            problems.append(Problem("unexpected", str(path), "a file the archive never wrote"))

    # Each original is embedded once (archive.originals): a version that refers to an original
    # embedded in another version needs that version kept as long as itself.
    kept = {(r.ticket_ref, r.version) for r in rows if r.purged_at is None}
    for r in rows:
        if r.purged_at is not None:
            continue
        for entry in r.originals or []:
            if (r.ticket_ref, entry.get("version")) not in kept:
                problems.append(
                    Problem(
                        "original",
                        r.path,
                        f"original {entry.get('name')} (SHA-256 "
                        f"{entry.get('sha256')}) is embedded in v{entry.get('version')}, "
                        "which is not in the archive",
                    )
                )

    if record:
        session.add(
            ArchiveAudit(
                actor=actor, action="verify", detail={"files": len(rows), "problems": len(problems), "kinds": sorted({p.kind for p in problems})}
            )
        )
    return problems


def verify_counts(problems: list[Problem]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in problems:
        out[p.kind] = out.get(p.kind, 0) + 1
    return out
