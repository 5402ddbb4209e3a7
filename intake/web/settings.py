"""Settings of the web-form listener (the daemon maps the `[web]` config section onto them)."""
from __future__ import annotations

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
    templates_dir: Path | None = None  # default: templates/forms/ of this checkout
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)  # whose X-Forwarded-For is believed

    def extensions(self) -> tuple[str, ...]:
        return tuple(sorted({e.lower().lstrip(".") for e in self.allowed_extensions}))
