"""`intake archive search|export|verify|purge|hold|release`: the compliance archive from the command line."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from intake.store.db import transaction


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-23, got {value!r}") from None


def _storage(ctx):
    from archive.storage import open_storage

    return open_storage(ctx.config.archive)


def _query(args):
    from archive.search import Query, type_code

    return Query(
        customer=args.customer,
        since=args.since,
        until=args.until,
        type=type_code(args.type) if args.type else None,
        ticket=args.ticket,
        words=args.words or [],
        final_only=args.final,
    )


def cmd_archive(args, out) -> int:
    from intake.cli.common import context

    ctx = context(args)
    return ACTIONS[args.action](ctx, args, out)


def _search(ctx, args, out) -> int:
    from archive.search import describe, search

    with ctx.read_sessions() as session:
        rows = [describe(r) for r in search(session, _query(args))]
    for r in rows:
        out.row(
            r,
            f"{r['path']}  sha256 {r['sha256'][:16]}…  keep until {r['retention_until'] or '(open case)'}"
            + ("  [legal hold]" if r["legal_hold"] else ""),
        )
    if not rows and not out.as_json:
        print("no archived files match", file=sys.stderr)
    return 0


def _export(ctx, args, out) -> int:
    from archive.originals import embedding_rows
    from archive.search import export_zip, search

    def progress(done: int, total: int, path: str) -> None:
        if sys.stderr.isatty() or args.progress:
            width = 30
            filled = width * done // max(total, 1)
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {path[-40:]:<40}", end="", file=sys.stderr, flush=True)

    with ctx.read_sessions() as session:  # a snapshot: the daemon goes on writing meanwhile
        # plus the versions embedding originals that the found ones only refer to (archive.originals)
        rows = embedding_rows(session, search(session, _query(args)))
        result = export_zip(rows, _storage(ctx), args.output, progress=progress)
    if sys.stderr.isatty() or args.progress:
        print(file=sys.stderr)
    out.row(
        {"zip": str(args.output), "files": result.files, "bytes": result.bytes, "problems": result.problems},
        f"{args.output}: {result.files} files, {result.bytes} bytes" + (f"; left out: {'; '.join(result.problems)}" if result.problems else ""),
    )
    return 1 if result.problems else 0


def _verify(ctx, args, out) -> int:
    from archive.integrity import verify, verify_counts
    from archive.models import ArchiveAudit, ArchiveFile

    with ctx.read_sessions() as session:  # reading every file takes long: no write lock meanwhile
        problems = verify(session, _storage(ctx), record=False)
        files = session.scalar(select(func.count()).select_from(ArchiveFile))
    with transaction(ctx.sessions) as session:
        session.add(
            ArchiveAudit(actor="cli", action="verify", detail={"files": files, "problems": len(problems), "kinds": sorted(verify_counts(problems))})
        )
    for p in problems:
        out.row({"kind": p.kind, "path": p.path, "detail": p.detail}, f"{p.kind}: {p.path or '-'}: {p.detail}")
    if not problems:
        out.row(
            {"kind": "ok", "path": None, "detail": "every archived file matches its recorded hash"},
            "ok: every archived file matches its recorded hash; manifest chain intact",
        )
    return 1 if problems else 0


def _purge(ctx, args, out) -> int:
    from archive.retention import purge

    with transaction(ctx.sessions) as session:
        removed = purge(session, _storage(ctx), ctx.now(), actor="cli")
        done = [(r.path, r.retention_until) for r in removed]
    for path, until in done:
        out.row({"deleted": path, "retention_until": until}, f"deleted {path} (kept until {until})")
    if not done and not out.as_json:
        print("nothing is past retention", file=sys.stderr)
    return 0


def _hold(ctx, args, out) -> int:
    from archive.retention import hold, release

    try:
        with transaction(ctx.sessions) as session:
            if args.action == "hold":
                rows = hold(session, args.ref, args.reason, actor="cli", storage=_storage(ctx))
            else:
                rows = release(session, args.ref, actor="cli", storage=_storage(ctx))
            paths = [r.path for r in rows]
    except (LookupError, ValueError) as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        out.row({"path": path, "legal_hold": args.action == "hold"}, f"{'held' if args.action == 'hold' else 'released'}: {path}")
    return 0


ACTIONS = {"search": _search, "export": _export, "verify": _verify, "purge": _purge, "hold": _hold, "release": _hold}


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("archive", parents=[common], help="the compliance archive of case PDFs")
    asub = p.add_subparsers(dest="action", required=True)
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--customer", help="part of the customer's name")
    filters.add_argument("--type", help="complaint, 投诉, ...")
    filters.add_argument("--since", type=_date, help="cases from this date (YYYY-MM-DD)")
    filters.add_argument("--until", type=_date, help="cases up to this date")
    filters.add_argument("--ticket", help="a ticket reference")
    filters.add_argument("--words", nargs="+", help="words of the case's text")
    filters.add_argument("--final", action="store_true", help="only the final version of each case")
    asub.add_parser("search", parents=[common, filters], help="archived files with path, sha256, retention date")
    e = asub.add_parser("export", parents=[common, filters], help="the same, to a zip with a manifest")
    e.add_argument("--output", "-o", type=Path, required=True, help="the zip file to write")
    e.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")
    asub.add_parser("verify", parents=[common], help="check every file against its recorded hash; exit 1 on any problem")
    asub.add_parser("purge", parents=[common], help="delete only what is past retention and not on hold")
    h = asub.add_parser("hold", parents=[common], help="legal hold: nothing of the case is deleted until released")
    h.add_argument("ref")
    h.add_argument("--reason", required=True)
    r = asub.add_parser("release", parents=[common], help="lift a legal hold")
    r.add_argument("ref")
    p.set_defaults(func=cmd_archive)
