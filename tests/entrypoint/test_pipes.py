"""Dagster Pipes (``taskbox.entrypoint.pipes``): ``taskbox run`` and ``taskbox execute`` as Dagster starts them.

Each test runs the real CLI in a subprocess with ``DAGSTER_PIPES_CONTEXT`` / ``DAGSTER_PIPES_MESSAGES``
encoded as Dagster's clients encode them (``dagster_pipes.encode_env_var``), messages to a file
(``{"path": ...}``, PipesSubprocessClient's way) or to stderr (``{"stdio": "stderr"}``, PipesDockerClient's),
and reads the messages back, checking each against the package's protocol (version field, method names,
metadata types, the ``PipesException`` shape). The real Dagster runs the recipe in
tests/images/orchestrators/test_dagster.py.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import dagster_pipes
import pytest

from helpers import TASKBOX, encode_inputs, execute_args, make_template, put, read_error, run, simple

EXPECTED = {"n": 3, "total": 172.5}
QUERY = "SELECT count(*) AS n, coalesce(sum(amount), 0) AS total FROM orders WHERE amount >= {{ .inputs.min_amount }}"
SECRET = "tok/AbC&x+y=z-9"  # tests/test_redaction.py's: characters every encoder escapes
METHODS = set(get_args(dagster_pipes.Method))
METADATA_TYPES = set(get_args(dagster_pipes.PipesMetadataType)) - {dagster_pipes.PIPES_METADATA_TYPE_INFER}


def context_data(extras: dict[str, Any] | None = None, asset_keys: list[str] | None = None) -> dict[str, Any]:
    """A ``PipesContextData`` as Dagster's ``build_external_execution_context_data`` makes it."""
    return {
        "asset_keys": asset_keys,
        "code_version_by_asset_key": {k: None for k in asset_keys} if asset_keys is not None else None,
        "provenance_by_asset_key": {k: None for k in asset_keys} if asset_keys is not None else None,
        "partition_key": None,
        "partition_key_range": None,
        "partition_time_window": None,
        "run_id": "0f1e2d3c-run",
        "job_name": "__ASSET_JOB",
        "retry_number": 0,
        "extras": extras or {},
    }


def pipes_env(
    messages: dict[str, Any], extras: dict[str, Any] | None = None, asset_keys: list[str] | None = ("order_stats",)
) -> dict[str, str]:  # type: ignore[assignment]
    data = context_data(extras, list(asset_keys) if asset_keys is not None else None)
    return {
        "DAGSTER_PIPES_CONTEXT": dagster_pipes.encode_env_var({"data": data}),
        "DAGSTER_PIPES_MESSAGES": dagster_pipes.encode_env_var(messages),
    }


def check(message: dict[str, Any]) -> dict[str, Any]:
    """A message as Dagster's reader accepts it: the protocol's version field, a known method."""
    assert message[dagster_pipes.PIPES_PROTOCOL_VERSION_FIELD] == dagster_pipes.PIPES_PROTOCOL_VERSION
    assert message["method"] in METHODS, message
    if message["method"] == "report_asset_materialization":
        for value in (message["params"]["metadata"] or {}).values():
            assert set(value) == {"raw_value", "type"} and value["type"] in METADATA_TYPES, value
    if message["method"] == "closed" and message["params"]:
        exc = message["params"]["exception"]
        assert set(exc) == set(dagster_pipes.PipesException.__annotations__), exc
    return message


def file_messages(path: Path) -> list[dict[str, Any]]:
    return [check(json.loads(line)) for line in path.read_text().splitlines()]


