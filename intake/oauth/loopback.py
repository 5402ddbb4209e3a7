"""The installed-app authorization code flow (RFC 8252): the browser is sent back to a
listener on 127.0.0.1, so no public redirect URI is needed; PKCE guards the code."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

from intake.oauth import TokenError


def wait_for_code(
    auth_uri: str, client_id: str, scopes: list[str], login_hint: str, say, port: int = 0, timeout: float = 600.0
) -> tuple[str, str, str]:
    """Print the consent address, wait for the redirect; returns (code, redirect_uri, PKCE verifier)."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    got: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            if query.get("state") == state:
                got.update(query)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"intake: signed in, you may close this page.\n" if "code" in got else b"intake: no code\n")

        def log_message(self, *args) -> None:  # the query holds the code: not in the terminal
            pass

    with HTTPServer(("127.0.0.1", port), Handler) as server:
        server.timeout = timeout
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/"
        query = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": " ".join(scopes),
            "access_type": "offline",
            "prompt": "consent",
            "login_hint": login_hint,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        say(
            f"Open this address in a browser on this machine (or forward port {server.server_address[1]} to it) "
            f"and allow access:\n{auth_uri}?{urllib.parse.urlencode(query)}"
        )
        server.timeout = 1.0
        deadline = time.monotonic() + timeout
        while not got and time.monotonic() < deadline:
            server.handle_request()
    if "code" not in got:
        raise TokenError(f"sign-in refused: {got.get('error', 'no answer')}")
    return got["code"], redirect_uri, verifier


def exchange_code(session, token_uri: str, code: str, redirect_uri: str, verifier: str, client_id: str, client_secret: str) -> dict:
    response = session.post(
        token_uri,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": client_id,
            "client_secret": client_secret,
        },
        timeout=30,
    )
    try:
        return response.json()
    except ValueError:
        raise TokenError(f"token endpoint answered HTTP {response.status_code} without JSON") from None
