"""taskbox.flytekit's tasks in flytekit workflows: local runs, ``pyflyte package``, the args under ``taskbox execute``.

The flytekit side (defining the tasks, plain calls and ``pyflyte run``, ``pyflyte package``, encoding inputs and
reading outputs back) runs in ``.venv-flytekit`` through ``fk_tool.py``; the image side runs the serialized args
with ``.venv/bin/taskbox`` (no flytekit, as in the executor images), with propeller's placeholders filled in.
Servers and databases are real, on 127.0.0.1 and under the pytest temporary directory.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fk import CLASS_PATH, PYFLYTE_EXECUTE, TEMPLATE_RESOLVER, fill, package, placeholders, pyflyte, tool

from helpers import TASKBOX, commit_files, read_error, subprocess_env

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "http"))

import httptesting
import jobserver

pytestmark = pytest.mark.timeout(300)

TRACKS = [(i, f"Track {i}", "AC/DC" if i % 3 == 0 else "Other") for i in range(1, 21)]
SECRET = "s3cret-token-value"


def _rows(n: int) -> list[dict[str, object]]:
    return [{"TrackId": i, "Name": name} for i, name, _ in TRACKS[:n]]


#: task -> (inputs, the outputs flytekit reads back)
CASES = {
    "top_tracks": ({"n": 3}, {"results": _rows(3)}),
    "get_item": ({"item": "a/b c"}, {"path": "/echo/a%2Fb%20c", "status": 200}),
    "tracks_sql": ({"n": 2}, {"results": _rows(2)}),
    "train": ({"dataset": "ds1"}, {"model": "m-ds1"}),
}
EXECUTORS = {"top_tracks": "sqlite", "get_item": "http", "tracks_sql": "sql", "train": "http-job", "broken": "sqlite"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """What fk_workflows.py reads: a SQLite file and the loopback servers (module-wide: the URLs are in the specs)."""
    db = tmp_path_factory.mktemp("db") / "chinook.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE tracks (TrackId INTEGER PRIMARY KEY, Name TEXT, Composer TEXT)")
        conn.executemany("INSERT INTO tracks VALUES (?, ?, ?)", TRACKS)
    conn.close()
    with httptesting.running() as http, jobserver.running() as jobs:
        yield {
            "TBX_DB": str(db),
            "TBX_HTTP": f"http://127.0.0.1:{http.server_address[1]}",
            "TBX_JOBS": jobs.base,
            "TASKBOX_HTTP_ALLOW": "127.0.0.1/32",
            "TASKBOX_HTTP_BACKOFF_BASE_S": "0.01",
            "_FSEC_API_TOKEN": SECRET,
            "servers": (http, jobs),  # type: ignore[dict-item]
        }


@pytest.fixture(scope="module")
def specs(env, tmp_path_factory):
    """``pyflyte package`` of fk_workflows.py: the task specs, and the directory holding each ``<name>.task.pb``."""
    out = tmp_path_factory.mktemp("package")
    return package(env, "fk_workflows", out), out


def _taskbox_execute(env, work: Path, args: list[str], name: str) -> subprocess.CompletedProcess[str]:
    """Run the serialized args as a taskbox image does (ENTRYPOINT ``taskbox``; ``pyflyte-execute`` is an alias)."""
    extra = {k: v for k, v in env.items() if isinstance(v, str)}
    command = [TASKBOX, *fill(args, placeholders(work, name))]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=subprocess_env(**extra))


def _prepare(env, specs, work: Path, name: str) -> list[str]:
    """Copy the task's template where ``{{.taskTemplatePath}}`` points and write ``inputs.pb`` with flytekit."""
    found, out = specs
    shutil.copy(out / f"{name}.task.pb", work / f"{name}.task.pb")
    tool(env, "inputs", "fk_workflows", name, str(work), json.dumps(CASES.get(name, ({"n": 2}, None))[0]))
    return found[name]["args"]


# ------------------------------------------------------------------ local runs


