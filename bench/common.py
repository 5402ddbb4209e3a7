"""What the end-to-end benchmarks share."""
from __future__ import annotations

import re

from tests.servers import SmtpServer

_ACK_ID = re.compile(rb"^Message-ID:\s*<ack\.", re.IGNORECASE | re.MULTILINE)


class AckCounter:
    """Acknowledgements received so far by the test SMTP server, counted as they
    arrive. Parsing every received mail on every poll (as the first version did) made
    the benchmark itself eat a core, starving the daemon it measures."""

    def __init__(self, smtp: SmtpServer):
        self.smtp = smtp
        self.seen = 0
        self.count = 0

    def __call__(self) -> int:
        new = self.smtp.messages[self.seen:]
        self.seen += len(new)
        self.count += sum(1 for m in new if _ACK_ID.search(m.raw.split(b"\r\n\r\n", 1)[0]))
        return self.count
