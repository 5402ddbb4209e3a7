"""Real servers on loopback for tests and benchmarks: a private Dovecot, an aiosmtpd SMTP server."""
from tests.servers.dovecot import DovecotServer, free_port, make_self_signed_cert
from tests.servers.smtp import Received, SmtpServer

__all__ = ["DovecotServer", "SmtpServer", "Received", "free_port", "make_self_signed_cert"]
