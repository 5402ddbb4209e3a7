"""Microsoft Graph mailbox source: every message of a folder, exactly once, for tenants
where IMAP is turned off (a user's mailbox or a shared one, app-only access).

A pass is one delta round (GET /users/{mailbox}/mailFolders/{folder}/messages/delta,
following @odata.nextLink until the page that carries @odata.deltaLink): the ids of the
messages in the folder (the first round) or of those added since the last round. Each
message's MIME ($value) is handed to `sink.take_many(items, committed)` with its id as the
ref key, exactly as the IMAP source hands its fetches; only once a group is committed
(the id stored in the same transaction as the ticket) is each of its messages moved to
the processed folder. The round's delta link is kept (paths.var/graph/, written
atomically) only after every message of the round was let go of: a crash at any point
makes the next round (from the link before) offer again what was not moved, and the
pipeline answers `duplicate` for what was committed. Ids are immutable ids, so a message
keeps its id when moved (intake/msgraph/client.py).

Messages are fetched, and moved, up to CONCURRENCY (4, Exchange's limit per app and
mailbox) at a time: each costs two round trips to the service (bench/graph_backlog.md). The
limit is the mailbox's, not the folder's: every folder source of an account and its sender
share one limiter (intake/msgraph/client.py, `mailbox_limiter`).
Throttling (429 + Retry-After) and a refused token (401) are handled by the client; any
other error is reported through `sink.report` (the source turns red, intake/ops/alerts.py)
and the next pass comes after an exponential backoff. A delta link Graph no longer knows
(410) starts a full round: what is still in the folder is offered again.

One bad message never holds up the folder: when Graph refuses one message's MIME or its
move (a 500, 400 or 403 on that item alone), the round goes on with the others and the
delta link is not kept, so the next round offers it again. After MESSAGE_TRIES passes in a
row it is let go of: one whose MIME never came is quarantined with what Graph says of it (its
properties as JSON, not the mail) and a reason that says so, and stays in the folder; one
committed whose move keeps failing stays in the folder with its ticket. An answer that says
the way is shut (no answer, 401, 429, 502-504: every message would get it) stops the round
as any error does, and counts against no message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from intake.msgraph.client import MAILBOX_CONCURRENCY, GraphClient, GraphError, Stopped, mailbox_limiter, user_path
from intake.oauth.store import read_private, write_private
from intake.sources.backoff import Backoff
from intake.sources.base import HELD_AT_ONCE, Sink, SourceRef
from intake.sources.lease import Lease
from intake.sources.mailbox import MailboxSource

log = logging.getLogger("intake.sources.graph")

PAGE_SIZE = 200  # ids per delta page (Prefer: odata.maxpagesize): only id and received time are asked for
# fetches and moves a folder source asks for at once; the client's mailbox limiter holds the
# requests of all the account's folders and its sender to MAILBOX_CONCURRENCY together
CONCURRENCY = MAILBOX_CONCURRENCY
MESSAGE_TRIES = 5  # passes a message may fail on (its MIME or its move) before it is let go of
# statuses that say the way to the mailbox is shut, not that one message is bad: the round stops
SHUT_STATUSES = frozenset({0, 401, 429, 502, 503, 504})
UNFETCHED = "#unfetched"  # suffix of the quarantine key of a message Graph would not give: moved back, it is taken as itself


class MessagesFailed(Exception):
    """Some messages of a round could not be fetched or moved; the others were taken."""


@dataclass
class GraphAccount:
    """One [[graph]] account as the source needs it."""

    name: str
    mailbox: str
    client: GraphClient
    state_dir: Path  # where delta links are kept: paths.var/graph
    folders: tuple[str, ...] = ("inbox",)
    processed_folder: str = "Processed"
    poll_interval: float = 10.0
    batch_size: int = 50
    concurrency: int = CONCURRENCY
    message_tries: int = MESSAGE_TRIES


def odata_string(value: str) -> str:
    """A string literal in an OData $filter."""
    return "'" + value.replace("'", "''") + "'"


class GraphSource(MailboxSource):
    """One folder of one Graph mailbox, feeding the pipeline."""

    def __init__(
        self, account: GraphAccount, folder: str, sink: Sink, stop: threading.Event, *, log: logging.Logger = log, lease: Lease | None = None
    ) -> None:
        if folder == account.processed_folder:
            raise ValueError(f"graph[{account.name}]: folder {folder!r} is also the processed folder")
        self.account, self.folder, self.sink, self.stop, self.log = account, folder, sink, stop, log
        self.client = account.client
        self.name = f"graph:{account.name}/{folder}"
        self.user = user_path(account.mailbox)
        self.backoff = Backoff(initial=1.0, maximum=300.0)
        self.lease = lease
        self._folder_id: str | None = None
        self._processed_id: str | None = None
        self._taken = 0
        self._pool: ThreadPoolExecutor | None = None  # made at the first parallel fetch
        self._tries: dict[str, int] = {}  # message id -> passes in a row it failed on (kept in memory: a restart starts over)
        self.link_file = Path(account.state_dir) / (re.sub(r"[^A-Za-z0-9._-]", "_", self.name) + ".delta.json")

    # -- the two ways to run ---------------------------------------------------

    def run_once(self) -> int:
        """One delta round, everything it finds taken; returns how many were taken.
        An error is logged and reported (never raised); what was committed stays taken."""
        self._taken = 0
        if not self._leased():
            return 0
        try:
            self._drain()
        except Stopped:
            pass
        except Exception as exc:
            self._failed(exc)
        return self._taken

    def run_forever(self) -> None:
        """A round every poll_interval until `stop` is set; backs off after an error."""
        while not self.stop.is_set():
            self._taken = 0
            if not self._leased():
                assert self.lease is not None, "without a lease, _leased() is always True"
                self.stop.wait(self.lease.retry_seconds)
                continue
            try:
                self._drain()
                self.backoff.reset()
                pause = self.account.poll_interval
            except Stopped:
                break
            except Exception as exc:
                self._failed(exc)
                pause = self.backoff.next()
                self.log.info("%s: next attempt in %.1f s", self.name, pause)
            self.stop.wait(pause)
        self.close()
        if self.lease is not None:
            self.lease.release()

    def close(self) -> None:
        """Let the fetching threads go (they hold no mail: what they fetched was taken or is offered again)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- folders ------------------------------------------------------------------

    def _find_folder(self, name: str) -> str | None:
        """The id of a folder: a well-known name (inbox, archive ...) or an id, else a
        top-level folder of that display name; None when there is none."""
        try:
            return self.client.get_json(f"{self.user}/mailFolders/{urllib.parse.quote(name, safe='')}")["id"]
        except GraphError as exc:
            if exc.status not in (400, 404):
                raise
        page = self.client.get_json(
            f"{self.user}/mailFolders", params={"$filter": f"displayName eq {odata_string(name)}", "$select": "id,displayName"}
        )
        found = [f["id"] for f in page.get("value", []) if f.get("displayName") == name]
        return found[0] if found else None

    def _folder(self) -> str:
        if self._folder_id is None:
            found = self._find_folder(self.folder)
            if found is None:
                raise GraphError(f"{self.account.mailbox} has no folder {self.folder!r}", 404, "ErrorItemNotFound")
            self._folder_id = found
        return self._folder_id

    def _processed(self) -> str:
        """The processed folder's id, the folder made when missing."""
        if self._processed_id is None:
            name = self.account.processed_folder
            found = self._find_folder(name)
            if found is None:
                try:
                    found = self.client.request("POST", f"{self.user}/mailFolders", json={"displayName": name}, ok=(201,)).json()["id"]
                    self.log.info("%s: made the folder %r", self.name, name)
                except GraphError as exc:
                    if exc.status != 409:  # another folder source of the account made it first
                        raise
                    found = self._find_folder(name)
                    if found is None:
                        raise
            self._processed_id = found
        return self._processed_id

    # -- delta links ----------------------------------------------------------------

    def _saved_link(self, folder_id: str) -> str | None:
        data = read_private(self.link_file)
        if not data:
            return None
        try:
            saved = json.loads(data)
        except ValueError:
            self.log.warning("%s: unreadable %s; starting a full round", self.name, self.link_file)
            return None
        link = saved.get("delta_link") if saved.get("folder_id") == folder_id else None  # else the folder was made anew
        if link and urllib.parse.urlsplit(link)[:2] != self.client.origin:
            # api_url was changed since (another cloud, a proxy): the client would refuse the link as
            # another host's, round after round, and only a 410 starts afresh; what is still in the
            # folder is offered again, and what was taken is answered `duplicate`
            self.log.warning("%s: the saved delta link is not under api_url %s (changed since?); starting a full round", self.name, self.client.api)
            return None
        return link

    def _save_link(self, folder_id: str, link: str) -> None:
        write_private(self.link_file, json.dumps({"source": self.name, "folder_id": folder_id, "delta_link": link}).encode())

    def _round(self, folder_id: str) -> tuple[list[dict], str]:
        """One delta round: (the delta items ({"id", "receivedDateTime"}) of the messages now in
        the folder that are new to the round's start, oldest first; the delta link of the next round)."""
        link = self._saved_link(folder_id)
        try:
            return self._pages(link or self._first_round(folder_id))
        except GraphError as exc:
            if link is None or exc.status != 410:
                raise
            self.log.warning("%s: Graph no longer knows the delta link (%s); starting a full round", self.name, exc.code)
            return self._pages(self._first_round(folder_id))

    def _first_round(self, folder_id: str) -> str:
        query = urllib.parse.urlencode({"$select": "id,receivedDateTime"})
        return f"{self.user}/mailFolders/{urllib.parse.quote(folder_id, safe='')}/messages/delta?{query}"

    def _pages(self, start: str) -> tuple[list[dict], str]:
        found: dict[str, dict] = {}
        delta_link = None
        for page in self.client.pages(start, prefer=(f"odata.maxpagesize={PAGE_SIZE}",)):
            for item in page.get("value", []):
                message_id = item.get("id")
                if "@removed" in item:  # moved out (by us, after its commit) or deleted
                    found.pop(message_id, None)
                elif not message_id:  # nothing to fetch or move it by: held as it came, once
                    self._hold(
                        item,
                        f"no-id:{hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:32]}",
                        "Graph listed an item without an id",
                    )
                else:
                    found[message_id] = item
            delta_link = page.get("@odata.deltaLink", delta_link)
        if not delta_link:
            raise GraphError(f"{self.name}: the delta round ended without an @odata.deltaLink")
        # oldest first: a reply is taken after the message it answers
        return sorted(found.values(), key=lambda item: item.get("receivedDateTime") or ""), delta_link

    # -- taking -------------------------------------------------------------------

    def _drain(self) -> None:
        folder_id = self._folder()
        processed_id = self._processed()
        items, delta_link = self._round(folder_id)
        by_id = {item["id"]: item for item in items}
        self._tries = {message_id: n for message_id, n in self._tries.items() if message_id in by_id}  # forget what is gone
        failed: list[str] = []  # what went wrong this pass with the messages still in the folder
        left = len(items)
        batch: list[tuple[bytes, SourceRef]] = []
        size = 0
        window = max(1, self.account.concurrency)
        for start in range(0, len(items), window):
            if self.stop.is_set():
                self._report(backlog=left)
                return  # the delta link is not kept: the next round offers the rest again
            ids = [item["id"] for item in items[start : start + window]]
            for message_id, raw in zip(ids, self._in_parallel(self._mime, ids)):
                if raw is None:  # deleted or moved by someone else meanwhile
                    left -= 1
                elif isinstance(raw, GraphError):
                    left -= self._failed_on(by_id[message_id], "fetching", raw, failed)
                else:
                    batch.append((raw, SourceRef(source=self.name, key=message_id, channel="email")))
                    size += len(raw)
            if len(batch) >= self.account.batch_size or size >= HELD_AT_ONCE:
                left -= self._take(batch, processed_id, by_id, failed)
                batch, size = [], 0
                self._report(backlog=left, throttle=True)
        if batch:
            left -= self._take(batch, processed_id, by_id, failed)
        if left == 0:  # every message of the round let go of
            self._save_link(folder_id, delta_link)
        self._report(backlog=left)
        if failed:  # the others were taken; the source shows red and the next pass comes after a backoff
            raise MessagesFailed(f"{len(failed)} message(s) failed, left in the folder: " + "; ".join(failed[:3]))

    def _mime(self, message_id: str) -> bytes | GraphError | None:
        """The message's MIME; None when it is gone; Graph's refusal of this one message."""
        try:
            return self.client.request("GET", f"{self.user}/messages/{urllib.parse.quote(message_id, safe='')}/$value").content
        except GraphError as exc:
            if exc.status == 404:
                return None
            if exc.status in SHUT_STATUSES:
                raise
            return exc

    def _take(self, items: list[tuple[bytes, SourceRef]], processed_id: str, by_id: dict[str, dict], failed: list[str]) -> int:
        """Hand a batch to the pipeline; each committed group is moved at once. Returns how
        many were let go of (fewer when stop was set). A message whose move Graph refuses
        stays in the folder, offered again next round (answered `duplicate`); if the way is
        shut, the error goes up and what was not moved is offered again next round."""
        let_go = 0

        def committed(group, results) -> bool:
            nonlocal let_go
            keys = [ref.key for _, ref in group]
            refusals = self._in_parallel(lambda message_id: self._move(message_id, processed_id), keys)
            done = 0
            for message_id, result, refused in zip(keys, results, refusals):
                self.log.debug("%s: %s -> %s %s", self.name, message_id[-16:], result.outcome, result.ticket or "")
                if refused is None:
                    self._tries.pop(message_id, None)
                    done += 1
                else:
                    done += self._failed_on(by_id[message_id], "moving", refused, failed)
            let_go += done
            self._taken += done
            self.log.info("%s: took %d message(s)", self.name, done)
            return not self.stop.is_set()

        self.sink.take_many(items, committed)
        return let_go

    def _in_parallel(self, call, message_ids: list[str]) -> list:
        """`call` for each id, up to `concurrency` at once, results in order; the first error
        goes up once every call has ended (a move that failed is offered again next round)."""
        if self.account.concurrency <= 1 or len(message_ids) <= 1:
            return [call(message_id) for message_id in message_ids]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.account.concurrency, thread_name_prefix=f"{self.name}-")
        futures = [self._pool.submit(call, message_id) for message_id in message_ids]
        wait(futures)
        return [future.result() for future in futures]

    def _move(self, message_id: str, processed_id: str) -> GraphError | None:
        """Into the processed folder; Graph's refusal of this one message, else None."""
        try:
            self.client.request(
                "POST", f"{self.user}/messages/{urllib.parse.quote(message_id, safe='')}/move", json={"destinationId": processed_id}, ok=(200, 201)
            )
        except GraphError as exc:
            if exc.status == 404:  # gone already (moved by a daemon before a crash, or deleted): done all the same
                return None
            if exc.status in SHUT_STATUSES:
                raise
            return exc
        return None

    # -- a message Graph refuses ----------------------------------------------------

    def _failed_on(self, item: dict, doing: str, exc: GraphError, failed: list[str]) -> int:
        """Count a pass `item` failed on; 1 when it is let go of after the last try (so it no
        longer holds up the delta link), else 0 and it is offered again next round."""
        message_id = item["id"]
        tries = self._tries[message_id] = self._tries.get(message_id, 0) + 1
        if tries < self.account.message_tries:
            self.log.warning("%s: %s %s failed (try %d of %d): %s", self.name, doing, message_id[-16:], tries, self.account.message_tries, exc)
            failed.append(f"{doing} {message_id[-16:]} (try {tries} of {self.account.message_tries}): {exc}")
            return 0
        del self._tries[message_id]
        if doing == "moving":  # committed: its ticket holds it; the mailbox keeps it where it is
            self.log.error("%s: left %s in the folder after %d failed moves (its ticket is committed): %s", self.name, message_id[-16:], tries, exc)
            return 1
        reason = (
            f"Graph refused this message's MIME {tries} times (last: {exc}). It is still in the folder {self.folder!r} of "
            f"{self.account.mailbox}; what is held here is its properties as Graph gives them (JSON), not the mail. "
            "Once Graph serves it, move it out of the folder and back to have it taken."
        )
        self._hold({**item, **self._properties(message_id)}, message_id + UNFETCHED, reason)
        return 1

    def _properties(self, message_id: str) -> dict:
        """What Graph says of the message (subject, sender ...), for a person to find it; {} if refused too."""
        try:
            return self.client.get_json(
                f"{self.user}/messages/{urllib.parse.quote(message_id, safe='')}",
                params={"$select": "subject,from,toRecipients,receivedDateTime,internetMessageId,parentFolderId"},
            )
        except GraphError as exc:
            if exc.status in SHUT_STATUSES:
                raise
            return {}

    def _hold(self, item: dict, key: str, reason: str) -> None:
        """Quarantine what we have of an item we cannot take, so it is kept and seen (intake
        quarantine list); held once: offered again, the pipeline answers its earlier outcome."""
        raw = json.dumps(item, ensure_ascii=False, indent=1).encode()
        result = self.sink.quarantine(raw, SourceRef(source=self.name, key=key, channel="email"), reason)
        self.log.error("%s: held %s (%s): %s", self.name, key[-32:], result.reason, reason.split(". ")[0])

    # -- reporting ----------------------------------------------------------------

    def _failed(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        self.log.warning("%s: %s", self.name, message)
        if isinstance(exc, GraphError) and exc.status == 404:
            self._folder_id = self._processed_id = None  # a folder was deleted or renamed: look it up again
        self._report(error=message)


def graph_account(cfg, var: Path, stop: threading.Event | None = None) -> GraphAccount:
    """The source's account from a validated [[graph]] table; its token from the app's
    credentials (state files in `var`, paths.var), its delta links in var/graph."""
    from intake.oauth.microsoft import MicrosoftTokens

    tokens = MicrosoftTokens(cfg, f"graph:{cfg.name}", var)
    limiter = mailbox_limiter(cfg.api_url, cfg.mailbox)  # shared with the other folders' sources and the sender
    client = GraphClient(cfg.api_url, tokens, ca_file=cfg.ca_file, timeout=cfg.timeout, stop=stop, limiter=limiter)
    return GraphAccount(
        name=cfg.name,
        mailbox=cfg.mailbox,
        client=client,
        state_dir=Path(var) / "graph",
        folders=tuple(cfg.folders),
        processed_folder=cfg.processed_folder,
        poll_interval=cfg.poll_interval,
        batch_size=cfg.batch_size,
    )