def test_workflow_runs_locally_as_a_plain_python_call(env):
    answer = tool(env, "local", "fk_workflows", "wf", json.dumps({"n": 3, "item": "a/b c"}))
    expected = {"tracks": ["Track 1", "Track 2", "Track 3"], "http": "200 /echo/a%2Fb%20c"}
    assert answer == {"result": json.dumps(expected)}
    http, _ = env["servers"]
    request = http.requests[-1]
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"  # the secret, from _FSEC_API_TOKEN
    assert request["headers"]["X-Item"] == "a/b c"


def test_sql_and_http_job_tasks_run_locally_in_a_workflow(env):
    _, jobs = env["servers"]
    before = len(jobs.submissions)
    answer = tool(env, "local", "fk_workflows", "more", json.dumps({"n": 2, "dataset": "ds1"}))
    assert answer == {"result": json.dumps({"rows": 2, "model": "m-ds1"})}
    assert len(jobs.submissions) == before + 1


def test_workflow_runs_under_pyflyte_run(env, tmp_path):
    here = Path(__file__).with_name("fk_workflows.py")
    proc = pyflyte(env, "run", str(here), "wf", "--n", "2", "--item", "x y", cwd=str(tmp_path))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"tracks": ["Track 1", "Track 2"], "http": "200 /echo/x%20y"}


# ------------------------------------------------------------------ serialized by pyflyte package


def test_package_serializes_taskbox_tasks_as_flytekit_template_resolver_args(env, specs):
    found, _ = specs
    assert {n for n, s in found.items() if s["taskbox"]} == set(EXECUTORS)
    assert not found["fk_workflows.combine"]["taskbox"]  # the Python @task keeps flytekit's own resolver
    for name, executor in EXECUTORS.items():
        spec = found[name]
        args = spec["args"]
        assert spec["command"] == [] and args[0] == "pyflyte-execute"
        flags = dict(zip(args[1 : args.index("--resolver")][::2], args[2 : args.index("--resolver")][::2], strict=True))
        assert flags["--inputs"] == "{{.input}}" and flags["--output-prefix"] == "{{.outputPrefix}}"
        assert flags["--raw-output-data-prefix"] == "{{.rawOutputDataPrefix}}"
        checkpoints = {"--checkpoint-path": "{{.checkpointOutputPrefix}}",
                       "--prev-checkpoint": "{{.prevCheckpointPrefix}}"}  # fmt: skip
        assert (checkpoints.items() <= flags.items()) == (executor == "http-job"), args  # async: the job's handle
        assert args[args.index("--resolver") :] == [
            "--resolver", TEMPLATE_RESOLVER, "--", "{{.taskTemplatePath}}", CLASS_PATH + executor
        ]  # fmt: skip
    assert [found[n]["type"] for n in CASES] == ["sqlite", "http", "sqlalchemy", "http-job"]
    # the catalog's (pinned by digest once published), not pyflyte's --image
    images = {n: found[n]["image"].split("@")[0].rsplit(":", 1)[0] for n in CASES}
    assert images == {
        "top_tracks": "ghcr.io/taskbox/executor-sqlite",
        "get_item": "ghcr.io/taskbox/executor-http",
        "tracks_sql": "ghcr.io/taskbox/executor-sql",
        "train": "ghcr.io/taskbox/executor-http",
    }
    top = found["top_tracks"]["custom"]
    assert top["uri"] == env["TBX_DB"] and top["version"] == 1
    assert top["query_template"] == "SELECT TrackId, Name FROM tracks ORDER BY TrackId LIMIT {{ .inputs.n }}"
    item = found["get_item"]
    assert item["secrets"] == [{"group": "api", "key": "token"}] and item["timeout"] == 300
    assert item["custom"]["secret_headers"]["Authorization"]["prefix"] == "Bearer "
    assert SECRET not in json.dumps(found)  # secrets travel as references only
    assert found["top_tracks"]["interface"]["outputs"]["variables"]["results"]["type"] == {"structuredDatasetType": {}}


def test_fast_registration_leaves_the_taskbox_tasks_args_alone(env, specs, tmp_path):
    """``pyflyte register`` copies code by default: only the Python task's args are wrapped (pyflyte-fast-execute)."""
    found, _ = specs
    fast = package(env, "fk_workflows", tmp_path, "--copy", "auto")
    for name in EXECUTORS:
        assert fast[name]["args"] == found[name]["args"]
    assert fast["fk_workflows.combine"]["args"][0] == "pyflyte-fast-execute"


