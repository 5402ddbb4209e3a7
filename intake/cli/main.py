"""The command line: `intake [--config PATH] [--json] COMMAND` (the contract in DESIGN.md)."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from pathlib import Path

from intake import config as config_mod
from intake.cli.common import Output, context
from intake.ops.logs import setup_logging

log = logging.getLogger("intake.cli.main")


def cmd_init(args, out: Output) -> int:
    from intake.store.db import make_engine, upgrade

    if args.config_dir:
        return _write_config_dir(args.config_dir, out)
    cfg = args.config_obj
    applied = upgrade(make_engine(cfg.database.url))
    out.row(
        {"database": _safe_url(cfg.database.url), "migrations_applied": applied},
        f"database {_safe_url(cfg.database.url)}: " + (f"applied {', '.join(applied)}" if applied else "up to date"),
    )
    for folder in _folders(cfg):
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        out.row({"folder": str(folder), "created": created}, f"folder {folder}: {'created' if created else 'exists'}")
    return 0


def _write_config_dir(folder: Path, out: Output) -> int:
    """Editable copies of the shipped example config, rules and staff files; an existing file is kept."""
    from intake import resources

    folder.mkdir(parents=True, exist_ok=True)
    for shipped, name in resources.EDITABLE_DEFAULTS.items():
        target = folder / name
        try:
            with open(target, "xb") as f:  # "x": never overwrite what the user has
                f.write((resources.defaults() / shipped).read_bytes())
            written = True
        except FileExistsError:
            written = False
        out.row({"file": str(target), "written": written}, f"{target}: {'written' if written else 'exists, kept'}")
    print(f"next: edit {folder / 'intake.toml'}, then intake --config {folder / 'intake.toml'} init", file=sys.stderr)
    return 0


def _folders(cfg) -> list[Path]:
    folders = [cfg.var, cfg.outgoing_maildir]
    if cfg.maildir.enabled:
        folders += [cfg.maildir.path / sub for sub in ("new", "cur", "tmp")]
    if cfg.spool.enabled:
        folders.append(cfg.spool.path)
    return folders


_safe_url = config_mod.masked_url


def _daemon_guard(config):
    """The guard of one daemon per SQLite database (intake/ops/guard.py), taken; None where
    the database needs none. Raises AlreadyRunning while another process holds it."""
    from intake.ops.guard import daemon_lock

    lock = daemon_lock(config.database.url)
    if lock is not None:
        lock.acquire()
    return lock


def cmd_run(args, out: Output) -> int:
    from intake.daemon import Daemon
    from intake.ops.guard import AlreadyRunning

    # one daemon per SQLite database, --once included (it works the same mailboxes);
    # held until this process ends
    try:
        _daemon_guard(args.config_obj)
    except AlreadyRunning as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 1
    ctx = context(args)
    daemon = Daemon(ctx, listen=args.listen or (ctx.config.web.listen or None))
    if args.once:
        summary = daemon.run_once()
        out.row(summary, f"taken {summary['taken']}; mail sent {summary['sent']}, failed attempts {summary['send_failures']}")
        return 0
    daemon.run_forever()
    return 0


def cmd_ingest(args, out: Output) -> int:
    from intake.pipeline.runner import Pipeline
    from intake.sources.base import SourceRef

    pipeline = Pipeline(context(args))
    worst = 0
    for name in args.files:
        path = Path(name)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            out.row({"file": name, "outcome": "error", "ticket": None, "reason": exc.strerror}, f"{name}: cannot read: {exc.strerror}")
            worst = 1
            continue
        channel = "form" if path.suffix.lower() == ".json" else "email"
        result = pipeline.take(raw, SourceRef("ingest", hashlib.sha256(raw).hexdigest(), channel))
        out.row(
            {"file": name, "outcome": result.outcome, "ticket": result.ticket, "reason": result.reason},
            f"{name}: {result.outcome}" + (f" {result.ticket}" if result.ticket else "") + (f" ({result.reason})" if result.reason else ""),
        )
    if args.send:
        return _send_queued(pipeline.ctx) or worst
    return worst


def _send_queued(ctx) -> int:
    """`ingest --send`: send what is queued, as the daemon's mailer would, only while no daemon
    runs on this SQLite database (the same guard as `intake run`): a daemon that starts takes
    over every claim not its own, and would send this command's group a second time."""
    from intake.ops.guard import AlreadyRunning
    from intake.outgoing.mailer import OutboxWorker

    try:
        lock = _daemon_guard(ctx.config)
    except AlreadyRunning as exc:
        print(f"intake: not sending: {exc}; its mailer sends what was queued", file=sys.stderr)
        return 0
    try:
        worker = OutboxWorker(ctx)
        if lock is not None:
            worker.take_over_at_start()  # the one mailer now: a dead daemon's claims too
        worker.run_once()
        worker.close()
    finally:
        if lock is not None:
            lock.release()
    return 0


