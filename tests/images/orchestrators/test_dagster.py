"""The ``dagster`` recipe of docs/recipes.md, materialized by Dagster itself against the built image.

What it shows: with ``PipesDockerClient`` taskbox speaks Dagster Pipes: the input comes from the asset's
``extras``, the asset's materialization carries the outputs as typed metadata (``n`` an int, ``total`` a
float), the custom message (the plain outputs) becomes the asset's value and reaches the downstream asset,
and Dagster's event log holds no warning (the only Python warnings are Dagster's Pipes code warning about its
own API). A failing query
fails the step, and Dagster's event log holds the taskbox error code from Pipes' closed message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from recipe_clients import EXPECTED, make_shop, run_driver

DRIVER = Path(__file__).with_name("dagster_driver.py")
PIPES_CONTEXT = "dagster/_core/pipes/context.py"


@pytest.fixture
def pipes_containers(docker_client: Any, sqlite_image: str) -> Iterator[None]:
    """Remove the containers ``PipesDockerClient`` leaves behind (it stops them, never removes them)."""
    before = {c.id for c in docker_client.containers.list(all=True)}
    yield
    for container in docker_client.containers.list(all=True, filters={"ancestor": sqlite_image}):
        env = container.attrs.get("Config", {}).get("Env") or []
        if container.id not in before and any(e.startswith("DAGSTER_PIPES_CONTEXT=") for e in env):
            container.remove(force=True)


@pytest.mark.timeout(600)
def test_dagster_pipes_recipe(sqlite_image: str, shop: Path, tmp_path: Path, pipes_containers: None) -> None:
    bad = make_shop(tmp_path / "bad-shop")
    config = bad / "config" / "query.json"
    config.write_text(config.read_text().replace("FROM orders", "FROM no_such_table"))
    result, _ = run_driver("dagster", DRIVER, f"ok={shop}", f"bad={bad}", timeout=540)

    ok = result["ok"]
    assert ok["success"] is True, ok
    assert ok["materializations"] == 1
    assert {k: ok["metadata"][k] for k in EXPECTED} == EXPECTED  # beside them: the IO manager's path
    assert {k: ok["metadata_types"][k] for k in EXPECTED} == {"n": "IntMetadataValue", "total": "FloatMetadataValue"}
    assert ok["order_stats"] == EXPECTED  # the custom message: outputs.json's value
    assert ok["order_report"] == "3 orders over the minimum, 172.5 in total"
    assert ok["warnings"] == []  # no event or log message of WARNING or higher in Dagster's event log
    # Python warnings: only Dagster's Pipes code about its own API (1.13: context.run_id's deprecation and the
    # preview PipesMessageReader.expected_writer_count, raised by every Pipes client), none from the recipe
    assert {w["raised_in"] for w in ok["python_warnings"]} <= {PIPES_CONTEXT}, ok["python_warnings"]
    assert ok["step_failures"] == [] and ok["engine_errors"] == []
    assert any(m.startswith("running taskbox-run.sqlite") for m in ok["logs"]), ok["logs"]  # forwarded logs

    bad_run = result["bad"]
    assert bad_run["success"] is False and bad_run["materializations"] == 0
    assert bad_run["step_failures"] and "non-zero status code" in json.dumps(bad_run["step_failures"])
    closed = [e["error"] for e in bad_run["engine_errors"] if "closed with exception" in e["message"]]
    assert len(closed) == 1, bad_run["engine_errors"]
    assert closed[0]["cls_name"] == "USER:QueryFailed"
    assert "no such table: no_such_table (USER, not recoverable, exit code 1)" in closed[0]["message"]
    assert any("taskbox run: failed (USER:QueryFailed" in m for m in bad_run["logs"])  # an ERROR log too
    assert [w for w in bad_run["warnings"] if w["level"] == "WARNING"] == []  # e.g. no "did not receive closed"
    assert {w["raised_in"] for w in bad_run["python_warnings"]} <= {PIPES_CONTEXT}
