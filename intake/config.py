"""Configuration: one TOML file over built-in defaults, validated once at start-up.

Every key is documented in config/intake.example.toml. A wrong key or value is
refused with a message naming the key and the problem (`ConfigError`); secrets may
come from environment variables (`password_env`). A relative path written in a config file (and a relative SQLite
file in `database.url`) is taken relative to that file's folder, so the daemon runs the
same from any working directory; the built-in defaults (`var`) are relative to the
working directory. Every path is absolute once loaded: `intake status` shows them.

Templates, rules and staff come with the package (intake/resources.py); a user's own
files win: `[paths] templates/rules/staff`, or rules.toml / staff.toml beside the config
file (in ./config/ when there is no config file).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from intake.vocabulary import TYPES, URGENCIES


class ConfigError(Exception):
    """A configuration problem; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Database(_Section):
    url: str = ""  # empty: SQLite in paths.var/intake.db
    # several daemons on PostgreSQL: how often a standby tries to take over a mailbox or
    # shared folder whose reader died (the takeover time)
    lease_retry_seconds: float = Field(2.0, gt=0, le=300)


class Paths(_Section):
    var: Path = Path("var")
    # a folder searched before the shipped templates (a file there replaces the shipped one
    # of the same name, e.g. email/ack.zh.j2); None: the shipped templates only
    templates: Path | None = None
    # None: rules.toml / staff.toml beside the config file if there is one, else the shipped ones
    rules: Path | None = None
    staff: Path | None = None


class Support(_Section):
    address: str = "support@example.com"
    name: str = "客户服务中心 Customer Service"
    domain: str = ""  # Message-ID domain; defaults to the address's domain

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if "@" not in v or v.startswith("@") or v.endswith("@"):
            raise ValueError(f"not an email address: {v!r}")
        return v.lower()


def env_variable_set(name: str) -> str:
    """A `*_env` key names an environment variable: it must exist when the daemon starts."""
    if name and name not in os.environ:
        raise ValueError(f"environment variable {name} is not set")
    return name


# The name of an environment variable holding a secret: checked when the config loads,
# so a missing one stops the start instead of the first send or fetch.
EnvName = Annotated[str, AfterValidator(env_variable_set)]


def _check_listen(value: str) -> str:
    if value:
        parse_listen(value)
    return value


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


# "HOST:PORT" of a listener, or empty for none
ListenAddress = Annotated[str, AfterValidator(_check_listen)]


