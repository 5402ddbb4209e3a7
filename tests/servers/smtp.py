"""A real SMTP server on loopback (aiosmtpd) that keeps every message it receives.

`SmtpServer` can be stopped and started again on the same port, so tests can take
the mail server down and bring it back while the daemon retries.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.servers.dovecot import HOST, free_port


@dataclass(frozen=True)
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    at: float = field(default_factory=time.time)
    helo: str = ""  # the name the client gave in EHLO/HELO
    connection: int = 0  # which connection carried it: 1 for the server's first, and so on


class _Collector:
    """aiosmtpd handler: append every DATA to the server's list."""

    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.delay:  # a slow relay; a client gone meanwhile cancels this: nothing kept
            await asyncio.sleep(self.server.delay)
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        number = getattr(session, "connection_number", None)
        if number is None:  # aiosmtpd makes one Session a connection
            number = session.connection_number = self.server._next_connection()
        self.server._add(Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), bytes(raw), helo=session.host_name or "", connection=number))
        return "250 OK"


class SmtpServer:
    """aiosmtpd Controller on 127.0.0.1; `messages` is every message received so far.
    `delay`: seconds each DATA waits before it is kept and answered (a slow relay)."""

    def __init__(self, port: int | None = None, delay: float = 0.0):
        self.host = HOST
        self.port = port or free_port()
        self.delay = delay
        self._messages: list[Received] = []
        self._connections = 0  # connections that carried mail so far
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> None:
        """Listen (again) on the same port."""
        if self._controller is not None:
            return
        # decode_data=False keeps the raw bytes; SMTPUTF8 lets UTF-8 addresses through.
        self._controller = Controller(
            _Collector(self),
            hostname=self.host,
            port=self.port,
            decode_data=False,
            enable_SMTPUTF8=True,
            ready_timeout=10,
        )
        self._controller.start()

    def stop(self) -> None:
        """Stop listening; connections are refused until `start()`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def _next_connection(self) -> int:
        with self._cond:
            self._connections += 1
            return self._connections

    def _add(self, msg: Received) -> None:
        with self._cond:
            self._messages.append(msg)
            self._cond.notify_all()

    @property
    def messages(self) -> list[Received]:
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least `n` messages arrived; return them all. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"got {len(self._messages)} of {n} messages in {timeout}s")
                self._cond.wait(left)
            return list(self._messages)

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_ACK_ID = re.compile(rb"^Message-ID:\s*<ack\.", re.IGNORECASE | re.MULTILINE)


class AckCounter:
    """Acknowledgements received so far (Message-ID <ack....>), counted as they arrive:
    a benchmark or test that parsed every received mail on every poll ate a core of
    its own and starved the daemons it was waiting for. Make a new one after `clear()`."""

    def __init__(self, smtp: SmtpServer):
        self.smtp = smtp
        self.seen = 0
        self.count = 0

    def __call__(self) -> int:
        new = self.smtp.messages[self.seen :]
        self.seen += len(new)
        self.count += sum(1 for m in new if _ACK_ID.search(m.raw.split(b"\r\n\r\n", 1)[0]))
        return self.count
