"""A loopback stand-in for the handful of Microsoft Graph v1.0 mail endpoints intake uses,
for the Graph tests (tests/integration/test_graph_*.py). It listens on https://127.0.0.1
only (a self-signed certificate; `ca_file` trusts it).

It stands in for Exchange Online behind graph.microsoft.com/v1.0:
- GET  /users/{id}/mailFolders/{id | well-known name}           a mailFolder
- GET  /users/{id}/mailFolders?$filter=displayName eq '...'      {"value": [mailFolder ...]}
- POST /users/{id}/mailFolders {"displayName"}                   201, the mailFolder (409 ErrorFolderExists)
- GET  /users/{id}/mailFolders/{id}/messages/delta               a delta round: pages of {"value": [...]} with
       @odata.nextLink ($skiptoken) and, on the last page, @odata.deltaLink ($deltatoken); items carry
       @odata.type, @odata.etag, id and the $select'ed properties; a message gone from the folder since
       the link was made comes as {"id", "@removed": {"reason": "deleted"}}; page size from
       `Prefer: odata.maxpagesize=N` (10 without it); an unknown or expired delta token answers 410
- GET  /users/{id}/messages/{id}                                 the message's properties (subject, from ...)
- GET  /users/{id}/messages/{id}/$value                          the message's MIME
- POST /users/{id}/messages/{id}/move {"destinationId"}          201, the message in its new folder; its id
       changes unless the request asked `Prefer: IdType="ImmutableId"`
- POST /users/{id}/sendMail (Content-Type: text/plain, the MIME in base64)   202 Accepted, no body
Errors have Graph's shape: {"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}; 401 InvalidAuthenticationToken with a WWW-Authenticate header, 403
ErrorAccessDenied, 404 ErrorItemNotFound, 429 with Retry-After when the test throttles.
The shapes follow Microsoft's Graph API reference (message: delta, Get MIME content of a
message, message: move, user: sendMail, Microsoft Graph error responses, throttling guidance).

Bearer tokens are checked by the `authorize(token, mailbox)` the test gives (answering
"ok", "invalid" or "forbidden"): the OAuth tests' identity provider (tests/servers/oauth_idp.py)
issues them. The test delivers mail, throttles, makes an item fail for good, expires delta tokens, and reads folders,
sent mail and the request log directly.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.servers.dovecot import HOST, make_self_signed_cert

WELL_KNOWN = {"inbox": "Inbox", "sentitems": "Sent Items", "deleteditems": "Deleted Items", "drafts": "Drafts", "archive": "Archive"}
DEFAULT_PAGE = 10


def graph_id(prefix: str = "AAMkAGI2") -> str:
    """An id shaped like Exchange's: URL-safe base64 with its padding."""
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(96)).decode()


@dataclass
class Message:
    id: str
    mime: bytes
    folder: str  # folder id
    received: str


@dataclass
class Folder:
    id: str
    name: str
    well_known: str = ""


