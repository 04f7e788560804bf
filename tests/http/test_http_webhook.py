"""flytekit ``WebhookTask`` templates (task type ``webhook``) run by the http executor, against a loopback server."""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import make_template, simple
from taskbox.authoring import TaskFailed, run_template
from taskbox.http.config import HTTPConfig

STR, INT, STRUCT = simple("STRING"), simple("INTEGER"), simple("STRUCT")


def webhook(url, method="POST", data=None, headers=None, show_data=False, show_url=False, timeout_sec=10.0):
    """``custom`` exactly as flytekit's WebhookTask.get_custom serializes it (numbers as Struct floats)."""
    return {
        "url": url,
        "method": method,
        "headers": headers or {},
        "data": data or {},
        "show_data": show_data,
        "show_url": show_url,
        "timeout_sec": timeout_sec,
    }


def run_webhook(tmp_path, custom, inputs=None, values=None):
    tpl = make_template("webhook", inputs or {}, {"info": STRUCT}, custom)
    return run_template(tpl, values or {}, workdir=str(tmp_path / f"run-{uuid.uuid4().hex[:8]}"))["info"]


def test_post_with_inputs_as_json_body(tmp_path, server):
    custom = webhook(
        server.base + "/echo/{inputs.user}",
        data={"user": "{inputs.user}", "n": "{inputs.n}", "note": "hi {inputs.user}"},
        headers={"X-Trace": "t-{inputs.n}"},
        show_data=True,
        show_url=True,
    )
    info = run_webhook(tmp_path, custom, {"user": STR, "n": INT}, {"user": "a b", "n": 5})
    assert info["status_code"] == 200
    echoed = json.loads(info["response_data"])
    assert echoed["path"] == "/echo/a%20b" and echoed["headers"]["x-trace"] == "t-5"
    assert json.loads(echoed["body"]) == {"user": "a b", "n": 5, "note": "hi a b"}
    assert info["input_data"] == {"user": "a b", "n": 5, "note": "hi a b"}
    assert info["url"] == server.base + "/echo/a%20b"


def test_get_sends_data_as_query_and_hides_data_and_url_by_default(tmp_path, server):
    info = run_webhook(
        tmp_path, webhook(server.base + "/echo", "GET", data={"q": "{inputs.q}"}), {"q": STR}, {"q": "x&y"}
    )
    assert json.loads(info["response_data"])["query"] == {"q": "x&y"}
    assert set(info) == {"status_code", "response_data"}


def test_only_200_succeeds(tmp_path, server):
    with pytest.raises(TaskFailed) as err:
        run_webhook(tmp_path, webhook(f"{server.base}/status/201"))
    assert "201" in err.value.message


def test_webhook_config_translation():
    config = HTTPConfig.model_validate(webhook("https://example.com/x", "get", timeout_sec=3.0))
    assert (config.method, config.placeholder_style, config.expected_status, config.timeout_s) == (
        "GET",
        "webhook",
        [200],
        3.0,
    )
    with pytest.raises(ValueError):
        HTTPConfig.model_validate(webhook("https://example.com/x", "PUT"))
