"""The web-form listener: the customer form page, its POST endpoint (form, multipart, JSON), /healthz.

Each valid submission is written atomically into the spool before anything is
answered, then taken at once through the spool source (so the file moves to done/
and the customer sees the ticket reference). If the pipeline fails, the file stays
in the spool for the daemon's watcher, and the customer is told the number follows
by email.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from intake import resources
from intake.inbound.form import TYPES, human_size, msg, now_iso, validate_submission
from intake.sources.base import Result, Sink
from intake.sources.spool import SpoolSource, write_spool_file_bytes
from intake.vocabulary import mask_phone
from intake.web.middleware import BodyLimit, SecurityHeaders
from intake.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    HONEYPOT_FIELD,
    RateLimiter,
    csrf_token,
    csrf_valid,
    new_nonce,
)
from intake.web.settings import WebSettings
from intake.web.texts import TEXTS, choose_language, describe_kinds

log = logging.getLogger("intake.web")
abuse_log = logging.getLogger("intake.web.abuse")

# case and case_sig: the signed case link of a form acknowledgement (intake/tickets/case_link.py)
FIELDS = ("name", "company", "email", "phone", "type", "subject", "message", "case", "case_sig")
STORED = ("opened", "appended", "duplicate", "autoreply_ignored")


class FormApp:
    """The handlers, with what they share: settings, the spool source, templates, the limiter."""

    def __init__(self, settings: WebSettings, sink: Sink, spool_dir: Path) -> None:
        self.settings = settings
        self.spool = SpoolSource(Path(spool_dir), sink)
        self.spool.prepare()
        self.spool_dir = Path(spool_dir)
        self.secret = (settings.csrf_secret or secrets.token_hex(32)).encode()
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        # Requests queue here rather than on the database's write lock: on SQLite, writers
        # racing for the lock back off in sleeps, which turned a 4-client p95 of 100 ms into 255 ms.
        self.takes = threading.BoundedSemaphore(max(1, settings.concurrent_takes))
        self.extensions = settings.extensions()
        # the user's form templates (if any) before the shipped ones
        folders = [*([settings.templates_dir] if settings.templates_dir else []), resources.templates() / "forms"]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folders),
            autoescape=True,  # every value from a customer is escaped, in every template
            undefined=jinja2.StrictUndefined,
        )
        self.css = next(Path(f) / "forms.css" for f in folders if (Path(f) / "forms.css").is_file()).read_bytes()
        self.secure_cookie = settings.public_base_url.lower().startswith("https://")

    # -- pages ---------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        lang = self.lang(request)
        # opened from the case link of an acknowledgement: the post carries it back (checked by the pipeline)
        case, sig = request.query_params.get("case", ""), request.query_params.get("sig", "")
        values = {"case": case[:40], "case_sig": sig[:64]} if case and sig else {}
        return self.form_page(request, lang, values, {})

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def stylesheet(self, request: Request) -> Response:
        return Response(self.css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    def lang(self, request: Request, given: str | None = None) -> str:
        return choose_language(given or request.query_params.get("lang"), request.headers.get("accept-language"), self.settings.default_lang)

    def form_page(
        self,
        request: Request,
        lang: str,
        values: dict[str, str],
        errors: dict[str, str],
        *,
        status: int = 200,
        general: str = "",
        headers: dict[str, str] | None = None,
    ) -> Response:
        nonce = request.cookies.get(CSRF_COOKIE) or new_nonce()
        html = self.env.get_template("form.html").render(
            root=request.scope.get("root_path", ""),
            t=TEXTS[lang],
            lang=lang,
            other_lang="en" if lang == "zh" else "zh",
            values=values,
            errors=errors,
            general=general,
            types=TYPES,
            csrf_field=CSRF_FIELD,
            csrf=csrf_token(self.secret, nonce),
            honeypot=HONEYPOT_FIELD,
            accept=",".join("." + e for e in self.extensions),
            max_file=human_size(self.settings.max_file_bytes),
            kinds=describe_kinds(self.extensions, lang),
            company=self.settings.company_name,
        )
        response = HTMLResponse(html, status_code=status, headers=headers)
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookie,
            path="/",
        )
        return response

    def thanks_page(self, request: Request, lang: str, ticket: str | None, email: str, phone: str) -> Response:
        html = self.env.get_template("thanks.html").render(
            root=request.scope.get("root_path", ""),
            t=TEXTS[lang],
            lang=lang,
            other_lang="en" if lang == "zh" else "zh",
            ticket=ticket,
            email=email,
            phone=mask_phone(phone),
            company=self.settings.company_name,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    # -- submissions -----------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":  # cross-site HTML forms cannot send this type: no CSRF token needed
            return await self.submit_json(request)
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return await self.submit_form(request)
        return JSONResponse({"errors": {"_": "use application/json, multipart/form-data or application/x-www-form-urlencoded"}}, 415)

    async def submit_json(self, request: Request) -> Response:
        ip = client_ip(request, self.settings)
        try:
            data = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"errors": {"_": "the body is not valid JSON"}}, 400)
        except RecursionError:  # "[[[[…" deeper than the interpreter's stack: a 500 before
            return JSONResponse({"errors": {"_": "the body is JSON nested too deeply"}}, 400)
        if not isinstance(data, dict):
            return JSONResponse({"errors": {"_": msg("not_object", "en")}}, 422)
        # No honeypot here: JSON comes from integrations, whose extra fields (a "website" too) are kept.
        errors = validate_submission(data, max_file_bytes=self.settings.max_file_bytes, allowed_extensions=self.extensions)
        if errors:
            return JSONResponse({"errors": errors}, 422)
        wait = self.limiter.hit(f"ip:{ip}", *contact_keys(data))
        if wait:
            abuse_log.warning("rate limit: %s (%s) refused for %ss", ip, data.get("email", ""), wait)
            return JSONResponse({"errors": {"_": TEXTS["en"]["rate"].format(seconds=wait)}}, 429, headers={"Retry-After": str(wait)})
        data.setdefault("submitted_at", now_iso())
        data.setdefault("received_via", "http")
        result = await self.store(data)
        if result is None:
            return JSONResponse({"ticket": None, "outcome": "queued"}, 202)
        return JSONResponse({"ticket": result.ticket, "outcome": result.outcome}, 201)

    async def submit_form(self, request: Request) -> Response:
        ip = client_ip(request, self.settings)
        try:
            # The parser's own file cap is generous: over `max_files` becomes a field error
            # on the page (input kept) rather than a bare 400; the body limit bounds the bytes.
            form = await request.form(max_files=max(100, self.settings.max_files), max_fields=50)
        except HTTPException as exc:  # too many fields, or a malformed body
            return PlainTextResponse(exc.detail, exc.status_code)
        try:
            return await self.handle_form(request, form, ip)
        finally:
            await form.close()  # uploads over 1 MB live in temp files until closed

    async def handle_form(self, request: Request, form: FormData, ip: str) -> Response:
        lang = self.lang(request, str(form.get("lang") or ""))
        values = {k: str(form.get(k) or "").strip() for k in FIELDS if not isinstance(form.get(k), UploadFile)}

        nonce = request.cookies.get(CSRF_COOKIE)
        if not csrf_valid(self.secret, nonce, str(form.get(CSRF_FIELD) or "")):
            abuse_log.warning("CSRF check failed from %s (cookie %s)", ip, "present" if nonce else "missing")
            # Keep what was typed only for the same browser (its cookie came back):
            # a forged cross-site post must not put the forger's text in our page.
            return self.form_page(request, lang, values if nonce else {}, {}, status=403, general=TEXTS[lang]["csrf"])
        if _filled(form.get(HONEYPOT_FIELD)):
            return self.honeypot_hit(ip, values, lambda ref: self.thanks_page(request, lang, ref, values.get("email", ""), values.get("phone", "")))

        data: dict[str, Any] = {k: v for k, v in values.items() if v}
        data["lang"] = lang
        files_error, attachments = await self.read_files(form, lang)
        if attachments:
            data["attachments"] = attachments
        errors = validate_submission(data, max_file_bytes=self.settings.max_file_bytes, allowed_extensions=self.extensions)
        if files_error:
            errors["attachments"] = files_error
        if errors:
            # Browsers never refill a file input: say so, or the files would silently be lost.
            if attachments and "attachments" not in errors:
                errors["attachments"] = TEXTS[lang]["reattach"]
            return self.form_page(request, lang, values, errors, status=422)
        wait = self.limiter.hit(f"ip:{ip}", *contact_keys(data))
        if wait:
            abuse_log.warning("rate limit: %s (%s) refused for %ss", ip, data.get("email", ""), wait)
            return self.form_page(
                request,
                lang,
                values,
                {},
                status=429,
                general=TEXTS[lang]["rate"].format(seconds=wait),
                headers={"Retry-After": str(wait)},
            )
        data["submitted_at"] = now_iso()
        data["received_via"] = "web form"
        result = await self.store(data)
        return self.thanks_page(request, lang, result.ticket if result else None, values.get("email", ""), values.get("phone", ""))

    async def read_files(self, form: FormData, lang: str) -> tuple[str | None, list[dict]]:
        """The uploads as spool attachments; an oversize file is refused before it is read."""
        out: list[dict] = []
        # an empty file input sends a nameless part
        uploads = [u for u in form.getlist("attachments") if isinstance(u, UploadFile) and u.filename]
        if len(uploads) > self.settings.max_files:
            return msg("too_many", lang, max=self.settings.max_files), []
        for upload in uploads:
            if upload.size is not None and upload.size > self.settings.max_file_bytes:
                return msg("file_too_big", lang, name=upload.filename, max=human_size(self.settings.max_file_bytes)), []
            blob = await upload.read()
            out.append(
                {
                    "filename": upload.filename,
                    "content_type": upload.content_type or "application/octet-stream",
                    "data_base64": base64.b64encode(blob).decode("ascii"),
                }
            )
        return None, out

    async def store(self, data: dict) -> Result | None:
        """Spool first (durable), then take at once. None: stored, ticket to follow."""
        return await run_in_threadpool(self._spool_and_take, data)  # one hop to a worker thread, not two

    def _spool_and_take(self, data: dict) -> Result | None:
        path, raw = write_spool_file_bytes(self.spool_dir, data)  # a failure here (disk full) is a 500: nothing promised
        try:
            with self.takes:
                result = self.spool.take_file(path, raw)
        except Exception:
            log.exception("%s is safe in the spool but the pipeline failed; the daemon takes it later", path.name)
            return None
        if result is None or result.outcome not in STORED or not result.ticket:
            log.warning(
                "%s: %s (%s); the customer is told the number follows",
                path.name,
                result.outcome if result else "gone",
                result.reason if result else "",
            )
            return None
        return result

    def honeypot_hit(self, ip: str, data: dict, answer) -> Response:
        """A bot filled the hidden field: it gets what looks like success; nothing is stored."""
        self.limiter.hit(f"ip:{ip}")
        ref = time.strftime("%y%m%d") + f"-{secrets.randbelow(9000) + 1000:04d}"
        abuse_log.warning("honeypot filled from %s (email %r): fake success %s sent, nothing stored", ip, str(data.get("email", ""))[:100], ref)
        return answer(ref)


def _filled(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != "" or (value is not None and not isinstance(value, str))


def contact_keys(data: dict) -> tuple[str, ...]:
    """The rate-limit keys of the person: their email address and their phone number's digits."""
    keys = []
    email, phone = data.get("email"), data.get("phone")
    if isinstance(email, str) and email.strip():
        keys.append(f"email:{email.strip().lower()}")
    if isinstance(phone, str) and any(c.isdigit() for c in phone):
        keys.append("phone:" + "".join(c for c in phone if c.isdigit()))
    return tuple(keys)


