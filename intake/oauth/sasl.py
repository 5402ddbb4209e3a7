"""Presenting an access token: SASL XOAUTH2 (Microsoft, Google) or OAUTHBEARER (RFC 7628,
used where the server offers it), for IMAP (imapclient) and SMTP (smtplib).

A server that refuses the token gets one more, freshly acquired: a token the provider
revoked or expired early looks valid to our clock, and a silent renewal keeps the
mailbox flowing. A second refusal goes up as the login error.
"""

from __future__ import annotations

import smtplib

from intake.oauth import TokenSource


def xoauth2(user: str, token: str) -> str:
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(user: str, token: str) -> str:
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    return f"n,a={authzid},\x01auth=Bearer {token}\x01\x01"


def _answer_once(initial: str):
    """A SASL responder: the token first; to the server's error challenge an empty
    response, which lets it end the exchange with its failure (RFC 7628 3.2.3)."""
    calls = 0

    def respond(_challenge=None) -> str:
        nonlocal calls
        calls += 1
        return initial if calls == 1 else ""

    return respond


def imap_login(client, user: str, tokens: TokenSource) -> None:
    """Log an imapclient connection in with the account's token; one renewal on refusal."""
    from imapclient.exceptions import IMAPClientError, LoginError

    mechanism = "OAUTHBEARER" if b"AUTH=OAUTHBEARER" in client.capabilities() else "XOAUTH2"
    encode = oauthbearer if mechanism == "OAUTHBEARER" else xoauth2

    def attempt(token: str) -> None:
        try:
            client._command_and_check("authenticate", mechanism, _answer_once(encode(user, token)))
        except IMAPClientError as exc:
            raise LoginError(f"{mechanism} login refused: {exc}") from None

    try:
        attempt(tokens.token())
    except LoginError:
        attempt(tokens.renew())


def smtp_login(conn: smtplib.SMTP, user: str, tokens: TokenSource) -> None:
    """AUTH on an smtplib connection (after EHLO/STARTTLS) with the token; one renewal on refusal."""
    conn.ehlo_or_helo_if_needed()
    offered = conn.esmtp_features.get("auth", "").upper().split()
    mechanism = "OAUTHBEARER" if "OAUTHBEARER" in offered else "XOAUTH2"
    encode = oauthbearer if mechanism == "OAUTHBEARER" else xoauth2
    try:
        conn.auth(mechanism, _answer_once(encode(user, tokens.token())))
    except smtplib.SMTPAuthenticationError:
        conn.auth(mechanism, _answer_once(encode(user, tokens.renew())))