@pytest.mark.parametrize("name", list(CASES))
def test_serialized_args_run_under_taskbox_execute_and_flytekit_reads_the_outputs(env, specs, tmp_path, name):
    assert importlib.util.find_spec("flytekit") is None  # the image's side: taskbox only
    args = _prepare(env, specs, tmp_path, name)
    proc = _taskbox_execute(env, tmp_path, args, name)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert commit_files(str(tmp_path / "out")) == {"outputs.pb"}, proc.stderr[-4000:]
    inputs, expected = CASES[name]
    read_back = tool(env, "outputs", "fk_workflows", name, str(tmp_path / "out" / "outputs.pb"))
    assert read_back == {"result": expected}
    assert tool(env, "task", "fk_workflows", name, json.dumps(inputs)) == read_back  # the local run: the same
    if name == "train":
        assert any((tmp_path / "checkpoint").iterdir())  # the job's handle, where propeller keeps checkpoints
    if name == "get_item":
        http, _ = env["servers"]
        assert http.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("name", ["top_tracks", "get_item"])
def test_flytekits_own_entrypoint_runs_the_same_args_through_the_shim_executor(env, specs, tmp_path, name):
    """An image with flytekit and taskbox: pyflyte-execute imports taskbox.flytekit.executors.<name> and runs it."""
    args = _prepare(env, specs, tmp_path, name)
    extra = {k: v for k, v in env.items() if isinstance(v, str)}
    command = [str(PYFLYTE_EXECUTE), *fill(args, placeholders(tmp_path, name))[1:]]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=subprocess_env(**extra))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert commit_files(str(tmp_path / "out")) == {"outputs.pb"}, proc.stderr[-4000:]
    read_back = tool(env, "outputs", "fk_workflows", name, str(tmp_path / "out" / "outputs.pb"))
    assert read_back == {"result": CASES[name][1]}


# ------------------------------------------------------------------ errors


def test_a_failing_task_raises_taskboxs_error_locally(env):
    answer = tool(env, "task", "fk_workflows", "broken", json.dumps({"n": 2}))
    error = answer["error"]
    assert (error["type"], error["module"]) == ("TaskFailed", "taskbox.flytekit.executors"), error
    assert (error["code"], error["origin"], error["recoverable"]) == ("USER:SqlRejected", "USER", False), error
    assert "Variable limit in Query" in error["message"]


def test_a_failing_task_commits_the_same_error_under_taskbox_and_under_flytekits_entrypoint(env, specs, tmp_path):
    args = _prepare(env, specs, tmp_path, "broken")
    proc = _taskbox_execute(env, tmp_path, args, "broken")
    assert proc.returncode == 0 and commit_files(str(tmp_path / "out")) == {"error.pb"}, proc.stderr[-4000:]
    error = read_error(str(tmp_path / "out"))
    assert (error.code, error.kind, error.origin) == ("USER:SqlRejected", 0, 1)  # NON_RECOVERABLE, USER
    shutil.rmtree(tmp_path / "out")
    command = [str(PYFLYTE_EXECUTE), *fill(args, placeholders(tmp_path, "broken"))[1:]]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert proc.returncode == 0 and commit_files(str(tmp_path / "out")) == {"error.pb"}, proc.stderr[-4000:]
    flytekits = tool(env, "error", str(tmp_path / "out" / "error.pb"))
    assert (flytekits["code"], flytekits["kind"], flytekits["origin"]) == ("USER:SqlRejected", 0, 1), flytekits
    assert "Variable limit in Query" in flytekits["message"]


