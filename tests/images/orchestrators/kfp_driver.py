"""Run docs/recipes.md's ``kfp`` recipe with Kubeflow Pipelines' own local ``DockerRunner`` (in .venv-kfp).

Usage: ``kfp_driver.py WORKDIR UID``. ``WORKDIR`` holds ``data/shop.db`` and ``config/`` (``query.json``,
``share.json``), the folders the recipe names relative to where it runs; the driver runs the block
there, unchanged, so it compiles ``order_stats.yaml`` and runs the pipeline with its pipeline root in
``WORKDIR/kfp-outputs``. When started as root it first becomes ``UID`` (group ``UID``, plus the group
of the Docker socket): run as root the recipe's ``user=f"{os.getuid()}:{os.getgid()}"`` would be
``0:0`` and hide the very problem it answers (the image's uid 65532 meeting a folder its caller made).
Python's standard library may live where that user cannot read it (pyenv under root's private home
on the test machines), so what the run imports is imported before root is given up (:data:`PRELOAD`);
a module missing there fails the run loudly (``ModuleNotFoundError``).

It emits the uid it ran as, the pipeline's outputs (or the ``RuntimeError`` KFP raised, colours
stripped), the compiled YAML's text, and the exit code of every container KFP ran.

Hooks around KFP's Docker calls (the recipe's text is untouched):

* ``docker_task_handler.run_docker_container`` (called once per step): records the exit code KFP got
  back, which KFP only turns into SUCCESS or FAILURE.
* KFP 2.17 starts each container with ``auto_remove=True`` and, when the container is gone before it
  reads the exit code, assumes 0: a failed step is then reported as SUCCESS, without outputs, and the
  next step fails for want of its input (kubeflow/pipelines#13332; 12 of 20 failing taskbox steps). The
  driver starts the containers without ``auto_remove`` and removes each after KFP read its exit code,
  as the fix proposed upstream does, so the failing run is judged on taskbox's real exit code.
* Before starting a container, KFP lists every local image and inspects each; another client removing
  an unrelated image in that moment makes KFP fail with ``ImageNotFound`` before anything ran (a race
  with whoever else uses the Docker engine, not the recipe's doing): that call is repeated.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import recipe_clients

ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: What the recipe and a local run import (lazily, some of them: KFP's task modules, requests' netrc...).
PRELOAD = (
    "docker",
    "docker.errors",
    "docker.types",
    "google.protobuf.descriptor_pb2",
    "kfp.compiler",
    "kfp.dsl",
    "kfp.dsl.executor",
    "kfp.kubernetes",
    "kfp.local",
    "kfp.local.orchestrator.dag_orchestrator",
    "kfp.local.orchestrator.task_executor",
    "kfp.local.pipeline_orchestrator",
    "kfp.local.task_dispatcher",
    "netrc",
    "venv",
)


def docker_socket_groups() -> list[int]:
    """The group owning the Docker socket (so a plain user can talk to the engine, as in group docker)."""
    url = urlparse(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    return [os.stat(url.path).st_gid] if url.scheme == "unix" else []


def become(uid: int) -> None:
    """Drop root for ``uid`` (group ``uid`` too), keeping access to the Docker socket."""
    os.setgroups(docker_socket_groups())
    os.setgid(uid)
    os.setuid(uid)


def _vanished_other_image(exc: BaseException) -> bool:
    """``exc`` is docker's ImageNotFound raised while KFP listed the local images (nothing ran yet)."""
    import docker.errors

    frames = traceback.extract_tb(exc.__traceback__)
    listing = any(f.name == "list" and f.filename.endswith(os.path.join("models", "images.py")) for f in frames)
    return isinstance(exc, docker.errors.ImageNotFound) and listing


def hook_docker_runs(exit_codes: list[int]) -> None:
    """Wrap KFP's Docker calls as the module docstring says: exit codes, no auto-removal, listing races."""
    from docker.models.containers import ContainerCollection
    from kfp.local import docker_task_handler

    real_run = ContainerCollection.run
    started: list[Any] = []

    def run_kept(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("auto_remove"):  # kubeflow/pipelines#13332: keep it until its exit code is read
            kwargs["auto_remove"] = False
        container = real_run(self, *args, **kwargs)
        started.append(container)
        return container

    ContainerCollection.run = run_kept  # type: ignore[method-assign]
    real = docker_task_handler.run_docker_container

    def run_docker_container(*args: Any, **kwargs: Any) -> int:
        for attempt in range(5):
            try:
                code = real(*args, **kwargs)
            except Exception as exc:
                if attempt == 4 or not _vanished_other_image(exc):
                    raise
                print(f"kfp_driver: an image vanished while KFP listed images ({exc}); again", file=sys.stderr)
                continue
            finally:
                while started:
                    started.pop().remove(force=True)
            exit_codes.append(code)
            return code
        raise AssertionError("unreachable")

    docker_task_handler.run_docker_container = run_docker_container


def preload() -> None:
    """Import what the run will import (see the module docstring): :data:`PRELOAD`."""
    for name in PRELOAD:
        importlib.import_module(name)


def main() -> None:
    workdir, uid = Path(sys.argv[1]), int(sys.argv[2])
    code = recipe_clients.recipe("kfp")
    exit_codes: list[int] = []
    hook_docker_runs(exit_codes)
    if os.getuid() == 0:
        preload()
        become(uid)
    os.chdir(workdir)
    result: dict[str, Any] = {"uid": os.getuid(), "gid": os.getgid(), "exit_codes": exit_codes}
    namespace: dict[str, Any] = {"__name__": "kfp_recipe"}
    try:
        # dont_inherit: this file's ``from __future__ import annotations`` would turn the recipe's
        # annotations into strings, which KFP reads as artifact type names.
        exec(compile(code, "docs/recipes.md:kfp", "exec", dont_inherit=True), namespace)
    except RuntimeError as exc:
        result["error"] = ANSI.sub("", str(exc))
    else:
        result["outputs"] = dict(namespace["run"].outputs)
    result["compiled"] = (workdir / "order_stats.yaml").read_text()
    recipe_clients.emit(result)


if __name__ == "__main__":
    main()
