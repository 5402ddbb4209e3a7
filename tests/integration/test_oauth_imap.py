"""OAuth2 login to IMAP, end to end: a real Dovecot checks every XOAUTH2/OAUTHBEARER token
at a token server the tests run on loopback (tests/servers/oauth_idp.py).

That one server stands in for Microsoft Entra ID (msal is pointed at it through the
account's `authority`, instance discovery off, its certificate trusted by `oauth_ca_file`),
for Google's token endpoint and consent page (google-auth through `token_uri`), and for
the token introspection a mail server does (Dovecot's `oauth2` passdb, `introspection_url`).
The tests issue, expire and revoke tokens there. No request leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from intake.config import from_dict
from intake.store.models import SourceState
from tests.integration.oauth_helpers import (  # noqa: F401 (fixtures are used by name)
    SECRET,
    SECRET_ENV,
    context,
    dovecot,
    idp,
    logins,
    mail,
    microsoft_app,
    oauth_server,
    secret_env,
    source_for,
    subjects,
    text_of,
    wait_until,
)

# -- Microsoft, app-only (client credentials) -------------------------------------------


def test_fresh_token_logs_in_and_mail_becomes_a_ticket(tmp_path, idp, dovecot):
    idp.add_app("app-support", secret=SECRET, mailboxes={"support"})
    ctx = context(tmp_path, [microsoft_app(idp, dovecot)])
    dovecot.append("support", "INBOX", mail("登录失败 first"))
    before = len(logins(dovecot, "support"))

    assert source_for(ctx, "support").run_once() == 1

    assert subjects(ctx) == ["登录失败 first"]
    assert idp.issued("client_credentials") == 1
    new_logins = logins(dovecot, "support")[before:]
    assert new_logins and "method=OAUTHBEARER" in new_logins[-1]  # Dovecot offers it: preferred to XOAUTH2
    state = json.loads((tmp_path / "var" / "oauth" / "imap_support.state.json").read_text())
    assert state["label"] == "imap:support" and SECRET not in json.dumps(state)
    assert dovecot.list_uids("support", "INBOX") == []  # moved to Processed after the commit


def test_certificate_credential(tmp_path, idp, dovecot):
    """An app that proves itself with a certificate instead of a secret (a signed client assertion)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from tests.servers.dovecot import make_self_signed_cert

    (tmp_path / "cert").mkdir()
    cert, key = make_self_signed_cert(tmp_path / "cert", common_name="intake-app")
    pem = tmp_path / "cert" / "app.pem"
    pem.write_bytes(key.read_bytes() + cert.read_bytes())
    public = (
        x509.load_pem_x509_certificate(cert.read_bytes())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    idp.add_app("app-cert", public_key=public, mailboxes={"support"})
    ctx = context(tmp_path, [microsoft_app(idp, dovecot, client_id="app-cert", certificate_file=str(pem))])
    dovecot.append("support", "INBOX", mail("certificate"))

    assert source_for(ctx, "support").run_once() == 1
    assert idp.issued("client_credentials") == 1 and subjects(ctx) == ["certificate"]


def test_expired_token_is_renewed_mid_idle_without_an_error(tmp_path, idp, dovecot):
    """The token expires while the source idles and the server drops the session (as
    Exchange Online does): the source logs in again with a new token, silently."""
    idp.add_app("app-support", secret=SECRET, mailboxes={"support"})
    ctx = context(tmp_path, [microsoft_app(idp, dovecot)])
    stop = threading.Event()
    source = source_for(ctx, "support", stop)
    thread = threading.Thread(target=source.run_forever, daemon=True)
    dovecot.append("support", "INBOX", mail("before expiry"))
    thread.start()
    try:
        wait_until(lambda: subjects(ctx) == ["before expiry"], what="the first message")
        first_token = idp.tokens_of("support")
        idp.expire_all("support")  # msal's cache still holds it as valid for an hour
        dovecot.kick("support")
        dovecot.append("support", "INBOX", mail("after expiry"))
        wait_until(lambda: len(subjects(ctx)) == 2, what="the message after the expiry")
    finally:
        stop.set()
        thread.join(10)
    assert idp.issued("client_credentials") == 2  # renewed once, after the server refused the old one
    assert set(idp.tokens_of("support")) > set(first_token)
    with ctx.sessions() as session:
        state = session.get(SourceState, "imap:support/INBOX")
    # the dropped session is reported as such (as with a password); the refused token never is
    assert "refused" not in (state.last_error or "") and "Token" not in (state.last_error or "")
    assert state.last_success_at > state.last_error_at  # up again


# -- Microsoft, delegated (device code) and the rotated refresh token ---------------------


def write_config(tmp_path, accounts: list[dict]) -> Path:
    import tomllib  # noqa: F401 (the file must be valid TOML: intake reads it with tomllib)

    lines = [f'[database]\nurl = "sqlite:///{tmp_path / "intake.db"}"\n', f'[paths]\nvar = "{tmp_path / "var"}"\n']
    for account in accounts:
        lines.append("[[imap]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in account.items()))
    path = tmp_path / "intake.toml"
    path.write_text("\n".join(lines))
    return path


def test_device_code_login_and_rotated_refresh_token_survive_a_restart(tmp_path, idp, dovecot, capsys):
    from intake.cli.main import main

    idp.add_app("app-public", mailboxes=set())  # a public client: no secret
    idp.device_user = "support"
    idp.lifetime = 120  # under msal's 5-minute margin: every use refreshes, and each refresh rotates
    account = microsoft_app(idp, dovecot, client_id="app-public", oauth_flow="delegated")
    del account["client_secret_env"]
    config = write_config(tmp_path, [account])
    ctx = context(tmp_path, [account])

    assert main(["--config", str(config), "auth", "login", "support"]) == 0
    out = capsys.readouterr().out
    assert "TEST-CODE" in out and "signed in as support" in out
    cache = tmp_path / "var" / "oauth" / "imap_support.msal.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    first_refresh = set(idp.refresh)
    assert len(first_refresh) == 1

    dovecot.append("support", "INBOX", mail("delegated one"))
    assert source_for(ctx, "support").run_once() == 1
    rotated = set(idp.refresh)
    assert rotated and rotated.isdisjoint(first_refresh)  # the first refresh token is dead now
    assert next(iter(rotated)) in cache.read_text()  # ... and the new one was on disk at once

    # a restart: a new token source from the file alone
    dovecot.append("support", "INBOX", mail("delegated two"))
    assert source_for(ctx, "support").run_once() == 1
    assert subjects(ctx) == ["delegated one", "delegated two"]
    assert idp.refused == []
    assert [g for g, _ in idp.grants].count("refresh_token") >= 2
    assert not list((tmp_path / "var" / "oauth").glob(".*.tmp"))  # no temp file left behind

    capsys.readouterr()
    assert main(["--config", str(config), "auth", "status"]) == 0
    assert "imap:support: token expires" in capsys.readouterr().out
    assert main(["--config", str(config), "auth", "login", "nosuch"]) == 2
    assert "no account 'nosuch'; the accounts are: support, smtp" in capsys.readouterr().err


# -- Google ------------------------------------------------------------------------------


def service_account_key(tmp_path, email: str) -> tuple[Path, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "test",
                "private_key_id": "k1",
                "private_key": private.decode(),
                "client_email": email,
                "client_id": "1234",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    return path, public


def google_account(idp, dovecot, **keys) -> dict:
    return {
        "name": "support",
        "host": dovecot.host,
        "port": dovecot.port,
        "security": "plain",
        "username": "support",
        "auth": "oauth2",
        "oauth_provider": "google",
        "token_uri": idp.google_token_uri,
        "oauth_ca_file": idp.ca_file,
        **keys,
    }


def test_google_service_account_with_domain_wide_delegation(tmp_path, idp, dovecot):
    key_file, public = service_account_key(tmp_path, "intake@test.iam.gserviceaccount.com")
    idp.add_app("intake@test.iam.gserviceaccount.com", public_key=public, mailboxes={"support"})
    ctx = context(tmp_path, [google_account(idp, dovecot, service_account_file=str(key_file))])
    dovecot.append("support", "INBOX", mail("google app"))

    assert source_for(ctx, "support").run_once() == 1
    assert idp.issued("urn:ietf:params:oauth:grant-type:jwt-bearer") == 1 and subjects(ctx) == ["google app"]


def test_google_installed_app_login_then_refresh(tmp_path, idp, dovecot):
    import requests

    from intake.oauth import token_source

    idp.add_app("google-client", secret=SECRET, mailboxes=set())
    account = google_account(idp, dovecot, oauth_flow="delegated", client_id="google-client", client_secret_env=SECRET_ENV)
    ctx = context(tmp_path, [account])
    cfg = ctx.config.imap[0]
    tokens = token_source(cfg, "imap:support", ctx.config.var)

    def browser(text: str) -> None:  # the user opens the address; the consent page redirects to our listener
        url = text.split()[-1]
        threading.Thread(target=lambda: requests.get(url, verify=idp.ca_file, timeout=10), daemon=True).start()

    assert tokens.login(browser, auth_uri=idp.google_auth_uri) == "support"
    saved = json.loads((tmp_path / "var" / "oauth" / "imap_support.google.json").read_text())["refresh_token"]
    assert saved in idp.refresh  # the rotated one (the login's first use refreshed it)

    dovecot.append("support", "INBOX", mail("google delegated"))
    assert source_for(ctx, "support").run_once() == 1  # a fresh start: the refresh token from the file
    assert subjects(ctx) == ["google delegated"] and idp.refused == []


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, problem",
    [
        ({"auth": "oauth2"}, "needs oauth_provider"),
        ({"auth": "oauth2", "oauth_provider": "microsoft", "client_id": "c"}, "needs tenant"),
        ({"auth": "oauth2", "oauth_provider": "microsoft", "tenant": "t", "client_id": "c"}, "needs one of client_secret_env or certificate_file"),
        (
            {
                "auth": "oauth2",
                "oauth_provider": "microsoft",
                "tenant": "t",
                "client_id": "c",
                "client_secret_env": SECRET_ENV,
                "password_env": SECRET_ENV,
            },
            "password_env is not used with auth = 'oauth2'",
        ),
        (
            {
                "auth": "oauth2",
                "oauth_provider": "google",
                "oauth_flow": "delegated",
                "client_id": "c",
                "client_secret_env": SECRET_ENV,
                "tenant": "t",
            },
            "tenant is not used with oauth_provider = 'google'",
        ),
        ({"tenant": "t"}, "tenant is used only with auth = 'oauth2'"),
        ({"auth": "oauth2", "oauth_provider": "google", "service_account_file": "/nonexistent.json"}, "service_account_file: no such file"),
    ],
)
def test_wrong_combinations_are_refused_naming_the_key(keys, problem):
    from intake.config import ConfigError

    with pytest.raises(ConfigError) as refused:
        from_dict({"imap": [{"name": "support", "host": "127.0.0.1", "username": "support", **keys}]})
    assert "imap[support]: " in str(refused.value) and problem in str(refused.value)
    assert SECRET not in str(refused.value)


def test_refresh_token_file_is_written_atomically_and_private(tmp_path):
    from intake.oauth.store import write_private

    path = tmp_path / "oauth" / "x.json"
    write_private(path, b"one")
    write_private(path, b"two")
    assert path.read_bytes() == b"two" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]
    assert os.stat(path.parent).st_mode & 0o077 == 0
