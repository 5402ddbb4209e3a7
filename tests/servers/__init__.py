"""Real servers on loopback for tests and benchmarks: a private Dovecot, an aiosmtpd SMTP server.

In tests use the fixtures from tests/conftest.py (`dovecot`, `smtp_server`, `pg_url`).
From a bench script (run from the repository root)::

    from tests.servers import DovecotServer, SmtpServer
    with DovecotServer() as imap, SmtpServer() as smtp:
        imap.append_many("support", "INBOX", raws)      # users support, support2, staff / "secret"
        ...  # point intake at imap.host, imap.port (plain/STARTTLS) or imap.tls_port, ca_file=imap.ca_file
        smtp.wait_for(len(raws), timeout=60)
"""

from tests.servers.dovecot import DovecotServer, free_port, make_self_signed_cert
from tests.servers.smtp import AckCounter, Received, SmtpServer

__all__ = ["AckCounter", "DovecotServer", "SmtpServer", "Received", "free_port", "make_self_signed_cert"]
