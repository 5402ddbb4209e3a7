"""The package as a user gets it: a wheel built from this checkout, installed into a fresh
virtualenv outside the checkout, run from an empty folder.

Every other test imports the checkout itself, where templates/ and config/ sit beside the
code; only these notice a wheel that lacks them (as the first wheels did: `ingest` stopped
with "rules.toml: cannot read", then every message was quarantined with TemplateNotFound).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile
from email import message_from_bytes
from pathlib import Path

import pytest

import intake
from intake.outgoing.templates import LANGUAGES, MAILS

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"

# the folder a module's bare template names are relative to
TEMPLATE_FOLDER = {"intake/web/app.py": "forms/", "archive/render.py": "pdf/"}


def tracked(*folders: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", *folders], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [line for line in out.stdout.splitlines() if not line.endswith(".pyc")]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("intake-*.whl")
    return path


@pytest.fixture(scope="module")
def names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def test_wheel_carries_the_version_and_every_module(wheel, names):
    assert wheel.name.startswith(f"intake-{intake.__version__}-")
    modules = [p for p in tracked("intake", "classify", "archive") if p.endswith(".py")]
    assert modules and not [m for m in modules if m not in names]
    # alembic's files beside the migrations: `intake init` on a new machine runs them
    assert {"intake/store/migrations/alembic.ini", "intake/store/migrations/script.py.mako"} <= names


def test_wheel_carries_every_template_and_default_file(names):
    shipped = {f"intake_templates/{p.removeprefix('templates/')}" for p in tracked("templates")}
    shipped |= {f"intake_defaults/{p.removeprefix('config/')}" for p in tracked("config")}
    assert {
        "intake_defaults/rules.toml",
        "intake_defaults/staff.toml",
        "intake_defaults/intake.example.toml",
        "intake_defaults/intake.service",
        "intake_templates/pdf/fonts/IntakeSansCommon-Regular.otf",
    } <= shipped
    assert sorted(shipped - names) == []


def test_every_template_the_code_asks_for_is_in_the_wheel(names):
    wanted = {f"email/{mail}.{lang}.j2" for mail in MAILS for lang in LANGUAGES}
    sources = {p: (ROOT / p).read_text(encoding="utf-8") for p in tracked("intake", "classify", "archive") if p.endswith(".py")}
    for path, text in sources.items():
        # every mail the code renders is one the start-up check knows
        for mail in re.findall(r"templates\.mail\(\s*\"(\w+)\"", text):
            assert mail in MAILS, f"{path} renders mail {mail!r}, missing from intake.outgoing.templates.MAILS"
        for name in re.findall(r"get_template\(\s*\"([^\"]+)\"", text):
            wanted.add(TEMPLATE_FOLDER.get(path, "") + name)
    assert {"forms/form.html", "pdf/case.html.j2", "survey/page.html.j2", "report/weekly.html.j2"} <= wanted
    # stylesheets and the fonts they load
    for css in ("pdf/case.css", "report/weekly.css", "forms/forms.css"):
        wanted.add(css)
        text = (ROOT / "templates" / css).read_text(encoding="utf-8")
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", text):
            if not url.startswith(("data:", "#")):
                wanted.add(os.path.normpath(os.path.join(os.path.dirname(css), url)))
    missing = sorted(name for name in wanted if f"intake_templates/{name}" not in names)
    assert missing == []


@pytest.mark.slow
def test_first_minute_from_the_wheel_in_an_empty_folder(wheel, tmp_path):
    """The README's first minute, with the installed wheel only: init, ingest, run --once."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    constraints = ["--constraint", str(LOCK)] if LOCK.exists() else []
    proc = subprocess.run([*pip, *constraints, str(wheel)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    home = tmp_path / "empty"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "INTAKE_CONFIG", "VIRTUAL_ENV")}

    def intake_cli(*args: str) -> str:
        done = subprocess.run([str(env_dir / "bin" / "intake"), *args], cwd=home, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done.stdout

    # the installed package, not the checkout, is what runs
    where = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import intake, intake.resources as r; print(intake.__file__); print(r.templates())"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(str(env_dir) in line and str(ROOT) not in line for line in where)
    assert intake_cli("--version").strip() == f"intake {intake.__version__}"

    intake_cli("init")
    examples = sorted(str(p) for p in (ROOT / "examples").glob("*.eml"))
    outcomes = intake_cli("ingest", *examples)
    assert outcomes.count(": opened") == 4 and ": appended" in outcomes and "autoreply_ignored" in outcomes
    assert "quarantined" not in outcomes
    intake_cli("run", "--once")

    sent = [message_from_bytes(p.read_bytes()) for p in (home / "var" / "outgoing" / "new").iterdir()]
    acks = [m for m in sent if m["Message-ID"].startswith("<ack.")]
    assert len(acks) == 4 and all(m["Auto-Submitted"] == "auto-replied" for m in acks)
    pdfs = sorted((home / "var" / "archive").rglob("*.pdf"))
    assert len(pdfs) == 4

    from pypdf import PdfReader

    refs = set(re.findall(r"opened (\S+)", outcomes))
    text = "".join(page.extract_text() for pdf in pdfs for page in PdfReader(pdf).pages)
    assert all(ref in text for ref in refs)
