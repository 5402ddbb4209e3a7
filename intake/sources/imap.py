"""IMAP mailbox source: take every message waiting in a mailbox, exactly once, then wait (IDLE or poll).

For each batch: FETCH BODY.PEEK[] (the \\Seen flag is neither read nor changed: a
message another client already opened is taken all the same), hand it to
`sink.take_many(items, committed)` with ref keys "<UIDVALIDITY>:<UID>", and only once a
group of it is committed (the pipeline calls `committed`) let go of that group on the
server: MOVE it to the processed folder
(or COPY + \\Deleted + UID EXPUNGE of exactly those UIDs), or set the done keyword.
Nothing is ever deleted otherwise. A crash between commit and move offers the message
again; the pipeline answers `duplicate`. A new UIDVALIDITY only means new keys; the
pipeline dedupes by content.

Every connection is made by `connect(account)`, so tests and other providers replace
one function; it logs in with the password or an OAuth2 token (intake/oauth). Any error (socket drop, BYE, timeout, refused login) is reported through
`sink.report`, and the source reconnects with exponential backoff.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import DELETED, SocketTimeout, _parse_untagged_response

from intake.oauth import TokenSource
from intake.oauth.sasl import imap_login
from intake.sources.backoff import Backoff
from intake.sources.base import HELD_AT_ONCE, Sink, SourceRef
from intake.sources.lease import Lease
from intake.sources.mailbox import MailboxSource

log = logging.getLogger("intake.sources.imap")

SIZES_AT_ONCE = 1000  # UIDs whose sizes one command asks for (_sizes): its answer is held at once
STOP_CHECK = 0.5  # how often a wait (IDLE, poll, backoff) looks at the stop event


@dataclass
class ImapAccount:
    """One IMAP login, as the config describes it."""

    name: str
    host: str
    port: int
    security: str  # "tls" | "starttls" | "plain"
    username: str
    password: str = field(repr=False)
    mailboxes: list[str] = field(default_factory=lambda: ["INBOX"])
    on_done: str = "move"  # "move" or "flag"; never delete
    processed_folder: str = "Processed"
    done_flag: str = "$IntakeDone"
    idle: bool = True
    idle_timeout: float = 300.0  # IDLE is re-issued at least this often (RFC 2177: < 29 min)
    poll_interval: float = 30.0  # when the server has no IDLE, or idle is off
    batch_size: int = 500
    verify_tls: bool = True
    ca_file: str | None = None
    connect_timeout: float = 30.0
    # OAuth2 login (XOAUTH2/OAUTHBEARER) instead of the password: intake/oauth
    tokens: TokenSource | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.security not in ("tls", "starttls", "plain"):
            raise ValueError(f"imap[{self.name}].security: {self.security!r} is not tls, starttls or plain")
        if self.on_done not in ("move", "flag"):
            raise ValueError(f"imap[{self.name}].on_done: {self.on_done!r} is not move or flag")


class ConnectionLost(ConnectionError):
    """The server closed the connection or said BYE."""


def ssl_context(account: ImapAccount) -> ssl.SSLContext:
    if not account.verify_tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=account.ca_file or None)


def connect(account: ImapAccount) -> IMAPClient:
    """Open, secure and log in one connection: the only place a socket is made."""
    timeout = SocketTimeout(connect=account.connect_timeout, read=account.connect_timeout)
    if account.security == "tls":
        client = IMAPClient(account.host, port=account.port, ssl=True, ssl_context=ssl_context(account), timeout=timeout)
    else:
        client = IMAPClient(account.host, port=account.port, ssl=False, timeout=timeout)
    try:
        if account.security == "starttls":
            client.starttls(ssl_context(account))
        if account.tokens is not None:
            imap_login(client, account.username, account.tokens)
        else:
            client.login(account.username, account.password)
    except BaseException:
        _close_quietly(client)
        raise
    return client


def mask(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` replaced by ***."""
    return text.replace(secret, "***") if secret else text


def ref_key(uidvalidity: int, uid: int) -> str:
    return f"{uidvalidity}:{uid}"


