"""``taskbox run`` end to end through the real CLI: the sqlite and echo executors, outputs in three forms,
exit codes, every option from the environment, JSON logs and the progress file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2, literals_pb2
from google.protobuf.json_format import MessageToDict

from helpers import TASKBOX, make_template, read_error, read_outputs, run, simple
from taskbox.entrypoint import run as runmod

DATASET_TYPE = {"structuredDatasetType": {"format": "parquet"}}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
    conn.executemany("INSERT INTO users VALUES (?, ?, ?)", [(i, f"user-{i}", i * 1.5) for i in range(1, 11)])
    conn.commit()
    conn.close()
    return path


def taskbox_run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    proc = run([TASKBOX, "run", *args], **env) if cwd is None else subprocess.run(
        [TASKBOX, "run", *args], capture_output=True, text=True, timeout=120, cwd=cwd,
        env={**os.environ, **env},
    )  # fmt: skip
    return proc


def sqlite_template(db: Path, query: str, inputs: dict, outputs: dict) -> dict:
    return {
        "id": {"name": "users.query"},
        "type": "sqlite",
        "interface": {
            "inputs": {"variables": {n: {"type": t} for n, t in inputs.items()}},
            "outputs": {"variables": {n: {"type": t} for n, t in outputs.items()}},
        },
        "custom": {"uri": str(db), "query_template": query},
    }


def read_json(path: Path) -> object:
    return json.loads(path.read_text())


# ------------------------------------------------------------------ sqlite, three output forms


def test_sqlite_json_template_table_output_in_three_forms(db: Path, tmp_path: Path):
    template = sqlite_template(
        db,
        "SELECT id, name FROM users WHERE id > {{ .inputs.min_id }} ORDER BY id",
        {"min_id": {"simple": "INTEGER"}},
        {"results": DATASET_TYPE},
    )
    (tmp_path / "task.json").write_text(json.dumps(template))
    (tmp_path / "inputs.json").write_text(json.dumps({"min_id": 7}))
    out = tmp_path / "out"
    proc = taskbox_run("--template", str(tmp_path / "task.json"), "--inputs", str(tmp_path / "inputs.json"),
                       "--outputs", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["outputs.json", "outputs.pb", "raw", "results"]
    results = read_outputs(str(out), {"results": _dataset()})
    rows = results["results"].to_arrow().to_pylist()
    assert rows == [{"id": 8, "name": "user-8"}, {"id": 9, "name": "user-9"}, {"id": 10, "name": "user-10"}]
    plain = read_json(out / "outputs.json")
    assert plain == {"results": results["results"].uri}
    assert plain["results"].startswith(str(out / "raw") + "/")
    assert (out / "results").read_text() == plain["results"]
    assert json.loads(proc.stdout) == plain  # printed on stdout too


def _dataset():
    from taskbox.literals import StructuredDataset, TypeEngine

    return TypeEngine.to_literal_type(StructuredDataset)


def test_sqlite_yaml_template_with_shorthand_interface_and_primitive_outputs(db: Path, tmp_path: Path):
    (tmp_path / "task.yaml").write_text(
        f"""
id: {{name: users.stats}}
type: sqlite
interface:
  inputs: {{upto: int, prefix: str}}
  outputs: {{n: int, first: str, total: float, ok: bool}}
custom:
  uri: {db}
  query_template: >-
    SELECT count(*) AS n, min(name) AS first, sum(score) AS total, count(*) > 0 AS ok
    FROM users WHERE id <= {{{{ .inputs.upto }}}} AND name LIKE {{{{ .inputs.prefix }}}}
