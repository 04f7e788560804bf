"""taskbox.flytekit's tasks inside the executor images: flytekit serializes them, the image (no flytekit) runs them.

``pyflyte package`` (``.venv-flytekit``) serializes tests/flytekit_plugin/fk_workflows.py; the SQLite task's
container args run in the ``sqlite`` variant image as a pod runs them (Kubernetes appends the args to the ENTRYPOINT
``taskbox``; ``pyflyte-execute`` is taskbox's alias there), with propeller's placeholders filled in, as uid 65532 on
a read-only root filesystem; so do the HTTP task's in the ``http`` image, against a server on 127.0.0.1. flytekit
encodes the inputs and reads the outputs back.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flytekit_plugin"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))

import httptesting
from fk import CLASS_PATH, fill, package, placeholders, tool

from helpers import commit_files
from taskbox.images import build as sdk_images

TRACKS = [(i, f"Track {i}") for i in range(1, 11)]
SECRET = "tok-in-the-image-7f3a"


def work_dir(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A directory the container (uid 65532) writes into, mounted at the same path."""
    work = tmp_path / "work"
    work.mkdir(mode=0o777)
    work.chmod(0o777)
    return work, {str(work): {"bind": str(work), "mode": "rw"}}


def test_flytekit_sqlite_task_runs_in_the_sqlite_image(docker_client, variant_image, tmp_path):
    image = variant_image("sqlite")
    work, volumes = work_dir(tmp_path)
    with sqlite3.connect(work / "chinook.db") as conn:
        conn.execute("CREATE TABLE tracks (TrackId INTEGER PRIMARY KEY, Name TEXT)")
        conn.executemany("INSERT INTO tracks VALUES (?, ?)", TRACKS)
    conn.close()
    # fk_workflows.py defines every task at import; only the SQLite one runs here (no server is contacted).
    env = {"TBX_DB": str(work / "chinook.db"), "TBX_HTTP": "http://127.0.0.1:9", "TBX_JOBS": "http://127.0.0.1:9"}
    found = package(env, "fk_workflows", work)
    spec = found["top_tracks"]
    assert spec["args"][0] == "pyflyte-execute" and spec["args"][-1] == CLASS_PATH + "sqlite"
    assert spec["image"].startswith("ghcr.io/taskbox/executor-sqlite:")  # the catalog's; here the local build
    tool(env, "inputs", "fk_workflows", "top_tracks", str(work), json.dumps({"n": 4}))
    result = sdk_images.run(docker_client, image, fill(spec["args"], placeholders(work, "top_tracks")), volumes=volumes)
    assert result.exit_code == 0, result.stderr[-4000:]
    assert commit_files(str(work / "out")) == {"outputs.pb"}, result.stderr[-4000:]
    read_back = tool(env, "outputs", "fk_workflows", "top_tracks", str(work / "out" / "outputs.pb"))
    assert read_back == {"result": {"results": [{"TrackId": i, "Name": n} for i, n in TRACKS[:4]]}}
    assert tool(env, "task", "fk_workflows", "top_tracks", json.dumps({"n": 4})) == read_back  # as the local run
    probe = sdk_images.run(docker_client, image, ["-c", "import flytekit"], entrypoint=["python3"])
    assert probe.exit_code != 0 and "No module named 'flytekit'" in probe.stderr


def test_a_failing_flytekit_task_commits_a_user_error_in_the_image(docker_client, variant_image, tmp_path):
    image = variant_image("sqlite")
    work, volumes = work_dir(tmp_path)
    sqlite3.connect(work / "chinook.db").close()
    env = {"TBX_DB": str(work / "chinook.db"), "TBX_HTTP": "http://127.0.0.1:9", "TBX_JOBS": "http://127.0.0.1:9"}
    found = package(env, "fk_workflows", work)
    tool(env, "inputs", "fk_workflows", "broken", str(work), json.dumps({"n": 2}))
    result = sdk_images.run(docker_client, image, fill(found["broken"]["args"], placeholders(work, "broken")),
                            volumes=volumes)  # fmt: skip
    assert result.exit_code == 0, result.stderr[-4000:]  # Flyte's contract: the error is in error.pb
    assert commit_files(str(work / "out")) == {"error.pb"}
    error = tool(env, "error", str(work / "out" / "error.pb"))
    assert (error["code"], error["kind"], error["origin"]) == ("USER:SqlRejected", 0, 1), error  # non-recoverable


def test_flytekit_http_task_runs_in_the_http_image(docker_client, variant_image, tmp_path):
    """The workflow's HTTP task: serialized by flytekit, run by the http image, equal to the local run."""
    image = variant_image("http")
    work, volumes = work_dir(tmp_path)
    sqlite3.connect(work / "chinook.db").close()
    with httptesting.running() as http:
        env = {
            "TBX_DB": str(work / "chinook.db"),
            "TBX_HTTP": f"http://127.0.0.1:{http.server_address[1]}",
            "TBX_JOBS": "http://127.0.0.1:9",
            "TASKBOX_HTTP_ALLOW": "127.0.0.1/32",
            "_FSEC_API_TOKEN": SECRET,
        }
        found = package(env, "fk_workflows", work)
        spec = found["get_item"]
        assert spec["image"].startswith("ghcr.io/taskbox/executor-http:")
        tool(env, "inputs", "fk_workflows", "get_item", str(work), json.dumps({"item": "a/b c"}))
        container_env = {"TASKBOX_HTTP_ALLOW": "127.0.0.1/32", "_FSEC_API_TOKEN": SECRET}
        result = sdk_images.run(docker_client, image, fill(spec["args"], placeholders(work, "get_item")),
                                volumes=volumes, environment=container_env)  # fmt: skip
        assert result.exit_code == 0, result.stderr[-4000:]
        assert commit_files(str(work / "out")) == {"outputs.pb"}, result.stderr[-4000:]
        assert http.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
        read_back = tool(env, "outputs", "fk_workflows", "get_item", str(work / "out" / "outputs.pb"))
        assert read_back == {"result": {"path": "/echo/a%2Fb%20c", "status": 200}}, read_back
        assert tool(env, "task", "fk_workflows", "get_item", json.dumps({"item": "a/b c"})) == read_back
    assert SECRET not in result.stderr
