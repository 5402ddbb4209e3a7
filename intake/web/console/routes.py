"""The console's route table and its guard.

Every page is a `Page` in TABLE, registered with the `@page(...)` decorator by its module
(operator.py, compliance.py, report_page.py; PAGE_MODULES). `ConsoleApp.routes()` mounts
them all under /console behind one guard, in this order:
  1. no valid session -> 303 to the sign-in page (nothing but `public` pages is reachable);
  2. the user has none of the page's roles -> 403;
  3. a POST without a valid CSRF token -> 403;
  4. the handler runs (in a worker thread: the database calls block) with a `View`.
tests/console/test_security.py walks TABLE, so a new page is checked without being named.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from intake.context import Context
from intake.store.db import transaction
from intake.web.console import audit, auth, csrf
from intake.web.console.settings import Console
from intake.web.console.texts import TEXTS
from intake.web.security import RateLimiter
from intake.web.texts import choose_language

log = logging.getLogger("intake.web.console")

PREFIX = "/console"
LANG_COOKIE = "intake_console_lang"
PAGE_MODULES = ("intake.web.console.operator", "intake.web.console.compliance", "intake.web.console.report_page")
OPERATOR, COMPLIANCE = "operator", "compliance"
SIGN_INS_PER_MINUTE = 20


@dataclass(frozen=True)
class Page:
    path: str  # under /console: "/quarantine/{item:int}"
    handler: Callable[[View], Response]
    roles: frozenset[str]  # the user needs one of them; empty: any signed-in user
    methods: tuple[str, ...] = ("GET",)
    public: bool = False  # reachable without a session (only the sign-in page and the stylesheet)
    nav: str = ""  # a text key: the page is listed in the navigation under that name
    example: dict[str, Any] = field(default_factory=dict)  # path parameters for tests that walk the table


TABLE: list[Page] = []


def page(
    path: str, *, roles: Iterable[str] = (), methods: Iterable[str] = ("GET",), public: bool = False, nav: str = "", example: dict | None = None
):
    """Register the decorated `handler(view) -> Response` as a console page."""

    def register(handler: Callable[[View], Response]) -> Callable[[View], Response]:
        if not public and not roles and path not in ("/", "/sign-out"):
            raise ValueError(f"console page {path}: give roles=... (or public=True for a page without a session)")
        TABLE.append(Page(path, handler, frozenset(roles), tuple(methods), public, nav, example or {}))
        return handler

    return register


def load_pages() -> list[Page]:
    """Import every page module there is (each registers its pages once)."""
    for name in PAGE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but something it imports does not
                raise
    return TABLE


class View:
    """What a page handler gets: the request, the daemon's context, the user, the language,
    the posted form (CSRF already checked), and helpers to render, redirect and audit."""

    def __init__(self, app: ConsoleApp, request: Request, user: auth.SignedIn | None, lang: str, form: FormData | None, nonce: str) -> None:
        self.app, self.request, self.user, self.lang, self.form = app, request, user, lang, form
        self.ctx: Context = app.ctx
        self.t = TEXTS[lang]
        self.nonce = nonce  # what this page's CSRF tokens are bound to
        self.ip = app.client_ip(request)
        self.cookies: list[tuple[str, str, int | None]] = []  # set on the response by the guard
        # a visitor without a session got a new nonce: the guard sends it as the pre-session cookie
        self.new_nonce = user is None and request.cookies.get(csrf.PRE_SESSION_COOKIE) != nonce

    @property
    def name(self) -> str:
        return self.user.name if self.user else ""

    def has(self, role: str) -> bool:
        return self.user is not None and role in self.user.roles

    def url(self, path: str = "/", **query: Any) -> str:
        qs = "&".join(f"{k}={quote(str(v))}" for k, v in query.items() if v is not None and v != "")
        return PREFIX + path + ("?" + qs if qs else "")

    def value(self, key: str, default: str = "") -> str:
        """A posted field (str), else a query parameter."""
        if self.form is not None and isinstance(self.form.get(key), str):
            return str(self.form.get(key))
        return self.request.query_params.get(key, default)

    def render(self, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
        page_values: dict[str, Any] = {
            "t": self.t,
            "lang": self.lang,
            "other_lang": "en" if self.lang == "zh" else "zh",
            "user": self.user,
            "nav": self.app.nav_for(self.user),
            "url": self.url,
            "here": self.request.url.path,
            "csrf_field": csrf.FIELD,
            "csrf": csrf.token_for(self.app.key, self.nonce),
            "refresh": 0,  # seconds: the page reloads itself
        }
        html = self.app.env.get_template(template).render({**page_values, **values})
        return HTMLResponse(html, status_code=status)

    def redirect(self, path: str, **query: Any) -> RedirectResponse:
        return RedirectResponse(self.url(path, **query), status_code=303)

    def error(self, status: int, message: str) -> HTMLResponse:
        return self.render("console/error.html.j2", status=status, message=message)

    def read(self) -> Session:
        """A read-only session (a snapshot on SQLite): `with view.read() as s:`."""
        return self.ctx.read_sessions()

    def audit(self, action: str, target: str = "", detail: dict | None = None) -> None:
        """One audit row for this user's action, in its own transaction."""
        with transaction(self.ctx.sessions) as session:
            audit.record(session, self.name, action, target, detail, ip=self.ip)


