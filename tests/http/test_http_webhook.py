"""flytekit ``WebhookTask`` templates (task type ``webhook``) run by the http executor, against a loopback server."""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import list_of, make_template, simple
from taskbox.authoring import TaskFailed, run_template
from taskbox.http.config import HTTPConfig

STR, INT, STRUCT = simple("STRING"), simple("INTEGER"), simple("STRUCT")
SECRET = "wh-s3cr3t-value-42"


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
    assert info["url"] == server.base + "/echo/a b"  # as flytekit reports it; httpx encodes the space


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


def test_webhook_config_rejects_what_flytekit_would_not_send_as_written():
    with pytest.raises(ValueError, match="must be text"):
        HTTPConfig.model_validate(webhook("https://example.com/x", headers={"X-N": 5.0}))
    with pytest.raises(ValueError, match="json_body"):
        HTTPConfig.model_validate({**webhook("https://example.com/x"), "json_body": {"a": 1}})


# ------------------------------------------- safety rules kept while rendering as flytekit's connector


@pytest.mark.parametrize(
    ("value", "path"),
    [("a\\b", "/items/a%5Cb/x"), ("a?b=1", "/items/a%3Fb=1/x"), ("a#b", "/items/a%23b/x"), ("a/b", "/items/a%2Fb/x")],
)
def test_a_path_value_stays_one_segment(tmp_path, server, value, path):
    custom = webhook(server.base + "/items/{inputs.v}/x", show_url=True)
    info = run_webhook(tmp_path, custom, {"v": STR}, {"v": value})
    assert server.requests[-1]["path"] == path
    assert info["url"] == server.base + path


@pytest.mark.parametrize("value", ["..", ".", "%2e%2E", "a/../b", "..\\x", "\uff0e\uff0e"])
def test_a_dot_segment_value_is_refused_before_sending(tmp_path, server, value):
    with pytest.raises(TaskFailed) as err:
        run_webhook(tmp_path, webhook(server.base + "/api/{inputs.v}/x"), {"v": STR}, {"v": value})
    assert err.value.code == "USER:InvalidInput" and server.requests == []


def test_a_query_value_stays_one_parameter(tmp_path, server):
    custom = webhook(server.base + "/echo?q={inputs.v}&n=1", show_url=True)
    info = run_webhook(tmp_path, custom, {"v": STR}, {"v": "x&admin=true#frag"})
    assert server.requests[-1]["path"] == "/echo?q=x%26admin=true%23frag&n=1"
    assert json.loads(info["response_data"])["query"] == {"q": "x&admin=true#frag", "n": "1"}


@pytest.mark.parametrize("value", ["evil.example/x", "a@b", "h:1/x", "h?", "h#"])
def test_a_host_value_is_a_host_name(tmp_path, server, value):
    with pytest.raises(TaskFailed) as err:
        run_webhook(tmp_path, webhook("http://{inputs.h}/x"), {"h": STR}, {"h": value})
    assert err.value.code == "USER:InvalidInput"


def test_a_url_chosen_by_an_input_is_still_ssrf_guarded(tmp_path, server, monkeypatch):
    monkeypatch.delenv("TASKBOX_HTTP_ALLOW")
    for url, values in (("{inputs.u}", {"u": server.base + "/x"}), ("{inputs.u}/x", {"u": server.base})):
        with pytest.raises(TaskFailed) as err:
            run_webhook(tmp_path, webhook(url), {"u": STR}, values)
        assert err.value.code == "USER:SsrfBlocked"
    assert server.requests == []


def test_a_base_url_input_starts_the_url(tmp_path, server):
    info = run_webhook(tmp_path, webhook("{inputs.base}/v1/{inputs.id}", show_url=True), {"base": STR, "id": INT},
                       {"base": server.base, "id": 7})  # fmt: skip
    assert server.requests[-1]["path"] == "/v1/7" and info["url"] == server.base + "/v1/7"


def test_secret_headers_on_a_webhook_are_origin_bound_and_redacted(tmp_path, server, monkeypatch):
    """taskbox fields added to a webhook template: the secret goes to the URL's origin, and the reply
    (here echoing the request's headers) is redacted in ``info``."""
    monkeypatch.setenv("_FSEC_API_KEY", SECRET)
    custom = {**webhook(server.base + "/status/200", headers={"X-Note": "n={inputs.n}"}),
              "secret_headers": {"X-Api-Key": {"group": "api", "key": "key"}}}  # fmt: skip
    info = run_webhook(tmp_path, custom, {"n": INT}, {"n": 3})
    assert server.requests[-1]["headers"]["X-Api-Key"] == SECRET
    assert server.requests[-1]["headers"]["X-Note"] == "n=3"
    assert SECRET not in info["response_data"] and "X-Api-Key" in info["response_data"]


def test_http_task_type_with_webhook_placeholders_keeps_taskbox_rendering(tmp_path, server):
    """Only flytekit's ``webhook`` templates render the flytekit way; an ``http`` template is unchanged."""
    custom = {"url": server.base + "/echo/{inputs.v}", "method": "POST", "placeholder_style": "webhook",
              "json_body": {"n": "{inputs.n}", "text": "b={inputs.b} xs={inputs.xs}", "five": 5.0}}  # fmt: skip
    tpl = make_template("http", {"v": STR, "n": INT, "b": simple("BOOLEAN"), "xs": list_of(INT)}, {}, custom)
    run_template(tpl, {"v": "a/b", "n": 5, "b": False, "xs": [1, 2]}, workdir=str(tmp_path / "run"))
    request = server.requests[-1]
    assert request["path"] == "/echo/a%2Fb"
    body = json.loads(request["body"], parse_float=lambda text: ("float", text))
    assert body == {"n": 5, "text": "b=false xs=[1,2]", "five": 5}  # no float token: the Struct's 5.0 sent as 5


def test_taskbox_run_infers_a_webhook_configs_inputs_and_info_output():
    from taskbox.executors.http import HTTPExecutor

    custom = webhook("http://h/{inputs.a}", data={"k": "{inputs.m.k}", "{inputs.key}": "x {inputs.c}"},
                     headers={"X": "{inputs.b}"})  # fmt: skip
    assert HTTPExecutor.config_inputs(custom) == ["a", "b", "m", "c"]  # dict keys are not rendered
    assert list(HTTPExecutor.infer_outputs(custom, {}, {})) == ["info"]


def test_a_map_inside_a_string_renders_in_sorted_key_order(tmp_path, server):
    """flytekit renders ``str(dict)`` in the order it reads the protobuf map, which changes between processes;
    taskbox always sends the sorted order (one of flytekit's), so equal inputs send equal requests."""
    custom = webhook(server.base + "/echo", data={"note": "m={inputs.m}"}, show_data=True)
    values = {"m": {"b": 2, "c": 3, "a": 1}}
    info = run_webhook(tmp_path, custom, {"m": {"map_value_type": INT}}, values)
    assert json.loads(json.loads(info["response_data"])["body"]) == {"note": "m={'a': 1, 'b': 2, 'c': 3}"}
