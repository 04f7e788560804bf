"""``taskbox run`` driving the ``sql`` executor (a throwaway PostgreSQL on 127.0.0.1) and the ``http`` executor
(a loopback server): JSON inputs, JSON/YAML templates or configs, outputs checked as outputs.pb, outputs.json
and per-output files; the recoverable exit code from a server that stays unavailable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))

import httptesting
import sqltesting

from helpers import TASKBOX, read_outputs, run, simple
from taskbox.literals import StructuredDataset, TypeEngine

SECRET_ENV = "_FSEC_DB_PASSWORD"


def taskbox_run(*args: str, **env: str):
    return run([TASKBOX, "run", *args], **env)


def read_json(path: Path):
    return json.loads(path.read_text())


# ------------------------------------------------------------------ sql on PostgreSQL


@pytest.fixture(scope="module")
def pg():
    server = sqltesting.server("postgres")
    sqltesting.seed(server)
    return server


def password() -> str:
    return sqltesting.servers_module().PASSWORD


def test_sql_yaml_template_json_inputs_table_output(pg, tmp_path: Path):
    (tmp_path / "task.yaml").write_text(
        f"""
id: {{name: items.after}}
type: sqlalchemy
interface:
  inputs: {{min_id: int}}
  outputs: {{results: table}}
custom:
  uri: {pg.url}
  query_template: SELECT id, name FROM items WHERE id > {{{{ .inputs.min_id }}}} ORDER BY id
  secret_connect_args:
    password: {{group: db, key: password}}
"""
    )
    (tmp_path / "inputs.json").write_text(json.dumps({"min_id": 997}))
    out = tmp_path / "out"
    proc = taskbox_run("--template", str(tmp_path / "task.yaml"), "--inputs", str(tmp_path / "inputs.json"),
                       "--outputs", str(out), **{SECRET_ENV: password()})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = read_outputs(str(out), {"results": TypeEngine.to_literal_type(StructuredDataset)})["results"]
    assert results.to_arrow().to_pylist() == [{"id": 998, "name": "name-998"}, {"id": 999, "name": "name-999"},
                                              {"id": 1000, "name": "name-1000"}]  # fmt: skip
    assert read_json(out / "outputs.json") == {"results": results.uri}
    assert (out / "results").read_text() == results.uri
    assert password() not in proc.stderr


def test_sql_executor_and_json_config_with_primitive_outputs(pg, tmp_path: Path):
    config = {
        "uri": pg.url,
        "query_template": "SELECT count(*) AS n, max(name) AS top FROM items WHERE id <= {{ .inputs.upto }}",
        "secret_connect_args": {"password": {"group": "db", "key": "password"}},
        "interface": {"outputs": {"n": "int", "top": "str"}},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "inputs.json").write_text(json.dumps({"upto": 10}))
    out = tmp_path / "out"
    proc = taskbox_run("--executor", "sql", "--config", str(tmp_path / "config.json"),
                       "--inputs", str(tmp_path / "inputs.json"), "--outputs", str(out),
                       **{SECRET_ENV: password()})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_json(out / "outputs.json") == {"n": 10, "top": "name-9"}
    assert read_outputs(str(out), {"n": simple("INTEGER"), "top": simple("STRING")}) == {"n": 10, "top": "name-9"}
    assert (out / "n").read_text() == "10" and (out / "top").read_text() == "name-9"


def test_sql_write_statement_is_a_user_error(pg, tmp_path: Path):
    config = {"uri": pg.url, "query_template": "DELETE FROM items",
              "secret_connect_args": {"password": {"group": "db", "key": "password"}}}  # fmt: skip
    proc = taskbox_run("--executor", "sql", "--config", json.dumps(config), "--outputs", str(tmp_path),
                       **{SECRET_ENV: password()})  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert read_json(tmp_path / "error.json")["origin"] == "USER"
    assert sqltesting.count(pg, "items") == 1000


# ------------------------------------------------------------------ http on a loopback server


@pytest.fixture
def server():
    with httptesting.running() as srv:
        yield srv


HTTP_ENV = {"TASKBOX_HTTP_ALLOW": "127.0.0.1/32", "TASKBOX_HTTP_BACKOFF_BASE_S": "0.01"}


def test_http_yaml_config_json_inputs_outputs_in_three_forms(server, tmp_path: Path):
    (tmp_path / "call.yaml").write_text(
        f"""
