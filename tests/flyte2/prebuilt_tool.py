"""Run inside ``.venv-flyte2``: the flyte SDK's side of the taskbox.flyte2 tests, as one JSON line on stdout.

Commands (CASE names a case of ``prebuilt_cases.py``; its configuration comes from the environment):
    local CASE DIR [task]  ``flyte.run`` in local mode (raw data under DIR) of the case's workflow, or of the
                           prebuilt task itself with ``task``; prints ``{"result": ...}`` (tables as rows) or
                           ``{"error": {"type", "code", "kind", "message"}}``.
    prepare CASE DIR       serialize the task (``translate_task_to_wire``, in a ``TaskEnvironment.from_task``),
                           write DIR/inputs.pb (``convert_from_native_to_inputs``); print the args, image,
                           type, custom, interface and the security context.
    outputs CASE PB        read an outputs.pb with the SDK and the task's interface; print the values.
    resolve CASE           load the task back through ``PrebuiltTaskResolver`` from its own loader args.
    override CASE          ``task.override(...)``, with ``retries``/``cache`` and with an updated plugin_config.
    direct CASE            ``await task(...)`` outside any flyte run.
    cancel CASE SECONDS    the same, abandoned after SECONDS (``asyncio.wait_for``).
    define WHAT            define a task with a bad configuration; print the exception.
    images LOCK            the serialized image of each task class defined with LOCK as the image lock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pathlib
import pickle
import sys

import flyte
from flyte._internal.runtime import io
from flyte._internal.runtime.convert import convert_from_native_to_inputs, convert_outputs_to_native
from flyte._internal.runtime.task_serde import translate_task_to_wire
from flyte.models import SerializationContext
from google.protobuf.json_format import MessageToDict

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import prebuilt_cases


async def plain(value):
    """A JSON-able form of a native value: tables as lists of rows, tuples as lists."""
    from flyte.io import DataFrame

    if isinstance(value, DataFrame):
        import pandas as pd

        frame = pd.read_parquet(value.uri)  # outside a task context there is no raw data path to open it with
        return json.loads(frame.to_json(orient="records"))
    if isinstance(value, tuple):
        return [await plain(v) for v in value]
    return value


def local(case_name: str, out: str, target: str = "wf") -> dict:
    case = prebuilt_cases.CASES[case_name]()
    runnable = case.task if target == "task" else case.wf
    raw = pathlib.Path(out, "flyte-raw")
    try:
        run = flyte.with_runcontext(mode="local", raw_data_path=str(raw)).run(runnable, **case.inputs)
        values = run.outputs()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return {"error": {"type": type(exc).__name__, "code": getattr(exc, "code", None),
                          "kind": getattr(exc, "kind", None), "message": str(exc)}}  # fmt: skip
    result = values[0] if len(values) == 1 else tuple(values)
    return {"result": asyncio.run(plain(result))}


def _serialize(task):
    flyte.TaskEnvironment.from_task(f"{task.name}-env", task)
    ctx = SerializationContext(version="v1", root_dir=pathlib.Path(__file__).parent)
    return translate_task_to_wire(task, ctx).task_template


def prepare(case_name: str, out: str) -> dict:
    case = prebuilt_cases.CASES[case_name]()
    task = case.task
    template = _serialize(task)
    inputs = asyncio.run(convert_from_native_to_inputs(task.native_interface, **case.inputs))
    pathlib.Path(out, "inputs.pb").write_bytes(inputs.proto_inputs.SerializeToString())
    return {
        "args": list(template.container.args),
        "command": list(template.container.command),
        "image": template.container.image,
        "type": template.type,
        "custom": MessageToDict(template.custom),
        "interface": base64.b64encode(template.interface.SerializeToString()).decode(),
        "secrets": [MessageToDict(s) for s in template.security_context.secrets],
        "template": base64.b64encode(task.template_bytes()).decode(),
    }


def outputs(case_name: str, outputs_pb: str) -> dict:
    task = prebuilt_cases.CASES[case_name]().task

    async def read():
        loaded = await io.load_outputs(outputs_pb)
        return await plain(await convert_outputs_to_native(task.native_interface, loaded))

    return {"result": asyncio.run(read())}


def resolve(case_name: str) -> dict:
    from taskbox.flyte2 import PrebuiltTaskResolver

    task = prebuilt_cases.CASES[case_name]().task
    resolver = PrebuiltTaskResolver()
    args = resolver.loader_args(task, None)
    loaded = resolver.load_task(args)
    return {
        "import_path": resolver.import_path,
        "class": type(loaded).__name__,
        "same_template": loaded.template_bytes() == task.template_bytes(),
        "same_config": loaded.plugin_config == task.plugin_config,
        "inputs": sorted(loaded.native_interface.inputs),
        "outputs": {k: v.__name__ for k, v in loaded.native_interface.outputs.items()},
        "task_type": loaded.task_type,
    }


def override(case_name: str) -> dict:
    """``override`` keeps the class and the config; a changed config changes the template and cache version."""
    task = prebuilt_cases.CASES[case_name]().task
    cached = task.override(retries=2, cache="auto")
    moved = cached.override(plugin_config=task.plugin_config.updated(uri="/elsewhere.db"))
    from flyte._cache.cache import VersionParameters

    def version(task):
        return task.cache.get_version(VersionParameters(func=None, image=task.image))

    return {
        "class": [type(cached).__name__, type(moved).__name__],
        "retries": cached.retries.count,
        "same_config": cached.plugin_config == task.plugin_config,
        "moved_uri": moved.plugin_config.custom["uri"],
        "versions_differ": version(cached) != version(moved),
        "policies": [type(p).__name__ for p in moved.cache.policies],
        "task_type": moved.task_type,
        "pickles": type(pickle.loads(pickle.dumps(moved))).__name__,
        "secrets_after_override": [s.as_env_var for s in (moved.secrets or [])],
    }


def cancel(case_name: str, seconds: str) -> dict:
    """Call the task outside any flyte run (``forward``), give up after SECONDS: the run is cancelled."""
    case = prebuilt_cases.CASES[case_name]()

    async def call():
        try:
            await asyncio.wait_for(case.task(**case.inputs), float(seconds))
        except TimeoutError:
            return "timed out"
        return "finished"

    return {"result": asyncio.run(call())}


def direct(case_name: str) -> dict:
    """Call the task outside any flyte run: ``await task(...)`` runs it here, in a temporary directory."""
    case = prebuilt_cases.CASES[case_name]()
    return {"result": asyncio.run(_direct(case))}


async def _direct(case):
    return await plain(await case.task(**case.inputs))


def define(what: str) -> dict:
    from taskbox.flyte2 import HTTPTask, SQLiteTask

    db = os.environ.get("TBX_DB", "/data/app.db")
    try:
        if what == "bad-option":
            SQLiteTask("t", "SELECT 1 AS n", uri=db, timeout_seconds=-5, outputs={"n": int})
        elif what == "unknown-option":
            SQLiteTask("t", "SELECT 1 AS n", uri=db, no_such_field=1, outputs={"n": int})
        elif what == "missing-uri":
            SQLiteTask("t", "SELECT 1 AS n")
        elif what == "env-plugin-config":
            from taskbox.flyte2 import PrebuiltConfig

            config = PrebuiltConfig("sqlite", {"query_template": "SELECT 1 AS n", "uri": db})
            env = flyte.TaskEnvironment("configured", plugin_config=config)

            @env.task
            async def stub(n: int) -> int:
                return n

        elif what == "bad-method":
            HTTPTask("t", "https://example.com/x", method="GET FOO")
        else:
            raise SystemExit(f"unknown definition {what!r}")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return {"type": type(exc).__name__, "module": type(exc).__module__, "message": str(exc)}
    return {"type": None}


def images(lock: str) -> dict:
    from taskbox.flyte2 import HTTPJobTask, HTTPTask, SQLiteTask, SQLTask
    from taskbox.images.lock import using_lock

    with using_lock(pathlib.Path(lock)):
        tasks = {
            "sqlite": SQLiteTask("a", "SELECT 1 AS n", uri="/data/app.db", outputs={"n": int}),
            "sql": SQLTask("b", "SELECT 1 AS n", uri="postgresql://reader@db:5432/sales", outputs={"n": int}),
            "http": HTTPTask("c", "https://example.com/x"),
            "http-job": HTTPJobTask("d", submit_url="https://example.com/j", status_url="https://example.com/j/1"),
        }
    return {name: _serialize(task).container.image for name, task in tasks.items()}


def main(argv: list[str]) -> None:
    command, *rest = argv
    handlers = {
        "local": local,
        "prepare": prepare,
        "outputs": outputs,
        "resolve": resolve,
        "override": override,
        "cancel": cancel,
        "direct": direct,
        "define": define,
        "images": images,
    }
    if command not in handlers:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(handlers[command](*rest), default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
