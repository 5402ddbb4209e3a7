"""[[graph]] accounts in the configuration: a bad value is refused naming the key."""

from __future__ import annotations

import pytest

from intake.config import ConfigError, from_dict

GOOD = {"name": "support", "mailbox": "support@contoso.com", "tenant": "contoso.onmicrosoft.com", "client_id": "app", "client_secret_env": "HOME"}


def problem(**sections) -> str:
    with pytest.raises(ConfigError) as refused:
        from_dict(sections)
    return str(refused.value)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"client_secret_env": ""}, "graph[support]: needs one of client_secret_env or certificate_file"),
        (
            {"client_secret_env": "INTAKE_NO_SUCH_VARIABLE"},
            "graph[support].client_secret_env: environment variable INTAKE_NO_SUCH_VARIABLE is not set",
        ),
        ({"folders": ["inbox", "Processed"]}, "graph[support]: folders: 'Processed' is also the processed folder"),
        ({"folders": []}, "graph[support]: folders is empty and send is false"),
        ({"api_url": "graph.microsoft.com"}, "graph[support].api_url: not an http(s) URL: 'graph.microsoft.com'"),
        (
            {"api_url": "http://graph.microsoft.com/v1.0"},
            "graph[support].api_url: plain http would send the access token unencrypted: use https (http is allowed for a loopback host only)",
        ),
        ({"api_url": "http://10.0.0.7:8080/v1.0"}, "graph[support].api_url: plain http would send the access token unencrypted"),
        ({"secret_expires": "next june"}, "graph[support].secret_expires: not a date like 2027-06-30: 'next june'"),
        ({"poll_interval": 0}, "graph[support].poll_interval: Input should be greater than 0"),
        ({"mailbx": "x"}, "graph[support].mailbx: unknown key"),
    ],
)
def test_a_bad_graph_value_names_the_key(keys, expected):
    assert expected in problem(graph=[{**GOOD, **keys}])


def test_the_mailer_has_one_way_out():
    assert "graph: send = true on more than one account (a, b)" in problem(
        graph=[{**GOOD, "name": "a", "send": True}, {**GOOD, "name": "b", "send": True}]
    )
    assert "graph[a].send: outgoing mail leaves through Graph, but [smtp] host is also set" in problem(
        graph=[{**GOOD, "name": "a", "send": True}], smtp={"host": "smtp.example.com"}
    )
    assert "graph: account names must be unique, repeated: a" in problem(graph=[{**GOOD, "name": "a"}, {**GOOD, "name": "a"}])


def test_a_relative_certificate_is_taken_beside_the_config_file(tmp_path):
    (tmp_path / "app.pem").write_text("not read here")
    config = tmp_path / "intake.toml"
    config.write_text(
        '[[graph]]\nname = "support"\nmailbox = "support@contoso.com"\ntenant = "t"\nclient_id = "c"\ncertificate_file = "app.pem"\n',
        encoding="utf-8",
    )
    from intake.config import load

    assert load(config).graph[0].certificate_file == str(tmp_path / "app.pem")
    config.write_text(config.read_text().replace("app.pem", "missing.pem"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"graph\[support\]: certificate_file: no such file: .*missing.pem"):
        load(config)


@pytest.mark.parametrize("api_url", ["http://127.0.0.1:8080/v1.0", "http://127.8.0.1/v1.0", "http://[::1]:8080/v1.0", "http://localhost:8080/v1.0"])
def test_plain_http_is_taken_for_a_loopback_api_only(api_url):
    """The bearer token never leaves the machine in the clear: a loopback stand-in may be plain http."""
    assert from_dict({"graph": [{**GOOD, "api_url": api_url}]}).graph[0].api_url == api_url
