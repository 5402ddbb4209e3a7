"""The files a user hands the daemon: where they are looked for, and what a wrong one says.

Every test runs the real `intake` command line in a folder of its own, the way an operator
would, and asserts on what it prints: one line naming the file (and the line), no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import intake
from intake import resources

INTAKE = [sys.executable, "-m", "intake.cli.main"]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*INTAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, "INTAKE_CONFIG": ""})


def refused(proc: subprocess.CompletedProcess) -> str:
    """A user's mistake: exit 2, one message on stderr, never a Python traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_version_is_the_package_version(tmp_path):
    proc = run(tmp_path, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"intake {intake.__version__}"


def test_relative_paths_in_a_config_file_are_taken_against_its_folder_from_any_working_directory(tmp_path):
    home = tmp_path / "etc"
    home.mkdir()
    (home / "intake.toml").write_text('[paths]\nvar = "state"\n[archive]\npath = "../cases"\n', encoding="utf-8")
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    assert run(elsewhere, "--config", str(home / "intake.toml"), "init").returncode == 0
    assert (home / "state" / "intake.db").is_file() and (home / "state" / "drop" / "new").is_dir()
    assert not (elsewhere / "state").exists() and not (elsewhere / "var").exists()

    # the same config from its own folder, by a relative --config: the same database
    status = run(home, "--config", "intake.toml", "status", "--json")
    assert status.returncode == 0, status.stderr
    paths = json.loads(status.stdout)["paths"]
    assert paths["config"] == str(home / "intake.toml")
    assert paths["database"] == f"sqlite:///{home / 'state' / 'intake.db'}"
    assert paths["var"] == str(home / "state") and paths["archive"] == str(tmp_path / "etc" / ".." / "cases")
    assert paths["rules"] == str(resources.defaults() / "rules.toml")
    assert paths["templates"] == [str(resources.templates())]


def test_status_prints_the_resolved_paths_for_people_too(tmp_path):
    assert run(tmp_path, "init").returncode == 0
    out = run(tmp_path, "status").stdout
    assert f"var: {tmp_path / 'var'}" in out and f"database: sqlite:///{tmp_path / 'var' / 'intake.db'}" in out


def test_init_config_dir_writes_editable_copies_and_never_overwrites(tmp_path):
    target = tmp_path / "mine"
    first = run(tmp_path, "init", "--config-dir", str(target), "--json")
    assert first.returncode == 0, first.stderr
    written = {Path(row["file"]).name: row["written"] for row in map(json.loads, first.stdout.splitlines())}
    assert written == {"intake.toml": True, "rules.toml": True, "lexicon.tsv": True, "staff.toml": True, "intake.service": True}
    assert (target / "rules.toml").read_bytes() == (resources.defaults() / "rules.toml").read_bytes()

    (target / "staff.toml").write_text("# mine\n", encoding="utf-8")
    again = run(tmp_path, "init", "--config-dir", str(target), "--json")
    assert [json.loads(line)["written"] for line in again.stdout.splitlines()] == [False, False, False, False, False]
    assert (target / "staff.toml").read_text(encoding="utf-8") == "# mine\n"


def test_the_written_config_dir_is_used_as_is_with_its_own_rules_and_staff(tmp_path):
    target = tmp_path / "conf"
    assert run(tmp_path, "init", "--config-dir", str(target)).returncode == 0
    other = tmp_path / "run-here"
    other.mkdir()
    assert run(other, "--config", str(target / "intake.toml"), "init").returncode == 0
    paths = json.loads(run(other, "--config", str(target / "intake.toml"), "status", "--json").stdout)["paths"]
    # the example's var = "var" is relative to the config's folder; its rules and staff are the copies beside it
    assert paths["var"] == str(target / "var")
    assert paths["rules"] == str(target / "rules.toml") and paths["staff"] == str(target / "staff.toml")
    assert paths["lexicon"] == str((target / "lexicon.tsv").resolve())


def test_rules_toml_in_config_folder_of_the_working_directory_wins_without_a_config_file(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "rules.toml").write_bytes((resources.defaults() / "rules.toml").read_bytes())
    assert run(tmp_path, "init").returncode == 0
    paths = json.loads(run(tmp_path, "status", "--json").stdout)["paths"]
    assert paths["rules"] == str(tmp_path / "config" / "rules.toml")
    assert paths["lexicon"] == str((resources.defaults() / "lexicon.tsv").resolve())  # not copied: the shipped one
    assert paths["staff"] == str(resources.defaults() / "staff.toml")


def test_staff_member_with_no_department_is_one_clean_line(tmp_path):
    text = (resources.defaults() / "staff.toml").read_text(encoding="utf-8")
    # the first member's departments list emptied
    head, sep, tail = text.partition("[[staff]]")
    line_no = head.count("\n") + 1 + tail[: tail.index("departments")].count("\n")
    member = tail.replace(tail[tail.index("departments") :].split("\n", 1)[0], "departments = []", 1)
    (tmp_path / "staff.toml").write_text(head + sep + member, encoding="utf-8")
    (tmp_path / "intake.toml").write_text('[paths]\nstaff = "staff.toml"\n', encoding="utf-8")
    for command in (["status"], ["tickets", "list"], ["run", "--once"]):
        message = refused(run(tmp_path, "--config", "intake.toml", *command))
        assert f"{tmp_path / 'staff.toml'} line {line_no}:" in message and "departments must be a non-empty list" in message


def test_missing_rules_file_is_named(tmp_path):
    (tmp_path / "intake.toml").write_text('[paths]\nrules = "my-rules.toml"\n', encoding="utf-8")
    message = refused(run(tmp_path, "--config", "intake.toml", "status"))
    assert f"{tmp_path / 'my-rules.toml'}: cannot read" in message


def test_rules_with_a_syntax_error_name_the_line(tmp_path):
    (tmp_path / "rules.toml").write_text('[[rule]]\nname = "x"\nweight = = 3\n', encoding="utf-8")
    (tmp_path / "intake.toml").write_text("", encoding="utf-8")  # rules.toml beside it is the user's
    message = refused(run(tmp_path, "--config", "intake.toml", "tickets", "list"))
    assert f"{tmp_path / 'rules.toml'} line 3:" in message


def test_templates_folder_that_does_not_exist_is_named(tmp_path):
    (tmp_path / "intake.toml").write_text('[paths]\ntemplates = "my-templates"\n', encoding="utf-8")
    message = refused(run(tmp_path, "--config", "intake.toml", "status"))
    assert "paths.templates: no such folder" in message and str(tmp_path / "my-templates") in message


def test_users_template_wins_and_a_broken_one_is_named_with_its_line(tmp_path):
    mine = tmp_path / "tpl" / "email"
    mine.mkdir(parents=True)
    shipped = (resources.templates() / "email" / "ack.en.j2").read_text(encoding="utf-8")
    (mine / "ack.en.j2").write_text(shipped.replace("{% block subject %}", "{% block subject %}OURS "), encoding="utf-8")
    (tmp_path / "intake.toml").write_text('[paths]\ntemplates = "tpl"\nvar = "var"\n', encoding="utf-8")
    assert run(tmp_path, "--config", "intake.toml", "init").returncode == 0
    mail = tmp_path / "m.eml"
    mail.write_bytes(
        b"From: a@kehu.example.com\r\nTo: support@example.com\r\nSubject: Question about invoices\r\n"
        b"Message-ID: <q1@kehu.example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Hello, how do I get an invoice for my order?\r\n"
    )
    ingest = run(tmp_path, "--config", "intake.toml", "ingest", "--send", str(mail))
    assert ingest.returncode == 0 and "opened" in ingest.stdout, ingest.stderr
    sent = [p.read_bytes() for p in (tmp_path / "var" / "outgoing" / "new").iterdir()]
    assert any(b"Subject: OURS " in raw for raw in sent)

    (mine / "ack.en.j2").write_text("{% block subject %}\n{% if %}\n{% endblock %}\n", encoding="utf-8")
    message = refused(run(tmp_path, "--config", "intake.toml", "status"))
    assert f"{mine / 'ack.en.j2'} line 2:" in message


def test_database_not_initialised_says_so(tmp_path):
    message = refused(run(tmp_path, "tickets", "list"))
    assert "intake init" in message and str(tmp_path / "var" / "intake.db") in message


def test_credential_and_ca_files_are_relative_to_the_config_file(tmp_path, monkeypatch):
    """A systemd unit with another WorkingDirectory must find them too (review finding)."""
    from intake.config import ConfigError, load

    home = tmp_path / "etc"
    (home / "secrets").mkdir(parents=True)
    (home / "secrets" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    (home / "intake.toml").write_text(
        '[smtp]\nhost = "127.0.0.1"\nca_file = "secrets/ca.pem"\n'
        '[[imap]]\nname = "support"\nhost = "127.0.0.1"\nusername = "u"\nca_file = "secrets/ca.pem"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load(home / "intake.toml")
    assert config.smtp.ca_file == str(home / "secrets" / "ca.pem") == config.imap[0].ca_file

    (home / "secrets" / "ca.pem").unlink()
    with pytest.raises(ConfigError) as refused:
        load(home / "intake.toml")
    assert f"smtp: ca_file: no such file: {home / 'secrets' / 'ca.pem'}" in str(refused.value)