def client_ip(request: Request, settings: WebSettings) -> str:
    """The peer's address; behind one of [web] trusted_proxies, the last hop in the
    X-Forwarded-For it wrote. Anyone else can write that header: it is ignored."""
    host = request.client.host if request.client else "unknown"
    if _trusted(host, settings.trusted_proxies):  # behind our own reverse proxy, the customer is the last hop it saw
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return host


def _trusted(host: str, proxies: tuple[str, ...]) -> bool:
    """Is `host` one of the proxies (addresses or networks: "127.0.0.1", "10.0.0.0/8")?"""
    if not proxies:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for proxy in proxies:
        try:
            if address in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            continue
    return False


def create_app(settings: WebSettings, sink: Sink, spool_dir: Path, extra_routes: list | None = None) -> Starlette:
    """The ASGI app: GET / /form /submit (the page), POST / /form /submit (the endpoint), /forms.css, /healthz,
    and whatever `extra_routes` the daemon mounts (the satisfaction survey's page)."""
    handlers = FormApp(settings, sink, spool_dir)
    routes = [
        *(extra_routes or []),
        Route("/", handlers.page, methods=["GET"]),
        Route("/form", handlers.page, methods=["GET"]),
        Route("/submit", handlers.page, methods=["GET"]),  # a reload or a bookmark of the answer page
        Route("/", handlers.submit, methods=["POST"]),
        Route("/form", handlers.submit, methods=["POST"]),
        Route("/submit", handlers.submit, methods=["POST"]),
        Route("/forms.css", handlers.stylesheet, methods=["GET"]),
        Route("/healthz", handlers.healthz, methods=["GET"]),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes, message=_too_large_page(handlers)),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.form = handlers
    return app


def _too_large_page(handlers: FormApp):
    def render(lang_header: str | None, query: str, wants_json: bool) -> tuple[bytes, str]:
        limit = human_size(handlers.settings.max_body_bytes)
        if wants_json:
            return json.dumps({"errors": {"_": TEXTS["en"]["too_large"].format(max=limit)}}).encode(), "application/json"
        lang = choose_language(None, lang_header, handlers.settings.default_lang)
        html = handlers.env.get_template("error.html").render(
            root="",
            t=TEXTS[lang],
            lang=lang,
            other_lang="en" if lang == "zh" else "zh",
            message=TEXTS[lang]["too_large"].format(max=limit),
            company=handlers.settings.company_name,
        )
        return html.encode(), "text/html; charset=utf-8"

    return render