"""
    )
    (tmp_path / "inputs.yaml").write_text("upto: 4\nprefix: 'user-%'\n")
    out = tmp_path / "out"
    proc = taskbox_run("--template", str(tmp_path / "task.yaml"), "--inputs", str(tmp_path / "inputs.yaml"),
                       "--outputs", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = {"n": 4, "first": "user-1", "total": 15.0, "ok": True}
    assert read_json(out / "outputs.json") == expected
    assert read_outputs(str(out), {"n": simple("INTEGER"), "first": simple("STRING"), "total": simple("FLOAT"),
                                   "ok": simple("BOOLEAN")}) == expected  # fmt: skip
    assert {n: (out / n).read_text() for n in expected} == {"n": "4", "first": "user-1", "total": "15.0", "ok": "true"}


def test_executor_and_config_infer_the_interface(db: Path, tmp_path: Path):
    (tmp_path / "query.yaml").write_text(
        f"uri: {db}\nquery_template: SELECT name FROM users WHERE id = {{{{ .inputs.user_id }}}}\n"
        "interface:\n  outputs: {name: str}\n"
    )
    out = tmp_path / "out"
    proc = taskbox_run("--executor", "sqlite", "--config", str(tmp_path / "query.yaml"), "--input", "user_id=3",
                       "--outputs", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (out / "name").read_text() == "user-3"
    # No declared outputs: a table named `results`, as flytekit's SQLite3Task.
    out2 = tmp_path / "out2"
    config = json.dumps({"uri": str(db), "query_template": "SELECT id FROM users"})
    proc = taskbox_run("--executor", "sqlite", "--config", config,
                       "--outputs", str(out2))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert list(read_json(out2 / "outputs.json")) == ["results"]


def test_authoring_template_pb_runs_by_its_container_args(db: Path, tmp_path: Path):
    from taskbox.authoring import SQLiteTask

    task = SQLiteTask("top", "SELECT count(*) AS n FROM users WHERE id < {{ .inputs.k }}", uri=str(db),
                      inputs={"k": int}, outputs={"n": int}, image="example/none:1")  # fmt: skip
    (tmp_path / "task.pb").write_bytes(task.to_template().SerializeToString())
    out = tmp_path / "out"
    proc = taskbox_run("--template", str(tmp_path / "task.pb"), "--input", "k=5", "--outputs", str(out))
    assert proc.returncode == 0, proc.stderr
    assert read_json(out / "outputs.json") == {"n": 4}


def test_inputs_pb_is_taken_as_literals(tmp_path: Path):
    from helpers import encode_inputs

    types = {"a": simple("INTEGER"), "s": simple("STRING")}
    (tmp_path / "inputs.pb").write_bytes(encode_inputs({"a": 7, "s": "x y"}, types))
    template = make_template("echo", types, types)
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    out = tmp_path / "out"
    proc = taskbox_run("--template", str(tmp_path / "task.pb"), "--inputs", str(tmp_path / "inputs.pb"),
                       "--outputs", str(out), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert read_json(out / "outputs.json") == {"a": 7, "s": "x y"}


# ------------------------------------------------------------------ exit codes and error files


def test_user_error_exit_1_error_files_and_no_stale_outputs(db: Path, tmp_path: Path):
    out = tmp_path / "out"
    ok = taskbox_run("--executor", "echo", "--input", "greeting=hi", "--outputs", str(out))
    assert ok.returncode == 0 and (out / "greeting").read_text() == "hi"
    bad = json.dumps({"uri": str(db), "query_template": "SELECT * FROM no_such_table"})
    proc = taskbox_run("--executor", "sqlite", "--config", bad, "--outputs", str(out))
    assert proc.returncode == runmod.EXIT_USER == 1, proc.stderr
    assert sorted(p.name for p in out.iterdir() if p.name != "raw") == ["error.json", "error.pb"]
    error = read_json(out / "error.json")
    assert error["code"] == "USER:QueryFailed" and error["origin"] == "USER"
    assert error["recoverable"] is False and error["kind"] == "NON_RECOVERABLE" and error["exit_code"] == 1
    assert "no_such_table" in error["message"]
    document = read_error(str(out))
    assert document.code == error["code"] and document.kind == errors_pb2.ContainerError.NON_RECOVERABLE
    assert proc.stdout == ""
    # A later success removes the error files.
    ok = taskbox_run("--executor", "echo", "--input", "greeting=again", "--outputs", str(out))
    assert ok.returncode == 0
    assert sorted(p.name for p in out.iterdir() if p.name != "raw") == ["greeting", "outputs.json", "outputs.pb"]


def test_bad_input_is_a_user_error(db: Path, tmp_path: Path):
    config = json.dumps({"uri": str(db), "query_template": "SELECT * FROM users WHERE id = {{ .inputs.id }}",
                         "interface": {"inputs": {"id": "int"}}})  # fmt: skip
    proc = taskbox_run("--executor", "sqlite", "--config", config, "--input", "id=abc", "--outputs", str(tmp_path))
    assert proc.returncode == 1
    assert read_json(tmp_path / "error.json")["code"] == "USER:InvalidInput"
    assert "input 'id'" in read_json(tmp_path / "error.json")["message"]


def test_non_recoverable_system_error_exit_3(tmp_path: Path):
    missing = tmp_path / "missing" / "task.pb"
    proc = taskbox_run("--template", str(missing), "--outputs", str(tmp_path / "out"))
    assert proc.returncode == runmod.EXIT_SYSTEM == 3, proc.stderr
    error = read_json(tmp_path / "out" / "error.json")
    assert (error["code"], error["origin"], error["recoverable"]) == ("SYSTEM:StorageNotFound", "SYSTEM", False)


def test_recoverable_user_error_exit_75(tmp_path: Path):
    """A task's RecoverableError is retryable: the same exit code as a recoverable system error."""
    tests = Path(__file__).resolve().parents[1]
    from taskbox.authoring.task import Task  # noqa: F401 - the decorator's module exists

    sys.path.insert(0, str(tests / "sample_project"))
    try:
        from sample_tasks.tasks import flaky

        template = flaky.template(image="example/none:1")
    finally:
        sys.path.remove(str(tests / "sample_project"))
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    inputs = {"message": "rate limited"}
    out = tmp_path / "out"
    proc = taskbox_run("--template", str(tmp_path / "task.pb"), "--inputs", json.dumps(inputs), "--outputs", str(out),
                       PYTHONPATH=str(tests / "sample_project"))  # fmt: skip
    assert proc.returncode == runmod.EXIT_RECOVERABLE == 75, proc.stderr
    error = read_json(out / "error.json")
    assert error["code"] == "USER:Recoverable" and error["recoverable"] is True and error["exit_code"] == 75


