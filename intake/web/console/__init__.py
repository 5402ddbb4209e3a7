"""The web console under /console of the daemon's web listener (issue 18): sign-in, the
operators' pages, the compliance pages, the weekly report. Off unless [console] enabled.

Mount with `routes += console_routes(ctx)`; how a page is added: routes.py and
/tmp/brief/console-api.md (README "Console")."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from intake.config import Console
    from intake.context import Context


def console_routes(ctx: Context, settings: Console | None = None) -> list[BaseRoute]:
    """The console's routes (one Mount at /console), or none when the console is off."""
    from intake.web.console.routes import ConsoleApp

    settings = settings or ctx.config.console
    if not settings.enabled:
        return []
    return ConsoleApp(ctx, settings).routes()
