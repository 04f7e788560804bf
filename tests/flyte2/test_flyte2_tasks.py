"""taskbox.flyte2's prebuilt-executor tasks in flyte-sdk workflows: local runs, serialization, and ``a0`` runs.

The SDK side (defining tasks, ``flyte.run`` in local mode, ``translate_task_to_wire``, reading outputs back)
runs in ``.venv-flyte2`` through ``prebuilt_tool.py``; the image side runs the serialized args with
``.venv/bin/taskbox a0`` (no SDK, as in the executor images). Servers and databases are real, on 127.0.0.1
and in ``tmp_path``.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from flyteidl.core import interface_pb2, tasks_pb2
from sdk import FLYTE_A0, PYTHON, fill, require_sdk, run_a0, sdk

from helpers import TASKBOX, commit_files, subprocess_env
from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, decode_template

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "http"))

import httptesting
import jobserver

TOOL = Path(__file__).with_name("prebuilt_tool.py")
pytestmark = pytest.mark.timeout(180)

TRACKS = [(i, f"Track {i}", "AC/DC" if i % 3 == 0 else "Other") for i in range(1, 21)]
SECRET = "s3cret-token-value"


def _rows(n: int) -> list[dict[str, object]]:
    return [{"TrackId": i, "Name": name, "Composer": composer} for i, name, composer in TRACKS[:n]]


@pytest.fixture
def env(tmp_path):
    """The configuration the cases read: a SQLite file, the same zipped, the loopback servers."""
    db = tmp_path / "chinook.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE tracks (TrackId INTEGER PRIMARY KEY, Name TEXT, Composer TEXT)")
        conn.executemany("INSERT INTO tracks VALUES (?, ?, ?)", TRACKS)
    conn.close()
    with zipfile.ZipFile(tmp_path / "chinook.zip", "w") as zf:
        zf.write(db, "chinook.db")
    with httptesting.running() as http, jobserver.running() as jobs:
        yield {
            "TBX_DB": str(db),
            "TBX_DB_ZIP": str(tmp_path / "chinook.zip"),
            "TBX_HTTP": f"http://127.0.0.1:{http.server_address[1]}",
            "TBX_JOBS": jobs.base,
            "TASKBOX_HTTP_ALLOW": "127.0.0.1/32",
            "TASKBOX_HTTP_BACKOFF_BASE_S": "0.01",
            "_FSEC_API_TOKEN": SECRET,
            "servers": (http, jobs),  # type: ignore[dict-item]
        }


def tool(env, *args: str, cwd: str | None = None) -> dict:
    """Run ``prebuilt_tool.py ARGS`` with the SDK and return its JSON answer."""
    require_sdk()
    extra = {k: v for k, v in env.items() if isinstance(v, str)}
    proc = subprocess.run([str(PYTHON), str(TOOL), *args], capture_output=True, text=True, timeout=150, cwd=cwd,
                          env=subprocess_env(**extra))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def a0(env, tmp_path: Path, prepared: dict, executable=TASKBOX) -> Path:
    """Fill the serialized args as the v2 backend does and run them; return the outputs prefix."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)  # flyte's runtime writes into it without creating it
    args = fill(prepared["args"], str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw"))
    checkpoints = {"{{.checkpointOutputPrefix}}": str(tmp_path / "cp"), "{{.prevCheckpointPrefix}}": ""}
    args = [checkpoints.get(arg, arg) for arg in args]
    proc = run_a0(executable, args, cwd=str(tmp_path), **{k: v for k, v in env.items() if isinstance(v, str)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


EXPECTED = {
    "sqlite": _rows(5),
    "sqlite-zip": sum(c == "AC/DC" for _, _, c in TRACKS) * 1000 + 18,
    "sql": [{"TrackId": i, "Name": f"Track {i}"} for i in (1, 2, 3)],
    "http": "200 /echo/a%2Fb%20c",
    "http-job": "m-ds1",
}
#: What the prebuilt task itself returns (the workflows above reshape some outputs).
TASK_EXPECTED = {**EXPECTED, "sqlite-zip": [6, 18], "http": ["/echo/a%2Fb%20c", 200]}


# ------------------------------------------------------------------ local runs (flyte.run, local mode)


@pytest.mark.parametrize("case", list(EXPECTED))
def test_workflow_awaits_the_task_in_a_local_flyte_run(env, tmp_path, case):
    answer = tool(env, "local", case, str(tmp_path))
    assert answer == {"result": EXPECTED[case]}
    http, jobs = env["servers"]
    if case == "http":
        request = http.requests[-1]
        assert request["headers"]["Authorization"] == f"Bearer {SECRET}"  # the secret, from _FSEC_API_TOKEN
        assert request["headers"]["X-Item"] == "a/b c"
    if case == "http-job":
        assert len(jobs.submissions) == 1 and jobs.cancels == []


@pytest.mark.parametrize("case", ["sqlite", "sqlite-zip", "http"])
def test_the_task_alone_is_a_flyte_run_root(env, tmp_path, case):
    assert tool(env, "local", case, str(tmp_path), "task") == {"result": TASK_EXPECTED[case]}


# ------------------------------------------------------------------ serialized, run under a0 (no SDK)


def test_task_classes_default_to_the_digest_pinned_image_of_the_installed_version(tmp_path):
    from taskbox import __version__
    from taskbox.images.lock import LockEntry, record

    lock = tmp_path / "catalog.lock.toml"
    digest = "sha256:" + "2f" * 32
    record(lock, [LockEntry(v, f"127.0.0.1:5000/acme/executor-{v}:{__version__}-py3.11", digest, __version__)
                  for v in ("sqlite", "sql", "http")])  # fmt: skip
    pinned = {v: f"127.0.0.1:5000/acme/executor-{v}:{__version__}-py3.11@{digest}" for v in ("sqlite", "sql", "http")}
    assert tool({}, "images", str(lock)) == {**pinned, "http-job": pinned["http"]}


def test_serialized_sqlite_task_is_the_a0_contract(env, tmp_path):
    prepared = tool(env, "prepare", "sqlite", str(tmp_path))
    args = prepared["args"]
    assert prepared["command"] == [] and args[0] == "a0"
    assert args[args.index("--inputs") + 1] == "{{.input}}"
    assert args[args.index("--outputs-path") + 1] == "{{.outputPrefix}}"
    tail = args[args.index("--resolver") :]
    assert tail[:3] == ["--resolver", PREBUILT_RESOLVER, "template"] and tail[4:] == ["executor", "sqlite"]
    assert prepared["image"].startswith("ghcr.io/taskbox/executor-sqlite:") and prepared["type"] == "sqlite"
    assert prepared["custom"]["uri"] == env["TBX_DB"]
    assert "LIMIT {{ .inputs.n }}" in prepared["custom"]["query_template"]
    # The encoded template: the same custom and interface as the SDK's own template, nothing else needed.
    encoded = decode_template(tail[3], 1 << 20)
    assert encoded == base64.b64decode(prepared["template"])  # the task's template_bytes(), exactly
    template = tasks_pb2.TaskTemplate.FromString(encoded)
    assert (template.type, template.id.name) == ("sqlite", "top_tracks")
    assert template.interface == interface_pb2.TypedInterface.FromString(base64.b64decode(prepared["interface"]))
    assert dict(template.custom) == {k: template.custom[k] for k in prepared["custom"]}
    assert not template.HasField("container")


@pytest.mark.parametrize("case", list(EXPECTED))
def test_serialized_task_runs_under_taskbox_a0_and_the_sdk_reads_its_outputs(env, tmp_path, case):
    prepared = tool(env, "prepare", case, str(tmp_path))
    out = a0(env, tmp_path, prepared)
    assert commit_files(str(out)) == {"outputs.pb"}
    assert tool(env, "outputs", case, str(out / "outputs.pb")) == {"result": TASK_EXPECTED[case]}
    http, jobs = env["servers"]
    if case == "http":
        assert http.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
        assert {"key": "token", "group": "api", "envVar": "_FSEC_API_TOKEN"}.items() <= prepared["secrets"][0].items()
        assert "a/b c" not in " ".join(prepared["args"])  # values never travel in the args
    if case == "http-job":
        assert len(jobs.submissions) == 1 and any((tmp_path / "cp").iterdir())  # the job's handle


def test_flytes_own_a0_loads_the_task_through_the_resolver(env, tmp_path):
    """An image with both the SDK and taskbox: flyte's runtime loads the task with PrebuiltTaskResolver."""
    prepared = tool(env, "prepare", "sqlite", str(tmp_path))
    out = a0(env, tmp_path, prepared, executable=FLYTE_A0)
    assert commit_files(str(out)) == {"outputs.pb"}
    assert tool(env, "outputs", "sqlite", str(out / "outputs.pb")) == {"result": TASK_EXPECTED["sqlite"]}


def test_resolver_loads_the_same_template_back(env):
    resolved = tool(env, "resolve", "sqlite-zip")
    assert resolved == {
        "import_path": PREBUILT_RESOLVER,
        "class": "PrebuiltTask",
        "same_template": True,
        "same_config": True,
        "inputs": ["composer"],
        "outputs": {"n": "int", "last": "int"},
        "task_type": "sqlite",
    }


def test_override_keeps_the_task_and_versions_the_cache_by_its_template(env):
    assert tool(env, "override", "sqlite") == {
        "class": ["SQLiteTask", "SQLiteTask"],
        "retries": 2,
        "same_config": True,
        "moved_uri": "/elsewhere.db",
        "versions_differ": True,
        "policies": ["TemplatePolicy"],
        "task_type": "sqlite",
        "pickles": "SQLiteTask",
        "secrets_after_override": [],
    }


def test_awaiting_the_task_outside_a_run_runs_it_here(env):
    assert tool(env, "direct", "sqlite") == {"result": TASK_EXPECTED["sqlite"]}


def test_abandoning_the_call_cancels_the_job(env):
    assert tool(env, "cancel", "http-job-held", "1.5") == {"result": "timed out"}
    _, jobs = env["servers"]
    assert len(jobs.submissions) == 1 and jobs.cancels == ["job-1"] and jobs.state("job-1") == "cancelled"


# ------------------------------------------------------------------ errors


def test_bad_config_is_a_user_error_locally(env, tmp_path):
    # The workflow catches it as a flyte error with taskbox's code.
    assert tool(env, "local", "bad-query", str(tmp_path)) == {"result": "caught RuntimeUserError SqlRejected"}
    error = tool(env, "local", "bad-query", str(tmp_path), "task")["error"]
    assert (error["type"], error["code"], error["kind"]) == ("RuntimeUserError", "SqlRejected", "user"), error
    assert "Variable limit in Query" in error["message"]


def test_bad_config_is_a_user_error_document_under_a0(env, tmp_path):
    prepared = tool(env, "prepare", "bad-query", str(tmp_path))
    out = a0(env, tmp_path, prepared)
    assert commit_files(str(out)) == {"error.pb"}
    error = sdk("error", str(out / "error.pb"))
    assert (error["code"], error["kind"], error["recoverable"]) == ("SqlRejected", "USER", False), error
    assert "Variable limit in Query" in error["message"]


@pytest.mark.parametrize(
    ("what", "kind", "words"),
    [
        ("bad-option", "ConfigError", "timeout_seconds"),
        ("unknown-option", "ConfigError", "no_such_field"),
        ("missing-uri", "TypeError", "'uri'"),
        ("bad-method", "ConfigError", "'GET FOO' is not an HTTP method"),
        ("env-plugin-config", "TypeError", "'stub': a PrebuiltConfig configures a prebuilt task, not a function"),
    ],
)
def test_a_config_that_does_not_validate_fails_where_the_task_is_defined(env, what, kind, words):
    defined = tool(env, "define", what)
    assert defined["type"] == kind and words in defined["message"], defined


# ------------------------------------------------------------------ without the SDK (.venv): config, runner, resolver


def _interface(inputs: dict, outputs: dict) -> bytes:
    from taskbox.literals import TypeEngine

    def variables(types: dict) -> interface_pb2.VariableMap:
        return interface_pb2.VariableMap(
            variables={n: interface_pb2.Variable(type=TypeEngine.to_literal_type(t)) for n, t in types.items()}
        )

    return interface_pb2.TypedInterface(inputs=variables(inputs), outputs=variables(outputs)).SerializeToString()


def test_config_is_validated_normalised_and_comparable(tmp_path):
    from taskbox.errors import ConfigError, ExecutorNotFound
    from taskbox.flyte2 import PrebuiltConfig

    config = PrebuiltConfig("sqlite", {"query_template": "SELECT 1 AS n", "uri": "/data/a.db", "timeout_seconds": 5})
    assert config.task_type == "sqlite" and config.image_variant == "sqlite" and config.secrets == ()
    assert config.custom["timeout_seconds"] == 5.0 and config.custom["version"] == 1  # the model's dump
    same = PrebuiltConfig("sqlite", dict(config.custom))
    assert same == config and hash(same) == hash(config)
    moved = config.updated(uri="s3://bucket/b.db")
    assert moved.custom["uri"] == "s3://bucket/b.db" and moved != config
    with pytest.raises(ConfigError, match="timeout_seconds"):
        config.updated(timeout_seconds=-1)
    with pytest.raises(ExecutorNotFound):
        PrebuiltConfig("no-such-executor", {})
    assert PrebuiltConfig("sql", {"query_template": "SELECT 1", "uri": "sqlite:///x.db"}).task_type == "sqlalchemy"


def test_config_secrets_follow_the_config():
    from taskbox.flyte2 import PrebuiltConfig
    from taskbox.flyte2.config import SecretSpec

    config = PrebuiltConfig(
        "http",
        {"url": "https://api.example.com/x", "secret_headers": {"Authorization": {"group": "api", "key": "token"}}},
    )
    assert config.secrets == (SecretSpec("api", "token", None, None),)
    assert config.updated(secret_headers={}).secrets == ()
    sql = PrebuiltConfig(
        "sql",
        {"query_template": "SELECT 1", "uri": "postgresql://u@db/x",
         "secret_connect_args": {"password": {"group": "db", "key": "pw", "env_var": "DB_PW"}}},
    )  # fmt: skip
    assert sql.secrets == (SecretSpec("db", "pw", None, "DB_PW"),)


def test_template_is_deterministic_and_the_in_process_runner_runs_it(env, tmp_path):
    from taskbox.entrypoint.cmdline_v2 import encode_template
    from taskbox.flyte2 import PrebuiltConfig
    from taskbox.flyte2.runner import RunPaths, run_template
    from taskbox.literals import python_to_literal_map
    from taskbox.literals.types import StructuredDataset

    config = PrebuiltConfig("sqlite", {"query_template": "SELECT TrackId FROM tracks LIMIT {{ .inputs.n }}",
                                       "uri": env["TBX_DB"]})  # fmt: skip
    interface = _interface({"n": int}, {"results": StructuredDataset})
    data = config.template("top", interface)
    assert data == PrebuiltConfig("sqlite", dict(config.custom)).template("top", interface)
    template = tasks_pb2.TaskTemplate.FromString(data)
    assert (template.id.name, template.type, template.metadata.runtime.flavor) == ("top", "sqlite", "taskbox")
    inputs = python_to_literal_map({"n": 4}, {"n": int}).SerializeToString()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    paths = RunPaths(str(scratch), str(tmp_path / "out"), str(tmp_path / "raw"))
    result = run_template(encode_template(data), "sqlite", inputs, paths)
    assert result.error is None and result.outputs is not None
    assert commit_files(str(tmp_path / "out")) == {"outputs.pb"}
    # A config that does not fit the interface: a0's error document, USER and not retried.
    broken = PrebuiltConfig("sqlite", {"query_template": "SELECT {{ .inputs.x }}", "uri": env["TBX_DB"]})
    failed = run_template(encode_template(broken.template("b", interface)), "sqlite", inputs, paths)
    assert failed.outputs is None and failed.error is not None
    assert failed.error[:3] == ("SqlRejected", "USER", False) and "Variable x" in failed.error.message
    assert commit_files(str(tmp_path / "out")) == {"error.pb"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["template", "tbx1:AA"], {"template": "tbx1:AA"}),
        (["--", "template", "tbx1:AA", "executor", "sqlite"], {"template": "tbx1:AA", "executor": "sqlite"}),
        (["executor", "sqlite", "template", "tbx1:AA"], {"template": "tbx1:AA", "executor": "sqlite"}),
        ([], None),
        (["template"], None),
        (["executor", "sqlite"], None),
        (["template", "a", "template", "b"], None),
        (["template", "a", "module", "x"], None),
    ],
)
def test_resolver_args_grammar(args, expected):
    from taskbox.errors import TemplateError
    from taskbox.flyte2.resolver import parse_loader_args

    if expected is None:
        with pytest.raises(TemplateError, match="template <encoded>"):
            parse_loader_args(args)
    else:
        assert parse_loader_args(args) == expected


def test_local_runs_keep_a_checkpoint_per_action_and_hand_it_over_on_retry(tmp_path, monkeypatch):
    import tempfile
    from types import SimpleNamespace

    from taskbox.flyte2.local import run_paths

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the scratch directories
    action = tmp_path / "action"
    action.mkdir()
    shared = SimpleNamespace(checkpoint_path="/shared", prev_checkpoint_path="/shared-prev")
    tctx = SimpleNamespace(mode="local", output_path=str(action), raw_data_path=SimpleNamespace(path=str(tmp_path)),
                           checkpoint_paths=shared)  # fmt: skip
    first = run_paths(tctx, "t")
    assert (first.checkpoint_path, first.prev_checkpoint) == (str(action / "taskbox-checkpoint"), None)
    assert first.output_prefix.startswith(str(tmp_path / "taskbox-")) and first.raw_output_prefix == str(tmp_path)
    Path(first.checkpoint_path).mkdir()
    Path(first.checkpoint_path, "handle").write_text("job-1")
    second = run_paths(tctx, "t")  # the next attempt: the last attempt's checkpoint is "previous"
    assert second.prev_checkpoint == str(action / "taskbox-prev-checkpoint")
    assert Path(second.prev_checkpoint, "handle").read_text() == "job-1" and not Path(second.checkpoint_path).exists()
    remote = SimpleNamespace(**{**vars(tctx), "mode": "remote", "output_path": "s3://b/o"})
    in_cluster = run_paths(remote, "t")  # the action's own checkpoint prefixes
    assert (in_cluster.checkpoint_path, in_cluster.prev_checkpoint) == ("/shared", "/shared-prev")
    direct = run_paths(SimpleNamespace(raw_data_path=None), "t")  # no task context: a kept temporary directory
    assert direct.checkpoint_path and direct.output_prefix.endswith("/out")


def test_task_classes_say_they_need_the_sdk(monkeypatch):
    import taskbox.flyte2

    monkeypatch.setitem(sys.modules, "flyte", None)  # as in an image without the SDK
    monkeypatch.delitem(sys.modules, "taskbox.flyte2.tasks", raising=False)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'taskbox\[flyte2\]'"):
        taskbox.flyte2.SQLiteTask  # noqa: B018
    assert taskbox.flyte2.PrebuiltTaskResolver().import_path == PREBUILT_RESOLVER  # no SDK needed