def cmd_status(args, out: Output) -> int:
    from intake.ops.status import collect

    ctx = context(args)
    status = collect(ctx)
    if out.as_json:
        out.row(status, "")
        return 0
    print("paths:")
    for name, value in status["paths"].items():
        print(f"  {name}: " + (", ".join(value) if isinstance(value, list) else str(value or "-")))
    print("sources:")
    for s in status["sources"]:
        print(
            f"  {s['source']}: {'up' if s.get('up', True) else 'FAILING'}, last success {s['last_success_at'] or 'never'}, backlog {s['backlog'] if s['backlog'] is not None else '?'}, "
            f"taken in 24 h {s['taken_24h']}, errors {s['errors']}"
            + (f", last error {s['last_error_at']}: {s['last_error']}" if s["last_error"] else "")
        )
    if not status["sources"]:
        print("  (no source has run yet)")
    for label, t in status.get("tokens", {}).items():
        print(f"  {label}: OAuth2 token expires {t['expires_at']:%Y-%m-%d %H:%M:%S} UTC")
    for label, c in status.get("credentials", {}).items():
        renew = ", RENEW IT" if c["warn"] else ""
        print(f"  {label}: client secret/certificate expires {c['expires_at']:%Y-%m-%d} (in {c['days_left']:g} days){renew}")
    o = status["outbox"]
    print(f"outbox: {o['pending']} pending (oldest {o['oldest_pending'] or '-'}), {o['sent_24h']} sent in 24 h, {o['failed']} failed")
    print(f"quarantine: {status['quarantine']['held']} held, {status['quarantine']['released']} released")
    if "archive" in status:
        a = status["archive"]
        print(f"archive jobs: {a['pending']} pending, {a['running']} running, {a['done']} done, {a['failed']} failed")
    print("tickets: " + (", ".join(f"{k} {v}" for k, v in status["tickets"].items()) or "none"))
    return 0


def cmd_quarantine(args, out: Output) -> int:
    from sqlalchemy import select

    from intake.pipeline.runner import Pipeline
    from intake.store.models import QuarantineItem

    ctx = context(args)
    if args.action == "list":
        with ctx.sessions() as session:
            query = select(QuarantineItem).order_by(QuarantineItem.id)
            if not args.all:
                query = query.where(QuarantineItem.status == "held")
            for q in session.scalars(query):
                first = q.reason.splitlines()[0] if q.reason else ""
                out.row(
                    {
                        "id": q.id,
                        "source": q.source,
                        "key": q.key,
                        "channel": q.channel,
                        "status": q.status,
                        "reason": q.reason,
                        "bytes": len(q.raw),
                        "created_at": q.created_at,
                        "retries": q.retries,
                        "ticket": q.ticket_ref,
                        "dismissed_by": q.dismissed_by,
                        "dismissed_reason": q.dismissed_reason,
                    },
                    f"#{q.id} {q.created_at:%Y-%m-%d %H:%M} {q.source} {q.key} [{q.status}] {len(q.raw)} bytes: {first}",
                )
        return 0
    if args.action == "dismiss":
        return _dismiss(ctx, args, out)
    try:
        results = Pipeline(ctx).retry_quarantined(args.id)
    except LookupError as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for qid, result in results:
        failed += result.outcome == "quarantined"
        out.row(
            {"id": qid, "outcome": result.outcome, "ticket": result.ticket, "reason": result.reason},
            f"#{qid}: {result.outcome}" + (f" {result.ticket}" if result.ticket else "") + (f" ({result.reason})" if result.reason else ""),
        )
    return 1 if failed else 0


