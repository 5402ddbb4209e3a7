"""A small OAuth2 identity provider on loopback, for the OAuth tests.

It stands in for three things at once:
- Microsoft Entra ID's v2.0 endpoints for one tenant (OpenID configuration, token,
  device code) under https://127.0.0.1:<port>/<tenant>/..., which msal reaches through
  a configured authority with instance discovery off;
- Google's OAuth token endpoint (https://127.0.0.1:<port>/google/token: service-account
  JWT bearer grants, refresh tokens, authorization codes) and its consent page
  (/google/auth, which approves at once and redirects, as a browser would be);
- the token introspection (RFC 7662) a mail server asks, at http://127.0.0.1:<port2>/introspect:
  Dovecot's `oauth2` passdb posts the token there and logs the user in when it is active.

The test registers apps, service accounts and users, and can expire or revoke any token.
Requests are answered with the shapes the providers document (access_token, token_type,
expires_in, refresh_token; error and error_description on refusal). It listens on
127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt

from tests.servers.dovecot import HOST, make_self_signed_cert


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@dataclass
class AccessToken:
    user: str
    client_id: str
    expires_at: float
    revoked: bool = False

    def active(self) -> bool:
        return not self.revoked and time.time() < self.expires_at


@dataclass
class App:
    """An app registration (Microsoft) or OAuth client / service account (Google)."""

    client_id: str
    secret: str | None = None  # confidential clients
    public_key: bytes | None = None  # certificate or service-account key: assertions are checked with it
    mailboxes: set[str] = field(default_factory=set)  # app-only: the mailboxes it was granted (Add-MailboxPermission)
    withdrawn: set[str] = field(default_factory=set)  # mailboxes whose grant was taken back (Remove-MailboxPermission)
    disabled: bool = False  # revoked: every grant refused


class IdentityProvider:
    def __init__(self, root: Path, tenant: str = "contoso-test"):
        self.tenant = tenant
        self.cert, self.key = make_self_signed_cert(Path(root))
        self.ca_file = str(self.cert)
        self.apps: dict[str, App] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, tuple[str, str]] = {}  # refresh token -> (client_id, user)
        self.devices: dict[str, dict] = {}
        self.codes: dict[str, dict] = {}
        self.lifetime = 3600  # seconds, as Entra ID and Google give
        self.rotate_refresh_tokens = True  # Entra ID returns a new refresh token with every refresh
        self.device_user = "support"  # who approves a device code
        self.grants: list[tuple[str, str]] = []  # (grant_type, client_id) of every token issued
        self.refused: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._https = ThreadingHTTPServer((HOST, 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self._https.socket = context.wrap_socket(self._https.socket, server_side=True)
        self._http = ThreadingHTTPServer((HOST, 0), self._handler())
        self.base = f"https://{HOST}:{self._https.server_address[1]}"
        self.authority = f"{self.base}/{tenant}"
        self.google_token_uri = f"{self.base}/google/token"
        self.google_auth_uri = f"{self.base}/google/auth"
        self.introspection_url = f"http://{HOST}:{self._http.server_address[1]}/introspect"
        self._threads: list[threading.Thread] = []

    # -- the test's controls ------------------------------------------------------

    def add_app(self, client_id: str, *, secret: str | None = None, public_key: bytes | None = None, mailboxes=()) -> App:
        app = App(client_id, secret, public_key, set(mailboxes))
        self.apps[client_id] = app
        return app

    def tokens_of(self, user: str) -> list[str]:
        return [t for t, a in self.access.items() if a.user == user]

    def expire_all(self, user: str) -> None:
        """Every access token of `user` expires now (as if an hour had passed)."""
        with self._lock:
            for token in self.tokens_of(user):
                self.access[token].expires_at = 0

    def revoke_app(self, client_id: str) -> None:
        """The app's consent or secret is withdrawn: its tokens die and no new ones are given."""
        with self._lock:
            self.apps[client_id].disabled = True
            for a in self.access.values():
                if a.client_id == client_id:
                    a.revoked = True
            for rt, (cid, _user) in list(self.refresh.items()):
                if cid == client_id:
                    del self.refresh[rt]

    def restore_app(self, client_id: str) -> None:
        self.apps[client_id].disabled = False

    def withdraw_mailbox(self, client_id: str, user: str) -> None:
        """The app's access to the mailbox is taken back: the token endpoint still answers,
        the mail server refuses every token of the app for that mailbox (as Exchange does)."""
        self.apps[client_id].withdrawn.add(user)

    def grant_mailbox(self, client_id: str, user: str) -> None:
        self.apps[client_id].withdrawn.discard(user)

    def issued(self, grant_type: str | None = None) -> int:
        return sum(1 for g, _ in self.grants if grant_type is None or g == grant_type)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> IdentityProvider:
        for server in (self._https, self._http):
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()

    # -- the endpoints ------------------------------------------------------------

    def _issue(self, grant: str, client_id: str, user: str, with_refresh: bool, scope: str = "") -> dict:
        token = "at-" + secrets.token_urlsafe(24)
        self.access[token] = AccessToken(user, client_id, time.time() + self.lifetime)
        self.grants.append((grant, client_id))
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime, "scope": scope}
        if with_refresh:
            refresh = "rt-" + secrets.token_urlsafe(24)
            self.refresh[refresh] = (client_id, user)
            answer["refresh_token"] = refresh
            # Entra ID's account hints, which msal keeps its cache by
            answer["client_info"] = _b64({"uid": f"uid-{user}", "utid": self.tenant})
            now = int(time.time())
            claims = {
                "iss": f"{self.authority}/v2.0",
                "sub": user,
                "aud": client_id,
                "iat": now,
                "exp": now + 3600,
                "preferred_username": user,
                "oid": f"uid-{user}",
                "tid": self.tenant,
            }
            answer["id_token"] = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        return answer

    def _client(self, form: dict, audience: str) -> App | None:
        """The confidential or public client a token request comes from, its credential checked."""
        app = self.apps.get(form.get("client_id", ""))
        if "client_assertion" in form:  # certificate (Microsoft) credential: a JWT signed with the key
            claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
            app = self.apps.get(claims.get("iss", ""))
            if app is None or app.public_key is None:
                return None
            jwt.decode(form["client_assertion"], app.public_key, algorithms=["RS256", "PS256"], audience=audience)
            return app
        if app is None:
            return None
        if app.secret is not None and form.get("client_secret") != app.secret:
            return None
        return app

    def token(self, path: str, form: dict) -> tuple[int, dict]:
        grant = form.get("grant_type", "")
        with self._lock:
            if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":  # Google service account
                head = jwt.decode(form.get("assertion", ""), options={"verify_signature": False})
                app = self.apps.get(head.get("iss", ""))
                if app is None or app.disabled or app.public_key is None:
                    return self._refuse(grant, head.get("iss", ""), "invalid_grant", "unknown or disabled service account")
                # google-auth addresses the assertion to Google's token endpoint whatever token_uri it posts to
                claims = jwt.decode(form["assertion"], app.public_key, algorithms=["RS256"], audience="https://oauth2.googleapis.com/token")
                if claims.get("sub") not in app.mailboxes or claims.get("scope") != "https://mail.google.com/":
                    return self._refuse(grant, app.client_id, "unauthorized_client", "no domain-wide delegation for this user and scope")
                return 200, self._issue(grant, app.client_id, claims["sub"], False, claims["scope"])
            audience = f"{self.authority}/oauth2/v2.0/token"
            app = self._client(form, audience)
            if app is None or app.disabled:
                return self._refuse(grant, form.get("client_id", ""), "invalid_client", "AADSTS7000215: Invalid client secret provided.")
            if grant == "client_credentials":
                if not app.mailboxes:
                    return self._refuse(grant, app.client_id, "unauthorized_client", "no mailbox granted")
                return 200, self._issue(grant, app.client_id, next(iter(app.mailboxes)), False, form.get("scope", ""))
            if grant == "refresh_token":
                owner = self.refresh.get(form.get("refresh_token", ""))
                if owner is None or owner[0] != app.client_id:
                    return self._refuse(grant, app.client_id, "invalid_grant", "AADSTS70008: The refresh token has expired or been revoked.")
                if self.rotate_refresh_tokens:
                    del self.refresh[form["refresh_token"]]
                    return 200, self._issue(grant, app.client_id, owner[1], True, form.get("scope", ""))
                answer = self._issue(grant, app.client_id, owner[1], False, form.get("scope", ""))
                return 200, answer
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                device = self.devices.get(form.get("device_code", ""))
                if device is None:
                    return self._refuse(grant, app.client_id, "expired_token", "unknown device code")
                del self.devices[form["device_code"]]
                return 200, self._issue(grant, app.client_id, self.device_user, True, form.get("scope", ""))
            if grant == "authorization_code":
                code = self.codes.pop(form.get("code", ""), None)
                if code is None or code["redirect_uri"] != form.get("redirect_uri") or code["client_id"] != app.client_id:
                    return self._refuse(grant, app.client_id, "invalid_grant", "bad authorization code")
                verifier = form.get("code_verifier", "").encode()
                import hashlib

                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
                if challenge != code["challenge"]:
                    return self._refuse(grant, app.client_id, "invalid_grant", "PKCE verifier does not match")
                return 200, self._issue(grant, app.client_id, code["user"], True, code["scope"])
        return self._refuse(grant, form.get("client_id", ""), "unsupported_grant_type", grant)

    def _refuse(self, grant: str, client_id: str, error: str, description: str) -> tuple[int, dict]:
        self.refused.append((grant, client_id))
        return 400, {"error": error, "error_description": description}

    def introspect(self, form: dict) -> dict:
        entry = self.access.get(form.get("token", ""))
        if entry is None or not entry.active():
            return {"active": False}
        app = self.apps.get(entry.client_id)
        if app is not None and entry.user in app.withdrawn:
            return {"active": False}
        return {"active": True, "username": entry.user, "exp": int(entry.expires_at)}

    def _handler(idp):  # noqa: N805 (the handler class closes over the provider)
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path == f"/{idp.tenant}/v2.0/.well-known/openid-configuration":
                    base = idp.authority
                    return self._json(
                        200,
                        {
                            "issuer": f"{base}/v2.0",
                            "token_endpoint": f"{base}/oauth2/v2.0/token",
                            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                        },
                    )
                if url.path == "/google/auth":  # the user consents at once; the browser follows the redirect
                    q = dict(urllib.parse.parse_qsl(url.query))
                    code = "code-" + secrets.token_urlsafe(12)
                    idp.codes[code] = {
                        "client_id": q["client_id"],
                        "redirect_uri": q["redirect_uri"],
                        "user": q.get("login_hint", ""),
                        "challenge": q.get("code_challenge", ""),
                        "scope": q.get("scope", ""),
                    }
                    self.send_response(302)
                    self.send_header("Location", f"{q['redirect_uri']}?{urllib.parse.urlencode({'code': code, 'state': q['state']})}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                path = urllib.parse.urlsplit(self.path).path
                if path == "/introspect":
                    return self._json(200, idp.introspect(form))
                if path == f"/{idp.tenant}/oauth2/v2.0/devicecode":
                    device = "dc-" + secrets.token_urlsafe(12)
                    idp.devices[device] = {"client_id": form.get("client_id")}
                    return self._json(
                        200,
                        {
                            "device_code": device,
                            "user_code": "TEST-CODE",
                            "verification_uri": f"{idp.base}/devicelogin",
                            "expires_in": 900,
                            "interval": 1,
                            "message": f"To sign in, open {idp.base}/devicelogin and enter the code TEST-CODE to authenticate.",
                        },
                    )
                if path in (f"/{idp.tenant}/oauth2/v2.0/token", "/google/token"):
                    try:
                        status, body = idp.token(path, form)
                    except jwt.InvalidTokenError as exc:  # a bad signature or audience: refused, as the real ones do
                        status, body = idp._refuse(form.get("grant_type", ""), form.get("client_id", ""), "invalid_grant", str(exc))
                    return self._json(status, body)
                return self._json(404, {"error": "not_found"})

        return Handler
