"""The `[console]` config section (declared in intake/config.py with the others)."""

from intake.config import Console

__all__ = ["Console"]