def stderr_messages(stderr: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Split stderr as PipesDockerClient does: message lines, and the lines it forwards."""
    messages, other = [], []
    for line in stderr.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and dagster_pipes.PIPES_PROTOCOL_VERSION_FIELD in parsed:
            messages.append(check(parsed))
        else:
            other.append(line)
    return messages, other


def by_method(messages: list[dict[str, Any]], method: str) -> list[dict[str, Any]]:
    return [m["params"] for m in messages if m["method"] == method]


def assert_framed(messages: list[dict[str, Any]]) -> None:
    """``opened`` first, ``closed`` last, each once."""
    methods = [m["method"] for m in messages]
    assert methods[0] == "opened" and methods[-1] == "closed", methods
    assert methods.count("opened") == 1 and methods.count("closed") == 1


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """``shop.db`` and the recipe's config (``config.json``, the interface declared)."""
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount REAL)")
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(1, "a", 5.0), (2, "b", 10.0), (3, "c", 12.5),
                                                             (4, "d", 150.0), (5, "e", 3.0)])  # fmt: skip
    conn.commit()
    conn.close()
    config = {
        "uri": str(db),
        "query_template": QUERY,
        "interface": {"inputs": {"min_amount": "float"}, "outputs": {"n": "int", "total": "float"}},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def taskbox_run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run([TASKBOX, "run", *args], TASKBOX_LOG_FORMAT="json", **env)


# ------------------------------------------------------------------ success


def test_run_reports_opened_logs_metadata_custom_message_and_closed(shop: Path, tmp_path: Path):
    messages_file, out = tmp_path / "messages.jsonl", tmp_path / "out"
    env = pipes_env({"path": str(messages_file)}, extras={"min_amount": 10})
    proc = taskbox_run("--executor", "sqlite", "--config", str(shop / "config.json"), "--outputs", str(out), **env)
    assert proc.returncode == 0, proc.stderr
    messages = file_messages(messages_file)
    assert_framed(messages)
    assert messages[-1]["params"] == {}  # closed without an exception
    (materialization,) = by_method(messages, "report_asset_materialization")
    assert materialization == {
        "asset_key": "order_stats",
        "data_version": None,
        "metadata": {"n": {"raw_value": 3, "type": "int"}, "total": {"raw_value": 172.5, "type": "float"}},
    }
    (custom,) = by_method(messages, "report_custom_message")
    assert custom["payload"] == json.loads((out / "outputs.json").read_text()) == EXPECTED
    logs = by_method(messages, "log")
    assert any(m["message"] == "running taskbox-run.sqlite" and m["level"] == "INFO" for m in logs), logs
    methods = [m["method"] for m in messages]
    assert methods.index("report_asset_materialization") < methods.index("report_custom_message")
    assert json.loads(proc.stdout) == EXPECTED  # taskbox run's own output is unchanged


def test_stderr_messages_are_whole_lines_beside_the_json_logs(shop: Path, tmp_path: Path):
    env = pipes_env({"stdio": "stderr"}, extras={"min_amount": 10})
    proc = taskbox_run("--executor", "sqlite", "--config", str(shop / "config.json"), "--outputs", str(tmp_path),
                       **env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    messages, other = stderr_messages(proc.stderr)
    assert_framed(messages)
    assert by_method(messages, "report_custom_message")[0]["payload"] == EXPECTED
    assert other and all(json.loads(line)["level"] for line in other)  # the JSON log lines, forwarded by Dagster


def test_without_the_variables_nothing_changes_and_nothing_loads(shop: Path, tmp_path: Path):
    args = ["--executor", "sqlite", "--config", str(shop / "config.json"), "--input", "min_amount=10"]
    plain = taskbox_run(*args, "--outputs", str(tmp_path / "plain"))
    piped = taskbox_run(*args, "--outputs", str(tmp_path / "piped"), **pipes_env({"path": str(tmp_path / "m")}))
    assert plain.returncode == piped.returncode == 0
    assert json.loads(plain.stdout) == json.loads(piped.stdout) == EXPECTED  # (key order varies per process)
    for name in ("n", "total"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "piped" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == sorted(
        p.name for p in (tmp_path / "piped").iterdir()
    )
    assert not [line for line in plain.stderr.splitlines() if "__dagster_pipes_version" in line]
    code = (
        "import sys\nfrom taskbox.entrypoint.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "assert 'dagster_pipes' not in sys.modules and 'taskbox.entrypoint.pipes' not in sys.modules\n"
        "sys.exit(code)\n"
    )
    proc = run([sys.executable, "-c", code, "run", *args, "--outputs", str(tmp_path / "again")])
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------ inputs from extras


@pytest.mark.parametrize(
    ("extra_args", "env", "expected"),
    [
        ([], {}, EXPECTED),  # extras (10) over the --inputs file (100)
        ([], {"TASKBOX_INPUT_MIN_AMOUNT": "150"}, {"n": 1, "total": 150.0}),  # the variable over extras
        (["--input", "min_amount=12.5"], {"TASKBOX_INPUT_MIN_AMOUNT": "150"}, {"n": 2, "total": 162.5}),  # flag
    ],
    ids=["extras-over-file", "env-over-extras", "flag-over-env"],
)
def test_extras_are_inputs_between_the_inputs_file_and_the_environment(shop, tmp_path, extra_args, env, expected):
    (tmp_path / "inputs.json").write_text(json.dumps({"min_amount": 100}))
    messages_file = tmp_path / "messages.jsonl"
    proc = taskbox_run("--executor", "sqlite", "--config", str(shop / "config.json"), "--inputs",
                       str(tmp_path / "inputs.json"), "--outputs", str(tmp_path / "out"), *extra_args,
                       **pipes_env({"path": str(messages_file)}, extras={"min_amount": 10}), **env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected
    assert by_method(file_messages(messages_file), "report_custom_message")[0]["payload"] == expected


def test_extras_that_are_not_inputs_are_left_alone(shop: Path, tmp_path: Path):
    messages_file = tmp_path / "messages.jsonl"
    env = pipes_env({"path": str(messages_file)}, extras={"min_amount": 10, "team": "finance", "retries": 2})
    proc = taskbox_run("--executor", "sqlite", "--config", str(shop / "config.json"), "--outputs", str(tmp_path),
                       **env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == EXPECTED  # neither became an input (nor an error)
    logs = [m["message"] for m in by_method(file_messages(messages_file), "log")]
    assert "Dagster Pipes extras that are not inputs of the task, left alone: retries, team" in logs


def test_an_extra_of_the_wrong_type_is_the_users_input_error(shop: Path, tmp_path: Path):
    messages_file = tmp_path / "messages.jsonl"
    env = pipes_env({"path": str(messages_file)}, extras={"min_amount": "ten"})
    proc = taskbox_run("--executor", "sqlite", "--config", str(shop / "config.json"), "--outputs", str(tmp_path),
                       **env)  # fmt: skip
    assert proc.returncode == 1
    exception = file_messages(messages_file)[-1]["params"]["exception"]
    assert exception["name"] == "USER:InvalidInput" and "min_amount" in exception["message"]


# ------------------------------------------------------------------ metadata and asset keys

IFACE = {
    "inputs": {"n": "int", "ratio": "float", "flag": "bool", "text": "str", "when": "datetime", "span": "duration",
               "xs": "list[int]", "named": "dict[str, list[str]]", "f": "file", "remote": "file", "d": "dir",
               "t": "table", "maybe": "int?"},
}  # fmt: skip


def every_kind(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "f.txt").write_text("hi")
    (tmp_path / "d").mkdir()
    return {"n": 7, "ratio": 0.5, "flag": True, "text": "héllo", "when": "2026-01-02T03:04:05Z", "span": 5400,
            "xs": [1, 2], "named": {"a": ["x"]}, "f": str(tmp_path / "f.txt"), "remote": "https://example.com/a.csv",
            "d": str(tmp_path / "d"), "t": str(tmp_path / "t.parquet"), "maybe": None}  # fmt: skip


def test_metadata_types_follow_the_outputs_types(tmp_path: Path):
    messages_file, values = tmp_path / "messages.jsonl", every_kind(tmp_path)
    proc = taskbox_run("--executor", "echo", "--interface", json.dumps(IFACE), "--outputs", str(tmp_path / "out"),
                       **pipes_env({"path": str(messages_file)}, extras=values))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    messages = file_messages(messages_file)
    metadata = by_method(messages, "report_asset_materialization")[0]["metadata"]
    types = {name: value["type"] for name, value in metadata.items()}
    assert types == {"n": "int", "ratio": "float", "flag": "bool", "text": "text", "when": "timestamp",
                     "span": "float", "xs": "json", "named": "json", "f": "path", "remote": "url", "d": "path",
                     "t": "path", "maybe": "null"}  # fmt: skip
    assert metadata["when"]["raw_value"] == 1767323045.0 and metadata["span"]["raw_value"] == 5400.0
    assert metadata["named"]["raw_value"] == {"a": ["x"]} and metadata["text"]["raw_value"] == "héllo"
    payload = by_method(messages, "report_custom_message")[0]["payload"]
    assert payload == json.loads((tmp_path / "out" / "outputs.json").read_text())
    assert payload["when"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize(
    ("asset_keys", "expected"),
    [
        (None, []),  # an op: no materialization
        (["stats/n", "stats/report"], [("stats/n", ["n"]), ("stats/report", ["n", "total"])]),  # a multi_asset
    ],
    ids=["op", "multi-asset"],
)
def test_asset_keys_in_scope_decide_the_materializations(shop, tmp_path, asset_keys, expected):
    messages_file = tmp_path / "messages.jsonl"
    env = pipes_env({"path": str(messages_file)}, extras={"min_amount": 10}, asset_keys=asset_keys)
    proc = taskbox_run("--executor", "sqlite", "--config", str(shop / "config.json"), "--outputs", str(tmp_path),
                       **env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    messages = file_messages(messages_file)
    found = [(m["asset_key"], sorted(m["metadata"])) for m in by_method(messages, "report_asset_materialization")]
    assert found == expected
    assert by_method(messages, "report_custom_message")[0]["payload"] == EXPECTED  # always sent


def test_stdio_messages_stay_under_a_log_line_and_large_outputs_say_where_they_are(tmp_path: Path):
    big = "x" * 20_000
    iface = {"inputs": {"text": "str", "n": "int"}}
    proc = taskbox_run("--executor", "echo", "--interface", json.dumps(iface), "--outputs", str(tmp_path / "out"),
                       "--quiet", **pipes_env({"stdio": "stderr"}, extras={"text": big, "n": 1}))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "__dagster_pipes_version" in line]
    assert lines and max(len(line) for line in lines) < 16_000  # Docker splits lines at 16 KiB
    messages, _ = stderr_messages(proc.stderr)
    assert_framed(messages)
    metadata = by_method(messages, "report_asset_materialization")[0]["metadata"]
    assert metadata["n"] == {"raw_value": 1, "type": "int"} and metadata["text"]["type"] == "text"
    assert metadata["text"]["raw_value"].endswith("(cut to fit a log line)")
    assert by_method(messages, "report_custom_message") == []
    warning = [m for m in by_method(messages, "log") if m["level"] == "WARNING"]
    assert len(warning) == 1 and str(tmp_path / "out") in warning[0]["message"]
    # a file destination has no such limit: the whole outputs come back
    messages_file = tmp_path / "messages.jsonl"
    proc = taskbox_run("--executor", "echo", "--interface", json.dumps(iface), "--outputs", str(tmp_path / "o2"),
                       **pipes_env({"path": str(messages_file)}, extras={"text": big, "n": 1}))  # fmt: skip
    assert by_method(file_messages(messages_file), "report_custom_message")[0]["payload"] == {"text": big, "n": 1}


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize(
    ("case", "code", "exit_code", "detail"),
    [
        ("bad-query", "USER:QueryFailed", 1, "(USER, not recoverable, exit code 1)"),
        ("missing-db", "SYSTEM:StorageNotFound", 3, "(SYSTEM, not recoverable, exit code 3)"),
        ("bug", "SYSTEM:ValueError", 75, "(SYSTEM, recoverable, exit code 75)"),
    ],
)
def test_a_failure_closes_with_the_taskbox_error(shop, tmp_path, case, code, exit_code, detail):
    messages_file, out = tmp_path / "messages.jsonl", tmp_path / "out"
    env = pipes_env({"path": str(messages_file)}, extras={"min_amount": 10, "kind": "bug"})
    config = json.loads((shop / "config.json").read_text())
    if case == "bad-query":
        config["query_template"] = QUERY.replace("FROM orders", "FROM nope")
    elif case == "missing-db":
        config["uri"] = str(tmp_path / "gone.db")
    args = ["--executor", "sqlite", "--config", json.dumps(config)]
    if case == "bug":
        args = ["--executor", "test-fail", "--interface", json.dumps({"inputs": {"kind": "str"}})]
    proc = taskbox_run(*args, "--outputs", str(out), **env)
    assert proc.returncode == exit_code, proc.stderr
    error = json.loads((out / "error.json").read_text())  # error.json / error.pb as without Dagster
    assert (error["code"], error["exit_code"]) == (code, exit_code) and (out / "error.pb").exists()
    assert not (out / "outputs.json").exists()
    messages = file_messages(messages_file)
    assert_framed(messages)
    assert by_method(messages, "report_asset_materialization") == by_method(messages, "report_custom_message") == []
    exception = messages[-1]["params"]["exception"]
    assert exception["name"] == code
    assert exception["message"].startswith(f"{code}: ") and detail in exception["message"]
    assert exception["stack"] and all(isinstance(frame, str) for frame in exception["stack"])
    assert messages[-2]["method"] == "log" and messages[-2]["params"]["level"] == "ERROR"
    assert messages[-2]["params"]["message"].startswith(f"taskbox run: failed ({code}")
    if case == "missing-db":  # the cause chain comes along, in the same shape
        assert exception["cause"]["name"] == "FileNotFoundError"


def test_no_secret_in_any_message(tmp_path: Path):
    messages_file, out = tmp_path / "messages.jsonl", tmp_path / "out"
    template = make_template("test-fail", {"kind": simple("STRING")}, {})
    template.security_context.secrets.add(group="demo", key="token")
    put(str(tmp_path / "task.pb"), template.SerializeToString())
    env = pipes_env({"path": str(messages_file)}, extras={"kind": "logged-secret"})
    proc = taskbox_run("--template", str(tmp_path / "task.pb"), "--outputs", str(out), _FSEC_DEMO_TOKEN=SECRET, **env)
    assert proc.returncode == 75, proc.stderr
    text = messages_file.read_text()
    messages = file_messages(messages_file)
    assert_framed(messages)
    for form in (SECRET, json.dumps(SECRET)[1:-1], SECRET.replace("/", "\\/")):
        assert form not in text and form not in proc.stderr and form not in proc.stdout
    logs = [m["message"] for m in by_method(messages, "log")]
    assert "calling the server with token ***" in logs  # the executor's record, masked as on stderr
    assert "bad token ***" in messages[-1]["params"]["exception"]["message"]


# ------------------------------------------------------------------ Pipes itself failing


def test_a_bad_context_is_a_typed_error_and_dagster_still_hears_it(shop: Path, tmp_path: Path):
    messages_file, out = tmp_path / "messages.jsonl", tmp_path / "out"
    env = {"DAGSTER_PIPES_CONTEXT": "not-base64!!", "DAGSTER_PIPES_MESSAGES": dagster_pipes.encode_env_var(
        {"path": str(messages_file)})}  # fmt: skip
    proc = taskbox_run("--executor", "sqlite", "--config", str(shop / "config.json"), "--outputs", str(out), **env)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    error = json.loads((out / "error.json").read_text())
    assert error["code"] == "SYSTEM:PipesError" and error["recoverable"] is False
    assert "DAGSTER_PIPES_CONTEXT is not a Dagster Pipes parameter" in error["message"]
    messages = file_messages(messages_file)
    assert [m["method"] for m in messages] == ["opened", "closed"]
    assert messages[-1]["params"]["exception"]["name"] == "SYSTEM:PipesError"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-messages-variable", "DAGSTER_PIPES_MESSAGES is not set"),
        ("unwritable-destination", "cannot write Dagster Pipes messages"),
        ("unknown-destination", "DAGSTER_PIPES_MESSAGES names no destination"),
        ("context-file-missing", "cannot load the Dagster Pipes context"),
        ("no-package", "the dagster-pipes package is not installed: pip install 'taskbox[run]'"),
    ],
)
def test_pipes_that_cannot_be_spoken_fail_the_run_as_pipes_errors(shop, tmp_path, case, expected):
    out = tmp_path / "out"
    env = pipes_env({"path": str(tmp_path / "messages.jsonl")}, extras={"min_amount": 10})
    if case == "no-messages-variable":
        del env["DAGSTER_PIPES_MESSAGES"]
    elif case == "unwritable-destination":
        env = pipes_env({"path": str(tmp_path / "no" / "such" / "dir" / "m.jsonl")})
    elif case == "unknown-destination":
        env = pipes_env({"bucket": "b", "key_prefix": "k"})
    elif case == "context-file-missing":
        env["DAGSTER_PIPES_CONTEXT"] = dagster_pipes.encode_env_var({"path": str(tmp_path / "gone.json")})
    elif case == "no-package":  # a dagster_pipes that cannot be imported, first on the path
        (tmp_path / "shadow" / "dagster_pipes").mkdir(parents=True)
        (tmp_path / "shadow" / "dagster_pipes" / "__init__.py").write_text("raise ImportError('not here')\n")
        from helpers import PLUGINS

        env["PYTHONPATH"] = f"{tmp_path / 'shadow'}:{PLUGINS}"
    proc = taskbox_run("--executor", "sqlite", "--config", str(shop / "config.json"), "--outputs", str(out), **env)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    error = json.loads((out / "error.json").read_text())
    assert error["code"] == "SYSTEM:PipesError" and expected in error["message"], error["message"]


# ------------------------------------------------------------------ taskbox execute


def test_execute_reports_its_outputs_and_its_failures(tmp_path: Path):
    types = {"n": simple("INTEGER"), "word": simple("STRING")}
    template = put(str(tmp_path / "task.pb"), make_template("echo", types, types).SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({"n": 4, "word": "hi"}, types))
    messages_file = tmp_path / "messages.jsonl"
    env = pipes_env({"path": str(messages_file)}, extras={"n": 99})
    proc = run(execute_args(inputs, str(tmp_path / "out"), template), **env)
    assert proc.returncode == 0, proc.stderr
    messages = file_messages(messages_file)
    assert_framed(messages)
    metadata = by_method(messages, "report_asset_materialization")[0]["metadata"]
    assert metadata == {"n": {"raw_value": 4, "type": "int"}, "word": {"raw_value": "hi", "type": "text"}}
    assert by_method(messages, "report_custom_message")[0]["payload"] == {"n": 4, "word": "hi"}  # inputs.pb, not extras
    logs = [m["message"] for m in by_method(messages, "log")]
    assert "taskbox execute reads its inputs from inputs.pb: Dagster Pipes extras left alone" in logs

    failing = put(str(tmp_path / "fail.pb"), make_template("test-fail", {"kind": simple("STRING")}, {})
                  .SerializeToString())  # fmt: skip
    inputs = put(str(tmp_path / "fail-inputs.pb"), encode_inputs({"kind": "user"}, {"kind": simple("STRING")}))
    messages_file.unlink()
    proc = run(execute_args(inputs, str(tmp_path / "out2"), failing), **env)
    assert proc.returncode == 0, proc.stderr  # Flyte's contract: error.pb, exit 0
    assert read_error(str(tmp_path / "out2")).code == "USER:InvalidInput"
    messages = file_messages(messages_file)
    assert_framed(messages)
    exception = messages[-1]["params"]["exception"]
    assert exception["name"] == "USER:InvalidInput"
    assert exception["message"] == "USER:InvalidInput: the input was wrong (USER, not recoverable)\n"
