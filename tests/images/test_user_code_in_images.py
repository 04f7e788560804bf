"""User code in images: a flytekit-serialized ``SQLite3Task`` in the ``sqlite`` image through flytekit's
``pyflyte-execute``, and a ``@taskbox.task`` function from a code bundle in the ``python`` image."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))

import sqltesting

from helpers import ROOT, TASKBOX, commit_files, encode_inputs, put, read_literal_map, subprocess_env
from taskbox import storage
from taskbox.images import build as sdk
from taskbox.literals import ConversionContext, literal_map_to_python

pytestmark = pytest.mark.servers

GOLDEN = ROOT / "tests" / "golden" / "sql"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
SAMPLE_PROJECT = ROOT / "tests" / "sample_project"


def substitute(args: list[str], values: dict[str, str]) -> list[str]:
    return [values.get(a, a) for a in args]


@pytest.fixture
def golden_sqlite(s3_server, tmp_path):
    """The golden SQLite3Task's database at the URI flytekit serialized into it, and its template."""
    db = sqltesting.make_sqlite(tmp_path / "items.db")
    with zipfile.ZipFile(tmp_path / "items.db.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(db, "items.db")
    put(MANIFEST["sqlite_uri"], (tmp_path / "items.db.zip").read_bytes())
    from flyteidl.core import tasks_pb2

    template = tasks_pb2.TaskTemplate()
    template.ParseFromString((GOLDEN / "sqlite3_task.pb").read_bytes())
    return template


def read_results(prefix: str, template) -> list[dict]:
    types = {"results": template.interface.outputs.variables["results"].type}
    ctx = ConversionContext(raw_output_prefix="/tmp", working_dir="/tmp")
    out = literal_map_to_python(read_literal_map(storage.join(prefix, "outputs.pb")), types, ctx)
    return out["results"].to_arrow().to_pylist()


@pytest.mark.parametrize("entry", ["kubernetes-args", "pyflyte-execute-on-path"])
def test_flytekit_sqlite3_task_runs_in_the_sqlite_image(
    docker_client, variant_image, s3_base, container_env, golden_sqlite, entry
):
    template = golden_sqlite
    task = put(storage.join(s3_base, "task.pb"), (GOLDEN / "sqlite3_task.pb").read_bytes())
    inputs = put(storage.join(s3_base, "inputs.pb"), (GOLDEN / "sqlite3_inputs.pb").read_bytes())
    prefix, raw = storage.join(s3_base, "out"), storage.join(s3_base, "raw")
    args = substitute(
        list(template.container.args),
        {
            "{{.input}}": inputs,
            "{{.outputPrefix}}": prefix,
            "{{.rawOutputDataPrefix}}": raw,
            "{{.taskTemplatePath}}": task,
        },
    )
    assert args[0] == "pyflyte-execute" and args[-1] == "flytekit.extras.sqlite3.task.SQLite3TaskExecutor"
    if entry == "kubernetes-args":  # a pod keeps the image's ENTRYPOINT (taskbox) and appends the args
        result = sdk.run(docker_client, variant_image("sqlite"), args, environment=container_env)
    else:  # the alias on the PATH, as in flytekit's own images
        result = sdk.run(
            docker_client, variant_image("sqlite"), args[1:], entrypoint=[args[0]], environment=container_env
        )
    assert result.exit_code == 0, result.stderr[-4000:]
    assert commit_files(prefix) == {"outputs.pb"}, result.stderr[-4000:]
    rows = read_results(prefix, template)
    assert [row["id"] for row in rows] == list(range(1, 11))
    assert rows[2] == {"id": 3, "name": "name-3", "score": 0.75}


@pytest.fixture(scope="module")
def bundle_uri(s3_server) -> str:
    """``taskbox bundle tests/sample_project --to s3://...`` (on the host, as a CI job would)."""
    to = s3_server.uri(f"images-bundle-{uuid.uuid4().hex[:8]}/bundles")
    proc = subprocess.run(
        [TASKBOX, "bundle", str(SAMPLE_PROJECT), "--to", to],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "command", [("taskbox", "fast-execute"), ("pyflyte-fast-execute",)], ids=["taskbox", "flytekit-names"]
)
def test_user_bundle_runs_in_the_python_image(
    docker_client, variant_image, s3_base, container_env, bundle_uri, command
):
    inner = ("taskbox", "execute") if command[0] == "taskbox" else ("pyflyte-execute",)
    inputs = put(storage.join(s3_base, "inputs.pb"), encode_inputs({"a": 40, "b": 2}, {"a": int, "b": int}))
    prefix, raw = storage.join(s3_base, "out"), storage.join(s3_base, "raw")
    args = [
        *command,
        "--additional-distribution",
        bundle_uri,
        "--dest-dir",
        "/tmp/dest",
        "--",
        *inner,
        "--inputs",
        inputs,
        "--output-prefix",
        prefix,
        "--raw-output-data-prefix",
        raw,
        "--resolver",
        "taskbox.function",
        "--",
        "task-module",
        "sample_tasks.tasks",
        "task-name",
        "add",
    ]
    result = sdk.run(docker_client, variant_image("python"), args, environment=container_env)
    assert result.exit_code == 0, result.stderr[-4000:]
    assert commit_files(prefix) == {"outputs.pb"}, result.stderr[-4000:]
    assert read_literal_map(storage.join(prefix, "outputs.pb")).literals["o0"].scalar.primitive.integer == 42
