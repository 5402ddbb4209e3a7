"""The files the daemon ships beside its code: the templates (the repository's templates/)
and the default rules, staff list, example config and systemd unit (the repository's config/).

pyproject.toml installs those two folders as the packages `intake_templates` and
`intake_defaults`, so they are found here through importlib.resources whether the daemon runs
from a wheel, a pipx install, a container image or an editable checkout; never through a path
relative to this source file. A user's own files (`[paths]`, or the folder of their config
file) win over these.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# every file `intake init --config-dir` copies for the user to edit, as named there
EDITABLE_DEFAULTS = {
    "intake.example.toml": "intake.toml",
    "rules.toml": "rules.toml",
    "lexicon.tsv": "lexicon.tsv",  # rules.toml's [lexicon] file, read beside it
    "staff.toml": "staff.toml",
    "intake.service": "intake.service",
}


def _folder(package: str) -> Path:
    root = files(package)
    # an installed package on disk is a plain folder; a zip import would not be, and the
    # daemon hands these folders to jinja2 and weasyprint, which need real files
    if not isinstance(root, Path):
        raise RuntimeError(f"{package} is not installed as files on disk ({root!r}); install intake unzipped")
    return root


def templates() -> Path:
    """The shipped templates folder: email/, pdf/, forms/, report/, survey/."""
    return _folder("intake_templates")


def defaults() -> Path:
    """The shipped defaults folder: rules.toml, lexicon.tsv, staff.toml, intake.example.toml, intake.service."""
    return _folder("intake_defaults")
