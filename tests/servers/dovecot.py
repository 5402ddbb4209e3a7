"""A private Dovecot IMAP server for tests and benchmarks.

`DovecotServer` writes its own config, base_dir, state, log, TLS certificate and
Maildir folders into one directory and runs `dovecot -c <that config>` on
127.0.0.1 with random free ports: one for plain IMAP (STARTTLS offered), one for
IMAPS. It never touches /etc/dovecot or a system instance. Runs as root (tests and
CI do) or not: Dovecot never opens mail as root, so mail belongs to `nobody`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from imapclient import IMAPClient

HOST = "127.0.0.1"
DEFAULT_USERS = {"support": "secret", "support2": "secret", "staff": "secret"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_self_signed_cert(directory: Path, common_name: str = HOST) -> tuple[Path, Path]:
    """Write a self-signed certificate (valid for 127.0.0.1 and localhost) and its key."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={common_name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _wait_port(port: int, up: bool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                is_up = True
        except OSError:
            is_up = False
        if is_up == up:
            return
        time.sleep(0.02)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'} within {timeout}s")


class DovecotServer:
    """One private Dovecot instance. Use `start()`/`stop()`, or as a context manager."""

    def __init__(self, root: Path | str | None = None, users: dict[str, str] | None = None, oauth2_introspection_url: str | None = None):
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="intake-dovecot-"))
        self.root.mkdir(parents=True, exist_ok=True)
        # Dovecot's unprivileged helpers (dovenull, dovecot) must traverse the tree.
        os.chmod(self.root, 0o755)
        self.users = dict(users or DEFAULT_USERS)
        # XOAUTH2 and OAUTHBEARER too, each token checked at this RFC 7662 introspection
        # endpoint (tests/servers/oauth_idp.py); passwords keep working beside them
        self.oauth2_introspection_url = oauth2_introspection_url
        self.host = HOST
        self.port = free_port()  # plain IMAP, STARTTLS offered
        self.tls_port = free_port()  # IMAPS
        self.instance = f"intake-test-{uuid.uuid4().hex[:8]}"
        self.config = self.root / "dovecot.conf"
        self.base_dir = self.root / "run"
        self.log_path = self.root / "dovecot.log"
        self.mail_root = self.root / "mail"
        self.mail_user = pwd.getpwnam("nobody")
        self.cert, self.key = make_self_signed_cert(self.root)
        self.ca_file = str(self.cert)  # self-signed: the cert is its own CA
        self._proc: subprocess.Popen | None = None
        self._write_config()

    # -- lifecycle ---------------------------------------------------------

    def _write_config(self) -> None:
        for d in (self.base_dir, self.root / "state"):
            d.mkdir(exist_ok=True)
        for d in (self.mail_root, self.root / "home"):
            d.mkdir(exist_ok=True)
            os.chown(d, self.mail_user.pw_uid, self.mail_user.pw_gid)
        passwd = self.root / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}:::::\n" for u, p in self.users.items()))
        oauth2 = self._oauth2_config()
        self.config.write_text(f"""\
# Private test instance: nothing here reads /etc/dovecot.
instance_name = {self.instance}
base_dir = {self.base_dir}
state_dir = {self.root / "state"}
log_path = {self.log_path}
info_log_path = {self.log_path}
protocols = imap
listen = {HOST}
ssl = yes
ssl_cert = <{self.cert}
ssl_key = <{self.key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login{" xoauth2 oauthbearer" if oauth2 else ""}
first_valid_uid = 1
first_valid_gid = 1
# Dovecot's imap never runs as root, so mail belongs to `nobody`.
mail_uid = {self.mail_user.pw_uid}
mail_gid = {self.mail_user.pw_gid}
mail_home = {self.root}/home/%u
# No delay after a failed login, and no auth penalty (a delay growing to 15 s per
# client IP): tests of wrong passwords and of retries must not wait for them.
auth_failure_delay = 0
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
mail_location = maildir:{self.mail_root}/%u
mail_max_userip_connections = 1000
# IDLE: inotify wakes us at once; this is only the fallback check.
mailbox_idle_check_interval = 1 secs
imap_idle_notify_interval = 2 mins
namespace inbox {{
  inbox = yes
  separator = /
}}
{oauth2}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.tls_port}
    ssl = yes
  }}
  #process_min_avail = 1
}}
service imap {{
  process_limit = 1024
}}
""")

    def _oauth2_config(self) -> str:
        """The oauth2 passdb (before the password one) when tokens are to be checked."""
        if not self.oauth2_introspection_url:
            return ""
        ext = self.root / "oauth2.conf.ext"
        ext.write_text(f"""\
introspection_mode = post
introspection_url = {self.oauth2_introspection_url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
""")
        return f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {ext}
}}
"""

    def start(self) -> None:
        """Start the server (again) on the same ports and wait until both accept."""
        # Foreground (-F) in its own session: we own the master process and its group.
        self._err = open(self.root / "start.err", "ab")
        self._proc = subprocess.Popen(
            ["dovecot", "-F", "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=self._err,
            stderr=self._err,
            start_new_session=True,
        )
        try:
            _wait_port(self.port, up=True)
        except TimeoutError:
            raise RuntimeError(f"dovecot did not start: {(self.root / 'start.err').read_text()}\n{self.log_text()[-2000:]}") from None
        _wait_port(self.tls_port, up=True)

    @property
    def pid(self) -> int:
        """The master process (its children serve the connections)."""
        return self._proc.pid

    def stop(self) -> None:
        """Stop the server and all its client connections; wait until the ports close."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # A clean SIGTERM shutdown takes Dovecot one to several seconds and can leave
        # imap/log processes behind; a test server has nothing to flush, so its whole
        # process group is killed at once. Clients see their socket close, as in a crash.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        self._err.close()
        (self.base_dir / "master.pid").unlink(missing_ok=True)
        _wait_port(self.port, up=False)
        _wait_port(self.tls_port, up=False)

    def close(self) -> None:
        """Stop and remove the directory if we made it."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- admin -------------------------------------------------------------

    def doveadm(self, *args: str, check: bool = True) -> str:
        """Run doveadm against this instance; return its stdout."""
        proc = subprocess.run(["doveadm", "-c", str(self.config), *args], capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def kick(self, user: str) -> None:
        """Drop every IMAP connection of `user` (the client sees the socket close)."""
        # doveadm kick returns 68 (EX_NOUSER) when the user had no connections.
        self.doveadm("kick", user, check=False)

    def reset(self) -> None:
        """Empty every user's mail: drop connections, delete all folders but INBOX, expunge INBOX."""
        for user in self.users:
            self.kick(user)
            for name in self.doveadm("mailbox", "list", "-u", user).split():
                if name != "INBOX":
                    self.doveadm("mailbox", "delete", "-u", user, "-r", "-s", name, check=False)
            self.doveadm("expunge", "-u", user, "mailbox", "*", "all", check=False)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- IMAP helpers (each opens its own short connection) -----------------

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def client(self, user: str, security: str = "plain") -> IMAPClient:
        """A logged-in IMAPClient for `user` over "plain", "starttls" or "tls"."""
        if security == "tls":
            c = IMAPClient(HOST, port=self.tls_port, ssl=True, ssl_context=self.ssl_context(), timeout=10)
        else:
            c = IMAPClient(HOST, port=self.port, ssl=False, timeout=10)
            if security == "starttls":
                c.starttls(self.ssl_context())
        c.login(user, self.users[user])
        return c

    def create_mailbox(self, user: str, name: str) -> None:
        with self.client(user) as c:
            if not c.folder_exists(name):
                c.create_folder(name)

    def append(self, user: str, mailbox: str, raw: bytes, flags: tuple = ()) -> None:
        """APPEND one message as `user` (mailbox created if missing)."""
        self.append_many(user, mailbox, [raw], flags)

    def append_many(self, user: str, mailbox: str, raws: list[bytes], flags: tuple = ()) -> None:
        """APPEND many messages over one connection (fast enough for benchmarks)."""
        with self.client(user) as c:
            if not c.folder_exists(mailbox):
                c.create_folder(mailbox)
            for raw in raws:
                c.append(mailbox, raw, flags=flags)

    def list_uids(self, user: str, mailbox: str) -> list[int]:
        with self.client(user) as c:
            c.select_folder(mailbox, readonly=True)
            return sorted(c.search("ALL"))

    def fetch_all(self, user: str, mailbox: str) -> list[dict]:
        """Every message in `mailbox`: {"uid", "raw", "flags"}; [] if the mailbox does not exist."""
        with self.client(user) as c:
            if not c.folder_exists(mailbox):
                return []
            c.select_folder(mailbox, readonly=True)
            uids = c.search("ALL")
            if not uids:
                return []
            data = c.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
            return [{"uid": uid, "raw": data[uid][b"BODY[]"], "flags": tuple(data[uid][b"FLAGS"])} for uid in sorted(data)]

    def uidvalidity(self, user: str, mailbox: str) -> int:
        with self.client(user) as c:
            return int(c.folder_status(mailbox, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def reset_uidvalidity(self, user: str, mailbox: str) -> int:
        """Give `mailbox` a new UIDVALIDITY, keeping its messages; return the new value.

        Other mailboxes are deleted and recreated with their messages. INBOX cannot be
        deleted in IMAP, so its UIDVALIDITY is changed in place with doveadm, which is
        what a server-side rebuild looks like to a client.
        """
        old = self.uidvalidity(user, mailbox)
        self.kick(user)
        if mailbox.upper() == "INBOX":
            self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(old + 1), mailbox)
        else:
            messages = self.fetch_all(user, mailbox)
            with self.client(user) as c:
                c.delete_folder(mailbox)
                c.create_folder(mailbox)
                for m in messages:
                    flags = [f for f in m["flags"] if f != b"\\Recent"]
                    c.append(mailbox, m["raw"], flags=flags)
        new = self.uidvalidity(user, mailbox)
        assert new != old, "UIDVALIDITY did not change"
        return new
