"""Logging: readable lines by default, one JSON object a line on request (log.format)."""

from __future__ import annotations

import json
import logging
import sys


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(settings, *, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # one-shot commands print their results; their logs only speak up about problems
    root.setLevel(settings.level if verbose else max(logging.WARNING, logging.getLevelName(settings.level)))
    for noisy in ("watchdog", "imapclient", "sqlalchemy", "alembic", "fontTools", "weasyprint", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
