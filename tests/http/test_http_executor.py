"""The ``http`` executor in-process (through ``run_template``, the entrypoint's pipeline) against loopback servers."""

from __future__ import annotations

import json
import uuid

import pytest
from flyteidl.core import types_pb2

from helpers import list_of, make_template, simple
from taskbox.authoring import TaskFailed, run_template

STR, INT, FLOAT, BOOL, STRUCT = (simple(k) for k in ("STRING", "INTEGER", "FLOAT", "BOOLEAN", "STRUCT"))
FILE = types_pb2.LiteralType(blob=types_pb2.BlobType(dimensionality=types_pb2.BlobType.SINGLE))
DATASET = types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format="parquet"))


def run_http(tmp_path, custom, inputs=None, outputs=None, values=None, task_type="http"):
    tpl = make_template(task_type, inputs or {}, outputs or {}, custom)
    return run_template(tpl, values or {}, workdir=str(tmp_path / f"run-{uuid.uuid4().hex[:8]}"))


def echoed(result, name="body"):
    return json.loads(result[name])


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
def test_every_method(tmp_path, server, method):
    outputs = {"status": INT} if method == "HEAD" else {"status": INT, "seen": STR}
    custom = {"method": method, "url": server.base + "/echo", "status_output": "status"}
    if method != "HEAD":
        custom["outputs"] = {"seen": "/method"}
    out = run_http(tmp_path, custom, outputs=outputs)
    assert out["status"] == 200
    assert server.requests[-1]["method"] == method
    if method != "HEAD":
        assert out["seen"] == method


def test_templated_url_encodes_each_component(tmp_path, server):
    custom = {
        "url": server.base + "/items/{{ .inputs.name }}/x?q={{ .inputs.q }}",
        "query": {"extra": "{{ .inputs.q }}", "n": "{{ .inputs.n }}"},
        "outputs": {"path": "/path", "raw": "/raw_path", "query": "/query"},
    }
    out = run_http(
        tmp_path,
        custom,
        {"name": STR, "q": STR, "n": INT},
        {"path": STR, "raw": STR, "query": STRUCT},
        {"name": "a/b c?#..", "q": "1&admin=true", "n": 7},
    )
    assert out["raw"].startswith("/items/a%2Fb%20c%3F%23../x?q=1%26admin%3Dtrue")
    assert out["query"] == {"q": "1&admin=true", "extra": "1&admin=true", "n": "7"}


def test_json_body_values_are_json_values(tmp_path, server):
    custom = {
        "method": "POST",
        "url": server.base + "/echo",
        "json_body": {
            "count": "{{ .inputs.n }}",
            "name": "{{ .inputs.s }}",
            "ids": "{{ .inputs.ids }}",
            "label": "id-{{ .inputs.n }}",
            "fixed": [1, True, None],
        },
        "body_output": "body",
    }
    out = run_http(
        tmp_path,
        custom,
        {"n": INT, "s": STR, "ids": list_of(INT)},
        {"body": STR},
        {"n": 3, "s": '", "admin": true, "x": "', "ids": [1, 2]},
    )
    sent = json.loads(echoed(out)["body"])
    assert sent == {
        "count": 3,
        "name": '", "admin": true, "x": "',
        "ids": [1, 2],
        "label": "id-3",
        "fixed": [1, True, None],
    }
    assert echoed(out)["headers"]["content-type"] == "application/json"


def test_form_body(tmp_path, server):
    custom = {
        "method": "POST",
        "url": server.base + "/echo",
        "form_body": {"a": "{{ .inputs.s }}", "b": 2},
        "outputs": {"body": "/body"},
    }
    out = run_http(tmp_path, custom, {"s": STR}, {"body": STR}, {"s": "x&y=z"})
    assert sorted(out["body"].split("&")) == ["a=x%26y%3Dz", "b=2"]


def test_json_pointers_convert_to_declared_types(tmp_path, server):
    custom = {
        "url": server.base + "/json",
        "outputs": {
            "id": "/id",
            "price": "/nested/price",
            "ok": "/nested/ok",
            "tags": "/tags",
            "slash": "/a~1b",
            "doc": "",
        },
        "headers_output": "headers",
    }
    out = run_http(
        tmp_path,
        custom,
        outputs={
            "id": INT,
            "price": FLOAT,
            "ok": BOOL,
            "tags": list_of(STR),
            "slash": STR,
            "doc": STRUCT,
            "headers": STRUCT,
        },
    )
    assert (out["id"], out["price"], out["ok"], out["tags"], out["slash"]) == (42, 9.5, True, ["a", "b"], "slash")
    assert out["doc"]["name"] == "widget"
    assert out["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize(("pointer", "kind"), [("/missing", INT), ("/name", INT)])
def test_response_not_matching_outputs_is_user_error(tmp_path, server, pointer, kind):
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"url": server.base + "/json", "outputs": {"x": pointer}}, outputs={"x": kind})
    assert err.value.origin == "USER" and not err.value.recoverable