def _loopback(host: str) -> bool:
    """localhost or a loopback address (127.0.0.0/8, ::1): traffic that never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret(password: str, password_env: str, key: str) -> str:
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise ValueError(f"{key}: environment variable {password_env} is not set")
        return value
    return password


class _OAuthLogin(_Section):
    """How an IMAP account or the SMTP server is logged in to: a password, or an OAuth2
    access token (XOAUTH2/OAUTHBEARER) from Microsoft or Google (intake/oauth)."""

    auth: Literal["password", "oauth2"] = "password"
    oauth_provider: Literal["", "microsoft", "google"] = ""
    # "app": no user present (Microsoft client credentials for a shared mailbox; a Google
    # service account with domain-wide delegation); "delegated": a user signed in once with
    # `intake auth login` (Microsoft device code; Google installed-app refresh token)
    oauth_flow: Literal["app", "delegated"] = "app"
    tenant: str = ""  # Microsoft: the directory (tenant) id or domain
    client_id: str = ""  # the app registration's (OAuth client's) id
    client_secret_env: EnvName = ""  # environment variable holding the client secret
    certificate_file: str = ""  # Microsoft app: PEM with the private key and its certificate, instead of a secret
    service_account_file: str = ""  # Google app: the service account's JSON key file
    authority: str = ""  # Microsoft: token authority override (sovereign clouds, tests); empty: login.microsoftonline.com/<tenant>
    token_uri: str = ""  # Google: token endpoint override (tests); empty: the key file's or Google's
    oauth_ca_file: str = ""  # extra CA bundle for the token endpoint's certificate
    oauth_scope: str = ""  # empty: the provider's scope for IMAP/SMTP
    # the client secret's expiry date as shown when it was made ("2027-06-30"): [alerts] warns
    # before it; a certificate's own expiry is read from certificate_file
    secret_expires: str = ""

    def client_secret(self) -> str:
        return os.environ.get(self.client_secret_env, "") if self.client_secret_env else ""

    def _oauth_problem(self) -> str | None:
        """What is wrong with this combination of keys, naming the key; None when fine."""
        oauth_keys = (
            "oauth_provider",
            "tenant",
            "client_id",
            "client_secret_env",
            "certificate_file",
            "service_account_file",
            "authority",
            "token_uri",
            "oauth_ca_file",
            "oauth_scope",
            "oauth_flow",
            "secret_expires",
        )
        given = [k for k in oauth_keys if k in self.model_fields_set and getattr(self, k) not in ("", None)]
        if self.auth == "password":
            return f"{given[0]} is used only with auth = 'oauth2'" if given else None
        password_keys = [k for k in ("password", "password_env") if getattr(self, k, "")]
        if password_keys:
            return f"{password_keys[0]} is not used with auth = 'oauth2'"
        if not getattr(self, "username", ""):
            return "auth = 'oauth2' needs username (the mailbox to log in to)"
        if not self.oauth_provider:
            return "auth = 'oauth2' needs oauth_provider ('microsoft' or 'google')"
        where = f"oauth_provider = {self.oauth_provider!r}, oauth_flow = {self.oauth_flow!r}"
        required = {
            ("microsoft", "app"): ("tenant", "client_id"),
            ("microsoft", "delegated"): ("tenant", "client_id"),
            ("google", "app"): ("service_account_file",),
            ("google", "delegated"): ("client_id", "client_secret_env"),
        }
        allowed = {
            ("microsoft", "app"): {"tenant", "client_id", "client_secret_env", "certificate_file", "authority", "secret_expires"},
            ("microsoft", "delegated"): {"tenant", "client_id", "authority"},
            ("google", "app"): {"service_account_file", "token_uri"},
            ("google", "delegated"): {"client_id", "client_secret_env", "token_uri", "secret_expires"},
        }
        flow = (self.oauth_provider, self.oauth_flow)
        for key in required[flow]:
            if not getattr(self, key):
                return f"{where} needs {key}"
        for key in given:
            if key not in allowed[flow] | {"oauth_provider", "oauth_flow", "oauth_ca_file", "oauth_scope"}:
                return f"{key} is not used with {where}"
        if flow == ("microsoft", "app") and bool(self.client_secret_env) == bool(self.certificate_file):
            return f"{where} needs one of client_secret_env or certificate_file"
        if self.secret_expires:
            if not self.client_secret_env:
                return "secret_expires is the expiry of the secret in client_secret_env, which is not set"
            from datetime import date

            try:
                date.fromisoformat(self.secret_expires)
            except ValueError:
                return f"secret_expires: not a date like 2027-06-30: {self.secret_expires!r}"
        return None

    @model_validator(mode="after")
    def _oauth_keys(self):
        problem = self._oauth_problem()
        if problem:
            raise ValueError(problem)
        return self


class Smtp(_OAuthLogin):
    host: str = ""  # empty: no SMTP server; outgoing mail goes into paths.var/outgoing (a Maildir)
    port: int = Field(25, ge=1, le=65535)
    security: Literal["plain", "starttls", "tls"] = "plain"
    username: str = ""
    password: str = Field("", repr=False)
    password_env: EnvName = ""
    timeout: float = Field(30.0, gt=0)
    ca_file: str = ""
    verify_tls: bool = True
    # the name given in EHLO; empty: this machine's host name. Not smtplib's default, which
    # looks the host name up in DNS at every connection (seconds when DNS is slow)
    helo: str = ""

    def secret(self) -> str:
        return _secret(self.password, self.password_env, "smtp.password_env")


class Imap(_OAuthLogin):
    name: str
    host: str
    port: int = Field(993, ge=1, le=65535)
    security: Literal["plain", "starttls", "tls"] = "tls"
    username: str
    password: str = Field("", repr=False)
    password_env: EnvName = ""
    mailboxes: list[str] = ["INBOX"]
    on_done: Literal["move", "flag"] = "move"
    processed_folder: str = "Processed"
    idle: bool = True
    idle_timeout: float = Field(300.0, gt=0, le=1740)
    poll_interval: float = Field(30.0, gt=0)
    batch_size: int = Field(500, ge=1, le=10000)
    ca_file: str = ""
    verify_tls: bool = True

    def secret(self) -> str:
        return _secret(self.password, self.password_env, f"imap[{self.name}].password_env")


class Graph(_Section):
    """A mailbox reached through Microsoft Graph instead of IMAP/SMTP (tenants that turned
    those off): its folders read with delta queries, and with `send = true` the mailer's way
    out (sendMail) in place of [smtp]. App-only OAuth2: the app's client credentials, no
    user (intake/msgraph)."""

    name: str
    mailbox: str  # the user or shared mailbox: its address (UPN) or object id
    tenant: str  # the directory (tenant) id or domain
    client_id: str  # the app registration's (application) id
    client_secret_env: EnvName = ""  # environment variable holding the client secret ...
    certificate_file: str = ""  # ... or a PEM with the private key and its certificate
    # the client secret's expiry date as shown when it was made ("2027-06-30"): [alerts] warns
    # before it; a certificate's own expiry is read from certificate_file
    secret_expires: str = ""
    folders: list[str] = ["inbox"]  # well-known names (inbox) or top-level folder names; [] with send = true: send only
    processed_folder: str = "Processed"  # a top-level folder, made when missing; taken mail is moved there
    poll_interval: float = Field(10.0, gt=0)  # seconds between delta queries
    batch_size: int = Field(50, ge=1, le=1000)  # messages fetched and committed per round trip of the pipeline
    send: bool = False  # outgoing mail leaves through this mailbox's sendMail ([smtp] host must then be empty)
    timeout: float = Field(30.0, gt=0)
    authority: str = ""  # token authority override (sovereign clouds, tests); empty: login.microsoftonline.com/<tenant>
    oauth_ca_file: str = ""  # extra CA bundle for the token endpoint's certificate
    api_url: str = "https://graph.microsoft.com/v1.0"  # sovereign clouds (e.g. graph.microsoft.us), tests
    ca_file: str = ""  # extra CA bundle for api_url's certificate

    # what the Microsoft token source and the credential checks (intake/oauth) read of a login
    @property
    def auth(self) -> str:
        return "oauth2"

    @property
    def oauth_flow(self) -> str:
        return "app"

    @property
    def oauth_scope(self) -> str:
        from intake.msgraph import GRAPH_SCOPE

        return GRAPH_SCOPE

    @property
    def username(self) -> str:
        return self.mailbox

    def client_secret(self) -> str:
        return os.environ.get(self.client_secret_env, "") if self.client_secret_env else ""

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {v!r}")
        if parts.scheme == "http" and not _loopback(parts.hostname or ""):
            # every request carries the account's bearer token: never in the clear off this machine
            raise ValueError(f"plain http would send the access token unencrypted: use https (http is allowed for a loopback host only): {v!r}")
        return v.rstrip("/")

    @field_validator("secret_expires")
    @classmethod
    def _date(cls, v: str) -> str:
        if v:
            from datetime import date

            try:
                date.fromisoformat(v)
            except ValueError:
                raise ValueError(f"not a date like 2027-06-30: {v!r}") from None
        return v

    @model_validator(mode="after")
    def _credentials(self) -> Graph:
        if bool(self.client_secret_env) == bool(self.certificate_file):
            raise ValueError("needs one of client_secret_env or certificate_file")
        if self.secret_expires and not self.client_secret_env:
            raise ValueError("secret_expires is the expiry of the secret in client_secret_env, which is not set")
        if not self.folders and not self.send:
            raise ValueError("folders is empty and send is false: the account would do nothing")
        if self.processed_folder in self.folders:
            raise ValueError(f"folders: {self.processed_folder!r} is also the processed folder")
        return self


class Maildir(_Section):
    enabled: bool = True
    path: Path = Path("var/drop")


class Spool(_Section):
    enabled: bool = True
    path: Path = Path("var/spool")


class Web(_Section):
    listen: ListenAddress = ""  # "HOST:PORT"; empty: the web form is off
    max_body_bytes: int = Field(20_000_000, ge=1024)
    max_file_bytes: int = Field(10_000_000, ge=1024)
    allowed_extensions: list[str] = [".pdf", ".png", ".jpg", ".jpeg", ".gif", ".txt", ".doc", ".docx", ".xls", ".xlsx", ".zip"]
    rate_limit_per_minute: int = Field(10, ge=1)
    csrf_secret: str = Field("", repr=False)
    csrf_secret_env: str = ""
    public_base_url: str = ""
    # how long the signed case link of a form acknowledgement adds to its case
    case_link_days: int = Field(90, ge=1, le=3650)
    # addresses of our own reverse proxies: only their X-Forwarded-For is believed (the
    # per-IP rate limit counts the customer behind them); empty: the peer address counts
    trusted_proxies: list[str] = []

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for proxy in v:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {proxy!r}") from None
        return v


class Limits(_Section):
    max_message_bytes: int = Field(50_000_000, ge=1024)
    max_attachment_bytes: int = Field(10_000_000, ge=0)
    acks_per_sender_per_hour: int = Field(5, ge=0)
    form_duplicate_window_seconds: int = Field(60, ge=0)
    # acknowledgements of web-form cases, all addresses together: a form's address is
    # typed by anyone, so beyond this the cases open and get no mail
    form_acks_per_hour: int = Field(200, ge=0)


class Outbox(_Section):
    retry_initial_seconds: float = Field(5.0, gt=0)
    retry_max_seconds: float = Field(900.0, gt=0)
    give_up_after_hours: float = Field(72.0, gt=0)
    batch_size: int = Field(50, ge=1)


class Ack(_Section):
    default_language: Literal["zh", "en"] = "zh"
    # the response promised in the acknowledgement, by urgency (from the seeds)
    response_hours: dict[str, float] = {"urgent": 2, "important": 24, "normal": 48}

    @field_validator("response_hours")
    @classmethod
    def _hours(cls, v: dict[str, float]) -> dict[str, float]:
        for key, hours in v.items():
            if key not in URGENCIES:
                raise ValueError(f"unknown urgency {key!r}; expected one of {', '.join(URGENCIES)}")
            if hours <= 0:
                raise ValueError(f"{key}: hours must be positive, got {hours}")
        missing = set(URGENCIES) - set(v)
        if missing:
            raise ValueError(f"missing urgencies: {', '.join(sorted(missing))}")
        return v


class Tickets(_Section):
    ref_prefix: str = ""  # e.g. "CS-": references read CS-261123-0007
    timezone: str = "Asia/Shanghai"  # the day in a reference and in reports
    # Who may add to a ticket by email ([#REF] in the subject, In-Reply-To/References),
    # reopen it or answer its survey: its customer's own address, and the addresses
    # listed here for that customer ("alice@kehu.cn" = ["bob@kehu.cn"]) ...
    customer_addresses: dict[str, list[str]] = {}
    # ... and, for a customer at one of these domains, any colleague at the same domain
    # (a company's own domain; never a public mail provider). Empty: nobody else.
    colleague_domains: list[str] = []

    @field_validator("customer_addresses")
    @classmethod
    def _addresses(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k.strip().lower(): [a.strip().lower() for a in addrs] for k, addrs in v.items()}

    @field_validator("colleague_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        return [d.strip().lower().lstrip("@") for d in v]

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception:
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class StaffMail(_Section):
    """Staff work tickets by email (intake/staffmail): signed Reply-To tokens, relays."""

    # HMAC key of the Reply-To tokens (support+<ref>.<mac>@domain). Empty: a random
    # key is made once in paths.var/reply-token.key; daemons sharing one database
    # on several machines must all be given the same key here or by secret_env.
    secret: str = Field("", repr=False)
    secret_env: EnvName = ""
    mac_length: int = Field(20, ge=16, le=64)  # hex characters of the token's MAC
    # besides the assignee, the head of the ticket's department may reply and command
    allow_department_head: bool = True
    earlier_tickets: int = Field(5, ge=0, le=50)  # the customer's earlier tickets listed in a notification
    # our receiving mail server's authserv-id (RFC 8601, e.g. "mx.example.com"): when set, a
    # staff reply must also carry its Authentication-Results with dmarc, aligned dkim or spf pass
    trusted_authserv_id: str = ""

    def key(self) -> str:
        return _secret(self.secret, self.secret_env, "staff_mail.secret_env")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, v: str) -> str:
        if v and len(v) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    @field_validator("secret_env")
    @classmethod
    def _env_long_enough(cls, v: str) -> str:
        """The key from the environment must be as long as one written inline."""
        if v and len(os.environ.get(v, "")) < 16:
            raise ValueError(f"the value of environment variable {v} must be at least 16 characters")
        return v


class Sla(_Section):
    """Due times and the timers around them (intake/staffmail/sla.py).

    The due time of a ticket is ack.response_hours[urgency] (what the customer was
    promised), unless type_hours names that type and urgency."""

    type_hours: dict[str, dict[str, float]] = {}  # e.g. {complaint = {important = 12}}
    remind_before_hours: dict[str, float] = {"urgent": 0.5, "important": 4, "normal": 8}
    escalate: bool = True  # tell the department head at breach
    # "mon-fri 09:00-18:00" in tickets.timezone: due times count only these hours
    # (and skip holidays) for the urgencies in working_hours_for. Empty: round the clock.
    working_hours: str = ""
    working_hours_for: list[str] = ["important", "normal"]
    holidays: list[str] = []  # "2026-10-01", ...
    follow_up_hour: int = Field(9, ge=0, le=23)  # local hour a follow-up reminder goes out on its date

    @field_validator("type_hours")
    @classmethod
    def _types(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for type_, hours in v.items():
            if type_ not in TYPES:
                raise ValueError(f"unknown type {type_!r}; expected one of {', '.join(TYPES)}")
            for urgency, h in hours.items():
                if urgency not in URGENCIES:
                    raise ValueError(f"{type_}: unknown urgency {urgency!r}; expected one of {', '.join(URGENCIES)}")
                if h <= 0:
                    raise ValueError(f"{type_}.{urgency}: hours must be positive, got {h}")
        return v

    @field_validator("remind_before_hours")
    @classmethod
    def _remind(cls, v: dict[str, float]) -> dict[str, float]:
        for key, hours in v.items():
            if key not in URGENCIES:
                raise ValueError(f"unknown urgency {key!r}; expected one of {', '.join(URGENCIES)}")
            if hours < 0:
                raise ValueError(f"{key}: hours must not be negative, got {hours}")
        return v

    @field_validator("working_hours_for")
    @classmethod
    def _urgencies(cls, v: list[str]) -> list[str]:
        bad = [u for u in v if u not in URGENCIES]
        if bad:
            raise ValueError(f"unknown urgency {bad[0]!r}; expected one of {', '.join(URGENCIES)}")
        return v

    @field_validator("working_hours")
    @classmethod
    def _hours_text(cls, v: str) -> str:
        if v:
            from intake.staffmail.workhours import parse_hours

            parse_hours(v)
        return v

    @field_validator("holidays")
    @classmethod
    def _dates(cls, v: list[str]) -> list[str]:
        from datetime import date

        for day in v:
            try:
                date.fromisoformat(day)
            except ValueError:
                raise ValueError(f"not a date like 2026-10-01: {day!r}") from None
        return v


class Survey(_Section):
    """The satisfaction loop after a ticket is resolved (intake/staffmail/survey.py)."""

    enabled: bool = True
    close_at: int = Field(4, ge=1, le=5)  # a score at or above this closes the ticket; below reopens it
    timeout_days: float = Field(7, gt=0)  # no answer within this: closed as "no objection"


class Archive(_Section):
    enabled: bool = True
    path: Path = Path("var/archive")  # year/month folders of case PDFs and MANIFEST.jsonl
    retention_years: int = Field(2, ge=0)  # from the case's close; below 2 only with the override
    retention_override: bool = False  # allow retention_years < 2 (written to the audit log)
    workers: int = Field(2, ge=0, le=32)  # render processes; 0 renders inside the daemon
    language: Literal["zh", "en"] = "zh"  # labels in the PDF and the type in file names
    storage: Literal["local", "s3"] = "local"  # where the files live: `path`, or an S3 bucket with Object Lock
    s3_endpoint: str = ""  # e.g. "http://127.0.0.1:8333"; empty: the provider's default
    s3_bucket: str = ""  # must exist with Object Lock enabled
    s3_region: str = "us-east-1"
    s3_access_key_env: str = ""  # names of environment variables holding the keys (never the keys);
    s3_secret_key_env: str = ""  # empty: boto3's own credential chain

    @model_validator(mode="after")
    def _minimum(self) -> Archive:
        if self.retention_years < 2 and not self.retention_override:
            raise ValueError(
                f"retention_years = {self.retention_years} is below the required 2 years; "
                "set retention_override = true to allow it (it is written to the audit log)"
            )
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("storage = 's3' needs s3_bucket")
        return self


class PipelineSettings(_Section):
    """Where the pipeline runs (intake/pipeline/pool.py)."""

    # worker processes that take the IMAP backlog: the daemon reads mail and sends
    # acknowledgements while a worker writes tickets (a second core); 0: all in the daemon
    processes: int = Field(1, ge=0, le=8)


class Metrics(_Section):
    """/metrics (Prometheus) and /healthz on their own listener (intake/ops)."""

    listen: ListenAddress = ""  # "HOST:PORT", e.g. "127.0.0.1:9108"; empty: off


class Alerts(_Section):
    """Mail to the operators when a source (an IMAP account's mailbox, the drop folder, the
    spool) starts failing and when it recovers, once each (intake/ops/alerts.py)."""

    to: list[str] = []  # addresses; empty: no alert mail (status, /metrics and /healthz still tell)
    failing_seconds: float = Field(300.0, ge=0)  # a source failing this long (a blip is not news) is reported
    check_seconds: float = Field(15.0, gt=0)  # how often the sources' health is looked at
    # one mail this many days before an OAuth2 client secret (secret_expires) or certificate expires
    credential_warn_days: float = Field(30.0, ge=0)

    @field_validator("to")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for address in v:
            if "@" not in address or address.startswith("@") or address.endswith("@"):
                raise ValueError(f"not an email address: {address!r}")
        return v


class Console(_Section):
    """The web console under /console of the web listener (intake/web/console; off by default)."""

    enabled: bool = False  # the console's pages exist only when true; the customer form is unaffected
    # the key that signs session cookies; empty: `secret_env` names an environment variable holding it,
    # and with neither a random key per process (every session ends with a restart)
    secret: str = Field("", repr=False)
    secret_env: str = ""
    session_minutes: int = Field(480, ge=5, le=7 * 24 * 60)  # a session ends this long after sign-in
    lockout_failures: int = Field(5, ge=1, le=100)  # failed sign-ins of one name within lockout_minutes...
    lockout_minutes: int = Field(15, ge=1, le=24 * 60)  # ...lock that name for this long
    cookie_secure: bool | None = None  # the cookies' Secure flag; None: when [web] public_base_url is https
    refresh_seconds: int = Field(30, ge=5, le=3600)  # how often the operators' overview reloads itself

    def signing_key(self) -> bytes:
        import secrets

        key = self.secret or (os.environ.get(self.secret_env, "") if self.secret_env else "")
        return key.encode() if key else secrets.token_bytes(32)


class Log(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Config(_Section):
    database: Database = Database()
    paths: Paths = Paths()
    support: Support = Support()
    smtp: Smtp = Smtp()
    imap: list[Imap] = []
    graph: list[Graph] = []
    maildir: Maildir = Maildir()
    spool: Spool = Spool()
    web: Web = Web()
    limits: Limits = Limits()
    outbox: Outbox = Outbox()
    ack: Ack = Ack()
    tickets: Tickets = Tickets()
    staff_mail: StaffMail = StaffMail()
    sla: Sla = Sla()
    survey: Survey = Survey()
    archive: Archive = Archive()
    pipeline: PipelineSettings = PipelineSettings()
    metrics: Metrics = Metrics()
    alerts: Alerts = Alerts()
    console: Console = Console()
    log: Log = Log()

    source_file: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _paths_under_var(self) -> Config:
        """Folders not set on their own live under paths.var, so moving var moves them all."""
        for section, sub in ((self.maildir, "drop"), (self.spool, "spool"), (self.archive, "archive")):
            if "path" not in section.model_fields_set:
                section.path = self.paths.var / sub
        return self

    @model_validator(mode="after")
    def _unique_imap_names(self) -> Config:
        names = [i.name for i in self.imap]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"imap: account names must be unique, repeated: {', '.join(sorted(dupes))}")
        return self

    @model_validator(mode="after")
    def _graph_accounts(self) -> Config:
        names = [g.name for g in self.graph]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"graph: account names must be unique, repeated: {', '.join(sorted(dupes))}")
        senders = [g.name for g in self.graph if g.send]
        if len(senders) > 1:
            raise ValueError(f"graph: send = true on more than one account ({', '.join(senders)}); the mailer has one way out")
        if senders and self.smtp.host:
            raise ValueError(f"graph[{senders[0]}].send: outgoing mail leaves through Graph, but [smtp] host is also set; leave one")
        return self

    @property
    def var(self) -> Path:
        return self.paths.var

    @property
    def outgoing_maildir(self) -> Path:
        return self.paths.var / "outgoing"

    @property
    def template_dirs(self) -> list[Path]:
        """Where templates are looked up, in order: the user's folder, then the shipped one."""
        from intake import resources

        return [*([self.paths.templates] if self.paths.templates else []), resources.templates()]

    @property
    def rules_file(self) -> Path:
        assert self.paths.rules is not None, "set when the config is loaded"
        return self.paths.rules

    @property
    def staff_file(self) -> Path:
        assert self.paths.staff is not None, "set when the config is loaded"
        return self.paths.staff

    @property
    def message_domain(self) -> str:
        return self.support.domain or self.support.address.split("@", 1)[1]


