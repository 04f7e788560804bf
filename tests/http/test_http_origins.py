"""Issue 14 (HTTP): secrets bound to origins, one path segment per templated value, and requests that can
never be sent failing as USER errors. In-process runs (``run_template``) against loopback servers."""

from __future__ import annotations

import json
import uuid

import jobserver
import pytest
from test_http_guard import STUB, stub_resolver

from helpers import list_of, make_template, simple
from taskbox.authoring import TaskFailed, run_template
from taskbox.errors import ConfigError
from taskbox.executors import http as http_executor
from taskbox.executors import validate_config
from taskbox.executors.http import HTTPExecutor

STR, INT, STRUCT = simple("STRING"), simple("INTEGER"), simple("STRUCT")
SECRET = "s3cr3t-key-value-77"
KEY = {"X-Api-Key": {"group": "api", "key": "key"}}


def run_http(tmp_path, custom, inputs=None, outputs=None, values=None, task_type="http"):
    tpl = make_template(task_type, inputs or {}, outputs or {}, custom)
    return run_template(tpl, values or {}, workdir=str(tmp_path / f"run-{uuid.uuid4().hex[:8]}"))


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("_FSEC_API_KEY", SECRET)


def keys_sent(server):
    return [r["headers"].get("X-Api-Key") for r in server.requests]


# ------------------------------------------------------------------------- 1. origin-bound secrets


@pytest.mark.parametrize("mode", ["link", "cursor"])
def test_pages_after_a_cross_origin_redirect_never_get_the_secret(tmp_path, server, other_server, secret, mode):
    """A -> 302 -> B, then B's next pages: the secret is configured for A, so B never sees it."""
    pagination = {"next": "link", "items_pointer": "/items", "output": "items"}
    if mode == "cursor":
        pagination = {"next": "cursor", "items_pointer": "/data/items", "cursor_pointer": "/next", "output": "items"}
    custom = {"url": f"{server.base}/redirect?to={other_server.base}/pages/{mode}", "follow_redirects": True,
              "secret_headers": KEY, "pagination": pagination}  # fmt: skip
    tpl = make_template("http", {}, {"items": _list_of_struct()}, custom)
    out = run_template(tpl, {}, workdir=str(tmp_path / "run"))
    assert [item["n"] for item in out["items"]] == [1, 2, 3, 4, 5]
    assert keys_sent(server) == [SECRET]
    assert len(other_server.requests) == 3 and keys_sent(other_server) == [None, None, None]


def test_secret_origins_allow_list_lets_the_secret_through(tmp_path, server, other_server, secret):
    custom = {"url": f"{server.base}/redirect?to={other_server.base}/pages/link", "follow_redirects": True,
              "secret_headers": KEY, "secret_origins": [other_server.base],
              "pagination": {"next": "link", "items_pointer": "/items", "output": "items"}}  # fmt: skip
    run_template(make_template("http", {}, {"items": _list_of_struct()}, custom), {}, workdir=str(tmp_path / "r"))
    assert keys_sent(server) == [SECRET] and keys_sent(other_server) == [SECRET] * 3


def test_back_to_the_configured_origin_the_secret_is_sent_again(tmp_path, server, other_server, secret):
    back = f"{server.base}/echo"
    custom = {"url": f"{server.base}/redirect?to={other_server.base}/redirect%3Fto%3D{back}",
              "follow_redirects": True, "secret_headers": KEY, "status_output": "s"}  # fmt: skip
    assert run_http(tmp_path, custom, outputs={"s": INT}) == {"s": 200}
    assert keys_sent(server) == [SECRET, SECRET] and keys_sent(other_server) == [None]


def test_authorization_is_origin_bound_too(tmp_path, server, other_server, monkeypatch):
    monkeypatch.setenv("_FSEC_API_TOKEN", "tok-abcdef-123")
    custom = {"url": f"{server.base}/redirect?to={other_server.base}/pages/link", "follow_redirects": True,
              "auth": {"type": "bearer", "token": {"group": "api", "key": "token"}},
              "pagination": {"next": "link", "items_pointer": "/items", "output": "items"}}  # fmt: skip
    run_template(make_template("http", {}, {"items": _list_of_struct()}, custom), {}, workdir=str(tmp_path / "r"))
    assert server.requests[0]["headers"]["Authorization"] == "Bearer tok-abcdef-123"
    assert all("Authorization" not in r["headers"] for r in other_server.requests)


