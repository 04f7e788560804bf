"""Flyte 2's ``Inputs``/``Outputs`` messages for ``taskbox inspect --flyte2``, without the ``flyteidl2`` package.

Why: the executor images carry ``flyteidl`` (v1) only. v2's ``flyteidl2.task.Inputs`` (repeated
``NamedLiteral`` + ``context``) and ``Outputs`` share field numbers with v1's ``LiteralMap``, so reading them
as a ``LiteralMap`` works for running a task but loses the entries' order and the ``context``. These message
classes keep both for display. When ``flyteidl2`` is installed its own classes are used.

Example::

    message = v2_message("inputs")()
    message.ParseFromString(data)   # message.literals[0].name, message.context[0].key

Invariants:
    * The dynamic messages live in package ``taskbox.flyte2wire`` (never ``flyteidl2.*``), so importing
      ``flyteidl2`` in the same process cannot clash with them.
    * The literal values are v1's ``flyteidl.core.Literal`` (fields v2 added are kept as unknown fields).
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["v2_message"]

_PACKAGE = "taskbox.flyte2wire"


def v2_message(kind: str) -> Any:
    """The message class of a v2 document: ``inputs`` or ``outputs``.

    Raises:
        KeyError: Another kind.
    """
    try:
        from flyteidl2.task import common_pb2

        return {"inputs": common_pb2.Inputs, "outputs": common_pb2.Outputs}[kind]
    except ImportError:
        return _dynamic()[kind]


@functools.cache
def _dynamic() -> dict[str, Any]:
    from flyteidl.core import literals_pb2
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="taskbox/flyte2wire.proto", package=_PACKAGE, syntax="proto3", dependency=[literals_pb2.DESCRIPTOR.name]
    )

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        proto = file.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            field = proto.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                field.type_name = type_name

    one, many = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("KeyValuePair", [("key", 1, one, F.TYPE_STRING, ""), ("value", 2, one, F.TYPE_STRING, "")])
    message(
        "NamedLiteral",
        [("name", 1, one, F.TYPE_STRING, ""), ("value", 2, one, F.TYPE_MESSAGE, ".flyteidl.core.Literal")],
    )
    message("Inputs", [("literals", 1, many, F.TYPE_MESSAGE, f".{_PACKAGE}.NamedLiteral"),
                       ("context", 2, many, F.TYPE_MESSAGE, f".{_PACKAGE}.KeyValuePair")])  # fmt: skip
    message("Outputs", [("literals", 1, many, F.TYPE_MESSAGE, f".{_PACKAGE}.NamedLiteral")])
    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindFileByName(file.name)
    except KeyError:
        pool.Add(file)
        descriptor = pool.FindFileByName(file.name)
    return {
        kind: message_factory.GetMessageClass(descriptor.message_types_by_name[name])
        for kind, name in (("inputs", "Inputs"), ("outputs", "Outputs"))
    }