def _key_path(loc: tuple, data: dict) -> str:
    """Turn pydantic's location into the key as written in the file: imap[support].port."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = str(item)
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                label = node[item].get("name", item)
            parts[-1] = f"{parts[-1]}[{label}]"
            node = node[item] if isinstance(node, list) and item < len(node) else {}
        else:
            parts.append(str(item))
            node = node.get(item, {}) if isinstance(node, dict) else {}
    return ".".join(parts)


# keys whose values are secrets: an error about them never shows the value
SECRET_KEYS = frozenset({"password", "secret", "csrf_secret"})


def _describe(error: ErrorDetails, data: dict) -> str:
    key = _key_path(error["loc"], data)
    if error["type"] == "extra_forbidden":
        section = _key_path(error["loc"][:-1], data)
        known = _known_keys(error["loc"][:-1])
        hint = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        where = f" in [{section}]" if section else ""
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"{key}: unknown key{where}{suggestion}"
    message = error["msg"].removeprefix("Value error, ")
    secret = any(str(part) in SECRET_KEYS for part in error["loc"])  # never echoed: logs and terminals keep it
    if not secret and error["type"] not in ("missing", "value_error") and "input" in error and not isinstance(error["input"], (dict, list)):
        message += f" (got {error['input']!r})"
    return f"{key}: {message}" if key else message  # a check across sections names its keys itself


def _known_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = Config
    for item in loc:
        if isinstance(item, int):
            continue
        annotation = model.model_fields[item].annotation
        inner = getattr(annotation, "__args__", (annotation,))[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return list(model.model_fields)


def from_dict(data: dict, source: Path | None = None) -> Config:
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        where = f"{source}: " if source else ""
        problems = "\n  ".join(_describe(e, data) for e in exc.errors())
        raise ConfigError(f"{where}invalid configuration:\n  {problems}") from None
    config.source_file = source
    _resolve_paths(config, data, source)
    return config


def _resolve_paths(config: Config, data: dict, source: Path | None) -> None:
    """Make every path absolute: what the file wrote against the file's folder, the
    built-in defaults against the working directory; fill in rules, staff and the database."""
    file_dir = Path(source).resolve().parent if source else None
    cwd = Path.cwd()

    def anchor(path: Path, written: bool) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else ((file_dir if written and file_dir else cwd) / path)

    def written(section: str, key: str) -> bool:
        return isinstance(data.get(section), dict) and key in data[section]

    paths = config.paths
    paths.var = anchor(paths.var, written("paths", "var"))
    for section_name, sub in (("maildir", "drop"), ("spool", "spool"), ("archive", "archive")):
        section = getattr(config, section_name)
        # a folder not written in the file follows paths.var, wherever that is
        section.path = anchor(section.path, True) if written(section_name, "path") else paths.var / sub
    if paths.templates is not None:
        paths.templates = anchor(paths.templates, True)
        if not paths.templates.is_dir():
            where = f"{source}: " if source else ""
            raise ConfigError(f"{where}paths.templates: no such folder: {paths.templates}")
    # the user's rules and staff: as written, else beside their config file, else shipped
    own_folder = file_dir or cwd / "config"
    for key in ("rules", "staff"):
        value = getattr(paths, key)
        if value is not None:
            setattr(paths, key, anchor(value, True))
        elif (own_folder / f"{key}.toml").is_file():
            setattr(paths, key, own_folder / f"{key}.toml")
        else:
            from intake import resources

            setattr(paths, key, resources.defaults() / f"{key}.toml")
    config.database.url = _database_url(config.database.url, paths.var, file_dir)
    # credential and CA files of the mail accounts: relative to the config file too, and
    # checked once they are anchored (a check before that read them from the working directory)
    accounts = [
        ("smtp", config.smtp),
        *((f"imap[{account.name}]", account) for account in config.imap),
        *((f"graph[{account.name}]", account) for account in config.graph),
    ]
    for label, account in accounts:
        for key in ("certificate_file", "service_account_file", "oauth_ca_file", "ca_file"):
            value = getattr(account, key, "")
            if not value:
                continue
            path = anchor(Path(value), True)
            if not path.is_file():
                where = f"{source}: " if source else ""
                raise ConfigError(f"{where}invalid configuration:\n  {label}: {key}: no such file: {path}")
            setattr(account, key, str(path))


def _database_url(url: str, var: Path, file_dir: Path | None) -> str:
    """Empty: SQLite in var. A relative SQLite file in a config file: against the file's folder."""
    if not url:
        return f"sqlite:///{var / 'intake.db'}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database.url: not a database URL: {url!r}") from None
    database = parsed.database or ""
    if (
        parsed.get_backend_name() == "sqlite"
        and file_dir
        and database
        and database != ":memory:"
        and not database.startswith("file:")
        and not Path(database).is_absolute()
    ):
        return parsed.set(database=str(file_dir / database)).render_as_string(hide_password=False)
    return url


def load(path: Path | None = None) -> Config:
    """--config PATH, then $INTAKE_CONFIG, then ./config/intake.toml, then built-in defaults."""
    if path is None:
        env = os.environ.get("INTAKE_CONFIG")
        if env:
            path = Path(env)
        elif Path("config/intake.toml").exists():
            path = Path("config/intake.toml")
    if path is None:
        return from_dict({})
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return from_dict(data, Path(path))


def masked_url(url: str) -> str:
    """A database URL with its password hidden, for output and logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def masked(config: Config) -> dict:
    """The configuration as a dict with every secret replaced, for logs and `status`."""
    data = config.model_dump(mode="json")
    data["smtp"]["password"] = "***" if config.smtp.password else ""
    for account in data["imap"]:
        account["password"] = "***" if account["password"] else ""
    data["web"]["csrf_secret"] = "***" if config.web.csrf_secret else ""
    data["staff_mail"]["secret"] = "***" if config.staff_mail.secret else ""
    return data
