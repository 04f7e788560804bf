"""Helpers shared by the tests: build templates and inputs, run the real ``taskbox`` CLI, read results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from flyteidl.core import errors_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2
from google.protobuf import struct_pb2

from taskbox import storage

ROOT = Path(__file__).resolve().parent.parent
TASKBOX = str(Path(sys.executable).with_name("taskbox"))
PLUGINS = str(ROOT / "tests" / "plugins")


def simple(kind: str) -> types_pb2.LiteralType:
    """A LiteralType for a simple type name: INTEGER, FLOAT, STRING, BOOLEAN, DATETIME, DURATION, STRUCT, NONE."""
    return types_pb2.LiteralType(simple=types_pb2.SimpleType.Value(kind))


def list_of(inner: types_pb2.LiteralType) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(collection_type=inner)


def map_of(inner: types_pb2.LiteralType) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(map_value_type=inner)


def variables(types: dict[str, types_pb2.LiteralType]) -> interface_pb2.VariableMap:
    return interface_pb2.VariableMap(variables={n: interface_pb2.Variable(type=t) for n, t in types.items()})


def make_template(
    task_type: str,
    inputs: dict[str, types_pb2.LiteralType] | None = None,
    outputs: dict[str, types_pb2.LiteralType] | None = None,
    custom: dict[str, Any] | None = None,
    name: str = "tests.task",
) -> tasks_pb2.TaskTemplate:
    template = tasks_pb2.TaskTemplate(
        type=task_type,
        interface=interface_pb2.TypedInterface(inputs=variables(inputs or {}), outputs=variables(outputs or {})),
    )
    template.id.name = name
    if custom is not None:
        struct = struct_pb2.Struct()
        struct.update(custom)
        template.custom.CopyFrom(struct)
    return template


def encode_inputs(values: dict[str, Any], types: dict[str, types_pb2.LiteralType], raw: str = "/tmp") -> bytes:
    from taskbox.literals import ConversionContext, python_to_literal_map

    ctx = ConversionContext(raw_output_prefix=raw, working_dir="/tmp")
    return python_to_literal_map(values, types, ctx).SerializeToString()


def put(uri: str, data: bytes) -> str:
    storage.write_bytes(uri, data)
    return uri


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PLUGINS, env.get("PYTHONPATH", "")) if p)
    env.setdefault("TASKBOX_LOG_LEVEL", "INFO")
    env.update(extra)
    return env


def execute_args(inputs: str, prefix: str, template: str, executor: str | None = None, *extra: str) -> list[str]:
    """The container args a Flyte template carries, with taskbox's resolver."""
    args = [
        TASKBOX,
        "execute",
        "--inputs",
        inputs,
        "--output-prefix",
        prefix,
        *extra,
        "--resolver",
        "taskbox.template",
        "--",
        template,
    ]
    if executor:
        args.append(executor)
    return args


def run(args: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=subprocess_env(**env))


def read_literal_map(uri: str) -> literals_pb2.LiteralMap:
    lm = literals_pb2.LiteralMap()
    lm.ParseFromString(storage.read_bytes(uri))
    return lm


def read_outputs(prefix: str, types: dict[str, types_pb2.LiteralType]) -> dict[str, Any]:
    from taskbox.literals import ConversionContext, literal_map_to_python

    ctx = ConversionContext(raw_output_prefix="/tmp", working_dir="/tmp")
    return literal_map_to_python(read_literal_map(storage.join(prefix, "outputs.pb")), types, ctx)


def read_error(prefix: str) -> errors_pb2.ContainerError:
    doc = errors_pb2.ErrorDocument()
    doc.ParseFromString(storage.read_bytes(storage.join(prefix, "error.pb")))
    return doc.error


def commit_files(prefix: str) -> set[str]:
    """Which commit files exist under a prefix."""
    return {name for name in ("outputs.pb", "error.pb") if storage.exists(storage.join(prefix, name))}


def write_tar(path: Any, members: list[tuple[dict[str, Any], bytes | None]], mode: str = "w:gz", **options: Any) -> str:
    """Write a tar archive of hand-made members, for archive-validation tests.

    Args:
        path: Where to write.
        members: ``(TarInfo fields, data)`` pairs; ``fields`` must hold ``name``; ``data`` is ``None`` for
            members without content (directories, links, devices).
        mode: ``tarfile.open`` mode (``"w:gz"``, ``"w"``...).
        **options: More ``tarfile.open`` arguments (``format``, ``encoding``, ``errors``).

    Returns:
        The path written.
    """
    import io
    import tarfile

    with tarfile.open(str(path), mode, **options) as tf:
        for fields, data in members:
            fields = dict(fields)
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return str(path)
