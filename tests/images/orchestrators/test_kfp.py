"""docs/recipes.md's Kubeflow Pipelines recipe, run by KFP's own local ``DockerRunner`` against the image.

The driver (kfp_driver.py, in .venv-kfp) runs the ``kfp`` block as written, as an ordinary user (uid
:data:`USER`, in the Docker socket's group): the recipe's answer to the image's uid 65532 meeting the
pipeline root its caller made is ``DockerRunner(user=<caller's uid:gid>)``, which only shows when the
caller is not root. The work folder is made outside pytest's private (0700) temporary folders, so that
user can reach it; it holds the shop data, ``config/query.json`` (the ``config`` block) and
``config/share.json`` (the ``kfp-share`` block).

Shown here: the numbers KFP's pipeline outputs carry (``n``, ``total`` from step one, the ``share`` step
two computed from ``n``); the compiled pipeline (the same components, for a cluster) naming the
documented image with its ConfigMap and PVC mounts and retries; outputs owned by the caller; and a user
error: taskbox exits 1 in every attempt and KFP fails the run with its ``RuntimeError``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from recipe_clients import EXPECTED, make_shop, recipe, run_driver

DRIVER = Path(__file__).with_name("kfp_driver.py")
#: The ordinary user the recipe runs as (any uid but 0 and the image's 65532 would do).
USER = 4242
SHARE = 3 / 5  # n of the five orders


def make_workdir(root: Path, query: str | None = None) -> Path:
    """A shop under ``root`` with both configs (``query`` replaces query.json's text), owned by :data:`USER`."""
    make_shop(root)
    config = root / "config"
    (config / "share.json").write_text(recipe("kfp-share"))
    if query is not None:
        (config / "query.json").write_text(query)
    for path in config.iterdir():
        path.chmod(0o644)
    if os.geteuid() == 0:
        os.chown(root, USER, USER)
    return root


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A temporary folder any user can reach (pytest's own are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="taskbox-kfp-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_recipe(workdir: Path) -> tuple[dict[str, Any], str]:
    result, proc = run_driver("kfp", DRIVER, str(workdir), str(USER), env={"HOME": str(workdir)}, timeout=900)
    if os.geteuid() == 0:
        assert (result["uid"], result["gid"]) == (USER, USER)
    return result, proc.stdout + proc.stderr


@pytest.mark.timeout(900)
def test_kfp_local_pipeline_passes_n_to_the_second_step(sqlite_image: str, public_tmp: Path):
    workdir = make_workdir(public_tmp / "shop")
    result, _ = run_recipe(workdir)

    assert "error" not in result, result.get("error")
    assert result["outputs"] == {**EXPECTED, "share": pytest.approx(SHARE)}
    assert result["exit_codes"] == [0, 0]
    # The steps ran as the caller (user=): what they wrote is the caller's, not uid 65532's.
    written = [p for p in (workdir / "kfp-outputs").rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"n", "total", "share"}
    assert {p.stat().st_uid for p in written} == {result["uid"]}

    # The same components compiled for a cluster: the documented image, the ConfigMap and PVC mounts.
    pipeline, platform = yaml.safe_load_all(result["compiled"])
    executors = pipeline["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {sqlite_image}
    assert all(e["container"]["command"] == ["taskbox"] for e in executors.values())
    tasks = pipeline["root"]["dag"]["tasks"]
    assert set(tasks) == {"order-stats", "order-share"}
    assert {t["retryPolicy"]["maxRetryCount"] for t in tasks.values()} == {3}
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(k8s) == 2
    for spec in k8s.values():
        assert [(c["configMapName"], c["mountPath"]) for c in spec["configMapAsVolume"]] == [("order-stats", "/config")]
        pvcs = [(p["pvcNameParameter"]["runtimeValue"]["constant"], p["mountPath"]) for p in spec["pvcMount"]]
        assert pvcs == [("shop-data", "/data")]


@pytest.mark.timeout(900)
def test_kfp_user_error_fails_the_task(sqlite_image: str, public_tmp: Path):
    # A query naming a column the table lacks: USER:QueryFailed, exit 1.
    broken = recipe("config").replace("sum(amount)", "sum(price)")
    assert broken != recipe("config")
    workdir = make_workdir(public_tmp / "shop", query=broken)
    result, output = run_recipe(workdir)

    assert "outputs" not in result
    assert result["error"] == "Pipeline 'order-stats' finished with status FAILURE. Inner task failed: 'order-stats'."
    # set_retry(3) retries whatever failed (KFP has no exit-code condition): 4 runs, each exit 1.
    assert result["exit_codes"] == [1, 1, 1, 1]
    assert "USER:QueryFailed" in output and "no such column: price" in output
    assert "'order-share'" not in output  # the second step never ran
