"""Settings of the web-form listener (the daemon maps the `[web]` config section onto them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_EXTENSIONS = ("pdf", "png", "jpg", "jpeg", "gif", "webp", "txt", "csv", "log", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "zip")


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 20_000_000  # whole request; more is answered 413
    max_file_bytes: int = 10_000_000  # each attachment
    allowed_extensions: tuple[str, ...] = DEFAULT_EXTENSIONS  # with or without the dot
    rate_limit_per_minute: int = 10  # submissions per client IP and per email address; 0 turns it off
    csrf_secret: str = ""  # empty: a random secret per process (tokens then die with a restart)
    public_base_url: str = ""  # "https://support.example.com": cookies get Secure when https
    default_lang: str = "zh"  # when neither ?lang= nor Accept-Language decides
    company_name: str = ""  # shown in the page header; empty: a neutral "Customer service"
    max_files: int = 10
    concurrent_takes: int = 1  # submissions handed to the pipeline at once; 1 suits SQLite, more helps PostgreSQL
    templates_dir: Path | None = None  # searched before the shipped templates/forms/
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)  # whose X-Forwarded-For is believed

    def extensions(self) -> tuple[str, ...]:
        return tuple(sorted({e.lower().lstrip(".") for e in self.allowed_extensions}))


def settings_from_config(config, host: str, port: int) -> WebSettings:
    """The `[web]` section of intake.config.Config as WebSettings (the secret may come from the environment)."""
    web = config.web
    secret = web.csrf_secret or (os.environ.get(web.csrf_secret_env, "") if web.csrf_secret_env else "")
    return WebSettings(
        host=host,
        port=port,
        max_body_bytes=web.max_body_bytes,
        max_file_bytes=web.max_file_bytes,
        allowed_extensions=tuple(web.allowed_extensions),
        rate_limit_per_minute=web.rate_limit_per_minute,
        csrf_secret=secret,
        public_base_url=web.public_base_url,
        trusted_proxies=tuple(web.trusted_proxies),
        concurrent_takes=1 if config.database.url.startswith("sqlite") else 4,
        templates_dir=config.paths.templates / "forms" if config.paths.templates else None,
    )