class ConsoleApp:
    def __init__(self, ctx: Context, settings: Console, pages: list[Page] | None = None) -> None:
        from intake.web.settings import WebSettings

        self.ctx, self.settings = ctx, settings
        self.key = settings.signing_key()
        # sign-in attempts per client address, whatever the names tried (the lock-out counts per name)
        self.sign_in_limiter = RateLimiter(SIGN_INS_PER_MINUTE)
        if not settings.secret and not (settings.secret_env and os.environ.get(settings.secret_env)):
            log.warning("console: no [console] secret or secret_env: sessions are signed with a key made at start, and end with a restart")
        self.pages = pages if pages is not None else load_pages()
        # the menu in PAGE_MODULES' order, whichever module was imported first (tests import them in any order)
        modules = {name: i for i, name in enumerate(PAGE_MODULES)}
        self.nav_pages = sorted((p for p in self.pages if p.nav), key=lambda p: modules.get(p.handler.__module__, -1))
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(ctx.config.template_dirs), autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.filters["when"] = _when
        self.web = WebSettings(trusted_proxies=tuple(ctx.config.web.trusted_proxies), default_lang="zh")
        https = ctx.config.web.public_base_url.lower().startswith("https://")
        self.always_secure = settings.cookie_secure if settings.cookie_secure is not None else https

    def routes(self) -> list[BaseRoute]:
        return [Mount(PREFIX, routes=[Route(p.path, self.guarded(p), methods=list(p.methods)) for p in self.pages])]

    def client_ip(self, request: Request) -> str:
        from intake.web.app import client_ip

        return client_ip(request, self.web)

    def nav_for(self, user: auth.SignedIn | None) -> list[tuple[str, str]]:
        if user is None:
            return []
        return [(PREFIX + p.path, p.nav) for p in self.nav_pages if not p.roles or p.roles & user.roles]

    def home_for(self, user: auth.SignedIn) -> str:
        nav = self.nav_for(user)
        return nav[0][0] if nav else PREFIX + "/"

    def secure(self, request: Request) -> bool:
        return self.always_secure or request.url.scheme == "https"

    def lang(self, request: Request) -> str:
        given = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
        return choose_language(given, request.headers.get("accept-language"), self.web.default_lang)

    def current_user(self, request: Request) -> auth.SignedIn | None:
        value = request.cookies.get(auth.SESSION_COOKIE)
        if not value:
            return None
        with self.ctx.read_sessions() as session:
            return auth.read_session(self.key, value, session, now=int(time.time()), max_age=self.settings.session_minutes * 60)

    def guarded(self, p: Page):
        async def endpoint(request: Request) -> Response:
            lang = self.lang(request)
            user = None if p.public else await run_in_threadpool(self.current_user, request)
            if not p.public and user is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                where = PREFIX + "/sign-in" + (f"?next={quote(target)}" if request.method == "GET" else "")
                return RedirectResponse(where, status_code=303, headers={"Cache-Control": "no-store"})
            if p.public and request.cookies.get(auth.SESSION_COOKIE):  # the sign-in page knows who is back
                user = await run_in_threadpool(self.current_user, request)
            nonce = user.nonce if user else (request.cookies.get(csrf.PRE_SESSION_COOKIE) or csrf.new_nonce())
            view = View(self, request, user, lang, None, nonce)
            if p.roles and not (user and p.roles & user.roles):
                log.warning(
                    "console: %s (roles %s) refused %s %s", view.name, ",".join(sorted(user.roles)) if user else "-", request.method, request.url.path
                )
                await run_in_threadpool(view.audit, "forbidden", request.url.path, {"method": request.method})
                return self.finish(request, view, view.error(403, view.t["forbidden"]))
            if request.method == "POST":
                try:
                    view.form = await request.form(max_files=0, max_fields=200)
                except HTTPException as exc:
                    return PlainTextResponse(exc.detail, exc.status_code)
                sent_nonce = user.nonce if user else request.cookies.get(csrf.PRE_SESSION_COOKIE)
                if not csrf.valid_for(self.key, sent_nonce, str(view.form.get(csrf.FIELD) or "")):
                    log.warning("console: CSRF check failed for %s %s from %s", request.method, request.url.path, view.ip)
                    return self.finish(request, view, view.error(403, view.t["csrf"]))
            response = await run_in_threadpool(p.handler, view)
            return self.finish(request, view, response)

        endpoint.__name__ = p.handler.__name__
        return endpoint

    def finish(self, request: Request, view: View, response: Response) -> Response:
        secure = self.secure(request)
        response.headers.setdefault("Cache-Control", "no-store")
        if view.new_nonce:
            response.set_cookie(csrf.PRE_SESSION_COOKIE, view.nonce, httponly=True, samesite="strict", secure=secure, path=PREFIX)
        if request.query_params.get("lang") in TEXTS:
            response.set_cookie(LANG_COOKIE, view.lang, max_age=365 * 86400, httponly=True, samesite="strict", secure=secure, path=PREFIX)
        for name, value, max_age in view.cookies:
            response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure, path=PREFIX)
        return response


