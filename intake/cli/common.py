"""What every command module shares: the output of rows, and the context built from --config."""

from __future__ import annotations

import json


class Output:
    """Human lines, or with --json one JSON object a line."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    def row(self, obj: dict, text: str) -> None:
        print(json.dumps(obj, ensure_ascii=False, default=str) if self.as_json else text, flush=True)


def context(args):
    """The daemon's shared context (config, database, templates, rules) for one command."""
    from intake.context import build_context

    return build_context(args.config_obj)