@pytest.mark.parametrize(
    "origin", ["ftp://h", "http://h/path", "http://user@h", "http://h?q=1", "h:80", "http://h:99999"]
)
def test_secret_origins_are_validated(origin):
    with pytest.raises(ConfigError, match="secret_origins"):
        validate_config(HTTPExecutor, {"url": "http://h/", "secret_origins": [origin]})


def test_origin_of_normalises_scheme_host_and_default_port():
    from taskbox.http.client import origin_of

    assert origin_of("HTTP://Example.COM/x") == origin_of("http://example.com:80/y") == ("http", "example.com", 80)
    assert origin_of("https://example.com") != origin_of("http://example.com")


def test_http_job_secret_goes_only_to_configured_origins(tmp_path, monkeypatch, secret):
    """The status URL's host comes from the submit response (a job field): the secret is not sent there."""
    monkeypatch.setitem(STUB, "api.test", ["127.0.0.1"])
    monkeypatch.setitem(STUB, "elsewhere.test", ["127.0.0.1"])
    monkeypatch.setattr(http_executor, "RESOLVER", stub_resolver)
    with jobserver.running() as jobs:
        port = jobs.server_address[1]
        custom = {"submit": {"url": f"http://api.test:{port}/jobs",
                             "json_body": {"polls": 0, "fields": {"host": "elsewhere.test"}}},
                  "job_fields": {"id": "/job/id", "host": "/job/host"},
                  "status_url": f"http://{{{{ .job.host }}}}:{port}/jobs/{{{{ .job.id }}}}",
                  "secret_headers": KEY, "poll_interval_seconds": 0.05}  # fmt: skip
        run_http(tmp_path, custom, task_type="http-job")
        sent = [(method, headers.get("Host"), headers.get("X-Api-Key")) for method, _p, headers in jobs.seen]
    assert sent[0] == ("POST", f"api.test:{port}", SECRET)
    assert sent[1:] and all(key is None for _m, host, key in sent[1:] if host == f"elsewhere.test:{port}")


def _list_of_struct():
    return list_of(STRUCT)


# ------------------------------------------------------------------------- 2. one segment per value

DOT_VALUES = ["..", ".", "%2e%2e", "%2E.", ".%2e", "%2e", "..\\", "\\..", "a/../b", "..%2F", "%252e%252e", "．．"]


@pytest.mark.parametrize("value", DOT_VALUES)
def test_dot_segment_inputs_are_refused(tmp_path, server, value):
    custom = {"url": server.base + "/api/users/{{ .inputs.id }}/delete", "method": "POST"}
    with pytest.raises(TaskFailed) as info:
        run_http(tmp_path, custom, {"id": STR}, values={"id": value})
    assert (info.value.code, info.value.recoverable) == ("USER:InvalidInput", False)
    assert "one path segment" in info.value.message
    assert server.requests == []


def test_dot_segment_built_from_two_inputs_is_refused(tmp_path, server):
    custom = {"url": server.base + "/api/{{ .inputs.a }}{{ .inputs.b }}/x"}
    with pytest.raises(TaskFailed) as info:
        run_http(tmp_path, custom, {"a": STR, "b": STR}, values={"a": ".", "b": "."})
    assert info.value.code == "USER:InvalidInput" and server.requests == []


@pytest.mark.parametrize(
    ("value", "wire"),
    [("...", "..."), (".a", ".a"), ("a.", "a."), ("a b", "a%20b"), ("x/y", "x%2Fy"), ("..a", "..a"), ("é", "%C3%A9")],
)
def test_other_values_reach_the_server_as_one_segment(tmp_path, server, value, wire):
    custom = {"url": server.base + "/api/users/{{ .inputs.id }}/delete", "status_output": "s"}
    run_http(tmp_path, custom, {"id": STR}, {"s": INT}, {"id": value})
    assert server.requests[-1]["path"] == f"/api/users/{wire}/delete"  # the request line as the server read it


