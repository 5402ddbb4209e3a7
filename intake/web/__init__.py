"""The web-form listener: `create_app` builds the ASGI app, `serve` runs it with uvicorn."""

from intake.web.app import create_app
from intake.web.server import serve
from intake.web.settings import WebSettings

__all__ = ["WebSettings", "create_app", "serve"]
