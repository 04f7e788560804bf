"""Each executor end to end inside its image, with the exact container args a Flyte template carries.

The template and the inputs are in the loopback S3 server; the container gets the template's args as a
pod does (Kubernetes appends them to the image's ENTRYPOINT ``taskbox``), with propeller's placeholders
filled in, runs as uid 65532 on a read-only root filesystem, and reaches S3 (and PostgreSQL, and the
HTTP server) on 127.0.0.1 through the host's network. The outputs are read back from S3 and checked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))

import httptesting
import sqltesting

from helpers import commit_files, encode_inputs, make_template, put, read_error, read_outputs, simple
from taskbox import storage
from taskbox.authoring import SQLiteTask, SQLTask
from taskbox.authoring.base import CONTAINER_ARGS_PREFIX
from taskbox.images import build as sdk

STR, INT, FLOAT, STRUCT = simple("STRING"), simple("INTEGER"), simple("FLOAT"), simple("STRUCT")


@pytest.fixture(scope="module")
def pg_db() -> Any:
    """The session's throwaway PostgreSQL (tests/sql/dbservers.py) with the ``items`` table seeded."""
    server = sqltesting.server("postgres")
    sqltesting.seed(server)
    return server


def flyte_args(args: Any, inputs: str, prefix: str, raw: str, task: str) -> list[str]:
    """A template's container args with the placeholders propeller fills in."""
    values = {
        "{{.input}}": inputs,
        "{{.outputPrefix}}": prefix,
        "{{.rawOutputDataPrefix}}": raw,
        "{{.taskTemplatePath}}": task,
    }
    return [values.get(a, a) for a in args]


def stage(base: str, template: Any, inputs: bytes) -> tuple[str, str, str, str]:
    """Upload template and inputs under ``base``; return (inputs, prefix, raw, task) URIs."""
    task = put(storage.join(base, "task.pb"), template.SerializeToString())
    inputs_uri = put(storage.join(base, "inputs.pb"), inputs)
    return inputs_uri, storage.join(base, "out"), storage.join(base, "raw"), task


def run_task(client: Any, image: str, template: Any, inputs: bytes, base: str, env: dict[str, str]) -> str:
    inputs_uri, prefix, raw, task = stage(base, template, inputs)
    args = flyte_args(template.container.args, inputs_uri, prefix, raw, task)
    result = sdk.run(client, image, args, environment=env)
    assert result.exit_code == 0, result.stderr[-4000:]
    assert commit_files(prefix) == {"outputs.pb"}, (
        read_error(prefix) if "error.pb" in commit_files(prefix) else "",
        result.stderr[-4000:],
    )
    return prefix


def template_for(task_type: str, executor: str, inputs: dict, outputs: dict, custom: dict | None, image: str) -> Any:
    template = make_template(task_type, inputs, outputs, custom)
    template.container.image = image
    template.container.args.extend([*CONTAINER_ARGS_PREFIX, executor])
    return template


@pytest.fixture(params=["s3", "azure"])
def cloud(request: pytest.FixtureRequest, container_env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Where a Flyte run's files live, and the container's environment to reach it: moto's S3, or Azurite."""
    if request.param == "s3":
        return request.getfixturevalue("s3_base"), container_env
    server = request.getfixturevalue("azure_server")
    return request.getfixturevalue("azure_base"), {**server.env, "TASKBOX_LOG_LEVEL": "INFO"}


@pytest.mark.servers
def test_echo_in_base_image(docker_client, variant_image, cloud):
    image = variant_image("base")
    base, env = cloud
    types = {"n": INT, "s": STR, "x": FLOAT}
    template = template_for("echo", "echo", types, types, None, image)
    prefix = run_task(docker_client, image, template, encode_inputs({"n": 7, "s": "héllo", "x": 0.5}, types), base, env)
    assert read_outputs(prefix, types) == {"n": 7, "s": "héllo", "x": 0.5}


@pytest.mark.servers
def test_sqlite_in_sqlite_image(docker_client, variant_image, cloud, tmp_path):
    image = variant_image("sqlite")
    base, env = cloud
    db = put(storage.join(base, "items.db"), Path(sqltesting.make_sqlite(tmp_path / "items.db")).read_bytes())
    task = SQLiteTask(
        "images.sqlite",
        "SELECT id, name FROM items WHERE id <= {{ .inputs.n }} ORDER BY id",
        uri=db,
        inputs={"n": int},
        image=image,
    )
    template = task.to_template()
    types = {"n": INT}
    prefix = run_task(docker_client, image, template, encode_inputs({"n": 3}, types), base, env)
    out = read_outputs(prefix, {"results": template.interface.outputs.variables["results"].type})
    assert out["results"].to_arrow().to_pylist() == [
        {"id": 1, "name": "name-1"},
        {"id": 2, "name": "name-2"},
        {"id": 3, "name": "name-3"},
    ]


@pytest.mark.servers
def test_sql_on_postgres_in_sql_image(docker_client, variant_image, s3_base, container_env, pg_db):
    image = variant_image("sql")
    task = SQLTask(
        "images.sql",
        "SELECT id, name FROM items WHERE id > {{ .inputs.n }} ORDER BY id",
        uri=pg_db.url,
        inputs={"n": int},
        secret_connect_args={"password": {"group": "db", "key": "password"}},
        image=image,
    )
    template = task.to_template()
    env = {**container_env, "_FSEC_DB_PASSWORD": sqltesting.servers_module().PASSWORD}
    prefix = run_task(docker_client, image, template, encode_inputs({"n": 997}, {"n": INT}), s3_base, env)
    out = read_outputs(prefix, {"results": template.interface.outputs.variables["results"].type})
    assert out["results"].to_arrow().column("id").to_pylist() == [998, 999, 1000]


@pytest.mark.servers
def test_http_in_http_image(docker_client, variant_image, s3_base, container_env):
    image = variant_image("http")
    types = {"item": STR, "n": INT}
    outputs = {"path": STR, "status": INT, "echo": STRUCT}
    with httptesting.running() as server:
        custom = {
            "method": "POST",
            "url": server.base + "/items/{{ .inputs.item }}",
            "json_body": {"count": "{{ .inputs.n }}"},
            "outputs": {"path": "/path", "echo": ""},
            "status_output": "status",
        }
        template = template_for("http", "http", types, outputs, custom, image)
        env = {**container_env, "TASKBOX_HTTP_ALLOW": "127.0.0.1"}
        prefix = run_task(docker_client, image, template, encode_inputs({"item": "a/b", "n": 3}, types), s3_base, env)
    out = read_outputs(prefix, outputs)
    assert out["path"] == "/items/a%2Fb" and out["status"] == 200
    assert out["echo"]["body"] == '{"count": 3}' or out["echo"]["body"] == '{"count":3}'
