"""Run docs/recipes.md's ``prefect`` recipe with Prefect 3 itself (in .venv-prefect).

Usage: ``prefect_driver.py``, with ``PREFECT_HOME`` (an empty temporary folder), ``SHOP_DIR`` (a
:func:`recipe_clients.make_shop` folder), analytics off and no ``PREFECT_API_URL`` in the environment:
Prefect then starts its ephemeral API server, on 127.0.0.1. The recipe's text is imported as a module
(written to a file under ``PREFECT_HOME``), and its flow runs four times:

* ``ok``: ``shop_report(min_amount=10)`` (and ``param``: 100);
* ``recoverable``: a writer holds ``shop.db`` locked, so taskbox exits 75 (``SYSTEM:TransactionConflict``);
  the driver wraps the recipe's ``retry_condition_fn`` (the wrapper records its answer and then ends the
  "outage") and sets ``retry_delay_seconds=0``, so the retry runs at once and succeeds;
* ``user_error``: the config names a table that does not exist, so taskbox exits 1.

It emits each run's result (or error), the flow state and the order_stats task's run count.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import recipe_clients


def main() -> None:
    home = Path(os.environ["PREFECT_HOME"])
    shop = Path(os.environ["SHOP_DIR"])
    path = home / "shop_report.py"
    path.write_text(recipe_clients.recipe("prefect") + "\n")
    spec = importlib.util.spec_from_file_location("shop_report", path)
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    results: dict[str, Any] = {"retries": recipe.order_stats.retries}

    value = recipe.shop_report(min_amount=10)  # as a user calls it: the value, or the task's exception
    results["ok"] = {"value": value, "type": type(value).__name__, **runs(recipe)}
    results["param"] = recipe.shop_report(min_amount=100)  # the flow's parameter reaches taskbox's input

    writer = recipe_clients.hold_lock(shop / "data" / "shop.db")
    answers: list[bool] = []

    def condition(task: Any, task_run: Any, state: Any) -> bool:  # the test's hook around the recipe's
        answers.append(recipe.recoverable(task, task_run, state))
        writer.rollback()
        return answers[-1]

    original = recipe.order_stats
    recipe.order_stats = original.with_options(retry_delay_seconds=0, retry_condition_fn=condition)
    try:
        value = recipe.shop_report(min_amount=10)
    finally:
        writer.close()
        recipe.order_stats = original
    results["recoverable"] = {"value": value, "answers": answers, **runs(recipe)}

    with recipe_clients.broken_query(shop):
        state = recipe.shop_report(min_amount=10, return_state=True)
    error = state.result(raise_on_failure=False)
    results["user_error"] = {
        "state": state.type.value,
        "error_type": type(error).__name__,
        "exit_code": getattr(error, "exit_code", None),
        "error": str(error),
        **runs(recipe),
    }
    recipe_clients.emit(results)


def runs(recipe: Any) -> dict[str, Any]:
    """The latest flow run's state and its order_stats task run's state and run count, from Prefect's API."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    stats = [t for t in task_runs if t.task_key and t.name.startswith("order_stats")]
    assert len(stats) == 1, task_runs
    return {
        "flow_state": flow_run.state.type.value,
        "task_state": stats[0].state.type.value,
        "task_run_count": stats[0].run_count,
    }


if __name__ == "__main__":
    main()
