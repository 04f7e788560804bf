"""Materialize docs/recipes.md's ``dagster`` recipe with ``dagster.materialize`` (in .venv-dagster).

Usage: ``dagster_driver.py NAME=SHOP_DIR ...``: one materialization per pair, each with ``SHOP_DIR`` (a
:func:`recipe_clients.make_shop` folder, the recipe's only documented variable) set to that folder and
the recipe's text executed afresh as a module (its code is the page's, unchanged). Each runs on an
ephemeral instance whose storage is a temporary folder, telemetry off (``DAGSTER_DISABLE_TELEMETRY`` and
the instance's settings).

It emits, per run: ``success``; the ``order_stats`` materialization's metadata (value and Dagster's type
name per entry); the outputs of both assets (``order_stats``'s value is the custom message taskbox sent);
every event or log message of WARNING or higher, and every Python warning raised while materializing;
the step failures' errors and the errors of the engine events (Pipes' "closed with exception").
"""

from __future__ import annotations

import logging
import os
import sys
import sysconfig
import tempfile
import types
import warnings
from typing import Any

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "yes")  # before dagster is imported (below, lazily)

import recipe_clients

#: Where the client's packages are (a warning's origin is said relative to it: ``dagster/...``).
SITE = sysconfig.get_paths()["purelib"]


def load_recipe(shop: str) -> types.ModuleType:
    """The recipe's code block as a module, with ``SHOP_DIR`` set for it."""
    os.environ["SHOP_DIR"] = shop
    module = types.ModuleType("dagster_recipe")
    module.__file__ = "docs/recipes.md"
    sys.modules[module.__name__] = module
    code = compile(recipe_clients.recipe("dagster"), "docs/recipes.md:dagster", "exec", dont_inherit=True)
    exec(code, module.__dict__)  # dont_inherit: not under this file's `from __future__ import annotations`
    return module


def error(info: Any) -> dict[str, Any] | None:
    """A ``SerializableErrorInfo`` as plain data (its causes too)."""
    if info is None:
        return None
    return {"cls_name": info.cls_name, "message": info.message, "cause": error(info.cause)}


def materialize_once(shop: str) -> dict[str, Any]:
    from dagster import DagsterInstance, materialize

    module = load_recipe(shop)
    defs = module.defs
    assets = [module.order_stats, module.order_report]
    with tempfile.TemporaryDirectory() as home:
        os.environ["DAGSTER_HOME"] = home
        instance = DagsterInstance.ephemeral(tempdir=home, settings={"telemetry": {"enabled": False}})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = materialize(assets, resources=defs.resources, instance=instance, raise_on_error=False)
        logs = instance.all_logs(result.run_id)
        out: dict[str, Any] = {"success": result.success}
        out["warnings"] = [
            {"level": logging.getLevelName(entry.level), "message": entry.user_message or entry.message}
            for entry in logs
            if entry.level >= logging.WARNING
        ]
        out["python_warnings"] = [
            {"warning": f"{w.category.__name__}: {w.message}", "raised_in": os.path.relpath(w.filename, SITE)}
            for w in caught
        ]
        materializations = result.asset_materializations_for_node("order_stats")
        out["materializations"] = len(materializations)
        if materializations:
            metadata = materializations[0].metadata
            out["metadata"] = {k: v.value for k, v in metadata.items()}
            out["metadata_types"] = {k: type(v).__name__ for k, v in metadata.items()}
        if result.success:
            out["order_stats"] = result.output_for_node("order_stats")
            out["order_report"] = result.output_for_node("order_report")
        out["step_failures"] = [error(e.step_failure_data.error) for e in result.get_step_failure_events()]
        events = [entry.dagster_event for entry in logs if entry.dagster_event is not None]
        out["engine_errors"] = [
            {"message": e.message, "error": error(e.engine_event_data.error)}
            for e in events
            if e.is_engine_event and e.engine_event_data.error is not None
        ]
        out["logs"] = [entry.user_message for entry in logs if entry.dagster_event is None]
        instance.dispose()
    return out


def main() -> None:
    results = {}
    for pair in sys.argv[1:]:
        name, _, shop = pair.partition("=")
        results[name] = materialize_once(shop)
    recipe_clients.emit(results)


if __name__ == "__main__":
    main()
