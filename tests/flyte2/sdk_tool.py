"""Run inside ``.venv-flyte2``: the flyte SDK's side of the ``a0`` tests, as one JSON line on stdout.

Commands:
    prepare CASE DIR       write DIR/inputs.pb (``convert_from_native_to_inputs``) and print the task's
                           container args and its interface (v2 ``TypedInterface`` bytes, base64) as
                           ``translate_task_to_wire`` serializes them.
    check CASE OUTPUTS_PB [RENAME]
                           read the outputs back (``load_outputs`` + ``convert_outputs_to_native``) and
                           print whether they equal the value sent (RENAME ``x``: taskbox's ``echo``
                           executor named its output after the input; the literal is renamed to ``o0``).
    error ERROR_PB         read an error document (``load_error``) and print code, kind, recoverable, message.
    pkl CASE PATH          write the case's task as a ``--pkl`` bundle (gzipped cloudpickle).
    args MODULE TASK ROOT  print the task's container args (serialized with ``root_dir=ROOT``).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import pathlib
import pickle
import sys

from flyte._internal.runtime import io
from flyte._internal.runtime.convert import convert_from_native_to_inputs, convert_outputs_to_native
from flyte._internal.runtime.task_serde import translate_task_to_wire
from flyte.models import SerializationContext

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import v2cases


def _serialize(task, root: pathlib.Path):
    return translate_task_to_wire(task, SerializationContext(version="v1", root_dir=root)).task_template


async def _prepare(case: str, out: str) -> dict:
    from flyte._context import internal_ctx
    from flyte.models import RawDataPath

    task, factory = v2cases.CASES[case]
    value = factory()
    raw = pathlib.Path(out, "sdk-raw")
    raw.mkdir(exist_ok=True)
    with internal_ctx().new_raw_data_path(RawDataPath(path=str(raw))):  # where the SDK uploads local data
        inputs = await convert_from_native_to_inputs(task.native_interface, value)
    pathlib.Path(out, "inputs.pb").write_bytes(inputs.proto_inputs.SerializeToString())
    pathlib.Path(out, "value.pkl").write_bytes(pickle.dumps(value))
    template = _serialize(task, pathlib.Path(__file__).parent)
    return {
        "args": list(template.container.args),
        "interface": base64.b64encode(template.interface.SerializeToString()).decode(),
    }


async def _check(case: str, outputs_pb: str, rename: str = "") -> dict:
    task, _ = v2cases.CASES[case]
    sent = pickle.loads(pathlib.Path(outputs_pb).parent.parent.joinpath("value.pkl").read_bytes())
    outputs = await io.load_outputs(outputs_pb)
    for named in outputs.proto_outputs.literals:
        if rename and named.name == rename:
            named.name = "o0"
    native = await convert_outputs_to_native(task.native_interface, outputs)
    return {"equal": await v2cases.same(sent, native), "got": repr(native)[:500], "sent": repr(sent)[:500]}


async def _error(error_pb: str) -> dict:
    from flyteidl2.core import execution_pb2

    error = await io.load_error(error_pb)
    document = execution_pb2.ErrorDocument.FromString(pathlib.Path(error_pb).read_bytes())
    return {
        "code": error.code,
        "kind": execution_pb2.ExecutionError.ErrorKind.Name(error.kind),
        "recoverable": document.error.kind == execution_pb2.ContainerError.RECOVERABLE,
        "message": error.message,
    }


def main(argv: list[str]) -> None:
    command, *rest = argv
    if command == "prepare":
        result = asyncio.run(_prepare(*rest))
    elif command == "check":
        result = asyncio.run(_check(*rest))
    elif command == "pkl":  # CASE PATH: the task as a --pkl code bundle (gzipped cloudpickle, as the SDK writes)
        import gzip

        import cloudpickle

        case, path = rest
        with gzip.open(path, "wb") as fh:
            cloudpickle.dump(v2cases.CASES[case][0], fh)
        result = {"pkl": path}
    elif command == "error":
        result = asyncio.run(_error(*rest))
    elif command == "args":
        module, task, root = rest
        result = {
            "args": list(_serialize(getattr(importlib.import_module(module), task), pathlib.Path(root)).container.args)
        }
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
