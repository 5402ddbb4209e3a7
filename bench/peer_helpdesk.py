"""django-helpdesk, the peer of bench/peer_bench.py: installed into a throwaway venv,
configured by a minimal Django settings module written here (SQLite, one Queue reading
the private Dovecot's INBOX over IMAP, acknowledgements written to files by Django's
file e-mail backend), and run as its own `get_email` management command.

Nothing of it is imported into this process: it runs with its own interpreter, as an
operator would run it from cron."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PACKAGE = "django-helpdesk"

SETTINGS = """\
# Minimal settings for running django-helpdesk's get_email in a benchmark.
import os

SECRET_KEY = "peer-bench"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
    "django.contrib.sites", "django.contrib.humanize", "rest_framework", "helpdesk",
]
SITE_ID = 1
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["PEER_DB"]}}
# acknowledgements as files in a local folder (intake's go to a local Maildir)
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ["PEER_OUTBOX"]
MEDIA_ROOT = os.environ["PEER_MEDIA"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
HELPDESK_TEAMS_MODE_ENABLED = False  # teams need pinax-teams, not a dependency
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True, "OPTIONS": {}}]
ROOT_URLCONF = "peer_urls"
"""

URLS = 'from django.urls import include, path\n\nurlpatterns = [path("", include("helpdesk.urls"))]\n'

# Run inside the venv's Django once, on the template database: the queue the command reads.
MAKE_QUEUE = """\
import django, json, os, sys
django.setup()
from helpdesk.models import Queue
imap = json.loads(sys.argv[1])
Queue.objects.create(
    title="Support", slug="support", email_address="support@acme-support.cn", allow_email_submission=True,
    email_box_type="imap", email_box_host=imap["host"], email_box_port=imap["port"], email_box_ssl=False,
    email_box_user=imap["user"], email_box_pass=imap["password"], email_box_imap_folder="INBOX",
    email_box_interval=0, logging_type="none",
)
"""


@dataclass
class PeerRun:
    seconds: float  # the command's wall time, start-up included
    from_first_ticket: float  # from the first ticket's creation to the command's end
    tickets: int
    acks: int


class Helpdesk:
    """A venv with django-helpdesk, its settings, and a migrated template database
    (queue included) that each run copies, so every run starts from the same state."""

    def __init__(self, work: Path, imap: dict):
        self.work = work
        self.venv = work / "venv"
        self.python = self.venv / "bin" / "python"
        self.template_db = work / "template.db"
        self.version = ""
        self.imap = imap

    def install(self) -> str:
        """Create the venv and install the package: an empty string, or why it failed."""
        try:
            subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True, capture_output=True, timeout=300)
            # pip of the venv reads the same pip configuration (package index) as every pip here
            subprocess.run([str(self.python), "-m", "pip", "install", "-q", PACKAGE], check=True, capture_output=True, timeout=900)
            self.version = subprocess.run(
                [str(self.python), "-c", "from importlib.metadata import version as v; print(v('django-helpdesk'), v('django'))"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            (self.work / "peer_settings.py").write_text(SETTINGS)
            (self.work / "peer_urls.py").write_text(URLS)
            env = self.env(self.template_db, self.work / "outbox-template")
            self._django(env, "-m", "django", "migrate", "-v", "0")
            self._django(env, "-c", MAKE_QUEUE, json.dumps(self.imap))
        except subprocess.CalledProcessError as e:
            return f"{' '.join(map(str, e.cmd[:5]))} failed: {(e.stderr or b'').decode(errors='replace').strip()[-600:]}"
        except (OSError, subprocess.TimeoutExpired) as e:
            return str(e)
        return ""

    def _django(self, env: dict, *args: str) -> None:
        subprocess.run([str(self.python), *args], check=True, capture_output=True, env=env, cwd=self.work, timeout=600)

    def env(self, db: Path, outbox: Path) -> dict:
        outbox.mkdir(parents=True, exist_ok=True)
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "DJANGO"))},
            "DJANGO_SETTINGS_MODULE": "peer_settings",
            "PYTHONPATH": str(self.work),
            "PEER_DB": str(db),
            "PEER_OUTBOX": str(outbox),
            "PEER_MEDIA": str(self.work / "media"),
        }

    def run(self, run_dir: Path) -> PeerRun:
        """`get_email` once over the whole INBOX (it fetches, tickets and deletes every
        message in one pass, then expunges)."""
        run_dir.mkdir(parents=True)
        db, outbox = run_dir / "helpdesk.db", run_dir / "outbox"
        shutil.copyfile(self.template_db, db)
        env = self.env(db, outbox)
        started = time.monotonic()
        proc = subprocess.run([str(self.python), "-m", "django", "get_email", "--quiet"], capture_output=True, env=env, cwd=self.work, timeout=3600)
        seconds, ended = time.monotonic() - started, time.time()
        (run_dir / "get_email.log").write_bytes(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"get_email failed ({proc.returncode}): {proc.stderr[-800:]!r}")
        with sqlite3.connect(db) as conn:
            tickets, first = conn.execute("SELECT count(*), min(created) FROM helpdesk_ticket").fetchone()
        first_ts = datetime.fromisoformat(first).replace(tzinfo=UTC).timestamp() if first else ended  # stored in UTC
        return PeerRun(seconds, ended - first_ts, tickets, count_acks(outbox))


def count_acks(outbox: Path) -> int:
    """Mails in the file backend's folder (one file per connection, one mail each here)."""
    return sum(f.read_bytes().count(b"\nMessage-ID: ") for f in outbox.iterdir())
