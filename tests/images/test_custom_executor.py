"""``taskbox image build --executor``: the example third-party executor (examples/greet-executor) built on
the ``base`` image through the Docker SDK, checked inside the image, then run end to end (also as its flytekit
task, ``taskbox_greet.flytekit_task.GreetTask``, serialized by ``pyflyte package``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, TASKBOX, encode_inputs, make_template, put, read_outputs, simple, subprocess_env
from taskbox import storage
from taskbox.authoring.base import CONTAINER_ARGS_PREFIX
from taskbox.images import build as sdk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flytekit_plugin"))

from fk import CLASS_PATH, fill, package, placeholders, tool

EXAMPLE = ROOT / "examples" / "greet-executor"
STR = simple("STRING")


@pytest.fixture(scope="module")
def greet_image(docker_client, variant_image):
    parent = variant_image("base")
    tag = f"taskbox-test/greet:{parent.rsplit(':', 1)[1]}"
    dangling_before = {i.id for i in docker_client.images.list(filters={"dangling": True})}
    previous = _image_id(docker_client, tag)  # an earlier run's image: untagged by this build, not made by it
    proc = subprocess.run(
        [TASKBOX, "image", "build", "--executor", str(EXAMPLE), "--tag", tag, "--base-image", parent, "--quiet"],
        capture_output=True,
        text=True,
        timeout=1800,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.splitlines()[0] == tag
    assert "executor greet (task types: greet): available" in proc.stdout
    left = {i.id for i in docker_client.images.list(filters={"dangling": True})} - dangling_before - {previous}
    assert not left, f"the build left untagged images behind: {sorted(left)}"
    if previous and previous != docker_client.images.get(tag).id:  # as `docker build` does, the build keeps it
        docker_client.images.remove(previous)  # this machine's Docker state outlives the run: do not pile up
    return tag, parent


def _image_id(docker_client, reference):
    from docker.errors import ImageNotFound

    try:
        return docker_client.images.get(reference).id
    except ImageNotFound:
        return None


def test_the_image_is_labelled_as_what_it_is(docker_client, greet_image):
    tag, parent = greet_image
    labels = docker_client.images.get(tag).labels
    parent_attrs = docker_client.images.get(parent).attrs
    assert labels["dev.taskbox.variant"] == "custom"
    assert labels["dev.taskbox.executors"] == "greet"
    assert labels["dev.taskbox.packages"] == "taskbox-greet==0.1.0"
    assert labels["org.opencontainers.image.title"] == "taskbox executor image: greet"
    assert (
        "greet" in labels["org.opencontainers.image.description"]
        and parent in labels["org.opencontainers.image.description"]
    )
    assert labels["org.opencontainers.image.base.name"] == labels["dev.taskbox.parent"] == parent
    assert labels["dev.taskbox.parent.digest"] in {
        parent_attrs["Id"],
        *(d.rsplit("@", 1)[1] for d in parent_attrs["RepoDigests"]),
    }
    assert "dev.taskbox.executor" not in labels  # no build-context path


def test_image_adds_only_the_executor(docker_client, greet_image):
    tag, parent = greet_image
    executors = {e["name"]: e for e in sdk.installed_executors(docker_client, tag)}
    assert executors["greet"]["status"] == "available" and executors["greet"]["source"] == "plugin (taskbox-greet)"
    config = docker_client.images.get(tag).attrs["Config"]
    assert config["User"] == "65532:65532" and config["Entrypoint"] == ["taskbox"]
    added = docker_client.images.get(tag).attrs["Size"] - docker_client.images.get(parent).attrs["Size"]
    assert added < 1_000_000, f"the executor image adds {added} bytes: only the plugin should be added"
    result = sdk.run(docker_client, tag, ["-c", "import pip"], entrypoint=["python3"])
    assert result.exit_code != 0  # the builder's pip stays behind


@pytest.mark.servers
def test_greet_runs_in_its_image(docker_client, greet_image, s3_base, container_env):
    tag, _ = greet_image
    template = make_template("greet", {"name": STR}, {"message": STR}, {"greeting": "Hi"})
    template.container.image = tag
    template.container.args.extend([*CONTAINER_ARGS_PREFIX, "greet"])
    task = put(storage.join(s3_base, "task.pb"), template.SerializeToString())
    inputs = put(storage.join(s3_base, "inputs.pb"), encode_inputs({"name": "Ada"}, {"name": STR}))
    prefix, raw = storage.join(s3_base, "out"), storage.join(s3_base, "raw")
    values = {
        "{{.input}}": inputs,
        "{{.outputPrefix}}": prefix,
        "{{.rawOutputDataPrefix}}": raw,
        "{{.taskTemplatePath}}": task,
    }
    result = sdk.run(docker_client, tag, [values.get(a, a) for a in template.container.args], environment=container_env)
    assert result.exit_code == 0, result.stderr[-4000:]
    assert read_outputs(prefix, {"message": STR}) == {"message": "Hi, Ada!"}


def test_greets_flytekit_task_runs_in_its_image(docker_client, greet_image, tmp_path):
    """The plugin's flytekit task class, serialized by flytekit, runs in the plugin's image (which has no flytekit)."""
    tag, _ = greet_image
    work = tmp_path / "work"
    work.mkdir(mode=0o777)
    work.chmod(0o777)  # the container runs as uid 65532
    env = {"TBX_GREET_IMAGE": tag}
    spec = package(env, "fk_greet", work)["greet"]
    assert (spec["image"], spec["type"], spec["args"][-1]) == (tag, "greet", CLASS_PATH + "greet")
    tool(env, "inputs", "fk_greet", "greet", str(work), json.dumps({"name": "Ada"}))
    volumes = {str(work): {"bind": str(work), "mode": "rw"}}
    result = sdk.run(docker_client, tag, fill(spec["args"], placeholders(work, "greet")), volumes=volumes)
    assert result.exit_code == 0, result.stderr[-4000:]
    read_back = tool(env, "outputs", "fk_greet", "greet", str(work / "out" / "outputs.pb"))
    assert read_back == {"result": {"message": "Hi, Ada!"}}
    assert tool(env, "task", "fk_greet", "greet", json.dumps({"name": "Ada"})) == read_back  # as the local run
    probe = sdk.run(docker_client, tag, ["-c", "import flytekit"], entrypoint=["python3"])
    assert probe.exit_code != 0 and "No module named 'flytekit'" in probe.stderr


def test_a_package_without_executors_is_refused(docker_client, greet_image, tmp_path):
    _, parent = greet_image
    project = tmp_path / "noexec"
    (project / "noexec").mkdir(parents=True)
    (project / "noexec" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=77"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "noexec"\nversion = "0.1"\n'
    )
    proc = subprocess.run(
        [
            TASKBOX,
            "image",
            "build",
            "--executor",
            str(project),
            "--tag",
            "taskbox-test/noexec:1",
            "--base-image",
            parent,
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        env=subprocess_env(),
    )
    assert proc.returncode == 1
    assert "registers no executor" in proc.stderr
    assert not sdk.image_exists(docker_client, "taskbox-test/noexec:1")


def test_base_variant_is_found_by_version_without_naming_the_parent(docker_client, greet_image):
    from taskbox import __version__

    _, parent = greet_image
    python = sdk.image_python(docker_client, parent)
    local_base = f"taskbox-test-registry/executor-base:{__version__}-py{python}"
    docker_client.images.get(parent).tag(*local_base.rsplit(":", 1))
    tag = "taskbox-test/greet:by-version"
    argv = [TASKBOX, "image", "build", "--executor", str(EXAMPLE), "--tag", tag, "--registry", "taskbox-test-registry"]
    proc = subprocess.run([*argv, "--quiet"], capture_output=True, text=True, timeout=1800, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert docker_client.images.get(tag).labels["dev.taskbox.parent"] == local_base
