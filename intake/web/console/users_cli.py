"""`intake users add|list|passwd|roles|disable|enable`: the web console's users.

Passwords are asked for twice on the terminal, or read as one line from standard input
with --password-stdin (scripts, provisioning); never taken as an argument, where they
would land in the shell history and the process list."""

from __future__ import annotations

import getpass
import sys

from intake.web.console.models import ROLES


def _sessions(args):
    from intake.store.db import make_engine, make_sessions

    return make_sessions(make_engine(args.config_obj.database.url))


def _password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_users(args, out) -> int:
    from intake.web.console import auth

    sessions = _sessions(args)
    try:
        if args.action == "list":
            for u in auth.list_users(sessions):
                out.row(
                    {
                        "name": u.name,
                        "roles": u.roles.split(","),
                        "disabled": u.disabled,
                        "created_at": u.created_at,
                        "last_sign_in_at": u.last_sign_in_at,
                    },
                    f"{u.name}: {u.roles}{' (disabled)' if u.disabled else ''}, last sign-in "
                    + (f"{u.last_sign_in_at:%Y-%m-%d %H:%M} UTC" if u.last_sign_in_at else "never"),
                )
            return 0
        if args.action == "add":
            auth.add_user(sessions, args.name, _password(args), args.role)
            out.row(
                {"name": args.name, "roles": sorted(set(args.role)), "added": True}, f"user {args.name} added ({', '.join(sorted(set(args.role)))})"
            )
        elif args.action == "passwd":
            auth.set_password(sessions, args.name, _password(args))
            out.row({"name": args.name, "password_changed": True}, f"password of {args.name} changed; their sessions ended")
        elif args.action == "roles":
            auth.set_roles(sessions, args.name, args.role)
            out.row({"name": args.name, "roles": sorted(set(args.role))}, f"{args.name} now has: {', '.join(sorted(set(args.role)))}")
        else:
            auth.set_disabled(sessions, args.name, args.action == "disable")
            out.row({"name": args.name, "disabled": args.action == "disable"}, f"user {args.name} {args.action}d")
    except (auth.UserError, ValueError) as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 2
    return 0


def add_parser(sub, common) -> None:
    p = sub.add_parser("users", parents=[common], help="the web console's users ([console])")
    usub = p.add_subparsers(dest="action", required=True)
    usub.add_parser("list", parents=[common], help="every user, their roles, last sign-in")
    for action, text in (("add", "add a user (asks for the password)"), ("passwd", "set a new password (ends their sessions)")):
        u = usub.add_parser(action, parents=[common], help=text)
        u.add_argument("name")
        u.add_argument("--password-stdin", action="store_true", help="read the password as one line from standard input")
        if action == "add":
            u.add_argument("--role", action="append", required=True, choices=ROLES, help="operator or compliance; repeat for both")
    u = usub.add_parser("roles", parents=[common], help="replace a user's roles (ends their sessions)")
    u.add_argument("name")
    u.add_argument("--role", action="append", required=True, choices=ROLES)
    for action in ("disable", "enable"):
        usub.add_parser(action, parents=[common], help=f"{action} a user's sign-in").add_argument("name")
    p.set_defaults(func=cmd_users)