def chunks(uid_sizes: Iterable[tuple[int, int]], max_count: int, max_bytes: int) -> Iterator[list[int]]:
    """Split (uid, size) pairs, in order, into lists of at most `max_count` UIDs and
    about `max_bytes` (a single larger message goes alone). A full list is given as soon
    as it is full: the pairs are read no further ahead than a list needs (_sizes asks the
    server for them as they are read)."""
    batch: list[int] = []
    total = 0
    for uid, size in uid_sizes:
        if batch and total + size > max_bytes:
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
        if len(batch) >= max_count:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def _sizes(client: IMAPClient, uids: list[int]) -> Iterator[tuple[int, int]]:
    """(uid, size) of each UID, the sizes asked SIZES_AT_ONCE UIDs at a time as they are
    read. Asked for a whole backlog at once, the answer (an entry a message, held at once)
    was the daemon's largest allocation and grew with the backlog: 8,000 waiting mails
    took its peak from 98 to 101 MB. A UID gone meanwhile gets size 0; its batch finds it
    gone (_take_batch)."""
    for start in range(0, len(uids), SIZES_AT_ONCE):
        wanted = uids[start : start + SIZES_AT_ONCE]
        sizes = client.fetch(wanted, ["RFC822.SIZE"])
        for uid in wanted:
            yield uid, int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))


def search_criteria(account: ImapAccount) -> list[str]:
    """Every message not yet marked done. The done keyword is honoured in both modes:
    "flag" sets it, and "move" on a server without UIDPLUS falls back to it."""
    return ["UNKEYWORD", account.done_flag]