def _dismiss(ctx, args, out: Output) -> int:
    """The same action as the console's dismiss button, audited in the console's log as cli:<user>."""
    import getpass

    from intake.pipeline.quarantine import dismiss_quarantined
    from intake.store.db import transaction
    from intake.web.console import audit

    who = f"cli:{getpass.getuser()}"
    try:
        with transaction(ctx.sessions) as session:
            item = dismiss_quarantined(session, args.id, by=who, reason=args.reason, now=ctx.now())
            audit.record(session, who, "quarantine_dismiss", f"quarantine:{args.id}", {"reason": item.dismissed_reason})
    except ValueError as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 2
    except LookupError as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 1
    out.row(
        {"id": args.id, "status": "dismissed", "by": who, "reason": item.dismissed_reason}, f"#{args.id}: dismissed by {who}: {item.dismissed_reason}"
    )
    return 0


def cmd_classify(args, out: Output) -> int:
    from classify import Classifier

    if args.file == "eval":
        return _classify_eval(args, out)
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    is_form = args.file.endswith(".json") or raw.lstrip()[:1] == b"{"
    if is_form:
        from intake.inbound.form import parse_submission, submission_fields

        parsed = parse_submission(raw)
        chosen = submission_fields(raw).get("type")
    else:
        from intake.inbound.message import parse_message

        parsed, chosen = parse_message(raw), None
    result = Classifier.from_file(args.config_obj.rules_file).classify(parsed.subject, parsed.new_text)
    if chosen:
        result.type = chosen
    data = {
        "type": result.type,
        "urgency": result.urgency,
        "department": result.departments[0] if result.departments else None,
        "departments": result.departments,
        "flagged": result.flagged,
        "matches": result.to_dict().get("matches", []),
    }
    if out.as_json:
        out.row(data, "")
    else:
        print(
            f"type: {result.type}\nurgency: {result.urgency}\ndepartment: {', '.join(result.departments) or '-'}"
            + ("\nflagged: 加急" if result.flagged else "")
        )
        print(result.explain(parsed.language))
    return 0


def _classify_eval(args, out: Output) -> int:
    """`intake classify eval FILE`: the rules in force measured on a team's own labelled messages."""
    from classify import Classifier
    from classify.evaluate import figures, groups, load_labelled, render, score, worst

    if not args.labelled:
        print("intake: classify eval needs a labelled file (.jsonl or .csv)", file=sys.stderr)
        return 2
    scored = score(Classifier.from_file(args.config_obj.rules_file), load_labelled(Path(args.labelled)))
    if out.as_json:
        out.row(
            {
                "file": args.labelled,
                "rules": str(args.config_obj.rules_file),
                "figures": {name: figures(rows) for name, rows in groups(scored).items()},
                "worst": [s.__dict__ for s in worst(scored, args.worst)],
            },
            "",
        )
    else:
        print(f"{args.labelled}: {len(scored)} messages, rules {args.config_obj.rules_file}\n")
        print(render(scored, args.worst))
    return 0


def cmd_tickets(args, out: Output) -> int:
    from intake.tickets.views import list_tickets, show_ticket

    ctx = context(args)
    if args.action == "list":
        for t in list_tickets(ctx, status=args.status, limit=args.limit):
            out.row(t, f"{t['ref']}  {t['status']:<11} {t['type']:<10} {t['urgency']:<9} {t['customer']:<28} {t['subject'][:60]}")
        return 0
    ticket = show_ticket(ctx, args.ref)
    if ticket is None:
        print(f"intake: no ticket {args.ref}", file=sys.stderr)
        return 1
    if out.as_json:
        out.row(ticket, "")
        return 0
    from intake.tickets.views import format_ticket

    print(format_ticket(ticket))
    return 0


