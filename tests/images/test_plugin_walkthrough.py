"""docs/plugins.md as a platform engineer follows it: a third-party executor package, its image, three runs.

The distribution is made in an empty folder from the page's own blocks (the executor module, the
``pyproject.toml`` block), its image is built with the page's ``taskbox image build`` command (the parent is
the ``base`` variant built for the tests, tagged as the catalog names it, so the command runs as written), and
the image runs the executor three ways, each giving the declared output ``{"waited": 0.1}``:

1. ``taskbox run --executor wait`` with no ``interface`` (the page's ``docker run`` line);
2. under ``taskbox execute``, the template that the page's ``ExecutorTask`` block writes (``pause.pb``);
3. under ``taskbox execute``, the template ``taskbox template`` writes from the page's YAML spec.

The host side (``ExecutorTask``, ``taskbox template``) needs the distribution installed, as a workflow author
has it: it is installed into a folder of its own (``pip install --target``) put on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import tasks_pb2

from helpers import ROOT, TASKBOX, read_outputs, subprocess_env
from taskbox import __version__
from taskbox.images import build as sdk
from taskbox.images.catalog import load_catalog
from taskbox.typespec import parse_type

DOCS = ROOT / "docs" / "plugins.md"
EXPECTED = {"waited": 0.1}
_FENCE = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def marked(name: str) -> str:
    """The block after ``<!-- plugin: NAME -->``."""
    found = re.search(rf"<!-- plugin: {name} -->\n```\w+\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert found, f"docs/plugins.md has no <!-- plugin: {name} --> block"
    return found.group(1)


def section_blocks(title: str) -> list[tuple[str, str]]:
    section = DOCS.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return _FENCE.findall(section)


def commands(script: str) -> list[list[str]]:
    """The shell block's commands (continuation lines joined), split as the shell would."""
    return [shlex.split(line, comments=True) for line in script.replace("\\\n", " ").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution, from the page: ``my_executors/sleep.py``, an empty ``__init__.py``, ``pyproject.toml``."""
    root = tmp_path_factory.mktemp("my-executors")
    module = next(body for lang, body in _FENCE.findall(DOCS.read_text()) if body.startswith("# my_executors/sleep.py"))
    (root / "my_executors").mkdir()
    (root / "my_executors" / "__init__.py").write_text("")
    (root / "my_executors" / "sleep.py").write_text(module)
    (root / "pyproject.toml").write_text(marked("pyproject"))
    return root


@pytest.fixture(scope="module")
def wait_image(docker_client: Any, variant_image: Any, project: Path) -> str:
    """The page's image, built by the page's command, with the catalog's ``base`` image as its parent."""
    reference = load_catalog().reference("base", __version__)
    docker_client.images.get(variant_image("base")).tag(*reference.rsplit(":", 1))
    build, _ = commands(marked("image"))
    assert build[:4] == ["taskbox", "image", "build", "--executor"]
    proc = subprocess.run([TASKBOX, *build[1:], "--quiet"], cwd=project, capture_output=True, text=True,
                          timeout=1800, env=subprocess_env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    tag = build[build.index("--tag") + 1]
    assert docker_client.images.get(tag).labels["dev.taskbox.executors"] == "wait"
    return tag


@pytest.fixture(scope="module")
def author(tmp_path_factory: pytest.TempPathFactory, project: Path) -> dict[str, str]:
    """A workflow author's environment: the distribution installed (its entry point) on ``PYTHONPATH``."""
    site = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(project)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return subprocess_env(PYTHONPATH=str(site), PATH=f"{Path(TASKBOX).parent}:{subprocess_env()['PATH']}")


def execute_in_image(client: Any, image: str, work: Path, template: str, inputs: str, out: str) -> dict[str, Any]:
    """``taskbox execute`` of ``template`` in ``image`` (the work folder mounted), as Flyte runs it."""
    work.chmod(0o777)
    for path in work.rglob("*"):
        path.chmod(0o777 if path.is_dir() else 0o666)
    args = ["execute", "--inputs", f"/w/{inputs}", "--output-prefix", f"/w/{out}", "--raw-output-data-prefix",
            f"/w/{out}/raw", "--resolver", "taskbox.template", "--", f"/w/{template}", "wait"]  # fmt: skip
    result = sdk.run(client, image, args, volumes={str(work): {"bind": "/w", "mode": "rw"}})
    assert result.exit_code == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (work / out).iterdir() if p.suffix == ".pb") == ["outputs.pb"], result.stderr
    return read_outputs(str(work / out), {"waited": parse_type("float")})


def test_taskbox_run_in_the_image_takes_the_declared_interface(docker_client, wait_image):
    _, run = commands(marked("image"))
    assert run[:3] == ["docker", "run", "--rm"] and run[3] == wait_image
    result = sdk.run(docker_client, wait_image, run[4:])
    assert result.exit_code == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == EXPECTED


def test_the_templates_of_executor_task_and_taskbox_template_run_in_the_image(
    docker_client, wait_image, author, tmp_path
):
    blocks = section_blocks("Defining a task for your executor")
    assert [lang for lang, _ in blocks] == ["python", "yaml", "sh"]
    python, spec, script = (body for _, body in blocks)
    work = tmp_path / "work"
    work.mkdir()
    (work / "define_pause.py").write_text(python)
    (work / "pause.yaml").write_text(spec)
    proc = subprocess.run([sys.executable, "define_pause.py"], cwd=work, capture_output=True, text=True,
                          timeout=300, env=author)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    template_cmd = next(c for c in commands(script) if c[:2] == ["taskbox", "template"])
    proc = subprocess.run([TASKBOX, *template_cmd[1:]], cwd=work, capture_output=True, text=True, timeout=300,
                          env=author)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "pause.pb").exists() and (work / "build" / "task.pb").exists()
    # The page's image reference is the one the templates name: the image built above.
    for name in ("pause.pb", "build/task.pb"):
        assert tasks_pb2.TaskTemplate.FromString((work / name).read_bytes()).container.image == wait_image
    assert execute_in_image(docker_client, wait_image, work, "pause.pb", "build/inputs.pb", "out-python") == EXPECTED
    assert execute_in_image(docker_client, wait_image, work, "build/task.pb", "build/inputs.pb", "out-yaml") == EXPECTED
