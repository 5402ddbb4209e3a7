"""The one place outgoing mail leaves: an SMTP server, or a local Maildir when none is configured."""

from __future__ import annotations

import os
import secrets
import smtplib
import socket
import ssl
import time
from pathlib import Path
from typing import Protocol

from intake.config import Smtp
from intake.files import fsync_dir, write_atomic
from intake.oauth import TokenError, TokenSource, token_source
from intake.oauth.sasl import smtp_login


class TransportError(Exception):
    """Sending failed; `permanent` when retrying cannot help (5xx for the recipient);
    `server` when the way out itself failed (unreachable, login or token refused), not this
    mail: the mailer's health turns red (intake/ops/alerts.py) and the mail waits."""

    def __init__(self, message: str, permanent: bool = False, server: bool = False):
        super().__init__(message)
        self.permanent, self.server = permanent, server


class Transport(Protocol):
    @property
    def health_name(self) -> str | None:
        """Its row in source_state ("smtp", "graph-send:<account>"); None: not watched."""

    @property
    def send_seconds(self) -> float:
        """The most one send may take, retries included: a claim's lease covers a group of them."""

    def send(self, mail_from: str, rcpt_to: str, raw: bytes) -> None: ...
    def flush(self) -> None:
        """Make every mail sent so far durable (before the mailer records it as sent)."""

    def close(self) -> None: ...


