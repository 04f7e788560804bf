"""The ``airflow-docker`` recipe of docs/recipes.md, run by Airflow 3's ``dag.test()`` against the built image.

What it shows: the DockerOperator's XCom is the dict taskbox pickled (``--output-file outputs.pickle=...``
with ``retrieve_output=True``), and it reaches the downstream ``@task``; the recipe's operator subclass
makes a user error (exit 1) fail at its first try although the task has retries, while a recoverable one
(exit 75: a writer kept the SQLite file locked) goes up for retry and the retry succeeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_clients import EXPECTED, run_driver

DRIVER = Path(__file__).with_name("airflow_driver.py")


@pytest.mark.timeout(900)
def test_airflow_docker_operator_recipe(sqlite_image: str, shop: Path, tmp_path: Path) -> None:
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SHOP_DIR": str(shop),
    }
    result, proc = run_driver("airflow", DRIVER, env=env, timeout=840)
    assert result["retries"] == 3

    ok = result["ok"]
    assert ok["state"] == "success", ok
    stats, report = ok["tasks"]["order_stats"], ok["tasks"]["report"]
    assert stats["xcom"] == EXPECTED and stats["xcom_type"] == "dict"  # unpickled by the provider, not a string
    assert report["xcom"] == {**EXPECTED, "average": 57.5} and report["state"] == "success"
    assert stats["try_number"] == 1
    assert result["param"]["tasks"]["order_stats"]["xcom"] == {"n": 1, "total": 150.0}

    recoverable = result["recoverable"]
    stats = recoverable["tasks"]["order_stats"]
    assert recoverable["state"] == "success", recoverable
    assert recoverable["released_after_try"] == [1]  # try 1 exited 75 and went up for retry
    assert stats["try_number"] == 2 and stats["xcom"] == EXPECTED
    assert recoverable["tasks"]["report"]["xcom"] == {**EXPECTED, "average": 57.5}

    failed = result["user_error"]
    stats = failed["tasks"]["order_stats"]
    assert failed["state"] == "failed", failed
    assert stats["state"] == "failed" and stats["try_number"] == 1  # retries=3, yet not retried
    assert stats["xcom"] is None and failed["tasks"]["report"]["state"] == "upstream_failed"
    # taskbox's verdicts reached Airflow's task log (stderr of the container, attached by the operator)
    assert "taskbox run: failed (SYSTEM:TransactionConflict, SYSTEM, recoverable)" in proc.stdout
    assert "taskbox run: failed (USER:QueryFailed, USER, non-recoverable)" in proc.stdout
    assert "taskbox run exited 1; not retried" in proc.stdout
