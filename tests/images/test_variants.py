"""Each variant image: built, non-root, read-only root filesystem, no pip or compiler, bytecode shipped,
OCI labels, flytekit's command names, and within its size budget."""

from __future__ import annotations

import json

import pytest

from taskbox import __version__
from taskbox.images import VARIANTS, load_catalog
from taskbox.images import build as sdk
from taskbox.images.variants import SIZE_BUDGET_MB, image_sizes

#: The executor each variant exists for (``taskbox executors --json`` must report it available).
EXECUTOR = {"base": "echo", "sqlite": "sqlite", "sql": "sql", "http": "http", "python": "echo"}

#: Runs inside the image as uid 65532 on the read-only root filesystem; prints what the test checks.
PROBE = r"""
import importlib.util, json, os, pathlib, shutil, sys
venv = pathlib.Path(sys.prefix)
missing_pyc = [
    str(p) for p in (venv / "lib").rglob("*.py")
    if not pathlib.Path(importlib.util.cache_from_source(str(p))).exists()
]
try:
    (venv / "probe").write_text("x")
    root_writable = True
except OSError:
    root_writable = False
pathlib.Path("/tmp/probe").write_text("x")
site = next((venv / "lib").glob("python3*/site-packages"))
print(json.dumps({
    "uid": os.getuid(),
    "prefix": sys.prefix,
    "root_writable": root_writable,
    "missing_pyc": missing_pyc[:20],
    "which": {
        n: shutil.which(n)
        for n in ("taskbox", "pyflyte-execute", "pyflyte-fast-execute", "pip", "pip3", "gcc", "cc")
    },
    "pip_importable": importlib.util.find_spec("pip") is not None,
    "setuptools_importable": importlib.util.find_spec("setuptools") is not None,
    "build_dir": os.path.exists("/build"),
    "test_dirs": [str(p) for p in site.rglob("tests") if p.is_dir()][:10],
    "flight": [str(p) for p in site.rglob("libarrow_flight*")],
}))
"""


@pytest.fixture(params=VARIANTS)
def variant(request):
    return request.param


def test_image_metadata(docker_client, variant_image, variant):
    image = docker_client.images.get(variant_image(variant))
    config = image.attrs["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["taskbox"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"] == "test"
    assert labels["org.opencontainers.image.title"] == f"taskbox-{variant}"
    for key in ("source", "licenses", "description", "created", "base.name"):
        assert labels[f"org.opencontainers.image.{key}"], key


def test_runs_non_root_on_a_read_only_root(docker_client, variant_image, variant):
    result = sdk.run(docker_client, variant_image(variant), ["-c", PROBE], entrypoint=["python3"])
    assert result.exit_code == 0, result.stderr
    probe = json.loads(result.stdout)
    assert probe["uid"] == 65532 and probe["prefix"] == "/opt/taskbox"
    assert probe["root_writable"] is False
    assert probe["missing_pyc"] == []
    which = probe["which"]
    assert which["taskbox"] and which["pyflyte-execute"] and which["pyflyte-fast-execute"]
    assert which["pip"] is None and which["pip3"] is None and which["gcc"] is None and which["cc"] is None
    assert probe["pip_importable"] is False and probe["setuptools_importable"] is False
    assert probe["build_dir"] is False  # the builder stage (and its CA bundle) stays behind
    assert probe["test_dirs"] == [] and probe["flight"] == []


def test_its_executor_loads(docker_client, variant_image, variant):
    executors = {e["name"]: e for e in sdk.installed_executors(docker_client, variant_image(variant))}
    assert executors[EXECUTOR[variant]]["status"] == "available"
    assert executors["echo"]["status"] == "available"


def test_pyflyte_execute_alias_reaches_taskbox(docker_client, variant_image, variant):
    result = sdk.run(docker_client, variant_image(variant), ["--help"], entrypoint=["pyflyte-execute"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("usage: taskbox execute")


def test_size_within_budget(docker_client, variant_image, base_image, variant):
    (row,) = image_sizes(docker_client, {variant: variant_image(variant)}, base_image)
    print(f"{variant}: {row.size_mb:.1f} MB, adds {row.delta_mb:.1f} MB over {base_image} (budget {row.budget_mb:.0f})")
    assert row.delta_mb <= SIZE_BUDGET_MB[variant]


def test_image_tags_follow_the_catalog_scheme_with_the_base_python(docker_client, base_image):
    from helpers import TASKBOX, run

    python = sdk.image_python(docker_client, base_image)
    proc = run([TASKBOX, "image", "tags", "--base-image", base_image, "--registry", "registry.example/acme"])
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines == {v: f"registry.example/acme/executor-{v}:{__version__}-py{python}" for v in VARIANTS}


def test_a_local_build_is_tagged_as_the_docs_and_the_catalog_name_the_images(docker_client, base_image):
    """`make images` on the local debootstrap base tags each variant with the reference the docs and
    `taskbox images` give users, so a client that runs the documented reference finds the local image
    instead of pulling (issue 20: the local base's Python is the published images' Python)."""
    from helpers import TASKBOX, run

    catalog = load_catalog()
    assert sdk.image_python(docker_client, base_image) == catalog.python
    proc = run([TASKBOX, "image", "tags", "--base-image", base_image])
    assert proc.returncode == 0, proc.stderr
    built = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert built == {v: catalog.reference(v, __version__) for v in VARIANTS}
