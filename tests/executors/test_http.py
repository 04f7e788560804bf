"""The ``http`` executor through the real ``taskbox execute`` CLI: S3 end to end, and secret redaction."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))

import httptesting

from helpers import commit_files, encode_inputs, execute_args, make_template, put, read_error, read_outputs, run, simple
from taskbox import storage

STR, INT, STRUCT = simple("STRING"), simple("INTEGER"), simple("STRUCT")
SECRET = "sk-live-9f8e7d6c5b4a"


@pytest.fixture
def server():
    with httptesting.running() as srv:
        yield srv


@pytest.mark.servers
def test_http_end_to_end_on_s3(s3_base, server):
    types = {"item": STR, "n": INT}
    tpl = make_template(
        "http",
        types,
        {"path": STR, "status": INT, "echo": STRUCT},
        {
            "method": "POST",
            "url": server.base + "/items/{{ .inputs.item }}",
            "json_body": {"count": "{{ .inputs.n }}"},
            "outputs": {"path": "/path", "echo": ""},
            "status_output": "status",
        },
    )
    task = put(storage.join(s3_base, "task.pb"), tpl.SerializeToString())
    inputs = put(storage.join(s3_base, "inputs.pb"), encode_inputs({"item": "a/b", "n": 3}, types))
    prefix = storage.join(s3_base, "out")
    proc = run(
        execute_args(inputs, prefix, task, None, "--raw-output-data-prefix", storage.join(s3_base, "raw")),
        TASKBOX_HTTP_ALLOW="127.0.0.1",
    )
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"outputs.pb"}
    out = read_outputs(prefix, {"path": STR, "status": INT, "echo": STRUCT})
    assert out["path"] == "/items/a%2Fb" and out["status"] == 200
    assert json.loads(out["echo"]["body"]) == {"count": 3}


def test_loopback_refused_without_allow_list(tmp_path, server):
    tpl = make_template("http", {}, {}, {"url": server.base + "/echo"})
    task = put(str(tmp_path / "task.pb"), tpl.SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), b"")
    prefix = str(tmp_path / "out")
    proc = run(execute_args(inputs, prefix, task), TASKBOX_HTTP_ALLOW="")
    assert commit_files(prefix) == {"error.pb"}, proc.stderr
    assert read_error(prefix).code == "USER:SsrfBlocked"
    assert server.requests == []


@pytest.mark.parametrize("path", ["/status/401", "/echo"])
def test_secret_header_absent_from_logs_errors_and_outputs(tmp_path, server, path):
    """The server echoes the request headers (in a 401 error body, or in a 200 body mapped to outputs)."""
    secrets_dir = tmp_path / "secrets" / "api"
    secrets_dir.mkdir(parents=True)
    (secrets_dir / "token").write_text(SECRET + "\n")
    tpl = make_template(
        "http",
        {},
        {"echo": STRUCT, "headers": STRUCT} if path == "/echo" else {},
        {
            "url": server.base + path,
            "auth": {"type": "bearer", "token": {"group": "api", "key": "token"}},
            "secret_headers": {"X-Api-Key": {"group": "api", "key": "token"}},
            **({"outputs": {"echo": ""}, "headers_output": "headers"} if path == "/echo" else {}),
        },
    )
    task = put(str(tmp_path / "task.pb"), tpl.SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), b"")
    prefix = str(tmp_path / "out")
    proc = run(
        execute_args(inputs, prefix, task),
        TASKBOX_HTTP_ALLOW="127.0.0.1",
        FLYTE_SECRETS_DEFAULT_DIR=str(tmp_path / "secrets"),
        TASKBOX_LOG_LEVEL="DEBUG",
    )
    assert server.requests[0]["headers"]["X-Api-Key"] == SECRET  # it was sent
    assert SECRET not in proc.stderr and SECRET not in proc.stdout
    for name in commit_files(prefix):
        assert SECRET.encode() not in (Path(prefix) / name).read_bytes()
    if path == "/echo":
        assert commit_files(prefix) == {"outputs.pb"}, proc.stderr
        out = read_outputs(prefix, {"echo": STRUCT, "headers": STRUCT})
        assert out["echo"]["headers"]["x-api-key"] == "***"
    else:
        error = read_error(prefix)
        assert error.code == "USER:HTTPStatus" and "401" in error.message
        assert "***" in error.message  # the echoed header, masked
