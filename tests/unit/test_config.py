"""Configuration: defaults, and every kind of mistake refused with the key named."""

import pytest

from intake.config import ConfigError, from_dict, load


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    return str(info.value)


def test_embedded_defaults_are_sqlite_and_local_folders_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = from_dict({})
    assert cfg.database.url == f"sqlite:///{tmp_path}/var/intake.db"
    assert cfg.maildir.path == tmp_path / "var" / "drop" and cfg.outgoing_maildir == tmp_path / "var" / "outgoing"
    assert cfg.smtp.host == "" and cfg.imap == []


def test_misspelt_key_is_named_with_a_suggestion():
    assert "smtp.prot: unknown key in [smtp] (did you mean 'port'?)" in error_of({"smtp": {"prot": 25}})


def test_wrong_type_names_key_and_value():
    message = error_of({"smtp": {"port": "25x"}})
    assert "smtp.port" in message and "'25x'" in message


def test_imap_account_errors_name_the_account():
    message = error_of({"imap": [{"name": "support", "host": "h", "username": "u", "securty": "tls"}]})
    assert "imap[support].securty: unknown key" in message and "did you mean 'security'" in message
    assert "imap[support].port" in error_of({"imap": [{"name": "support", "host": "h", "username": "u", "port": 0}]})


def test_missing_required_imap_keys_are_listed():
    message = error_of({"imap": [{"host": "h"}]})
    assert "imap[0].name: Field required" in message and "imap[0].username: Field required" in message


def test_duplicate_imap_names_refused():
    acc = {"name": "a", "host": "h", "username": "u"}
    assert "repeated: a" in error_of({"imap": [acc, acc]})


def test_unknown_urgency_in_response_hours():
    assert "ack.response_hours: unknown urgency 'soon'" in error_of(
        {"ack": {"response_hours": {"urgent": 2, "important": 24, "normal": 48, "soon": 1}}}
    )


def test_password_from_environment(monkeypatch):
    monkeypatch.setenv("TEST_IMAP_PW", "s3cret")
    cfg = from_dict({"imap": [{"name": "a", "host": "h", "username": "u", "password_env": "TEST_IMAP_PW"}]})
    assert cfg.imap[0].secret() == "s3cret"
    assert "s3cret" not in repr(cfg)


def test_unset_password_variable_refused_at_load(monkeypatch):
    monkeypatch.delenv("NO_SUCH_VARIABLE_X", raising=False)
    assert "smtp.password_env: environment variable NO_SUCH_VARIABLE_X is not set" in error_of({"smtp": {"password_env": "NO_SUCH_VARIABLE_X"}})


def test_bad_toml_names_the_file_and_line(tmp_path):
    path = tmp_path / "intake.toml"
    path.write_text('[smtp]\nhost = "a"\nport = \n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(path) in str(info.value) and "line 3" in str(info.value)


def test_bad_value_in_file_names_the_file(tmp_path):
    path = tmp_path / "intake.toml"
    path.write_text('[web]\nlisten = "nowhere"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(path) in str(info.value) and "web.listen: expected HOST:PORT" in str(info.value)


def test_example_config_is_valid_and_matches_defaults():
    import tomllib
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config" / "intake.example.toml"
    cfg = from_dict(tomllib.loads(example.read_text(encoding="utf-8")))
    assert cfg.model_dump() == from_dict({}).model_dump()


def test_folders_follow_paths_var_unless_set_on_their_own():
    cfg = from_dict({"paths": {"var": "/srv/intake"}, "archive": {"path": "/mnt/archive"}})
    assert str(cfg.maildir.path) == "/srv/intake/drop" and str(cfg.spool.path) == "/srv/intake/spool"
    assert str(cfg.archive.path) == "/mnt/archive"


def test_retention_below_two_years_needs_the_override():
    assert "retention_override" in error_of({"archive": {"retention_years": 1}})
    assert from_dict({"archive": {"retention_years": 1, "retention_override": True}}).archive.retention_years == 1


def test_the_readme_cluster_config_loads(monkeypatch):
    """The config shown in README's "Running in production" is valid as written."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("# /etc/intake/intake.toml on every machine")
    snippet = readme[start : readme.index("```", start)]
    for name in ("INTAKE_REPLY_KEY", "INTAKE_S3_KEY", "INTAKE_S3_SECRET", "INTAKE_IMAP_SUPPORT"):
        monkeypatch.setenv(name, "x" * 32)  # the reply key must be as long as an inline one (16+)
    import tomllib

    cfg = from_dict(tomllib.loads(snippet))
    assert cfg.database.url.startswith("postgresql") and cfg.archive.storage == "s3"