@pytest.mark.parametrize("job_id", ["..", ".", "%2e%2e", "a/../.."])
def test_a_job_id_that_is_not_one_segment_is_refused(tmp_path, job_id):
    with jobserver.running() as jobs:
        custom = {"submit": {"url": jobs.base + "/jobs", "json_body": {"id": job_id}}, "job_fields": {"id": "/job/id"},
                  "status_url": jobs.base + "/v1/jobs/{{ .job.id }}/status",
                  "cancel_url": jobs.base + "/v1/jobs/{{ .job.id }}/cancel", "poll_interval_seconds": 0.05}  # fmt: skip
        with pytest.raises(TaskFailed) as info:
            run_http(tmp_path, custom, task_type="http-job")
        paths = [path for _m, path, _h in jobs.seen]
    assert (info.value.code, info.value.recoverable) == ("USER:ResponseShape", False)
    assert "one path segment" in info.value.message
    assert paths == ["/jobs"]


# ------------------------------------------------------------------------- 4. never sendable -> USER


@pytest.mark.parametrize(
    "host",
    ["%31%32%37.0.0.1", "127.0.0.1%20", "exa%20mple.test", "a..b.test", "-a.test", "a-.test", "x" * 64 + ".test"],
)
def test_a_malformed_host_is_a_user_error_not_retried(tmp_path, server, host):
    port = server.server_address[1]
    with pytest.raises(TaskFailed) as info:
        run_http(tmp_path, {"url": f"http://{host}:{port}/echo"})
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:InvalidConfig", "USER", False)
    assert "host" in info.value.message and server.requests == []


def test_a_trailing_space_in_the_host_is_a_user_error(tmp_path, server):
    port = server.server_address[1]
    with pytest.raises(TaskFailed) as info:
        run_http(tmp_path, {"url": f"http://127.0.0.1 :{port}/echo"})
    assert (info.value.code, info.value.recoverable) == ("USER:InvalidConfig", False)


@pytest.mark.parametrize("value", ["café", "a\r\nX-Injected: 1", "a\nb", "nul\x00"])
def test_an_unsendable_header_value_from_an_input_is_invalid_input(tmp_path, server, value):
    custom = {"url": server.base + "/echo", "headers": {"X-Name": "{{ .inputs.n }}"}}
    with pytest.raises(TaskFailed) as info:
        run_http(tmp_path, custom, {"n": STR}, values={"n": value})
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:InvalidInput", "USER", False)
    assert "X-Name" in info.value.message and server.requests == []


@pytest.mark.parametrize("value", ["café", "a\r\nX-Injected: 1"])
def test_an_unsendable_header_in_the_config_is_invalid_config(tmp_path, server, value):
    with pytest.raises(TaskFailed) as info:
        run_http(tmp_path, {"url": server.base + "/echo", "headers": {"X-Name": value}})
    assert (info.value.code, info.value.recoverable) == ("USER:InvalidConfig", False)
    assert server.requests == []


def test_an_unsendable_secret_value_is_a_user_error_without_the_value(tmp_path, server, monkeypatch):
    monkeypatch.setenv("_FSEC_API_KEY", "bad-sécret-value")
    with pytest.raises(TaskFailed) as info:
        run_http(tmp_path, {"url": server.base + "/echo", "secret_headers": KEY})
    assert (info.value.code, info.value.recoverable) == ("USER:InvalidConfig", False)
    assert "sécret" not in info.value.message and server.requests == []


def test_unsendable_requests_of_the_boundary_map(server):
    """Each exception class httpx/h11/idna raise for a request that can never be sent maps to a USER error."""
    import httpx
    import idna

    from taskbox.net.errors import RequestNotSendable, never_sendable

    for exc in (httpx.InvalidURL("x"), httpx.UnsupportedProtocol("x"), httpx.LocalProtocolError("x"),
                UnicodeEncodeError("ascii", "é", 0, 1, "no"), idna.IDNAError("x")):  # fmt: skip
        with pytest.raises(RequestNotSendable) as info, never_sendable("GET", "http://h/"):
            raise exc
        assert info.value.code == "USER:InvalidConfig" and not info.value.recoverable
    with pytest.raises(httpx.ConnectError), never_sendable("GET", "http://h/"):  # network errors pass through
        raise httpx.ConnectError("refused")


def test_json_config_round_trip_keeps_secret_origins():
    config = validate_config(HTTPExecutor, {"url": "http://h/", "secret_origins": ["https://api.example.com:8443"]})
    assert json.loads(config.model_dump_json())["secret_origins"] == ["https://api.example.com:8443"]
