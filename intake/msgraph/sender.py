"""The mailer's way out through Microsoft Graph: POST /users/{mailbox}/sendMail with our own
MIME (base64, Content-Type: text/plain), so the mail goes out byte for byte as the outbox
holds it, Message-ID included: a resend after a crash carries the same Message-ID, and
replies thread on it.

Graph takes the recipients from the MIME's To/Cc/Bcc headers, not from an envelope: the
outbox writes one recipient per mail, in its To header, and a mail whose envelope
recipient is not among its headers' is refused here rather than sent to someone else.
Graph saves what it sends in the mailbox's Sent Items. A request is limited to 4 MB, so
a mail of more than about 3 MB (base64 adds a third) cannot go this way (permanent error).
"""

from __future__ import annotations

import base64
import logging
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import getaddresses

from intake.msgraph.client import GraphClient, GraphError, Stopped, user_path
from intake.oauth import TokenError
from intake.outgoing.transport import TransportError

log = logging.getLogger("intake.msgraph.sender")

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # Graph's limit on a request body


def header_recipients(raw: bytes) -> set[str]:
    headers = BytesHeaderParser(policy=default).parsebytes(raw)
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    return {address.lower() for _, address in getaddresses(fields) if address}


class GraphTransport:
    """Sends as `mailbox` (a user or shared mailbox the app may send as: Mail.Send)."""

    def __init__(self, client: GraphClient, mailbox: str, name: str):
        self.client, self.mailbox = client, mailbox
        # each request may take the timeout: the first, one more after a 401, one after each
        # throttle waited out (max_retries, each wait at most max_wait), and the token's own
        self.send_seconds = (client.max_retries + 3) * client.timeout + client.max_retries * client.max_wait
        self.health_name = f"graph-send:{name}"  # the mailer's row in source_state (intake/ops/alerts.py)

    def send(self, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        if rcpt_to.lower() not in header_recipients(raw):
            raise TransportError(f"{rcpt_to}: not among the mail's To/Cc/Bcc, and Graph sends to those only", permanent=True)
        body = base64.b64encode(raw)
        if len(body) > MAX_REQUEST_BYTES:
            raise TransportError(f"{rcpt_to}: {len(raw)} bytes is beyond what Graph's sendMail takes (4 MB after base64)", permanent=True)
        try:
            self.client.request("POST", f"{user_path(self.mailbox)}/sendMail", data=body, headers={"Content-Type": "text/plain"}, ok=(202,))
        except TokenError as exc:
            raise TransportError(str(exc), server=True) from None
        except Stopped:
            raise TransportError("stopped while Graph throttled the send", server=True) from None
        except GraphError as exc:
            raise TransportError(str(exc), permanent=_permanent(exc), server=not _permanent(exc)) from None

    def flush(self) -> None:
        pass  # Graph accepted each mail (202) before send returned

    def close(self) -> None:
        pass


def _permanent(exc: GraphError) -> bool:
    """Whether this mail can never go (its content or size), as against the way out
    being shut (no answer, throttled, token or permission refused: mended by the operator)."""
    if exc.status == 413 or exc.code.startswith(("ErrorMimeContent", "ErrorMessageSizeExceeded", "ErrorInvalidRecipients")):
        return True
    return exc.status == 400 and exc.code not in ("", "InvalidAuthenticationToken")


def graph_transport(account, var) -> GraphTransport:
    """The sender of a [[graph]] account (intake/config.py), its token from the account's
    app credentials; its requests count against the mailbox's limit of 4 at once with those of
    the account's folder sources (intake/msgraph/client.py). Throttling is waited out twice at most, 10 s each: the mailer's own
    backoff takes over after that, so a throttled mailbox never holds the outbox (nor a
    shutdown) for long."""
    from intake.msgraph.client import GraphClient, mailbox_limiter
    from intake.oauth.microsoft import MicrosoftTokens

    tokens = MicrosoftTokens(account, f"graph:{account.name}", var)
    client = GraphClient(
        account.api_url,
        tokens,
        ca_file=account.ca_file,
        timeout=account.timeout,
        max_retries=2,
        max_wait=10.0,
        limiter=mailbox_limiter(account.api_url, account.mailbox),  # with the mailbox's folder sources
    )
    return GraphTransport(client, account.mailbox, account.name)
