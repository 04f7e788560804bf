"""docs/recipes.md's Argo recipe: hera builds the Workflow, Argo's schema accepts it, its container runs.

No Argo cluster runs here. What stands in for one:

* hera (argo_driver.py, in .venv-hera) runs the ``argo`` block as written; what it prints must be the
  page's ``argo-yaml`` block, byte for byte;
* the Workflow is validated against Argo Workflows' schema as the hera package (PyPI) carries it: hera
  7.1.0's models are generated from Argo 4.0.5's schema; the driver checks the document with their JSON
  schema (as carried and strictly, unknown fields refused as ``argo lint`` does) and with the models
  themselves (strict, unknown fields forbidden). Broken copies show a misspelt field, a wrong type and
  a missing required field refused. hera's models are looser than Argo's schema in a few places (see
  argo_driver.py): they take an integer retry ``limit`` (Argo's schema types int-or-string as a string,
  hence the recipe's ``limit="3"``), a container without ``image`` and any ``kind``; the broken copies
  show these let through, and the tests check those fields of the recipe's Workflow directly;
* the entrypoint template's container runs with the Docker SDK as the pod would run it: the image, its
  command and args, the env after Argo's substitution of ``{{inputs.parameters.*}}`` (the workflow's
  arguments feed the entrypoint's inputs), the ConfigMap and the PVC as read-only folders, Argo's
  ``/var/run/argo`` as a world-writable folder (an emptyDir) with ``ARGO_PROGRESS_FILE`` in it, no
  network. The output parameters are read from the stopped container's files, as Argo's executor does.
"""

from __future__ import annotations

import copy
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from recipe_clients import documented_reference, recipe, run_driver

from taskbox.entrypoint import run as runmod

DRIVER = Path(__file__).with_name("argo_driver.py")
PROGRESS_FILE = "/var/run/argo/progress"  # Argo's ARGO_PROGRESS_FILE (workflow/common: ArgoProgressPath)


def broken_copies(workflow: dict[str, Any]) -> dict[str, Any]:
    """Copies of ``workflow`` with one mistake each, named by the mistake."""
    copies: dict[str, Any] = {}

    def copy_with(name: str) -> dict[str, Any]:
        copies[name] = copy.deepcopy(workflow)
        return copies[name]

    def template(name: str) -> dict[str, Any]:
        return copy_with(name)["spec"]["templates"][0]

    template("misspelt field")["outputs"]["parameters"][0]["valueFrom"] = {"paht": "/tmp/outputs/n"}
    template("args as a string")["container"]["args"] = "run --executor sqlite"
    del template("mount without a path")["container"]["volumeMounts"][0]["mountPath"]
    # Refused by Argo 4.0.5's own schema, let through by hera's models (see argo_driver.py).
    template("limit as a number")["retryStrategy"]["limit"] = 3
    del template("no image")["container"]["image"]
    copy_with("wrong kind")["kind"] = "Workflw"
    return copies


@pytest.fixture(scope="module")
def hera(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    broken = tmp_path_factory.mktemp("argo") / "broken.json"
    broken.write_text(json.dumps(broken_copies(yaml.safe_load(recipe("argo-yaml")))))
    result, _ = run_driver("hera", DRIVER, str(broken))
    return result


def entrypoint(workflow: dict[str, Any]) -> dict[str, Any]:
    spec = workflow["spec"]
    return next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])


def test_hera_prints_the_documented_workflow(hera: dict[str, Any]):
    assert hera["printed"].rstrip("\n") == recipe("argo-yaml")
    assert hera["printed"].rstrip("\n") == hera["yaml"].rstrip("\n")
    assert hera["workflow"] == yaml.safe_load(recipe("argo-yaml"))