method: GET
url: {server.base}/json?item={{{{ .inputs.item }}}}
outputs: {{name: /name, price: /nested/price, tags: /tags, doc: ""}}
status_output: status
interface:
  outputs: {{name: str, price: float, tags: "list[str]", doc: json}}
"""
    )
    (tmp_path / "inputs.json").write_text(json.dumps({"item": "w 1"}))
    out = tmp_path / "out"
    proc = taskbox_run("--executor", "http", "--config", str(tmp_path / "call.yaml"),
                       "--inputs", str(tmp_path / "inputs.json"), "--outputs", str(out), **HTTP_ENV)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = {"name": "widget", "price": 9.5, "tags": ["a", "b"], "doc": httptesting.DOC, "status": 200}
    assert read_json(out / "outputs.json") == expected
    assert server.requests[-1]["path"] == "/json?item=w%201"
    files = {n: (out / n).read_text() for n in expected}
    assert files["name"] == "widget" and files["price"] == "9.5" and files["status"] == "200"
    assert json.loads(files["tags"]) == ["a", "b"] and json.loads(files["doc"]) == httptesting.DOC
    types = {"name": simple("STRING"), "price": simple("FLOAT"), "status": simple("INTEGER")}
    assert read_outputs(str(out), types | {"tags": _list_str(), "doc": simple("STRUCT")})["price"] == 9.5


def _list_str():
    from helpers import list_of

    return list_of(simple("STRING"))


def test_http_json_template(server, tmp_path: Path):
    template = {
        "id": {"name": "echo.post"},
        "type": "http",
        "interface": {"inputs": {"who": "str"}, "outputs": {"method": "str", "body": "str"}},
        "custom": {
            "method": "POST",
            "url": f"{server.base}/echo",
            "json_body": {"hello": "{{ .inputs.who }}"},
            "outputs": {"method": "/method", "body": "/body"},
        },
    }
    (tmp_path / "task.json").write_text(json.dumps(template))
    out = tmp_path / "out"
    proc = taskbox_run("--template", str(tmp_path / "task.json"), "--input", "who=world", "--outputs", str(out),
                       **HTTP_ENV)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plain = read_json(out / "outputs.json")
    assert plain["method"] == "POST" and json.loads(plain["body"]) == {"hello": "world"}
    assert (out / "method").read_text() == "POST"


def test_http_unavailable_is_recoverable_exit_75(server, tmp_path: Path):
    config = {"url": f"{server.base}/status/503", "retry": {"max_attempts": 2}, "status_output": "status"}
    proc = taskbox_run("--executor", "http", "--config", json.dumps(config), "--outputs", str(tmp_path), **HTTP_ENV)
    assert proc.returncode == 75, proc.stderr
    error = read_json(tmp_path / "error.json")
    assert error["origin"] == "SYSTEM" and error["recoverable"] is True and error["exit_code"] == 75
    assert not (tmp_path / "outputs.pb").exists() and not (tmp_path / "status").exists()


def test_http_client_error_is_a_user_error_exit_1(server, tmp_path: Path):
    config = {"url": f"{server.base}/status/404", "status_output": "status"}
    proc = taskbox_run("--executor", "http", "--config", json.dumps(config), "--outputs", str(tmp_path), **HTTP_ENV)
    assert proc.returncode == 1, proc.stderr
    assert read_json(tmp_path / "error.json")["code"] == "USER:HTTPStatus"


def test_http_pointer_outputs_need_declared_types(server, tmp_path: Path):
    config = {"url": f"{server.base}/json", "outputs": {"name": "/name"}}
    proc = taskbox_run("--executor", "http", "--config", json.dumps(config), "--outputs", str(tmp_path), **HTTP_ENV)
    assert proc.returncode == 1
    error = read_json(tmp_path / "error.json")
    assert error["code"] == "USER:InvalidConfig" and "declare it" in error["message"]
    assert server.requests == []  # refused before any request


def test_sigterm_mid_request_exits_143_with_a_recoverable_error(server, tmp_path: Path):
    import signal
    import subprocess
    import time

    from helpers import subprocess_env

    config = {"url": f"{server.base}/slow?s=20", "status_output": "status", "read_timeout_s": 60}
    proc = subprocess.Popen(
        [TASKBOX, "run", "--executor", "http", "--config", json.dumps(config), "--outputs", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(**HTTP_ENV),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.requests, "the request reached the server"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    error = read_json(tmp_path / "error.json")
    assert (error["code"], error["recoverable"], error["exit_code"]) == ("SYSTEM:Terminated", True, 143)
    assert not (tmp_path / "outputs.pb").exists()