@pytest.mark.parametrize(
    ("what", "kind", "words"),
    [
        ("bad-option", "ConfigError", "invalid sqlite config: timeout_seconds"),
        ("unknown-option", "ConfigError", "no_such_field"),
        ("missing-uri", "TypeError", "'uri'"),
        ("bad-method", "ConfigError", "'GET FOO' is not an HTTP method"),
        ("bad-job", "ConfigError", "job_fields has no 'run'"),
        ("unknown-executor", "ExecutorNotFound", "no executor named 'no-such-executor'"),
        ("class-path-executor", "ConfigError", "executor must be a registry name"),
        ("plugin-without-image", "ValueError", "executor 'test-shout' is not in a taskbox catalog image"),
        ("bad-env-var", "ValueError", "Invalid environment variable name"),
        ("metadata-and-fields", "TypeError", "pass either metadata= or its fields"),
    ],
)
def test_a_config_that_does_not_validate_fails_where_the_task_is_defined(env, what, kind, words):
    defined = tool(env, "define", what)
    assert defined["type"] == kind and words in defined["message"], defined


def test_task_classes_default_to_the_digest_pinned_image_of_the_installed_version(env, tmp_path):
    from taskbox import __version__
    from taskbox.images.lock import LockEntry, record

    lock = tmp_path / "catalog.lock.toml"
    digest = "sha256:" + "5e" * 32
    record(lock, [LockEntry(v, f"127.0.0.1:5000/acme/executor-{v}:{__version__}-py3.11", digest, __version__)
                  for v in ("sqlite", "sql", "http")])  # fmt: skip
    pinned = {v: f"127.0.0.1:5000/acme/executor-{v}:{__version__}-py3.11@{digest}" for v in ("sqlite", "sql", "http")}
    assert tool(env, "images", str(lock)) == {**pinned, "http-job": pinned["http"]}


def test_flytekit_options_become_task_metadata_and_cache_is_versioned_by_the_template(env):
    answer = tool(env, "metadata")
    assert answer["discoverable"] and answer["retries"] == 3 and answer["interruptible"] is True
    assert len(answer["version"]) == 32 and answer["same_version"] and answer["moved_version_differs"]
    assert answer["pinned"] == ["v7", "registry.example/sqlite:1"]
    assert answer["config_is_the_model"] == "SQLiteConfig"
    assert answer["secrets"] == [  # the config's, then the user's own
        ["api", "token", None, "ANY"],
        ["db", "pw", "DB_PW", "ENV_VAR"],
        ["extra", "k", None, "ANY"],
    ]
    assert answer["cpu"] == ["2"]


def test_error_documents_map_to_flytekits_exceptions(env):
    assert tool(env, "mapping") == {
        "user": {
            "local": ["TaskFailed", "USER:SqlRejected", "USER", False],
            "remote": ["FlyteUserRuntimeException", "TaskFailed", "USER:SqlRejected"],
        },
        "user-recoverable": {  # a FlyteRecoverableException: flytekit's entrypoint writes RECOVERABLE
            "local": ["RecoverableTaskFailed", "USER:Recoverable", "USER", True],
            "remote": ["FlyteUserRuntimeException", "RecoverableTaskFailed", "USER:Recoverable"],
        },
        "system": {  # left unwrapped: flytekit's rule for unknown failures is SYSTEM, recoverable
            "local": ["TaskFailed", "SYSTEM:StorageTransient", "SYSTEM", True],
            "remote": ["TaskFailed", "TaskFailed", "SYSTEM:StorageTransient"],
        },
        "system-fatal": {  # flytekit's entrypoint writes code SYSTEM, NON_RECOVERABLE for this wrapper
            "local": ["TaskFailed", "SYSTEM:Unknown", "SYSTEM", False],
            "remote": ["FlyteNonRecoverableSystemException", "TaskFailed", None],
        },
    }


# ------------------------------------------------------------------ a plugin's task class (examples/greet-executor)


def test_the_example_plugins_task_runs_locally_and_serializes_to_its_image(env, tmp_path):
    answer = tool({**env, "TBX_GREET_IMAGE": "greet:test"}, "local", "fk_greet", "hello", json.dumps({"name": "Ada"}))
    assert answer == {"result": "HI, ADA!"}
    found = package({"TBX_GREET_IMAGE": "greet:test"}, "fk_greet", tmp_path)
    greet = found["greet"]
    assert (greet["type"], greet["image"], greet["custom"], greet["retries"]) == (
        "greet", "greet:test", {"greeting": "Hi", "version": 1.0}, 1
    )  # fmt: skip
    assert greet["args"][-2:] == ["{{.taskTemplatePath}}", CLASS_PATH + "greet"]
