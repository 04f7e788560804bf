"""Run docs/recipes.md's ``airflow-docker`` recipe with Airflow's own ``dag.test()`` (in .venv-airflow).

Usage: ``airflow_driver.py``, with ``AIRFLOW_HOME`` (an empty temporary folder) and ``SHOP_DIR`` (a
:func:`recipe_clients.make_shop` folder) in the environment. The recipe's text is written as the one DAG
file of the dags folder (so Airflow's bundle parser finds the DAG, as a real deployment would), the
metadata database is made with ``airflow db migrate`` (SQLite under ``AIRFLOW_HOME``, no example DAGs),
and four runs follow, each a real ``dag.test()``:

* ``ok``: ``min_amount=10`` from the DAG's params (and ``param``: 100, a value other than the default);
* ``recoverable``: a writer holds ``shop.db`` locked, so taskbox exits 75
  (``SYSTEM:TransactionConflict``); the lock is released by an ``on_retry_callback`` the driver adds,
  so the retry succeeds (the recipe's ``retry_delay`` is set to 0 so the test does not wait a minute);
* ``user_error``: the config names a table that does not exist, so taskbox exits 1.

It emits, per run, the run's state and each task's state, try number and XCom.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import recipe_clients

DAG_ID = "order_stats_docker"


def main() -> None:
    home = Path(os.environ["AIRFLOW_HOME"])
    shop = Path(os.environ["SHOP_DIR"])
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    dag_file = dags / f"{DAG_ID}.py"
    dag_file.write_text(recipe_clients.recipe("airflow-docker") + "\n")
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True)

    spec = importlib.util.spec_from_file_location(DAG_ID, dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.order_stats_dag
    stats_task = dag.task_dict["order_stats"]
    results: dict[str, Any] = {"retries": stats_task.retries}

    results["ok"] = run(dag, {"min_amount": 10})
    results["param"] = run(dag, {"min_amount": 100})  # the DAG param reaches taskbox's input

    writer = recipe_clients.hold_lock(shop / "data" / "shop.db")
    released: list[int] = []

    def release(context: Any) -> None:  # the test's hook, not the recipe's: ends the "outage"
        released.append(context["ti"].try_number)
        writer.rollback()
        writer.close()

    stats_task.retry_delay = timedelta(0)
    stats_task.on_retry_callback = [release]
    try:
        results["recoverable"] = run(dag, {"min_amount": 10})
    finally:
        writer.close()  # a no-op once released; else the lock must not outlive this scenario
    results["recoverable"]["released_after_try"] = released
    stats_task.on_retry_callback = []

    with recipe_clients.broken_query(shop):
        results["user_error"] = run(dag, {"min_amount": 10})
    recipe_clients.emit(results)


def run(dag: Any, conf: dict[str, Any]) -> dict[str, Any]:
    """One ``dag.test()``; return the run's state and, per task, its state, try number and XCom."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dr = dag.test(run_conf=conf)
    out: dict[str, Any] = {"state": str(dr.state), "tasks": {}}
    with create_session() as session:
        for ti in dr.get_task_instances(session=session):
            rows = session.scalars(XComModel.get_many(run_id=dr.run_id, key="return_value", task_ids=ti.task_id)).all()
            value = XComModel.deserialize_value(rows[0]) if rows else None
            out["tasks"][ti.task_id] = {
                "state": str(ti.state),
                "try_number": ti.try_number,
                "xcom": value,
                "xcom_type": type(value).__name__,
            }
    print(json.dumps(out), file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