def cmd_report(args, out: Output) -> int:
    from intake.tickets.report import as_text, weekly

    ctx = context(args)
    try:
        report = weekly(ctx, args.week)
    except ValueError as exc:
        print(f"intake: --week: {exc}", file=sys.stderr)
        return 2
    out.row(report, as_text(report))
    if args.pdf:
        from intake.tickets.report_pdf import write_pdf

        write_pdf(report, args.pdf, ctx.config.template_dirs)
        if not out.as_json:
            print(f"PDF written to {args.pdf}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from intake import __version__

    parser = argparse.ArgumentParser(prog="intake", description=__doc__)
    parser.add_argument("--version", action="version", version=f"intake {__version__}")
    parser.add_argument("--config", type=Path, help="config file (default: $INTAKE_CONFIG, ./config/intake.toml, built-in defaults)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="one JSON object a line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", parents=[common], help="create or upgrade the database and folders")
    p.add_argument(
        "--config-dir",
        type=Path,
        metavar="DIR",
        help="instead: write editable copies of the example config, rules, staff file and systemd unit into DIR (never overwriting)",
    )
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", parents=[common], help="the daemon")
    p.add_argument("--listen", metavar="HOST:PORT", help="serve the web form here, whatever the config says")
    p.add_argument("--once", action="store_true", help="take what waits, carry out due effects, exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ingest", parents=[common], help="take .eml or form .json files as if they had just arrived")
    p.add_argument("files", nargs="+")
    p.add_argument("--send", action="store_true", help="also send the queued mail now")
    p.set_defaults(func=cmd_ingest)

    sub.add_parser("status", parents=[common], help="sources, outbox, quarantine").set_defaults(func=cmd_status)

    p = sub.add_parser("quarantine", parents=[common], help="what could not be processed")
    qsub = p.add_subparsers(dest="action", required=True)
    q = qsub.add_parser("list", parents=[common])
    q.add_argument("--all", action="store_true", help="released and dismissed items too")
    q = qsub.add_parser("retry", parents=[common])
    q.add_argument("id", nargs="?", type=int)
    q = qsub.add_parser("dismiss", parents=[common], help="mark a held item dealt with by a person, without processing it (its bytes are kept)")
    q.add_argument("id", type=int)
    q.add_argument("--reason", required=True, help="why (mandatory; kept with the item and in the console's audit)")
    p.set_defaults(func=cmd_quarantine)

    p = sub.add_parser(
        "classify",
        parents=[common],
        help="classify one .eml or form .json without storing it",
        description="intake classify FILE|-: one message. intake classify eval LABELLED: the rules measured "
        "on labelled messages (.jsonl or .csv with subject, body, type, urgency; lang, hard optional).",
    )
    p.add_argument("file", help="path, or - for standard input, or 'eval'")
    p.add_argument("labelled", nargs="?", help="after 'eval': the labelled .jsonl or .csv file")
    p.add_argument("--worst", type=int, default=10, help="after 'eval': how many of the worst errors to list")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("tickets", parents=[common], help="read tickets")
    tsub = p.add_subparsers(dest="action", required=True)
    t = tsub.add_parser("list", parents=[common])
    t.add_argument("--status", choices=("new", "in_progress", "follow_up", "resolved", "closed", "open"))
    t.add_argument("--limit", type=int, default=50)
    t = tsub.add_parser("show", parents=[common])
    t.add_argument("ref")
    p.set_defaults(func=cmd_tickets)

    from intake.cli.archive import add_parser as add_archive_parser

    add_archive_parser(sub, common)

    from intake.cli.rules import add_parser as add_rules_parser

    add_rules_parser(sub, common)

    from intake.cli.auth import add_parser as add_auth_parser

    add_auth_parser(sub, common)

    from intake.web.console.users_cli import add_parser as add_users_parser

    add_users_parser(sub, common)

    p = sub.add_parser("report", parents=[common], help="review figures")
    rsub = p.add_subparsers(dest="action", required=True)
    r = rsub.add_parser("weekly", parents=[common], help="the weekly review: counts, SLA, response times, satisfaction, keywords")
    r.add_argument("--week", metavar="2026-W47", help="ISO week (default: the last complete week)")
    r.add_argument("--pdf", metavar="FILE", type=Path, help="also write the report with charts as a PDF")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    as_json = getattr(args, "json", False)
    try:
        args.config_obj = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.config_obj.log, verbose=args.command == "run")
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from classify.errors import RulesError
    from intake.outgoing.templates import TemplatesError

    try:
        return args.func(args, Output(as_json))
    except (config_mod.ConfigError, RulesError, TemplatesError) as exc:
        # a file the user handed us is wrong: say which and where, no traceback
        print(f"intake: {exc}", file=sys.stderr)
        return 2
    except (OperationalError, ProgrammingError) as exc:
        # most often a database that `intake init` has not created or upgraded yet
        print(
            f"intake: database {_safe_url(args.config_obj.database.url)}: {exc.orig}\n  (has `intake init` been run with this config?)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
