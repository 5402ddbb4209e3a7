"""OAuth2 login to SMTP: the transport presents its token with OAUTHBEARER where the server
offers it, XOAUTH2 otherwise. The SMTP server is aiosmtpd on loopback with those two SASL
mechanisms added; like Dovecot it asks the loopback identity provider's introspection
endpoint about each token (tests/servers/oauth_idp.py says what that server stands in for)."""

from __future__ import annotations

import base64
import json
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

from intake.config import from_dict
from intake.outgoing.transport import TransportError, make_transport
from tests.integration.oauth_helpers import SECRET, SECRET_ENV, secret_env  # noqa: F401 (fixture)
from tests.servers.dovecot import HOST, free_port
from tests.servers.oauth_idp import IdentityProvider


class XOAuth2SMTP(SMTP):
    """aiosmtpd with XOAUTH2 (as Microsoft's servers): the token is checked at the identity provider."""

    def __init__(self, handler, idp: IdentityProvider, **kwargs):
        super().__init__(handler, **kwargs)
        self.idp = idp

    async def auth_XOAUTH2(self, _, args):
        return await self._bearer("XOAUTH2", args)

    async def _bearer(self, mechanism: str, args) -> AuthResult:
        fields = base64.b64decode(args[1]).decode().split("\x01")
        user = fields[0].removeprefix("user=").removeprefix("n,a=").rstrip(",")
        token = next((f.removeprefix("auth=Bearer ") for f in fields if f.startswith("auth=Bearer ")), "")
        answer = self.idp.introspect({"token": token})
        if answer.get("active") and answer.get("username") == user:
            self.server.logins.append((mechanism, user))
            return AuthResult(success=True, auth_data=user)
        # RFC 7628 3.2.2: the error as a challenge, answered by an empty line, then 535
        await self.challenge_auth(base64.b64encode(json.dumps({"status": "invalid_token"}).encode()).decode(), encode_to_b64=False)
        return AuthResult(success=False, handled=False)


class BearerSMTP(XOAuth2SMTP):
    """... and OAUTHBEARER (RFC 7628), as Google's servers."""

    async def auth_OAUTHBEARER(self, _, args):
        return await self._bearer("OAUTHBEARER", args)


class Collector:
    def __init__(self):
        self.received: list[tuple[str, bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        self.received.append((session.auth_data, envelope.original_content))
        return "250 OK"


class OAuthSmtpServer(Controller):
    def __init__(self, idp, smtp_class):
        self.logins: list = []
        self.collector = Collector()
        self.idp, self.smtp_class = idp, smtp_class
        super().__init__(self.collector, hostname=HOST, port=free_port(), auth_require_tls=False, decode_data=False, ready_timeout=10)

    def factory(self):
        smtp = self.smtp_class(self.handler, self.idp, **self.SMTP_kwargs)
        smtp.server = self
        return smtp


@pytest.fixture
def idp(tmp_path):
    (tmp_path / "idp").mkdir()
    provider = IdentityProvider(tmp_path / "idp").start()
    yield provider
    provider.stop()


def smtp_settings(idp, server):
    return from_dict(
        {
            "smtp": {
                "host": HOST,
                "port": server.port,
                "username": "support",
                "auth": "oauth2",
                "oauth_provider": "microsoft",
                "tenant": idp.tenant,
                "client_id": "app-smtp",
                "client_secret_env": SECRET_ENV,
                "authority": idp.authority,
                "oauth_ca_file": idp.ca_file,
            }
        }
    ).smtp


def message(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "support@example.com", "li.wei@kehu.cn", subject
    msg.set_content("您的工单已受理。")
    return msg.as_bytes()


@pytest.mark.parametrize("smtp_class, mechanism", [(BearerSMTP, "OAUTHBEARER"), (XOAuth2SMTP, "XOAUTH2")])
def test_smtp_sends_with_a_token_and_renews_a_refused_one(tmp_path, idp, smtp_class, mechanism):
    idp.add_app("app-smtp", secret=SECRET, mailboxes={"support"})
    server = OAuthSmtpServer(idp, smtp_class)
    server.start()
    try:
        transport = make_transport(smtp_settings(idp, server), tmp_path / "var" / "outgoing")
        transport.send("support@example.com", "li.wei@kehu.cn", message("first"))
        assert server.logins == [(mechanism, "support")]
        transport.close()

        idp.expire_all("support")  # msal still holds it as good for an hour
        transport.send("support@example.com", "li.wei@kehu.cn", message("second"))
        transport.close()
        assert [user for user, _ in server.collector.received] == ["support", "support"]
        assert idp.issued("client_credentials") == 2  # the refused token was renewed once
        assert (tmp_path / "var" / "oauth" / "smtp.state.json").exists()

        idp.revoke_app("app-smtp")
        with pytest.raises(TransportError) as failed:
            transport.send("support@example.com", "li.wei@kehu.cn", message("third"))
        assert not failed.value.permanent and "invalid_client" in str(failed.value) and SECRET not in str(failed.value)
        assert len(server.collector.received) == 2
    finally:
        server.stop()