def test_the_workflow_is_valid_for_argos_schema(hera: dict[str, Any]):
    assert hera["argo_source"] == "argo-workflows-4.0.5.json"  # the Argo release docs/recipes.md names
    assert hera["errors"] == []
    assert hera["strict_errors"] == []
    assert hera["model_errors"] == []
    # What hera's models let through and Argo's schema refuses, checked here directly.
    workflow = hera["workflow"]
    assert (workflow["apiVersion"], workflow["kind"]) == ("argoproj.io/v1alpha1", "Workflow")
    template = entrypoint(workflow)
    assert template["container"]["image"] == documented_reference()
    # Retries on exit code 75 only, the code taskbox gives recoverable errors; limit is a string, as
    # Argo's schema types int-or-string.
    assert template["retryStrategy"] == {"expression": "asInt(lastRetry.exitCode) == 75", "limit": "3"}
    assert runmod.EXIT_RECOVERABLE == 75
    volumes = {v["name"]: v for v in template["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in template["container"]["volumeMounts"]}
    assert mounts["/config"]["configMap"] == {"name": "order-stats"}
    assert mounts["/data"]["persistentVolumeClaim"]["claimName"] == "shop-data"


def test_argos_schema_rejects_broken_workflows(hera: dict[str, Any]):
    broken = hera["broken"]
    template = "spec/templates/0"
    # The schema lets unknown fields through; the strict check (as argo lint) and the model do not.
    assert broken["misspelt field"] == {
        "errors": [],
        "strict_errors": [
            f"{template}/outputs/parameters/0/valueFrom: Additional properties are not allowed ('paht' was unexpected)"
        ],
        "model_errors": [f"{template}/outputs/parameters/0/valueFrom/paht: Extra inputs are not permitted"],
    }
    wrong_type = f"{template}/container/args: 'run --executor sqlite' is not of type 'array'"
    assert broken["args as a string"] == {
        "errors": [wrong_type],
        "strict_errors": [wrong_type],
        "model_errors": [f"{template}/container/args: Input should be a valid array"],
    }
    missing = f"{template}/container/volumeMounts/0: 'mountPath' is a required property"
    assert broken["mount without a path"] == {
        "errors": [missing],
        "strict_errors": [missing],
        "model_errors": [f"{template}/container/volumeMounts/0/mountPath: Field required"],
    }
    # Argo 4.0.5's schema refuses these (int-or-string typed as string, a container's required image,
    # kind's const); hera's models let them through, which is why the recipe's limit is "3" and why
    # test_the_workflow_is_valid_for_argos_schema checks limit, image and kind itself.
    for name in ("limit as a number", "no image", "wrong kind"):
        assert broken[name] == {"errors": [], "strict_errors": [], "model_errors": []}, name


def read_file(container: Any, path: str) -> str:
    """A file of a (stopped) container, as Argo's executor reads an output parameter."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.extractfile(archive.getmembers()[0])
        assert member is not None, path
        return member.read().decode()


@pytest.mark.timeout(300)
def test_the_workflows_container_runs_as_argo_would(
    hera: dict[str, Any], sqlite_image: str, shop: Path, docker_client: Any, tmp_path: Path
):
    workflow = hera["workflow"]
    template = entrypoint(workflow)
    container = template["container"]
    # Argo hands the workflow's arguments to the entrypoint template's inputs of the same names.
    arguments = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    inputs = {p["name"]: arguments[p["name"]] for p in template["inputs"]["parameters"]}

    def argo(text: str) -> str:
        done = re.sub(r"\{\{\s*inputs\.parameters\.([\w-]+)\s*\}\}", lambda m: inputs[m.group(1)], text)
        assert "{{" not in done, f"unresolved Argo expression in {text!r}"
        return done

    environment = {e["name"]: argo(e["value"]) for e in container.get("env", [])}
    assert environment == {"TASKBOX_INPUT_MIN_AMOUNT": "10"}
    environment["ARGO_PROGRESS_FILE"] = PROGRESS_FILE
    var_run_argo = tmp_path / "var-run-argo"
    var_run_argo.mkdir()
    var_run_argo.chmod(0o777)
    sources = {"configMap": shop / "config", "persistentVolumeClaim": shop / "data"}
    volumes = {v["name"]: next(str(sources[k]) for k in v if k in sources) for v in template["volumes"]}
    binds = {
        volumes[m["name"]]: {"bind": m["mountPath"], "mode": "ro" if m.get("readOnly") else "rw"}
        for m in container["volumeMounts"]
    }
    binds[str(var_run_argo)] = {"bind": "/var/run/argo", "mode": "rw"}

    run = docker_client.containers.run(
        container["image"],
        entrypoint=container["command"],
        command=[argo(a) for a in container["args"]],
        environment=environment,
        volumes=binds,
        network_mode="none",
        detach=True,
    )
    try:
        status = run.wait(timeout=240)["StatusCode"]
        logs = run.logs().decode(errors="replace")
        assert status == 0, logs
        outputs = {p["name"]: read_file(run, p["valueFrom"]["path"]) for p in template["outputs"]["parameters"]}
    finally:
        run.remove(force=True)
    assert outputs == {"n": "3", "total": "172.5"}
    assert (var_run_argo / "progress").read_text() == f"{runmod.STEPS}/{runmod.STEPS}"
