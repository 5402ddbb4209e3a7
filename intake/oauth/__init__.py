"""OAuth2 login to mailboxes: access tokens from Microsoft (msal) and Google (google-auth),
presented to IMAP and SMTP servers with XOAUTH2 or OAUTHBEARER (sasl.py).

A `TokenSource` gives the access token to log in with; the providers' libraries refresh
it before it expires (msal: 5 minutes before, google-auth: about 4). A refresh token
(delegated flows) lives in paths.var/oauth/, written at once when the provider rotates
it (store.py). Each acquisition also writes the token's expiry beside it, which
`intake status`, /metrics and /healthz read. Secrets come from `*_env` variables and
files only and are never logged: errors carry the provider's error code and text.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Protocol

# what the mailbox servers expect a token for
MICROSOFT_APP_SCOPE = "https://outlook.office365.com/.default"  # IMAP.AccessAsApp / SMTP.SendAsApp as granted
MICROSOFT_DELEGATED_SCOPES = ("https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send")
GOOGLE_SCOPE = "https://mail.google.com/"


class TokenError(Exception):
    """No access token could be had; the message names the account and the provider's answer."""


class TokenSource(Protocol):
    label: str  # "imap:<account>" or "smtp": names the state files and the metrics

    def token(self) -> str:
        """An access token valid for a while yet (refreshed when near its expiry)."""

    def renew(self) -> str:
        """A new access token: the server refused the one `token()` gave."""


def token_source(settings, label: str, var: Path) -> TokenSource | None:
    """The token source of an [[imap]] account or of [smtp] (None for password login)."""
    if settings.auth != "oauth2":
        return None
    if settings.oauth_provider == "microsoft":
        from intake.oauth.microsoft import MicrosoftTokens

        return MicrosoftTokens(settings, label, var)
    from intake.oauth.google import GoogleTokens

    return GoogleTokens(settings, label, var)


def http_session(ca_file: str = "", timeout: float = 30.0):
    """A requests session for the token endpoint: `ca_file` (oauth_ca_file) trusted when
    given, every request bounded by `timeout`."""
    import functools

    import requests

    class Session(requests.Session):
        # requests lets REQUESTS_CA_BUNDLE replace a session's own `verify`
        # (psf/requests#3829): a CA file written in the config must win
        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if verify is None and ca_file:
                settings["verify"] = ca_file
            return settings

    session = Session()
    session.verify = ca_file or True
    session.request = functools.partial(session.request, timeout=timeout)  # type: ignore[method-assign]
    return session


def credential_expiry(settings):
    """When the login's own credential expires (a Microsoft app's certificate, read from
    certificate_file; a client secret's `secret_expires` date), or None when unknown."""
    from datetime import datetime

    if settings.auth != "oauth2":
        return None
    if settings.certificate_file:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(Path(settings.certificate_file).read_bytes())
        return cert.not_valid_after_utc
    if settings.secret_expires:
        return datetime.fromisoformat(settings.secret_expires).replace(tzinfo=UTC)
    return None


def credential_expiries(config) -> dict:
    """{label: expiry} of every OAuth2 login whose credential's expiry is known."""
    logins = [(f"imap:{imap.name}", imap) for imap in config.imap] + [("smtp", config.smtp)] + [(f"graph:{g.name}", g) for g in config.graph]
    found = {}
    for label, settings in logins:
        try:
            expires = credential_expiry(settings)
        except (OSError, ValueError):  # an unreadable certificate fails the login, which says so
            continue
        if expires is not None:
            found[label] = expires
    return found
