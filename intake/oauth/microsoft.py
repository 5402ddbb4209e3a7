"""Access tokens from Microsoft Entra ID with msal.

app (a shared mailbox, no user): ConfidentialClientApplication, client credentials with
a client secret or a certificate, scope outlook.office365.com/.default (the
IMAP.AccessAsApp / SMTP.SendAsApp permissions granted to the app). delegated (a user's
own mailbox): PublicClientApplication; `intake auth login` runs the device-code flow
once, after which msal's token cache (the refresh token, which Entra ID rotates on use)
is kept in paths.var/oauth/<label>.msal.json, saved whenever msal changed it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msal
import requests

from intake.oauth import MICROSOFT_APP_SCOPE, MICROSOFT_DELEGATED_SCOPES, TokenError, http_session
from intake.oauth.store import file_for, read_private, record_expiry, write_private

log = logging.getLogger("intake.oauth")


def certificate_credential(path: str) -> dict:
    """msal's client credential from one PEM file holding the private key and its certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    pem = Path(path).read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    return {"private_key": pem.decode(), "thumbprint": cert.fingerprint(hashes.SHA1()).hex()}  # SHA-1: what Entra ID identifies certificates by


class MicrosoftTokens:
    def __init__(self, settings, label: str, var: Path):
        self.label, self.var, self.username = label, Path(var), settings.username
        self.delegated = settings.oauth_flow == "delegated"
        self.scopes = (
            [settings.oauth_scope] if settings.oauth_scope else (list(MICROSOFT_DELEGATED_SCOPES) if self.delegated else [MICROSOFT_APP_SCOPE])
        )
        authority = settings.authority.rstrip("/") or f"https://login.microsoftonline.com/{settings.tenant}"
        options = {"authority": authority, "http_client": http_session(settings.oauth_ca_file)}
        if settings.authority:  # a sovereign cloud or a test's loopback: no discovery at login.microsoftonline.com
            options["instance_discovery"] = False
        self._lock = threading.Lock()  # several mailboxes of one account share the cache
        self.cache_file = file_for(self.var, label, "msal.json")
        self.cache = msal.SerializableTokenCache()
        if self.delegated:
            saved = read_private(self.cache_file)
            if saved:
                self.cache.deserialize(saved.decode())
        self._settings, self._options = settings, options
        self._app: msal.ClientApplication | None = None

    @property
    def app(self) -> msal.ClientApplication:
        """msal's application, made at first use: making it reads the authority's OpenID
        configuration, and an identity provider out of reach must not stop the daemon's start."""
        if self._app is None:
            s, options = self._settings, self._options
            try:
                if self.delegated:
                    self._app = msal.PublicClientApplication(s.client_id, token_cache=self.cache, **options)
                else:
                    credential: str | dict = s.client_secret() if s.client_secret_env else certificate_credential(s.certificate_file)
                    self._app = msal.ConfidentialClientApplication(s.client_id, client_credential=credential, token_cache=self.cache, **options)
            except (ValueError, OSError, requests.RequestException) as exc:
                raise TokenError(f"{self.label}: cannot reach the authority {options['authority']}: {type(exc).__name__}: {exc}") from None
        return self._app

    def token(self) -> str:
        with self._lock:
            return self._reached(force=False)

    def renew(self) -> str:
        with self._lock:
            return self._reached(force=True)

    def _reached(self, force: bool) -> str:
        try:
            return self._acquire(force)
        except requests.RequestException as exc:
            raise TokenError(f"{self.label}: token endpoint unreachable: {type(exc).__name__}: {exc}") from None

    def _acquire(self, force: bool) -> str:
        if self.delegated:
            accounts = self.app.get_accounts(username=self.username) or self.app.get_accounts()
            if not accounts:
                raise TokenError(f"{self.label}: not signed in; run `intake auth login {self.label}`")
            result = self.app.acquire_token_silent_with_error(self.scopes, accounts[0], force_refresh=force)
            self._save_cache()  # a rotated refresh token is on disk before its access token is used
            if result is None:
                raise TokenError(f"{self.label}: the signed-in session is gone; run `intake auth login {self.label}`")
        else:
            assert isinstance(self.app, msal.ConfidentialClientApplication)
            if force:
                self.app.remove_tokens_for_client()
            result = self.app.acquire_token_for_client(scopes=self.scopes)
        return self._access_token(result)

    def _access_token(self, result: dict) -> str:
        if "access_token" not in result:
            raise TokenError(f"{self.label}: Microsoft refused a token: {result.get('error')}: {result.get('error_description', '')[:300]}")
        record_expiry(self.var, self.label, datetime.now(UTC) + timedelta(seconds=int(result.get("expires_in", 0))))
        return result["access_token"]

    def _save_cache(self) -> None:
        if self.delegated and self.cache.has_state_changed:
            write_private(self.cache_file, self.cache.serialize().encode())
            self.cache.has_state_changed = False

    def login(self, say: Callable[[str], None]) -> str:
        """Device-code sign-in (delegated): tell the user where to enter the code, wait for
        them, keep the refresh token. Returns the signed-in account's name."""
        if not self.delegated:
            raise TokenError(f"{self.label}: oauth_flow = 'app' needs no sign-in (the app's own credential is used)")
        assert isinstance(self.app, msal.PublicClientApplication)
        with self._lock:
            flow = self.app.initiate_device_flow(scopes=self.scopes)
            if "user_code" not in flow:
                raise TokenError(f"{self.label}: device sign-in refused: {flow.get('error')}: {flow.get('error_description', '')[:300]}")
            say(flow["message"])
            result = self.app.acquire_token_by_device_flow(flow)
            self._save_cache()
            self._access_token(result)
        return (result.get("id_token_claims") or {}).get("preferred_username", self.username)