class ImapSource(MailboxSource):
    """One mailbox of one account, feeding the pipeline."""

    def __init__(
        self,
        account: ImapAccount,
        mailbox: str,
        sink: Sink,
        stop: threading.Event,
        *,
        log: logging.Logger = log,
        lease: Lease | None = None,
    ) -> None:
        if account.on_done == "move" and mailbox == account.processed_folder:
            raise ValueError(f"imap[{account.name}]: mailbox {mailbox!r} is also the processed folder")
        self.account = account
        self.mailbox = mailbox
        self.sink = sink
        self.stop = stop
        self.log = log
        self.name = f"imap:{account.name}/{mailbox}"
        self.backoff = Backoff(initial=1.0, maximum=60.0)
        self._client: IMAPClient | None = None
        self._uidvalidity: int | None = None
        self._can_idle = False
        self._can_move = False
        self._can_uidplus = False
        self._warned_no_uidplus = False
        self._taken = 0
        self.lease = lease  # several daemons on PostgreSQL: only the holder reads (intake/sources/lease.py)

    # -- the two ways to run ---------------------------------------------------

    def run_once(self) -> int:
        """Connect if needed and take everything waiting; return how many were taken.
        An error is logged and reported (never raised); what was committed stays taken."""
        self._taken = 0
        if not self._leased():
            return 0
        try:
            self._drain()
        except Exception as exc:
            self._failed(exc)
        return self._taken

    def run_forever(self) -> None:
        """Take, wait for new mail, take again, until `stop` is set. Reconnects with
        backoff after any error. Returns within about a second of `stop`."""
        while not self.stop.is_set():
            self._taken = 0
            if not self._leased():
                assert self.lease is not None, "without a lease, _leased() is always True"
                self.stop.wait(self.lease.retry_seconds)
                continue
            try:
                self._drain()
                self.backoff.reset()
                if not self.stop.is_set():
                    self._keep_token_fresh()
                    self._wait_for_mail()
            except Exception as exc:
                self._failed(exc)
                delay = self.backoff.next()
                self.log.info("%s: reconnecting in %.1f s", self.name, delay)
                self.stop.wait(delay)
        self.close()
        if self.lease is not None:
            self.lease.release()

    def _stand_by(self) -> None:
        self.close()

    def close(self) -> None:
        """Log out (best effort) and forget the connection."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except Exception:
                _close_quietly(client)

    # -- connecting ---------------------------------------------------------------

    def _connected(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        account = self.account
        self.log.info("%s: connecting to %s:%s (%s) as %s", self.name, account.host, account.port, account.security, account.username)
        client = connect(account)
        try:
            caps = set(client.capabilities())
            self._can_idle = b"IDLE" in caps
            self._can_move = b"MOVE" in caps
            self._can_uidplus = b"UIDPLUS" in caps
            if account.on_done == "move":
                self._ensure_folder(client, account.processed_folder)
            info = client.select_folder(self.mailbox)
            uidvalidity = int(info[b"UIDVALIDITY"])
        except BaseException:
            _close_quietly(client)
            raise
        if self._uidvalidity is not None and uidvalidity != self._uidvalidity:
            # Every message now has a new key; the pipeline knows them by content.
            self.log.warning("%s: UIDVALIDITY changed %s -> %s; messages are offered again", self.name, self._uidvalidity, uidvalidity)
        self._uidvalidity = uidvalidity
        self._client = client
        return client

    @staticmethod
    def _ensure_folder(client: IMAPClient, folder: str) -> None:
        if client.folder_exists(folder):
            return
        try:
            client.create_folder(folder)
        except IMAPClientError:
            if not client.folder_exists(folder):  # another source of this account made it first
                raise

    # -- taking -------------------------------------------------------------------

    def _drain(self) -> None:
        """Take batches until a search finds nothing new (or stop is set), then report."""
        reused = self._client is not None
        client = self._connected()
        try:
            client.noop()  # lets the server show us what arrived since the last command
        except Exception as exc:
            if not reused:
                raise
            # The connection kept from the last pass died meanwhile (server restart,
            # idle timeout): one fresh connection at once, no error, no backoff.
            self.log.info("%s: kept connection is gone (%s); reconnecting", self.name, type(exc).__name__)
            self.close()
            client = self._connected()
            client.noop()
        while True:
            _pop_exists(client)
            uids = sorted(client.search(search_criteria(self.account)))
            if not uids:
                if _pop_exists(client):  # mail arrived while the search ran: look again
                    continue
                break
            left = len(uids)
            for batch in chunks(_sizes(client, uids), self.account.batch_size, HELD_AT_ONCE):
                if self.stop.is_set():
                    self._report(backlog=left)
                    return
                left -= self._take_batch(client, batch)  # the taken and those gone meanwhile
                self._report(backlog=left, throttle=True)
        self._report(backlog=0)

    def _take_batch(self, client: IMAPClient, uids: list[int]) -> int:
        """Fetch one batch and hand it to the pipeline, which commits it in groups; each
        group is let go of on the server right after its commit, while the pipeline
        goes on with the next. Returns how many were taken or found gone. If the sink
        fails, the messages not let go of stay on the server (what of them was
        committed is answered `duplicate` next time), and the error goes up."""
        assert self._uidvalidity is not None, "read by _connected, which gave us the client"
        data = client.fetch(uids, ["BODY.PEEK[]"])
        items: list[tuple[bytes, SourceRef]] = []
        uid_of: dict[str, int] = {}
        for uid in uids:
            item = data.get(uid)
            raw = item.get(b"BODY[]") if item else None
            if raw is None:  # expunged by someone else meanwhile
                continue
            ref = SourceRef(source=self.name, key=ref_key(self._uidvalidity, uid), channel="email")
            items.append((raw, ref))
            uid_of[ref.key] = uid

        def committed(group, results) -> bool:
            fetched = [uid_of[ref.key] for _, ref in group]
            self._let_go(client, fetched)
            self._taken += len(fetched)
            self.log.info("%s: took %d message(s)", self.name, len(fetched))
            for uid, result in zip(fetched, results):
                self.log.debug("%s: uid %s -> %s %s", self.name, uid, result.outcome, result.ticket or "")
            return not self.stop.is_set()  # the group in hand is finished; the rest waits for next time

        taken = len(self.sink.take_many(items, committed)) if items else 0
        gone = len(uids) - len(items)
        return taken + gone

    def _let_go(self, client: IMAPClient, uids: list[int]) -> None:
        """Mark committed messages done on the server, with one command where possible."""
        account = self.account
        if account.on_done == "flag":
            client.add_flags(uids, [account.done_flag], silent=True)
        elif self._can_move:
            client.move(uids, account.processed_folder)
        elif self._can_uidplus:
            client.copy(uids, account.processed_folder)
            client.add_flags(uids, [DELETED], silent=True)
            client.uid_expunge(uids)  # exactly these UIDs, never other clients' \Deleted mail
        else:
            # A plain EXPUNGE would also remove messages others marked \Deleted: copy and
            # mark done instead; the search skips done messages.
            if not self._warned_no_uidplus:
                self.log.warning("%s: server has neither MOVE nor UIDPLUS; copies and flags %s instead of moving", self.name, account.done_flag)
                self._warned_no_uidplus = True
            client.copy(uids, account.processed_folder)
            client.add_flags(uids, [account.done_flag], silent=True)

    # -- waiting ------------------------------------------------------------------

    def _wait_for_mail(self) -> None:
        """Return when new mail may be there, at the latest after idle_timeout (IDLE) or
        poll_interval (polling), or soon after stop is set."""
        client = self._connected()
        if not (self.account.idle and self._can_idle):
            self._sleep(self.account.poll_interval)
            return
        # Mail that arrived after the pass's last SEARCH (e.g. while its report was being
        # written) must not wait for idle_timeout: a NOOP just before IDLE shows it. What comes
        # between the NOOP's answer and IDLE, Dovecot 2.3 tells with IDLE's own answer
        # ('+ idling' and the EXISTS in one packet), read by _already_read below. A server
        # that told it only at DONE would hold it until idle_timeout: only Dovecot is tested.
        client.noop()
        if _pop_exists(client):
            return
        client.idle()
        try:
            # news may have come with IDLE's own answer (Dovecot tells what came after the
            # NOOP there), where idle_check cannot see it
            already = _already_read(client)
            if any(_is_bye(r) for r in already):
                raise ConnectionLost(f"server said BYE: {already}")
            if any(_is_new_mail(r) for r in already):
                return
            deadline = time.monotonic() + self.account.idle_timeout
            while not self.stop.is_set() and time.monotonic() < deadline:
                started = time.monotonic()
                responses = client.idle_check(timeout=STOP_CHECK)
                if any(_is_bye(r) for r in responses):
                    raise ConnectionLost(f"server said BYE: {responses}")
                if any(_is_new_mail(r) for r in responses):
                    return
                if not responses and time.monotonic() - started < STOP_CHECK / 2:
                    # idle_check swallows EOF and returns at once: leave IDLE, whose
                    # DONE fails if the connection is gone.
                    return
        finally:
            client.idle_done()

    def _keep_token_fresh(self) -> None:
        """With OAuth2, ask for the access token once per wait: the provider's library
        renews it a few minutes before it expires, so the expiry shown stays true while a
        session lasts hours, and a credential that was revoked fails here (the account turns
        red now) instead of at the next reconnect, whenever that is. No network otherwise."""
        if self.account.tokens is not None:
            self.account.tokens.token()

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    # -- reporting ----------------------------------------------------------------

    def _failed(self, exc: Exception) -> None:
        message = mask(f"{type(exc).__name__}: {exc}", self.account.password)
        self.log.warning("%s: %s", self.name, message)
        client, self._client = self._client, None
        if client is not None:
            _close_quietly(client)
        self._report(error=message)


def _pop_exists(client: IMAPClient) -> bool:
    """Whether the server announced new messages (untagged EXISTS) since the last look.
    imaplib keeps untagged responses that came with other commands' replies."""
    return client._imap.untagged_responses.pop("EXISTS", None) is not None


