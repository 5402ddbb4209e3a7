"""Every template is rendered here: jinja2, named by audience and purpose.

A mail template (templates/email/<name>.<lang>.j2) defines two blocks, `subject`
and `text`; an optional `html` block gives an HTML alternative.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import jinja2

from intake.vocabulary import LABELS
from intake.vocabulary import label as record_label


def label(kind: str, value: str, lang: str) -> str:
    """The word a person reads for a stored value: label("type", "complaint", "zh") == "投诉".
    One table for mail, pages and the archive (archive/record.py); in English sentences
    the word starts with a capital ("Complaint", "In progress")."""
    if kind not in ("type", "urgency", "status") or value not in LABELS[kind]["zh"]:
        return value
    shown = record_label(kind, value, "zh" if lang == "zh" else "en")
    return shown if lang == "zh" else shown[:1].upper() + shown[1:]


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None


# Every mail the daemon writes, each in Chinese and English: templates/email/<name>.<lang>.j2
MAILS = ("ack", "notify", "relay", "reminder", "escalation", "staff_error", "survey")
LANGUAGES = ("zh", "en")


class TemplatesError(Exception):
    """A template the daemon needs is missing or does not compile; names the file and line."""


class Templates:
    """The mail templates, looked up in `folders` in order (the user's before the shipped ones)."""

    def __init__(self, folders: list[Path] | Path):
        self.folders = [Path(f) for f in folders] if isinstance(folders, (list, tuple)) else [Path(folders)]

    def check(self) -> None:
        """At start-up, not at the first customer: every mail template resolves and compiles."""
        for name in MAILS:
            for lang in LANGUAGES:
                path = f"email/{name}.{lang}.j2"
                try:
                    self.env.get_template(path)
                except jinja2.TemplateNotFound:
                    raise TemplatesError(f"template {path} not found in {', '.join(map(str, self.folders))}") from None
                except jinja2.TemplateSyntaxError as exc:
                    raise TemplatesError(f"{exc.filename or path} line {exc.lineno}: {exc.message}") from None

    @cached_property
    def env(self) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.folders),
            autoescape=jinja2.select_autoescape(["html", "j2.html"]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        env.globals["label"] = label
        return env

    def mail(self, name: str, lang: str, **context) -> RenderedMail:
        template = self.env.get_template(f"email/{name}.{lang}.j2")
        ctx = template.new_context({"lang": lang, **context})
        blocks = {block: "".join(render(ctx)) for block, render in template.blocks.items()}
        subject = " ".join(blocks["subject"].split())
        return RenderedMail(subject=subject, text=blocks["text"].strip() + "\n", html=blocks.get("html") or None)

    def page(self, name: str, **context) -> str:
        return self.env.get_template(name).render(**context)