def test_output_named_like_a_reserved_file_is_refused(tmp_path: Path):
    template = make_template("echo", {"raw": simple("STRING")}, {"raw": simple("STRING")})
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    proc = taskbox_run("--template", str(tmp_path / "task.pb"), "--input", "raw=x", "--outputs", str(tmp_path / "o"))
    assert proc.returncode == 1
    assert read_json(tmp_path / "o" / "error.json")["code"] == "USER:InvalidTemplate"


def test_nothing_to_run_is_a_user_error(tmp_path: Path):
    proc = taskbox_run("--outputs", str(tmp_path))
    assert proc.returncode == 1 and "nothing to run" in proc.stderr


def test_malformed_command_line_exit_2():
    assert taskbox_run("--log-format", "xml").returncode == 2


# ------------------------------------------------------------------ every option from the environment


@pytest.mark.parametrize("key", sorted(runmod.ENV))
def test_every_option_has_an_environment_variable_and_the_flag_wins(key: str):
    var = runmod.ENV[key]
    value = {"log_format": "json", "quiet": "true", "output_file": "a=/x,b=/y"}.get(key, f"/from/env/{key}")
    expected = {"quiet": True, "output_file": ["a=/x", "b=/y"]}.get(key, value)
    assert getattr(runmod.parse([], {var: value}), key) == expected
    if key == "quiet":
        assert runmod.parse([], {var: "0"}).quiet is False
        return
    flag = "--" + key.replace("_", "-")
    other = {"log_format": "text", "output_file": "c=/z"}.get(key, "/from/flag")
    got = getattr(runmod.parse([flag, other], {var: value}), key)
    assert got == ([other] if key == "output_file" else other)


def test_output_file_copies_an_output_and_outputs_json(tmp_path: Path):
    xcom = tmp_path / "airflow" / "xcom" / "return.json"
    copies = ("--output-file", f"outputs.json={xcom}", "--output-file", f"word={tmp_path / 'word.txt'}")
    proc = taskbox_run("--executor", "echo", "--input", "word=hi", "--outputs", str(tmp_path / "out"), *copies)
    assert proc.returncode == 0, proc.stderr
    assert read_json(xcom) == {"word": "hi"} and (tmp_path / "word.txt").read_text() == "hi"
    proc = taskbox_run("--executor", "echo", "--input", "word=hi", "--outputs", str(tmp_path / "out"),
                       "--output-file", f"nope={tmp_path / 'n'}")  # fmt: skip
    assert proc.returncode == 1 and read_json(tmp_path / "out" / "error.json")["code"] == "USER:InvalidConfig"


def test_argo_progress_file_is_the_default_progress_file():
    assert runmod.parse([], {"ARGO_PROGRESS_FILE": "/tmp/p"}).progress_file == "/tmp/p"
    env = {"ARGO_PROGRESS_FILE": "/tmp/p", "TASKBOX_PROGRESS_FILE": "/tmp/q"}
    assert runmod.parse([], env).progress_file == "/tmp/q"