@dataclass
class Mailbox:
    address: str
    folders: dict[str, Folder] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    changes: list[tuple[int, str, str, str]] = field(default_factory=list)  # (seq, folder id, message id, "added" | "removed")
    sent: list[bytes] = field(default_factory=list)


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class GraphApi:
    def __init__(self, root: Path, authorize: Callable[[str, str], str] | None = None):
        self.cert, self.key = make_self_signed_cert(Path(root))
        self.ca_file = str(self.cert)
        self.authorize = authorize or (lambda token, mailbox: "ok" if token else "invalid")
        self.mailboxes: dict[str, Mailbox] = {}
        self.requests: list[tuple[str, str, str, int]] = []  # (method, path, query, status) of every request answered
        self._seq = 0
        self._delta_tokens: dict[str, tuple[str, str, int]] = {}  # token -> (mailbox, folder id, seq)
        self._skip_tokens: dict[str, dict] = {}  # token -> the rest of a round
        self._throttle: list[tuple[str, float]] = []  # (path part, Retry-After) of the next throttled answers
        self.failing: dict[tuple[str, str], tuple[int, str]] = {}  # (message id, "$value" | "move") -> (status, code), every time
        self.idless: list[dict] = []  # delta items without an id, added to every round's first page
        self.latency = 0.0  # seconds added to every answer (benchmarks: a round trip to the real service)
        self.in_flight = 0  # requests being answered now
        self.max_in_flight = 0  # the most answered at once (Exchange allows 4 per app and mailbox); the test resets it
        self.lock = threading.RLock()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.base = f"https://{HOST}:{self._server.server_address[1]}/v1.0"
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> GraphApi:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the test's controls ------------------------------------------------------

    def add_mailbox(self, address: str) -> Mailbox:
        with self.lock:
            box = Mailbox(address)
            for well_known, name in WELL_KNOWN.items():
                folder = Folder(graph_id("AQMkADAw"), name, well_known)
                box.folders[folder.id] = folder
            self.mailboxes[address.lower()] = box
            return box

    def add_folder(self, address: str, name: str) -> str:
        """A top-level folder of that display name; its id."""
        with self.lock:
            folder = Folder(graph_id("AQMkADAw"), name)
            self.mailboxes[address.lower()].folders[folder.id] = folder
            return folder.id

    def deliver(self, address: str, mime: bytes, folder: str = "inbox") -> str:
        """A message arrives in the folder (a well-known name or a display name)."""
        with self.lock:
            box = self.mailboxes[address.lower()]
            target = self._folder(box, folder)
            message = Message(graph_id(), mime, target.id, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            box.messages[message.id] = message
            self._change(box, target.id, message.id, "added")
            return message.id

    def in_folder(self, address: str, folder: str) -> list[bytes]:
        """The MIME of every message in the folder (none when it does not exist)."""
        with self.lock:
            box = self.mailboxes[address.lower()]
            try:
                target = self._folder(box, folder)
            except GraphError:
                return []
            return [m.mime for m in box.messages.values() if m.folder == target.id]

    def sent(self, address: str) -> list[bytes]:
        with self.lock:
            return list(self.mailboxes[address.lower()].sent)

    def throttle(self, count: int, retry_after: float = 1.0, path_part: str = "") -> None:
        """The next `count` requests whose path contains `path_part` answer 429 with Retry-After."""
        with self.lock:
            self._throttle += [(path_part, retry_after)] * count

    def move(self, address: str, message_id: str, folder: str) -> None:
        """A person moves the message to another folder (its id kept, as Outlook's are immutable)."""
        with self.lock:
            self._move(self.mailboxes[address.lower()], message_id, folder, True)

    def fail(self, message_id: str, action: str, status: int, code: str) -> None:
        """Every request for `action` ("$value" or "move") on the message answers this error
        (an item Exchange cannot serve); `status` 0 ends the failing."""
        with self.lock:
            if status:
                self.failing[(message_id, action)] = (status, code)
            else:
                self.failing.pop((message_id, action), None)

    def expire_delta_tokens(self) -> None:
        """Every delta link given so far answers 410 (Exchange dropped the sync state)."""
        with self.lock:
            self._delta_tokens.clear()

    def count(self, method: str, path_part: str, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for m, p, _q, s in self.requests if m == method and path_part in p and (status is None or s == status))

    # -- the endpoints --------------------------------------------------------------

    def _change(self, box: Mailbox, folder: str, message: str, kind: str) -> None:
        self._seq += 1
        box.changes.append((self._seq, folder, message, kind))

    @staticmethod
    def _folder(box: Mailbox, name: str) -> Folder:
        for folder in box.folders.values():
            if name in (folder.id, folder.name) or (folder.well_known and name.lower() == folder.well_known):
                return folder
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    def _box(self, address: str) -> Mailbox:
        box = self.mailboxes.get(address.lower())
        if box is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{address}' is invalid.")
        return box

    @staticmethod
    def _folder_json(folder: Folder, box: Mailbox) -> dict:
        count = sum(1 for m in box.messages.values() if m.folder == folder.id)
        return {
            "id": folder.id,
            "displayName": folder.name,
            "parentFolderId": "AQMkADAwATNiZmYAZC1root",
            "childFolderCount": 0,
            "unreadItemCount": count,
            "totalItemCount": count,
        }

    def handle(self, method: str, url: str, headers, body: bytes) -> tuple[int, dict | bytes | None, dict]:
        parts = urllib.parse.urlsplit(url)
        segments = [urllib.parse.unquote(s) for s in parts.path.split("/") if s]
        query = dict(urllib.parse.parse_qsl(parts.query))
        prefer = headers.get("Prefer", "")
        with self.lock:
            for i, (part, retry_after) in enumerate(self._throttle):
                if part in parts.path:
                    del self._throttle[i]
                    raise GraphError(
                        429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", {"Retry-After": f"{retry_after:g}"}
                    )
        if segments[:2] != ["v1.0", "users"] or len(segments) < 4:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segments[-1] if segments else ''}'.")
        address, rest = segments[2], segments[3:]
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        verdict = self.authorize(token, address.lower())
        if verdict == "invalid":
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
                {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"'},
            )
        if verdict != "ok":
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        with self.lock:
            box = self._box(address)
            if method == "GET" and rest == ["mailFolders"]:
                wanted = re.fullmatch(r"displayName eq '((?:[^']|'')*)'", query.get("$filter", ""))
                folders = [f for f in box.folders.values() if wanted is None or f.name == wanted.group(1).replace("''", "'")]
                return (
                    200,
                    {
                        "@odata.context": f"{self.base}/$metadata#users('{address}')/mailFolders",
                        "value": [self._folder_json(f, box) for f in folders],
                    },
                    {},
                )
            if method == "POST" and rest == ["mailFolders"]:
                name = json.loads(body)["displayName"]
                if any(f.name == name for f in box.folders.values()):
                    raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
                folder = Folder(graph_id("AQMkADAw"), name)
                box.folders[folder.id] = folder
                return 201, self._folder_json(folder, box), {}
            if method == "GET" and len(rest) == 2 and rest[0] == "mailFolders":
                return 200, self._folder_json(self._folder(box, rest[1]), box), {}
            if method == "GET" and len(rest) == 4 and rest[0] == "mailFolders" and rest[2:] == ["messages", "delta"]:
                return 200, self._delta(box, self._folder(box, rest[1]), query, prefer), {}
            if len(rest) == 3 and rest[0] == "messages" and (rest[1], rest[2]) in self.failing:
                status, code = self.failing[(rest[1], rest[2])]
                raise GraphError(status, code, f"The request failed for this item ({code}).")
            if method == "GET" and len(rest) == 2 and rest[0] == "messages":
                return 200, self._message_json(box, rest[1]), {}
            if method == "GET" and len(rest) == 3 and rest[0] == "messages" and rest[2] == "$value":
                message = box.messages.get(rest[1])
                if message is None:
                    raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
                return 200, message.mime, {"Content-Type": "text/plain"}
            if method == "POST" and len(rest) == 3 and rest[0] == "messages" and rest[2] == "move":
                return 201, self._move(box, rest[1], json.loads(body)["destinationId"], 'IdType="ImmutableId"' in prefer), {}
            if method == "POST" and rest == ["sendMail"]:
                return self._send(box, headers, body)
        raise GraphError(400, "BadRequest", f"Unsupported request: {method} {parts.path}")

    def _delta(self, box: Mailbox, folder: Folder, query: dict, prefer: str) -> dict:
        size = int(m.group(1)) if (m := re.search(r"odata\.maxpagesize=(\d+)", prefer)) else DEFAULT_PAGE
        delta_base = f"{self.base}/users/{urllib.parse.quote(box.address)}/mailFolders/{urllib.parse.quote(folder.id, safe='')}/messages/delta"
        if "$skiptoken" in query:
            round_ = self._skip_tokens.pop(query["$skiptoken"], None)
            if round_ is None:
                raise GraphError(410, "SyncStateNotFound", "The sync state is not found or has expired.")
        else:
            since = None
            if "$deltatoken" in query:
                known = self._delta_tokens.get(query["$deltatoken"])
                if known is None or known[:2] != (box.address.lower(), folder.id):
                    raise GraphError(410, "SyncStateNotFound", "The sync state is not found or has expired.")
                since = known[2]
            selected = [p for p in query.get("$select", "").split(",") if p and p != "id"]
            round_ = {"items": self._changes(box, folder, since, selected), "seq": self._seq}
        page, rest = round_["items"][:size], round_["items"][size:]
        answer: dict = {"@odata.context": f"{self.base}/$metadata#Collection(message)", "value": page}
        if rest:
            skip = secrets.token_urlsafe(24)
            self._skip_tokens[skip] = {"items": rest, "seq": round_["seq"]}
            answer["@odata.nextLink"] = f"{delta_base}?$skiptoken={skip}"
        else:
            delta = secrets.token_urlsafe(24)
            self._delta_tokens[delta] = (box.address.lower(), folder.id, round_["seq"])
            answer["@odata.deltaLink"] = f"{delta_base}?$deltatoken={delta}"
        return answer

    def _message_json(self, box: Mailbox, message_id: str) -> dict:
        """A message's properties (GET /users/{id}/messages/{id}): those read from its headers."""
        message = box.messages.get(message_id)
        if message is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        headers = BytesHeaderParser(policy=default).parsebytes(message.mime)
        sender = getaddresses([str(headers.get("From", ""))])
        return {
            "@odata.context": f"{self.base}/$metadata#users('{box.address}')/messages/$entity",
            "id": message.id,
            "receivedDateTime": message.received[:19] + "Z",
            "subject": str(headers.get("Subject", "")),
            "internetMessageId": str(headers.get("Message-ID", "")),
            "from": {"emailAddress": {"name": sender[0][0], "address": sender[0][1]}} if sender else None,
            "parentFolderId": message.folder,
        }

    def _changes(self, box: Mailbox, folder: Folder, since: int | None, selected: list[str]) -> list[dict]:
        def item(message: Message) -> dict:
            shown = {"@odata.type": "#microsoft.graph.message", "@odata.etag": f'W/"CQAAABYAAAA{message.id[-12:]}"', "id": message.id}
            if "receivedDateTime" in selected:
                shown["receivedDateTime"] = message.received[:19] + "Z"
            return shown

        if since is None:  # the first round: what is in the folder now
            return [*self.idless, *(item(m) for m in box.messages.values() if m.folder == folder.id)]
        items, seen = list(self.idless), set()
        for _seq, folder_id, message_id, _kind in box.changes:
            if _seq <= since or folder_id != folder.id or message_id in seen:
                continue
            seen.add(message_id)
            message = box.messages.get(message_id)
            if message is not None and message.folder == folder.id:
                items.append(item(message))
            else:
                items.append({"@odata.type": "#microsoft.graph.message", "id": message_id, "@removed": {"reason": "deleted"}})
        return items

    def _move(self, box: Mailbox, message_id: str, destination: str, immutable: bool) -> dict:
        message = box.messages.get(message_id)
        if message is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        target = self._folder(box, destination)
        self._change(box, message.folder, message.id, "removed")
        del box.messages[message.id]
        moved = Message(message.id if immutable else graph_id(), message.mime, target.id, message.received)
        box.messages[moved.id] = moved
        self._change(box, target.id, moved.id, "added")
        return {"@odata.type": "#microsoft.graph.message", "id": moved.id, "parentFolderId": target.id, "receivedDateTime": moved.received[:19] + "Z"}

    def _send(self, box: Mailbox, headers, body: bytes) -> tuple[int, None, dict]:
        if not headers.get("Content-Type", "").startswith("text/plain"):
            raise GraphError(400, "ErrorInvalidRequest", "MIME content must be sent with Content-Type: text/plain.")
        try:
            mime = base64.b64decode(body, validate=True)
        except ValueError:
            raise GraphError(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.") from None
        parsed = BytesHeaderParser(policy=default).parsebytes(mime)
        if not getaddresses([str(v) for name in ("To", "Cc", "Bcc") for v in parsed.get_all(name, [])]):
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        box.sent.append(mime)
        sent_items = self._folder(box, "sentitems")
        copy = Message(graph_id(), mime, sent_items.id, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        box.messages[copy.id] = copy
        self._change(box, sent_items.id, copy.id, "added")
        return 202, None, {}

    def _handler(api):  # noqa: N805 (the handler class closes over the server)
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Graph's front door
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms wait for the ACK

            def log_message(self, *args) -> None:
                pass

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with api.lock:
                    api.in_flight += 1
                    api.max_in_flight = max(api.max_in_flight, api.in_flight)
                try:
                    if api.latency:
                        time.sleep(api.latency)
                    status, content, headers = api.handle(method, self.path, self.headers, body)
                except GraphError as exc:
                    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
                    request_id = str(uuid.uuid4())
                    status, headers = exc.status, exc.headers
                    content = {
                        "error": {
                            "code": exc.code,
                            "message": exc.message,
                            "innerError": {"date": now, "request-id": request_id, "client-request-id": request_id},
                        }
                    }
                with api.lock:
                    api.in_flight -= 1
                    url = urllib.parse.urlsplit(self.path)
                    api.requests.append((method, url.path, urllib.parse.unquote(url.query), status))
                data = json.dumps(content).encode() if isinstance(content, dict) else (content or b"")
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json") if content is not None else "text/plain")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("request-id", str(uuid.uuid4()))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

        return Handler


def idp_authorizer(idp) -> Callable[[str, str], str]:
    """`authorize` for a GraphApi whose tokens the loopback identity provider issues: a token
    it knows and holds active, of an app granted the mailbox (app-only access, narrowed to
    chosen mailboxes as an application access policy does)."""

    def authorize(token: str, mailbox: str) -> str:
        entry = idp.access.get(token)
        if entry is None or not entry.active():
            return "invalid"
        app = idp.apps.get(entry.client_id)
        if app is None or mailbox not in app.mailboxes or mailbox in app.withdrawn:
            return "forbidden"
        return "ok"

    return authorize


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
