"""Flyte 2's ``a0`` inside the images: prebuilt executors need no SDK; the python image with ``flyte2`` runs SDK tasks.

The containers get the args a v2 pod gets (Kubernetes appends them to the ENTRYPOINT ``taskbox``; ``a0`` is
also on PATH), with the placeholders filled in, as uid 65532 on a read-only root filesystem. The inputs were
encoded by the flyte SDK (``.venv-flyte2``) and the outputs are read back with it.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flyte2"))

import sqltesting
from sdk import POD_ENV, fill, sdk

from helpers import commit_files, encode_inputs, put, read_outputs, simple
from taskbox import storage
from taskbox.authoring import SQLiteTask
from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, a0_args, encode_template
from taskbox.images import build as sdk_images

FLYTE2_EXTRAS = "s3,gcs,azure,tables,run,flyte2"
V2CASES = Path(__file__).resolve().parents[1] / "flyte2" / "v2cases.py"


@pytest.mark.servers
def test_prebuilt_sqlite_task_under_a0_in_the_sqlite_image(
    docker_client, variant_image, s3_base, container_env, tmp_path
):
    image = variant_image("sqlite")
    db = put(storage.join(s3_base, "items.db"), Path(sqltesting.make_sqlite(tmp_path / "items.db")).read_bytes())
    template = SQLiteTask(
        "images.sqlite", "SELECT id, name FROM items WHERE id <= {{ .inputs.n }} ORDER BY id", uri=db, inputs={"n": int}
    ).to_template()
    args = a0_args(PREBUILT_RESOLVER, ["template", encode_template(template.SerializeToString())], version="v1")
    inputs = put(storage.join(s3_base, "inputs.pb"), encode_inputs({"n": 2}, {"n": simple("INTEGER")}))
    prefix, raw = storage.join(s3_base, "out"), storage.join(s3_base, "raw")
    result = sdk_images.run(
        docker_client, image, fill(args, inputs, prefix, raw), environment={**container_env, **POD_ENV}
    )
    assert result.exit_code == 0, result.stderr[-4000:]
    assert commit_files(prefix) == {"outputs.pb"}, result.stderr[-4000:]
    out = read_outputs(prefix, {"results": template.interface.outputs.variables["results"].type})
    assert out["results"].to_arrow().to_pylist() == [{"id": 1, "name": "name-1"}, {"id": 2, "name": "name-2"}]
    # the image has no flyte SDK, and `a0` on PATH is taskbox's
    probe = sdk_images.run(docker_client, image, ["-c", "import flyte"], entrypoint=["python3"])
    assert probe.exit_code != 0 and "No module named 'flyte'" in probe.stderr
    usage = sdk_images.run(docker_client, image, ["-o", "/tmp/x"], entrypoint=["a0"])
    assert usage.exit_code == 2 and "taskbox a0: option --inputs is required" in usage.stderr, usage.stderr


def _bundle(path: Path) -> str:
    with tarfile.open(path, "w:gz") as tar:
        data = V2CASES.read_bytes()
        info = tarfile.TarInfo("v2cases.py")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return str(path)


@pytest.mark.parametrize("case", ["int", "dataclass", "enum"])
def test_sdk_task_under_a0_in_the_python_image_with_flyte2(docker_client, variant_image, tmp_path, case):
    image = variant_image("python", extras=FLYTE2_EXTRAS)
    work = tmp_path / "work"
    work.mkdir(mode=0o777)
    work.chmod(0o777)  # the container runs as uid 65532
    prepared = sdk("prepare", case, str(work))
    bundle = _bundle(work / "fastv2cases.tar.gz")
    args = a0_args("flyte._internal.resolvers.default.DefaultTaskResolver", prepared["args"][-4:], version="v1",
                   bundle=bundle, dest="/tmp/code")  # fmt: skip
    out = work / "out"
    args = fill(args, str(work / "inputs.pb"), str(out), str(work / "raw"))
    volumes: dict[str, Any] = {str(work): {"bind": str(work), "mode": "rw"}}
    env = {**POD_ENV, "_U_RUN_BASE": str(work / "run-base")}
    result = sdk_images.run(docker_client, image, args, environment=env, volumes=volumes)
    assert result.exit_code == 0, result.stderr[-4000:]
    assert commit_files(str(out)) == {"outputs.pb"}, result.stderr[-4000:]
    checked = sdk("check", case, str(out / "outputs.pb"))
    assert checked["equal"], checked