def test_run_configured_by_the_environment_only(db: Path, tmp_path: Path):
    template = sqlite_template(db, "SELECT count(*) AS n FROM users WHERE id <= {{ .inputs.upto }}",
                               {"upto": {"simple": "INTEGER"}}, {"n": {"simple": "INTEGER"}})  # fmt: skip
    (tmp_path / "task.json").write_text(json.dumps(template))
    (tmp_path / "inputs.json").write_text(json.dumps({"upto": 2}))
    out, raw, progress = tmp_path / "out", tmp_path / "raw-data", tmp_path / "progress"
    env = {
        "TASKBOX_TEMPLATE": str(tmp_path / "task.json"),
        "TASKBOX_INPUTS": str(tmp_path / "inputs.json"),
        "TASKBOX_OUTPUTS": str(out),
        "TASKBOX_RAW_OUTPUT_PREFIX": str(raw),
        "TASKBOX_PROGRESS_FILE": str(progress),
        "TASKBOX_LOG_FORMAT": "text",
        "TASKBOX_LOG_LEVEL": "WARNING",
        "TASKBOX_QUIET": "1",
    }
    proc = taskbox_run(**env)
    assert proc.returncode == 0, proc.stderr
    assert read_json(out / "outputs.json") == {"n": 2}
    assert proc.stdout == "" and "INFO" not in proc.stderr
    assert progress.read_text() == f"{runmod.STEPS}/{runmod.STEPS}"
    # TASKBOX_INPUT_<NAME> beats the inputs file; a flag beats both.
    proc = taskbox_run(**env, TASKBOX_INPUT_UPTO="5")
    assert read_json(out / "outputs.json") == {"n": 5}
    proc = taskbox_run("--input", "upto=7", **env, TASKBOX_INPUT_UPTO="5")
    assert read_json(out / "outputs.json") == {"n": 7}
    # Flags win over variables.
    proc = taskbox_run("--outputs", str(tmp_path / "flag-out"), **env)
    assert proc.returncode == 0 and read_json(tmp_path / "flag-out" / "outputs.json") == {"n": 2}


def test_executor_config_and_interface_from_the_environment(db: Path, tmp_path: Path):
    env = {
        "TASKBOX_EXECUTOR": "sqlite",
        "TASKBOX_CONFIG": json.dumps({"uri": str(db), "query_template": "SELECT max(id) AS top FROM users"}),
        "TASKBOX_INTERFACE": json.dumps({"outputs": {"top": "int"}}),
        "TASKBOX_OUTPUTS": str(tmp_path),
    }
    proc = taskbox_run(**env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"top": 10} and (tmp_path / "top").read_text() == "10"


