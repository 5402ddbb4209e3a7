"""A small Microsoft Graph HTTP client: bearer token, paging, throttling, token renewal.

- Every request carries the account's access token (intake/oauth). A 401 gets one more
  try with a freshly acquired token (a token revoked or expired early looks valid to our
  clock); a second 401 goes up as the error.
- 429 (throttled) and 503/504 are waited out as Graph asks: the Retry-After header's
  seconds, else 1, 2, 4 ... s; after `max_retries` such answers, or at once when asked to wait
  longer than `max_wait`, the error goes up and the caller backs off on its own. A set
  `stop` event ends the wait at once (`Stopped`).
- `pages` follows @odata.nextLink until a page without one (a delta round ends with
  @odata.deltaLink instead). A link is followed only to the configured API's own host,
  so a bad answer can never send our token elsewhere.
- At most MAILBOX_CONCURRENCY (4) requests are in flight per mailbox in this process: the
  clients of one mailbox (each folder source and the sender) share its `mailbox_limiter`,
  since Exchange counts its limit per app and mailbox, not per folder.
- Every request asks for immutable ids (Prefer: IdType="ImmutableId"): a message keeps its
  id when it is moved to the processed folder, so the id stored with its ticket stays true.

Errors name the method, the path (without its query: delta tokens are long) and Graph's
own error code and message; never the token.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import requests

from intake.oauth import TokenSource, http_session

log = logging.getLogger("intake.msgraph")

IMMUTABLE_IDS = 'IdType="ImmutableId"'
RETRY_STATUSES = frozenset({429, 503, 504})
MAX_RETRY_WAIT = 900.0  # seconds: a Retry-After beyond this is cut to it (the caller's backoff takes over after)
# requests in flight per mailbox: Exchange serves at most 4 at once per app and mailbox
# (its MailboxConcurrency limit, answered with 429 beyond)
MAILBOX_CONCURRENCY = 4

_limiters: dict[tuple[str, str], threading.BoundedSemaphore] = {}
_limiters_lock = threading.Lock()


def mailbox_limiter(api_url: str, mailbox: str) -> threading.BoundedSemaphore:
    """The one limiter of `mailbox` at `api_url` in this process, shared by every client of it
    (its folder sources and its sender), each request holding it while on the wire."""
    key = (api_url.rstrip("/"), mailbox.lower())
    with _limiters_lock:
        return _limiters.setdefault(key, threading.BoundedSemaphore(MAILBOX_CONCURRENCY))


class GraphError(Exception):
    """Graph refused a request or could not be reached. `status` is the HTTP status (0:
    no answer), `code` Graph's error code (ErrorItemNotFound, InvalidAuthenticationToken, ...)."""

    def __init__(self, message: str, status: int = 0, code: str = ""):
        super().__init__(message)
        self.status, self.code = status, code


class Stopped(Exception):
    """The stop event was set while a throttled request waited."""


class GraphClient:
    def __init__(
        self,
        api_url: str,
        tokens: TokenSource,
        *,
        ca_file: str = "",
        timeout: float = 30.0,
        stop: threading.Event | None = None,
        max_retries: int = 6,
        max_wait: float = MAX_RETRY_WAIT,
        limiter: threading.Semaphore | None = None,
    ):
        self.api = api_url.rstrip("/")
        self.origin = urllib.parse.urlsplit(self.api)[:2]  # (scheme, host:port) every link must keep
        self.tokens = tokens
        self.session = http_session(ca_file, timeout)
        self.timeout = timeout
        self.stop = stop or threading.Event()
        self.max_retries = max_retries
        self.max_wait = max_wait  # a longer Retry-After is not waited out here: the error goes up at once
        self.throttled = 0  # throttled answers waited out so far
        self.limiter = limiter  # held while a request is on the wire, not while a Retry-After is waited out

    def url(self, path: str) -> str:
        """`path` under the API ("/users/x/..."), or a link Graph gave (checked to be ours)."""
        if not path.startswith(("http://", "https://")):
            return self.api + path
        if urllib.parse.urlsplit(path)[:2] != self.origin:
            raise GraphError(f"Graph answered with a link to another host: {_short(path)}")
        return path

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: dict | None = None,
        data: bytes | None = None,
        headers: dict | None = None,
        prefer: tuple[str, ...] = (),
        ok: tuple[int, ...] = (200,),
    ) -> requests.Response:
        """One request, answered with one of the `ok` statuses (else GraphError), after any
        throttling was waited out and a refused token renewed once."""
        url = self.url(path)
        token, renewed, retries = self.tokens.token(), False, 0
        while True:
            sent = {"Authorization": f"Bearer {token}", "Prefer": ", ".join((*prefer, IMMUTABLE_IDS)), **(headers or {})}
            try:
                with self.limiter or contextlib.nullcontext():
                    response = self.session.request(method, url, params=params, json=json, data=data, headers=sent)
            except requests.RequestException as exc:
                raise GraphError(f"{method} {_short(url)}: Graph unreachable: {type(exc).__name__}: {exc}") from None
            if response.status_code in ok:
                return response
            if response.status_code == 401 and not renewed:
                renewed, token = True, self.tokens.renew()
                continue
            delay = retry_after(response, retries) if response.status_code in RETRY_STATUSES else 0.0
            if response.status_code in RETRY_STATUSES and retries < self.max_retries and delay <= self.max_wait:
                retries += 1
                self.throttled += 1
                log.info("%s %s: HTTP %s, waiting %.1f s as asked", method, _short(url), response.status_code, delay)
                if self.stop.wait(delay):
                    raise Stopped()
                continue
            raise error_of(method, url, response)

    def get_json(self, path: str, *, params: dict | None = None, prefer: tuple[str, ...] = ()) -> dict:
        response = self.request("GET", path, params=params, prefer=prefer)
        try:
            return response.json()
        except ValueError:
            raise GraphError(f"GET {_short(response.url)}: not JSON: {response.text[:200]!r}", response.status_code) from None

    def pages(self, path: str, *, params: dict | None = None, prefer: tuple[str, ...] = ()) -> Iterator[dict]:
        """Each page of a collection, following @odata.nextLink (the link carries the query)."""
        next_url: str | None = path
        while next_url:
            page = self.get_json(next_url, params=params, prefer=prefer)
            params = None
            yield page
            next_url = page.get("@odata.nextLink")


def retry_after(response: requests.Response, retries: int) -> float:
    """The wait Graph asks for (Retry-After: seconds or an HTTP date), else 1, 2, 4 ... s."""
    value = response.headers.get("Retry-After", "").strip()
    if value:
        try:
            return min(MAX_RETRY_WAIT, max(0.0, float(value)))
        except ValueError:
            try:
                from datetime import UTC, datetime

                return min(MAX_RETRY_WAIT, max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()))
            except (TypeError, ValueError):
                pass
    return min(60.0, 2.0**retries)


def error_of(method: str, url: str, response: requests.Response) -> GraphError:
    """Graph's error body ({"error": {"code", "message"}}) as a GraphError."""
    code, message = "", ""
    try:
        error = response.json().get("error") or {}
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        message = response.text[:300]
    return GraphError(f"{method} {_short(url)}: HTTP {response.status_code} {code}: {message}".rstrip(": "), response.status_code, code)


def _short(url: str) -> str:
    """The URL without its query: delta and skip tokens are long and say nothing."""
    parts = urllib.parse.urlsplit(url)
    return parts.path or url


def user_path(mailbox: str) -> str:
    """/users/<mailbox>: the address (UPN) or object id, quoted for a path segment."""
    return "/users/" + urllib.parse.quote(mailbox, safe="@")