def test_retries_503_honouring_retry_after(tmp_path, server):
    custom = {"url": server.base + "/flaky/1/a?after=1", "outputs": {"m": "/method"}}
    assert run_http(tmp_path, custom, outputs={"m": STR}) == {"m": "GET"}
    assert server.counters["a"] == 2


def test_retry_after_beyond_cap_fails_fast(tmp_path, server):
    custom = {"url": server.base + "/flaky/5/b?after=99999", "retry": {"retry_after_max_s": 5}}
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, custom)
    assert server.counters["b"] == 1
    assert err.value.origin == "SYSTEM" and err.value.recoverable and "503" in err.value.message


def test_5xx_after_retries_is_system_recoverable(tmp_path, server):
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"url": server.base + "/flaky/9/c", "retry": {"max_attempts": 3}})
    assert server.counters["c"] == 3
    assert (err.value.origin, err.value.recoverable, err.value.code) == ("SYSTEM", True, "SYSTEM:HTTPUnavailable")


def test_post_not_retried_without_idempotency_key(tmp_path, server):
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"method": "POST", "url": server.base + "/flaky/1/d", "json_body": {"a": 1}})
    assert server.counters["d"] == 1
    assert err.value.origin == "SYSTEM"


def test_post_retried_with_idempotency_key_sending_the_same_key(tmp_path, server):
    custom = {
        "method": "POST",
        "url": server.base + "/flaky/2/e",
        "json_body": {"a": 1},
        "retry": {"idempotency_key_header": "Idempotency-Key"},
        "status_output": "s",
    }
    assert run_http(tmp_path, custom, outputs={"s": INT}) == {"s": 200}
    keys = {r["headers"]["Idempotency-Key"] for r in server.requests}
    assert len(server.requests) == 3 and len(keys) == 1


def test_read_timeout_retries_get_but_not_post(tmp_path, server):
    custom = {"url": server.base + "/slow?s=0.5", "read_timeout_s": 0.05, "retry": {"max_attempts": 2}}
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, custom)
    assert (err.value.origin, err.value.recoverable) == ("SYSTEM", True) and len(server.requests) == 2
    del server.requests[:]
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {**custom, "method": "POST"})
    assert err.value.origin == "SYSTEM" and "not retried" in err.value.message and len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_4xx_is_user_non_recoverable(tmp_path, server, status):
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"url": f"{server.base}/status/{status}"})
    assert (err.value.origin, err.value.recoverable, err.value.code) == ("USER", False, "USER:HTTPStatus")
    assert len(server.requests) == 1


def test_expected_status_configurable(tmp_path, server):
    out = run_http(
        tmp_path,
        {"url": f"{server.base}/status/404", "expected_status": [404], "status_output": "s"},
        outputs={"s": INT},
    )
    assert out == {"s": 404}


def test_connection_refused_is_system_recoverable(tmp_path):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"url": f"http://127.0.0.1:{port}/", "retry": {"max_attempts": 2}})
    assert (err.value.origin, err.value.recoverable) == ("SYSTEM", True)


def test_pagination_by_link_header(tmp_path, server):
    custom = {
        "url": server.base + "/pages/link",
        "pagination": {"next": "link", "items_pointer": "/items", "output": "all"},
    }
    out = run_http(tmp_path, custom, outputs={"all": list_of(STRUCT)})
    assert [i["n"] for i in out["all"]] == [1, 2, 3, 4, 5]
    assert len(server.requests) == 3


def test_pagination_by_cursor_to_structured_dataset(tmp_path, server):
    custom = {
        "url": server.base + "/pages/cursor",
        "query": {"limit": 2},
        "pagination": {"next": "cursor", "items_pointer": "/data/items", "cursor_pointer": "/next", "output": "rows"},
    }
    out = run_http(tmp_path, custom, outputs={"rows": DATASET})
    assert out["rows"].to_arrow().to_pylist() == [{"n": i} for i in range(1, 6)]
    assert [r["path"] for r in server.requests] == [
        "/pages/cursor?limit=2",
        "/pages/cursor?limit=2&cursor=2",
        "/pages/cursor?limit=2&cursor=3",
    ]


def test_pagination_page_limit(tmp_path, server):
    custom = {
        "url": server.base + "/pages/link",
        "pagination": {"next": "link", "items_pointer": "/items", "output": "all", "max_pages": 2},
    }
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, custom, outputs={"all": list_of(STRUCT)})
    assert err.value.origin == "USER" and "max_pages" in err.value.message
    custom["pagination"]["truncate"] = True
    out = run_http(tmp_path, custom, outputs={"all": list_of(STRUCT)})
    assert [i["n"] for i in out["all"]] == [1, 2, 3]