def test_checkpoint_paths_from_the_environment_resume_a_task(tmp_path: Path):
    tests = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(tests / "sample_project"))
    try:
        from sample_tasks.tasks import resumable_sum

        template = resumable_sum.template(image="example/none:1")
    finally:
        sys.path.remove(str(tests / "sample_project"))
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    first, second = tmp_path / "cp1", tmp_path / "cp2"
    common = ("--template", str(tmp_path / "task.pb"), "--outputs", str(tmp_path / "out"))
    env = {"PYTHONPATH": str(tests / "sample_project")}
    inputs = ("--inputs", json.dumps({"n": 4, "fail_at": 2}))
    proc = taskbox_run(*common, *inputs, TASKBOX_CHECKPOINT_PATH=str(first), **env)
    assert proc.returncode == 75, proc.stderr
    proc = taskbox_run(*common, *inputs, TASKBOX_CHECKPOINT_PATH=str(second),
                       TASKBOX_PREV_CHECKPOINT=str(first), **env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_json(tmp_path / "out" / "outputs.json") == {"total": 6, "resumed_from": 2}


# ------------------------------------------------------------------ logs and progress


def test_json_log_lines_carry_level_logger_executor_and_flyte_identity(tmp_path: Path):
    proc = taskbox_run("--executor", "echo", "--input", "x=1", "--outputs", str(tmp_path),
                       FLYTE_INTERNAL_EXECUTION_ID="exec-42", FLYTE_INTERNAL_EXECUTION_PROJECT="proj",
                       FLYTE_ATTEMPT_NUMBER="2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert lines, "some log lines"
    for entry in lines:
        assert {"time", "level", "logger", "message"} <= set(entry)
    running = next(e for e in lines if e["message"].startswith("running"))
    assert running["level"] == "INFO" and running["logger"] == "taskbox.run" and running["executor"] == "echo"
    assert (running["execution"], running["project"], running["attempt"]) == ("exec-42", "proj", "2")


def test_text_logs_on_request(tmp_path: Path):
    proc = taskbox_run("--executor", "echo", "--input", "x=1", "--outputs", str(tmp_path), "--log-format", "text")
    assert proc.returncode == 0
    assert " INFO " in proc.stderr and not proc.stderr.lstrip().startswith("{")


def test_json_logs_are_redacted():
    code = (
        "import logging\n"
        "from taskbox import redaction\n"
        "from taskbox.entrypoint import runlog\n"
        "runlog.configure('json', 'INFO')\n"
        "redaction.register('hunter2-very-secret')\n"
        "logging.getLogger('taskbox.test').info('token=%s', 'hunter2-very-secret')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    entry = json.loads(proc.stderr.strip().splitlines()[-1])
    assert entry["message"] == "token=***" and "hunter2" not in proc.stderr


def test_progress_file_shows_how_far_a_failed_run_got(db: Path, tmp_path: Path):
    progress = tmp_path / "progress"
    bad = json.dumps({"uri": str(db), "query_template": "SELECT * FROM nope"})
    proc = taskbox_run("--executor", "sqlite", "--config", bad, "--outputs", str(tmp_path / "o"),
                       ARGO_PROGRESS_FILE=str(progress))  # fmt: skip
    assert proc.returncode == 1
    done, total = progress.read_text().split("/")
    assert total == str(runmod.STEPS) and 0 < int(done) < runmod.STEPS


def test_progress_bar_on_a_terminal(tmp_path: Path):
    from taskbox.entrypoint.runlog import Progress

    class Tty:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    tty = Tty()
    progress = Progress(2, str(tmp_path / "p"), stream=tty)
    assert (tmp_path / "p").read_text() == "0/2"
    progress.step("one")
    progress.step("two")
    progress.step("past the end")
    assert (tmp_path / "p").read_text() == "2/2"
    assert tty.text.splitlines()[0].startswith("[" + "#" * 12 + "." * 12 + "] 1/2 one")


def test_default_outputs_dir_is_created_and_printed(tmp_path: Path):
    proc = taskbox_run("--executor", "echo", "--input", "word=hello", "--log-format", "text", TMPDIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"word": "hello"}
    made = [p for p in tmp_path.iterdir() if p.name.startswith("taskbox-run-")]
    assert len(made) == 1 and (made[0] / "word").read_text() == "hello"
    assert str(made[0]) in proc.stderr


def test_outputs_pb_is_a_literal_map_of_declared_outputs(tmp_path: Path):
    interface = json.dumps({"inputs": {"when": "datetime"}})
    proc = taskbox_run("--executor", "echo", "--input", "when=\"2026-01-02T03:04:05Z\"",
                       "--interface", interface, "--outputs", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lm = literals_pb2.LiteralMap()
    lm.ParseFromString((tmp_path / "outputs.pb").read_bytes())
    assert MessageToDict(lm)["literals"]["when"]["scalar"]["primitive"]["datetime"] == "2026-01-02T03:04:05Z"
    assert (tmp_path / "when").read_text() == "2026-01-02T03:04:05Z"


def test_config_must_be_an_object_and_inputs_must_be_declared(db: Path, tmp_path: Path):
    proc = taskbox_run("--executor", "sqlite", "--config", "[1, 2]", "--outputs", str(tmp_path / "a"))
    assert proc.returncode == 1 and read_json(tmp_path / "a" / "error.json")["code"] == "USER:InvalidConfig"
    template = make_template("echo", {"x": simple("INTEGER")}, {"x": simple("INTEGER")})
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    proc = taskbox_run("--template", str(tmp_path / "task.pb"), "--input", "x=1", "--input", "nope=2",
                       "--outputs", str(tmp_path / "b"))  # fmt: skip
    assert proc.returncode == 1
    error = read_json(tmp_path / "b" / "error.json")
    assert error["code"] == "USER:InvalidInput" and "'nope' is not declared" in error["message"]
    proc = taskbox_run("--template", str(tmp_path / "task.pb"), "--outputs", str(tmp_path / "c"))
    assert proc.returncode == 1 and "'x' (integer) is missing" in read_json(tmp_path / "c" / "error.json")["message"]
