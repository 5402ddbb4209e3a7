"""Access tokens from Google with google-auth.

app (Workspace, no user): a service account with domain-wide delegation signs a JWT for
the mailbox's user (`subject`) with the https://mail.google.com/ scope. delegated (an
installed app, e.g. a Gmail account): `intake auth login` obtains a refresh token once
(the user consents in a browser, Google redirects to a listener on 127.0.0.1); it is
kept in paths.var/oauth/<label>.google.json and saved again whenever Google returns a
new one.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC
from pathlib import Path

import requests
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.requests import Request
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from intake.oauth import GOOGLE_SCOPE, TokenError, http_session
from intake.oauth.store import file_for, read_private, record_expiry, write_private

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/v2/auth"


class GoogleTokens:
    def __init__(self, settings, label: str, var: Path):
        self.label, self.var, self.username = label, Path(var), settings.username
        self.delegated = settings.oauth_flow == "delegated"
        self.scopes = [settings.oauth_scope or GOOGLE_SCOPE]
        self.client_id, self.client_secret = settings.client_id, settings.client_secret()
        self.token_uri = settings.token_uri
        self.http = Request(http_session(settings.oauth_ca_file))
        self._lock = threading.Lock()
        self.refresh_file = file_for(self.var, label, "google.json")
        if self.delegated:
            self.credentials = self._user_credentials()
        else:
            info = json.loads(Path(settings.service_account_file).read_text())
            if settings.token_uri:
                info["token_uri"] = settings.token_uri
            self.credentials = service_account.Credentials.from_service_account_info(info, scopes=self.scopes, subject=self.username)

    def _user_credentials(self) -> user_credentials.Credentials | None:
        saved = read_private(self.refresh_file)
        if not saved:
            return None
        return user_credentials.Credentials(
            None,
            refresh_token=json.loads(saved)["refresh_token"],
            token_uri=self.token_uri or GOOGLE_TOKEN_URI,
            client_id=self.client_id,
            client_secret=self.client_secret,
            scopes=self.scopes,
        )

    def token(self) -> str:
        with self._lock:
            return self._acquire(force=False)

    def renew(self) -> str:
        with self._lock:
            return self._acquire(force=True)

    def _acquire(self, force: bool) -> str:
        creds = self.credentials
        if creds is None:
            raise TokenError(f"{self.label}: not signed in; run `intake auth login {self.label}`")
        if force or not creds.valid:  # `valid` turns false a few minutes before the expiry
            before = getattr(creds, "refresh_token", None)
            try:
                creds.refresh(self.http)
            except (GoogleAuthError, requests.RequestException) as exc:
                raise TokenError(f"{self.label}: Google refused a token: {exc}") from None
            if self.delegated and creds.refresh_token and creds.refresh_token != before:
                self._keep(creds.refresh_token)
            if creds.expiry is not None:  # google-auth's expiry is naive UTC
                record_expiry(self.var, self.label, creds.expiry.replace(tzinfo=UTC))
        return creds.token

    def _keep(self, refresh_token: str) -> None:
        write_private(self.refresh_file, json.dumps({"refresh_token": refresh_token}).encode())

    def login(self, say, port: int = 0, auth_uri: str = GOOGLE_AUTH_URI) -> str:
        """Installed-app sign-in: the user opens the printed address, consents, and Google
        redirects the browser to a one-time listener on 127.0.0.1 with the code, which is
        exchanged for the refresh token. Returns the mailbox name."""
        from intake.oauth.loopback import exchange_code, wait_for_code

        if not self.delegated:
            raise TokenError(f"{self.label}: oauth_flow = 'app' needs no sign-in (the service account is used)")
        with self._lock:
            code, redirect_uri, verifier = wait_for_code(auth_uri, self.client_id, self.scopes, self.username, say, port)
            answer = exchange_code(
                self.http.session, self.token_uri or GOOGLE_TOKEN_URI, code, redirect_uri, verifier, self.client_id, self.client_secret
            )
            if "refresh_token" not in answer:
                raise TokenError(f"{self.label}: Google gave no refresh token: {answer.get('error')}: {answer.get('error_description', '')}")
            self._keep(answer["refresh_token"])
            self.credentials = self._user_credentials()
            self._acquire(force=True)
        return self.username
