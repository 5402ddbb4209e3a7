"""Every template is rendered here: jinja2, named by audience and purpose.

A mail template (templates/email/<name>.<lang>.j2) defines two blocks, `subject`
and `text`; an optional `html` block gives an HTML alternative.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import jinja2

LABELS = {
    "type": {
        "inquiry": ("咨询", "Inquiry"),
        "complaint": ("投诉", "Complaint"),
        "fault": ("故障", "Fault"),
        "request": ("需求", "Request"),
        "suggestion": ("建议", "Suggestion"),
    },
    "urgency": {"urgent": ("紧急", "Urgent"), "important": ("重要", "Important"), "normal": ("一般", "Normal")},
    "status": {
        "new": ("待处理", "New"),
        "in_progress": ("处理中", "In progress"),
        "follow_up": ("需跟进", "Follow-up"),
        "resolved": ("已完成", "Resolved"),
        "closed": ("已关闭", "Closed"),
    },
}


def label(kind: str, value: str, lang: str) -> str:
    """The word a person reads for a stored value: label("type", "complaint", "zh") == "投诉"."""
    pair = LABELS.get(kind, {}).get(value)
    if pair is None:
        return value
    return pair[0] if lang == "zh" else pair[1]


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str | None


class Templates:
    def __init__(self, root: Path):
        self.root = Path(root)

    @cached_property
    def env(self) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.root)),
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
