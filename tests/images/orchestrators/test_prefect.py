"""The ``prefect`` recipe of docs/recipes.md, run by Prefect 3 (ephemeral API server) against the built image.

What it shows: the flow gets taskbox's outputs back as a Python dict through prefect-docker's
``DockerHost`` client (``containers.run`` waits and returns stdout: no wait loop, no file read out of a
container); a user error fails the flow at once with taskbox's error code in the exception, without
Prefect's "Failed to write result" warning; exit 75 (a writer kept the SQLite file locked) is retried by
the recipe's ``retry_condition_fn`` and the retry succeeds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from recipe_clients import EXPECTED, run_driver

DRIVER = Path(__file__).with_name("prefect_driver.py")


@pytest.mark.timeout(600)
def test_prefect_docker_recipe(sqlite_image: str, shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "prefect-home"
    home.mkdir()
    for name in [n for n in os.environ if n.startswith("PREFECT_")]:
        monkeypatch.delenv(name)  # no PREFECT_API_URL: the ephemeral server, on 127.0.0.1
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "SHOP_DIR": str(shop),
    }
    result, proc = run_driver("prefect", DRIVER, env=env, timeout=540)
    assert result["retries"] == 3

    ok = result["ok"]
    assert ok["type"] == "dict" and ok["value"] == {**EXPECTED, "average": 57.5}
    assert ok["flow_state"] == "COMPLETED" and ok["task_run_count"] == 1
    assert result["param"] == {"n": 1, "total": 150.0, "average": 150.0}

    recoverable = result["recoverable"]
    assert recoverable["answers"] == [True]  # the recipe's retry_condition_fn said yes to exit 75
    assert recoverable["task_run_count"] == 2 and recoverable["task_state"] == "COMPLETED"
    assert recoverable["value"] == {**EXPECTED, "average": 57.5}

    failed = result["user_error"]
    assert failed["state"] == failed["flow_state"] == failed["task_state"] == "FAILED", failed
    assert failed["task_run_count"] == 1  # retries=3, yet not retried
    assert failed["error_type"] == "TaskboxRunFailed" and failed["exit_code"] == 1
    assert failed["error"].startswith("exit 1: taskbox run: failed (USER:QueryFailed, USER, non-recoverable)")
    assert "SYSTEM:TransactionConflict, SYSTEM, recoverable" in proc.stderr  # the retried attempt, in Prefect's log
    assert [line for line in proc.stderr.splitlines() if "| WARNING |" in line] == []
