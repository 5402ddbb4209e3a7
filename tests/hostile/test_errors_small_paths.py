"""Issue 13, section 4: small error paths answer 4xx or a clear message, never a 500 or a
secret: a survey URL with a non-ASCII MAC, a JSON body of 200,000 "[", an unquoted
numeric secret in the config, a short secret from the environment."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from intake.config import ConfigError, load
from intake.pipeline.runner import Pipeline
from intake.staffmail.survey_page import survey_routes
from intake.web import WebSettings, create_app
from tests.integration.conftest import make_ctx  # noqa: F401  (fixture)
from tests.integration.test_pipeline import ref

DEEP = b"[" * 200_000


@pytest.fixture
def app(make_ctx, tmp_path):
    """The web app as the daemon mounts it (the survey page beside the form), in-process."""
    ctx = make_ctx(f"sqlite:///{tmp_path / 'e.db'}", staff_mail={"secret": "e" * 20})
    pipeline = Pipeline(ctx)
    application = create_app(WebSettings(csrf_secret="t"), pipeline, tmp_path / "spool", extra_routes=survey_routes(ctx))
    with TestClient(application, raise_server_exceptions=False) as client:
        yield client, pipeline


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_survey_url_with_a_non_ascii_mac_is_404(app, method):
    client, _ = app
    answer = client.request(method, "/survey/261123-0001/1/%E4%BD%A0%E5%A5%BD", data={"score": "5"} if method == "POST" else None)
    assert answer.status_code == 404


def test_a_json_body_nested_200000_deep_is_400(app):
    client, _ = app
    answer = client.post("/submit", content=DEEP, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "nested too deeply" in answer.json()["errors"]["_"]


def test_a_spool_file_nested_200000_deep_is_quarantined_with_a_clear_reason(app):
    _, pipeline = app
    result = pipeline.take(DEEP, ref(channel="form", source="spool"))
    assert result.outcome == "quarantined" and "nested too deeply" in result.reason and "internal error" not in result.reason


def test_an_unquoted_numeric_secret_is_not_echoed_in_the_error(tmp_path):
    path = tmp_path / "intake.toml"
    path.write_text("[staff_mail]\nsecret = 73190428561739204856\n\n[smtp]\npassword = 8712093487\n")
    with pytest.raises(ConfigError) as error:
        load(path)
    message = str(error.value)
    assert "staff_mail.secret" in message and "smtp.password" in message
    assert "73190428561739204856" not in message and "8712093487" not in message


def test_a_short_secret_from_the_environment_is_refused_like_an_inline_one(tmp_path, monkeypatch):
    monkeypatch.setenv("INTAKE_TEST_SHORT_KEY", "abc")
    path = tmp_path / "intake.toml"
    path.write_text('[staff_mail]\nsecret_env = "INTAKE_TEST_SHORT_KEY"\n')
    with pytest.raises(ConfigError) as error:
        load(path)
    assert "staff_mail.secret_env" in str(error.value) and "16 characters" in str(error.value)
    assert "abc" not in str(error.value).replace("INTAKE_TEST_SHORT_KEY", "")
    monkeypatch.setenv("INTAKE_TEST_SHORT_KEY", "a-long-enough-key-0123")
    assert load(path).staff_mail.key() == "a-long-enough-key-0123"


def test_form_fields_of_the_wrong_type_for_the_new_keys_are_422(app):
    """message_id, case and case_sig are text like every other field."""
    client, _ = app
    post = {"name": "x", "email": "x@kehu.example.cn", "message": "m", "message_id": ["<a@b>"], "case": {"x": 1}}
    answer = client.post("/submit", content=json.dumps(post), headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and set(answer.json()["errors"]) == {"message_id", "case"}