def _when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.strftime(fmt) + " UTC" if value else "-"


def _local_next(target: str) -> str:
    """Where to go after signing in: only a path of the console, never another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX + "/") or "\\" in target:
        return ""
    return target


# -- signing in and out ---------------------------------------------------------------------------


@page("/sign-in", public=True)
def sign_in_page(view: View) -> Response:
    if view.user is not None:
        return RedirectResponse(view.app.home_for(view.user), status_code=303)
    return view.render("console/sign_in.html.j2", next=_local_next(view.request.query_params.get("next", "")), error="", name="")


@page("/sign-in", public=True, methods=("POST",))
def sign_in_post(view: View) -> Response:
    name, password = view.value("name").strip(), view.value("password")
    next_url = _local_next(view.value("next"))
    settings = view.app.settings
    wait = view.app.sign_in_limiter.hit(f"ip:{view.ip}")
    if wait:
        log.warning("console: sign-in attempts from %s over %s a minute", view.ip, SIGN_INS_PER_MINUTE)
        return view.render("console/sign_in.html.j2", status=429, next=next_url, error=view.t["rate"].format(seconds=wait), name=name)
    attempt = auth.sign_in(
        view.ctx.sessions,
        name,
        password,
        ip=view.ip,
        now=view.ctx.now(),
        failures=settings.lockout_failures,
        minutes=settings.lockout_minutes,
    )
    if attempt.outcome != "ok" or attempt.user is None:
        message = view.t["locked"].format(until=_when(attempt.locked_until)[:-4]) if attempt.outcome == "locked" else view.t["bad_credentials"]
        return view.render("console/sign_in.html.j2", status=429 if attempt.outcome == "locked" else 401, next=next_url, error=message, name=name)
    cookie = auth.session_cookie(view.app.key, attempt.user, int(time.time()))
    view.cookies.append((auth.SESSION_COOKIE, cookie, settings.session_minutes * 60))
    view.new_nonce = False
    who = auth.SignedIn(attempt.user.id, attempt.user.name, attempt.user.role_set(), "", 0)
    return RedirectResponse(next_url or view.app.home_for(who), status_code=303)


@page("/sign-out", methods=("POST",))
def sign_out(view: View) -> Response:
    assert view.user is not None
    auth.sign_out(view.ctx.sessions, view.user, ip=view.ip)
    view.cookies.append((auth.SESSION_COOKIE, "", 0))
    return view.redirect("/sign-in")


@page("/")
def home(view: View) -> Response:
    assert view.user is not None
    target = view.app.home_for(view.user)
    if target == PREFIX + "/":  # no page for this user's roles
        return view.error(403, view.t["forbidden"])
    return RedirectResponse(target, status_code=303)


@page("/console.css", public=True)
def stylesheet(view: View) -> Response:
    css = view.app.env.loader.get_source(view.app.env, "console/console.css")[0]  # type: ignore[union-attr]
    return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})