class MaildirTransport:
    """Outgoing mail for the embedded defaults: each message a file in var/outgoing/new,
    written the Maildir way (tmp/, fsync, rename) so a reader never sees half a file. The
    folder is synced once a group, in flush(), not once a mail: the mailer records a group
    as sent only after that (a crash before it resends the group, same Message-IDs)."""

    health_name = None
    send_seconds = 5.0  # a file written and synced

    def __init__(self, path: Path):
        self.path = Path(path)
        self._unsynced = False  # a file renamed into new/ since the folder was last synced

    def send(self, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        try:
            for sub in ("new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns()}.{os.getpid()}_{secrets.token_hex(6)}.{socket.gethostname()}"
            write_atomic(self.path / "new" / name, raw, tmp_dir=self.path / "tmp", sync_dir=False)
            self._unsynced = True
        except OSError as exc:
            raise TransportError(f"cannot write to {self.path}: {exc}") from None

    def flush(self) -> None:
        if self._unsynced:
            fsync_dir(self.path / "new")
            self._unsynced = False

    def close(self) -> None:
        pass


class _LetGo(Exception):
    """The server let go of the connection before it took the mail."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class SmtpTransport:
    """Keeps one connection open while mail keeps coming (the mailer closes it when it
    has sent nothing for its idle wait); reconnects when it was dropped. The server may
    let a kept connection go (an idle timeout, a limit of mails a connection): that must
    cost a new connection, not a failed attempt of the mail. So a connection unused for
    a while is asked NOOP before the next mail, and a mail refused with 421 before the
    server took it, or met by a closed connection, goes over a new one at once."""

    health_name = "smtp"
    CHECK_AFTER_SECONDS = 1.0  # unused this long: NOOP before the next mail

    def __init__(self, settings: Smtp, tokens: TokenSource | None = None):
        self.settings = settings
        self.send_seconds = settings.timeout + 1.0
        self.tokens = tokens  # OAuth2 login (intake/oauth) instead of the password
        self.conn: smtplib.SMTP | None = None
        self._last_used = 0.0  # monotonic time of the connection's last mail

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.settings.ca_file or None)
        if not self.settings.verify_tls:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        # smtplib would ask DNS for the FQDN at every connection; strict relays refuse a name
        # without a dot in EHLO, so a bare host name gives way to our address literal
        helo = s.helo or socket.gethostname()
        if s.security == "tls":
            conn = smtplib.SMTP_SSL(local_hostname=helo, timeout=s.timeout, context=self._tls_context())
        else:
            conn = smtplib.SMTP(local_hostname=helo, timeout=s.timeout)
        conn.connect(s.host, s.port)
        if not s.helo and "." not in helo and conn.sock is not None:
            address = conn.sock.getsockname()[0]
            conn.local_hostname = f"[IPv6:{address}]" if ":" in address else f"[{address}]"
        if s.security == "starttls":
            conn.starttls(context=self._tls_context())
        try:
            if self.tokens is not None:
                smtp_login(conn, s.username, self.tokens)
            elif s.username:
                conn.login(s.username, s.secret())
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        if self.conn is not None and time.monotonic() - self._last_used > self.CHECK_AFTER_SECONDS:
            try:
                alive = 200 <= self.conn.noop()[0] < 300
            except (OSError, smtplib.SMTPException):
                alive = False
            if not alive:  # let go by the server meanwhile: a new connection
                self.close()
        if self.conn is not None:
            try:
                self._send(mail_from, rcpt_to, raw)
                return
            except _LetGo:
                # A kept connection the server let go of before it took this mail (a
                # limit of mails a connection, answered 421; a close the NOOP did not
                # see): the mail goes over a new connection, on this same attempt.
                self.close()
        self.conn = self._connected()
        try:
            self._send(mail_from, rcpt_to, raw)
        except _LetGo as exc:  # a new connection let go of at once: the server's trouble
            self.close()
            raise TransportError(f"SMTP server {self.settings.host}:{self.settings.port} unavailable: {exc.reason}", server=True) from None

    def _send(self, mail_from: str, rcpt_to: str, raw: bytes) -> None:
        """One mail over the open connection; raises _LetGo when the server let go of the
        connection before it took the mail."""
        assert self.conn is not None, "send() connects first"
        try:
            options = [] if rcpt_to.isascii() else ["SMTPUTF8"]  # an internationalised address (RFC 6531)
            if options and not self.conn.has_extn("smtputf8"):
                raise TransportError(f"{rcpt_to}: the SMTP server does not accept internationalised addresses (no SMTPUTF8)", permanent=True)
            refused = self.conn.sendmail(mail_from, [rcpt_to], raw, mail_options=options)
        except TransportError:
            raise
        except UnicodeError as exc:
            raise TransportError(f"{rcpt_to}: cannot be sent: {exc}", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise TransportError(f"{rcpt_to} refused: {code} {text!r}", permanent=500 <= code < 600) from None
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code == 421:  # closing the connection, before MAIL FROM was taken
                raise _LetGo(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from None
            self.close()
            permanent = 500 <= exc.smtp_code < 600
            raise TransportError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent, server=not permanent) from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            permanent = 500 <= exc.smtp_code < 600
            raise TransportError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent, server=not permanent) from None
        except smtplib.SMTPServerDisconnected as exc:
            # closed under us (if after the data, the mail may go twice, with one Message-ID, as at its next attempt)
            raise _LetGo(str(exc)) from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise TransportError(f"SMTP server {self.settings.host}:{self.settings.port} unavailable: {exc}", server=True) from None
        finally:
            self._last_used = time.monotonic()
        if refused:
            raise TransportError(f"refused: {refused}", permanent=True)

    def _connected(self) -> smtplib.SMTP:
        """A new logged-in connection. Whatever fails here is the server's or the login's,
        never the mail's: a refused login (535) is no reason to give the mail up, it waits
        (and the mailer turns red) until the login is mended."""
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            return self._connect()
        except TokenError as exc:  # no token, no login
            raise TransportError(str(exc), server=True) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise TransportError(f"SMTP login to {where} refused: {exc.smtp_code} {exc.smtp_error!r}", server=True) from None
        except smtplib.SMTPResponseException as exc:
            raise TransportError(f"SMTP server {where} refused us: {exc.smtp_code} {exc.smtp_error!r}", server=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportError(f"SMTP server {where} unavailable: {exc}", server=True) from None

    def flush(self) -> None:
        pass  # the server took each mail before send returned

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except Exception:
                pass
            self.conn = None


def make_transport(settings: Smtp, outgoing_maildir: Path) -> Transport:
    if not settings.host:
        return MaildirTransport(outgoing_maildir)
    # the token's state files live in paths.var, the outgoing Maildir's parent
    return SmtpTransport(settings, token_source(settings, "smtp", Path(outgoing_maildir).parent))