def test_body_over_cap_is_refused(tmp_path, server):
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"url": server.base + "/big?n=5000", "max_body_bytes": 4096})
    assert err.value.code == "USER:ResponseTooLarge"


def test_cap_counts_decoded_bytes(tmp_path, server):
    """A 1 MB gzip body compresses to ~1 KB on the wire; the cap applies to what it decodes to."""
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"url": server.base + "/gzip?n=1000000", "max_body_bytes": 100_000})
    assert err.value.code == "USER:ResponseTooLarge"


def test_large_body_becomes_a_file_output(tmp_path, server):
    custom = {"url": server.base + "/big?n=50000", "file_threshold_bytes": 1000, "body_output": "body"}
    out = run_http(tmp_path, custom, outputs={"body": FILE})
    with out["body"].open("rb") as fh:
        assert fh.read() == b"x" * 50000
    with pytest.raises(TaskFailed) as err:  # the same body as a literal is refused
        run_http(tmp_path, custom, outputs={"body": STR})
    assert "File" in err.value.message


def test_redirects_off_by_default(tmp_path, server):
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"url": server.base + "/redirect?to=/echo"})
    assert "302" in err.value.message and len(server.requests) == 1


def test_cross_origin_redirect_drops_secret_headers(tmp_path, server, other_server, monkeypatch):
    monkeypatch.setenv("_FSEC_API_KEY", "s3cr3t-key-value")
    custom = {
        "url": f"{server.base}/redirect?to={other_server.base}/echo",
        "follow_redirects": True,
        "headers": {"X-Plain": "p"},
        "secret_headers": {"X-Api-Key": {"group": "api", "key": "key"}},
        "outputs": {"headers": "/headers"},
    }
    out = run_http(tmp_path, custom, outputs={"headers": STRUCT})
    assert server.requests[0]["headers"]["X-Api-Key"] == "s3cr3t-key-value"
    assert "x-api-key" not in out["headers"] and out["headers"]["x-plain"] == "p"
    # same origin: kept
    custom["url"] = f"{server.base}/redirect?to=/echo"
    out = run_http(tmp_path, custom, outputs={"headers": STRUCT})
    assert server.requests[-1]["headers"]["X-Api-Key"] == "s3cr3t-key-value"
    assert out["headers"]["x-api-key"] == "***"  # outputs are redacted


def test_redirect_loop_stops(tmp_path, server):
    with pytest.raises(TaskFailed) as err:
        run_http(
            tmp_path,
            {"url": server.base + "/redirect?to=/redirect%3Fto%3D/echo", "follow_redirects": True, "max_redirects": 1},
        )
    assert err.value.code == "USER:TooManyRedirects"


def test_bearer_and_basic_auth_from_secrets(tmp_path, server, monkeypatch):
    monkeypatch.setenv("_FSEC_API_TOKEN", "tok-123456")
    out = run_http(
        tmp_path,
        {
            "url": server.base + "/echo",
            "auth": {"type": "bearer", "token": {"group": "api", "key": "token"}},
            "outputs": {"auth": "/headers/authorization"},
        },
        outputs={"auth": STR},
    )
    assert server.requests[-1]["headers"]["Authorization"] == "Bearer tok-123456"
    assert out["auth"] == "Bearer ***"  # outputs are redacted
    out = run_http(
        tmp_path,
        {
            "url": server.base + "/echo",
            "auth": {"type": "basic", "username": "u", "password": {"group": "api", "key": "token"}},
            "outputs": {"auth": "/headers/authorization"},
        },
        outputs={"auth": STR},
    )
    import base64

    assert server.requests[-1]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"u:tok-123456").decode()
    assert out["auth"] == "Basic ***"


def test_invalid_config_is_user_error(tmp_path, server):
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"url": server.base, "colour": "red"})
    assert err.value.code == "USER:InvalidConfig"


def test_authoring_http_task(tmp_path, server):
    from taskbox.authoring import HTTPTask

    task = HTTPTask(
        "get_item",
        server.base + "/items/{{ .inputs.id }}",
        inputs={"id": str},
        outputs={"path": str, "status": int},
        output_pointers={"path": "/path"},
        status_output="status",
        secret_headers={"X-Key": {"group": "g", "key": "k"}},
    )
    tpl = task.to_template(version="v1")
    assert tpl.type == "http" and tpl.container.args[-1] == "http"
    assert [s.group for s in tpl.security_context.secrets] == ["g"]
    task = HTTPTask(
        "get_item",
        server.base + "/items/{{ .inputs.id }}",
        inputs={"id": str},
        outputs={"path": str, "status": int},
        output_pointers={"path": "/path"},
        status_output="status",
    )
    assert task.run(workdir=str(tmp_path / "w"), id="a b") == {"path": "/items/a%20b", "status": 200}
