"""`intake auth login ACCOUNT`: sign a delegated OAuth2 login in once, in a terminal.

ACCOUNT is an [[imap]] account's name, or `smtp`. Microsoft: the device-code flow (the
user enters a code at microsoft.com/devicelogin on any device; no redirect URI).
Google: the installed-app flow (the browser is sent back to a listener on 127.0.0.1).
The refresh token lands in paths.var/oauth/ (mode 0600); the daemon uses and renews it.
`intake auth status` shows each OAuth login's token expiry.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime


def _settings(cfg, account: str):
    if account == "smtp":
        return cfg.smtp, "smtp"
    for imap in cfg.imap:
        if imap.name == account:
            return imap, f"imap:{imap.name}"
    names = ", ".join([i.name for i in cfg.imap] + ["smtp"])
    raise LookupError(f"no account {account!r}; the accounts are: {names}")


def cmd_auth(args, out) -> int:
    from intake.oauth import TokenError, token_source
    from intake.oauth.google import GoogleTokens
    from intake.oauth.microsoft import MicrosoftTokens
    from intake.oauth.store import token_states

    cfg = args.config_obj
    if args.action == "status":
        states = token_states(cfg.var)
        now = datetime.now(UTC)
        for label, state in states.items():
            left = (state["expires_at"] - now).total_seconds()
            out.row(
                {"account": label, **state, "expires_in_seconds": round(left)},
                f"{label}: token expires {state['expires_at']:%Y-%m-%d %H:%M:%S} UTC ({f'in {left:.0f} s' if left > 0 else 'EXPIRED'}), "
                f"acquired {state['acquired_at']:%Y-%m-%d %H:%M:%S} UTC",
            )
        if not states:
            out.row({}, "no OAuth token acquired yet")
        return 0
    try:
        settings, label = _settings(cfg, args.account)
    except LookupError as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 2
    tokens = token_source(settings, label, cfg.var)
    if tokens is None:
        print(f"intake: {label} logs in with a password (auth = 'password'); nothing to sign in", file=sys.stderr)
        return 2
    try:
        if isinstance(tokens, GoogleTokens):
            who = tokens.login(print, port=args.port, **({"auth_uri": args.auth_uri} if args.auth_uri else {}))
        else:
            assert isinstance(tokens, MicrosoftTokens)
            who = tokens.login(print)
        tokens.token()
    except TokenError as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 1
    out.row({"account": label, "signed_in": who}, f"{label}: signed in as {who}; the refresh token is kept in {cfg.var / 'oauth'}")
    return 0


def add_parser(sub, common) -> None:
    p = sub.add_parser("auth", parents=[common], help="OAuth2 sign-in of a mailbox (Microsoft 365, Google)")
    asub = p.add_subparsers(dest="action", required=True)
    a = asub.add_parser("login", parents=[common], help="sign a delegated login in once (device code / browser)")
    a.add_argument("account", help="an [[imap]] account's name, or smtp")
    a.add_argument("--port", type=int, default=0, help="Google: the local port the browser is sent back to (default: any free one)")
    a.add_argument("--auth-uri", default="", help=argparse_hidden())
    asub.add_parser("status", parents=[common], help="each OAuth login's token expiry")
    p.set_defaults(func=cmd_auth)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS  # Google's consent page; tests point it at their loopback stand-in