def _already_read(client: IMAPClient) -> list:
    """The responses the server sent together with IDLE's continuation. Dovecot answers an
    IDLE with '+ idling' and any news in one packet ('+ idling\r\n* 1 EXISTS'); imaplib
    reads the packet, hands back the first line and keeps the rest in its buffered file (and
    TLS in its own buffer), where idle_check's poll of the socket cannot see it: the news
    waited for the next data on the connection, minutes away (bench/ack_latency.md). Reads
    the complete lines already received, without waiting for more."""
    imap = client._imap
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        try:
            waiting = imap.file.peek(1)  # what the buffers hold; one read that cannot wait if empty
        except (BlockingIOError, ssl.SSLWantReadError, InterruptedError):
            return []
        responses = []
        while waiting and b"\n" in waiting:
            responses.append(_parse_untagged_response(imap._get_line()))
            try:
                waiting = imap.file.peek(1)
            except (BlockingIOError, ssl.SSLWantReadError, InterruptedError):
                break
        return responses
    finally:
        sock.settimeout(timeout)


def _is_new_mail(response: tuple) -> bool:
    return len(response) > 1 and response[1] in (b"EXISTS", b"RECENT")


def _is_bye(response: tuple) -> bool:
    return len(response) > 0 and response[0] == b"BYE"


def _close_quietly(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except Exception:
        pass
