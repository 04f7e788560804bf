"""Shared pieces of the hostile input corpus (test_hostile_inputs.py, test_hostile_executors.py).

Why: every hostile run is checked the same way, so the contract lives here once: :func:`expect_error`
judges the prefix a run left behind, records the verdict in the reliability ledger and checks the
error contract of ``taskbox execute`` (exit code, ``error.pb`` alone with the expected code, origin,
kind and words, no traceback on stderr, a bounded message). The byte builders hand-encode protobuf
where the hostile shape cannot be built through the protobuf API (nesting past its recursion limit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyteidl.core import errors_pb2, execution_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2

from helpers import encode_inputs, execute_args, list_of, make_template, run, simple
from reliability.ledger import ERROR, LEDGER, LOST, judge
from taskbox.entrypoint.commit import MAX_MESSAGE_BYTES

INT, STR, STRUCT = simple("INTEGER"), simple("STRING"), simple("STRUCT")
DATASET = types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format="parquet"))
TYPES = {"n": INT, "text": STR, "xs": list_of(INT)}
VALUES = {"n": 1, "text": "a", "xs": [1, 2]}
MIB = 1024 * 1024
ABSENT = b"<no such file>"  # Case.template / Case.inputs: write no file at all


@dataclass
class Case:
    """One hostile run: the files to write and what the error document must say.

    ``template``/``inputs`` are bytes; ``None`` takes the test's good file, :data:`ABSENT` writes none.
    """

    code: str
    words: tuple[str, ...] = ()
    recoverable: bool = False
    template: bytes | None = None
    inputs: bytes | None = None
    executor: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def expect_error(family: str, proc: Any, prefix: str, code: str, words: tuple[str, ...] = (), *,
                 recoverable: bool = False, exit_code: int = 0, origin_name: str | None = None,
                 ) -> errors_pb2.ContainerError:  # fmt: skip
    """Judge a finished run, record it in the ledger, and check the error contract.

    Args:
        family: The ledger family (``hostile inputs.pb``...).
        proc: The finished CLI process.
        prefix: Its output prefix.
        code: The expected error code; its ``USER:``/``SYSTEM:`` prefix gives the expected origin.
        words: Text the message must contain (what names the problem).
        recoverable: The expected kind.
        exit_code: The expected exit code (0 for ``taskbox execute`` after ``error.pb``).
        origin_name: The expected origin (``"USER"``/``"SYSTEM"``) of a code without a prefix (Flyte 2's).

    Returns:
        The error document's ``ContainerError``.
    """
    if origin_name is None:
        origin_name = "USER" if code.startswith("USER:") else "SYSTEM"
    origin = execution_pb2.ExecutionError.USER if origin_name == "USER" else execution_pb2.ExecutionError.SYSTEM
    kind = errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
    seen: list[errors_pb2.ContainerError] = []

    def error_ok(error: errors_pb2.ContainerError) -> bool:
        seen.append(error)
        return (error.code, error.origin, error.kind) == (code, origin, kind) and all(w in error.message for w in words)

    verdict, detail = judge(prefix, outputs_ok=lambda: False, error_ok=error_ok)
    if verdict == LOST and seen:
        detail = (
            f"{prefix}: got {seen[0].code} (kind {seen[0].kind}), want {code} with {words}: {seen[0].message[:600]}"
        )
    LEDGER.record(family, verdict, faults=1, detail=detail)
    assert verdict != LOST, f"{detail}\nstderr:\n{proc.stderr[-3000:]}"
    assert verdict == ERROR
    assert proc.returncode == exit_code, proc.stderr[-3000:]
    assert "Traceback (most recent call last)" not in proc.stderr, proc.stderr[-3000:]
    assert code in proc.stderr  # the one-line summary for the pod log
    error = seen[0]
    assert len(error.message.encode()) <= MAX_MESSAGE_BYTES + 1024
    return error


def run_case(family: str, tmp_path: Path, case: Case) -> errors_pb2.ContainerError:
    """Write the case's files under ``tmp_path``, run ``taskbox execute`` on them and check the error."""
    template, inputs = str(tmp_path / "task.pb"), str(tmp_path / "inputs.pb")
    if case.template is not ABSENT:
        Path(template).write_bytes(echo_template() if case.template is None else case.template)
    if case.inputs is not ABSENT:
        Path(inputs).write_bytes(good_inputs() if case.inputs is None else case.inputs)
    prefix = str(tmp_path / "out")
    proc = run(execute_args(inputs, prefix, template, case.executor), **case.env)
    return expect_error(family, proc, prefix, case.code, case.words, recoverable=case.recoverable)


# ----------------------------------------------------------------------------- byte builders


def echo_template(types: dict[str, types_pb2.LiteralType] = TYPES, **kwargs: Any) -> bytes:
    return make_template("echo", types, types, **kwargs).SerializeToString()


def literal_map(**literals: literals_pb2.Literal) -> bytes:
    lm = literals_pb2.LiteralMap()
    for name, literal in literals.items():
        lm.literals[name].CopyFrom(literal)
    return lm.SerializeToString()


def literal(build: Callable[[literals_pb2.Literal], Any]) -> literals_pb2.Literal:
    lit = literals_pb2.Literal()
    build(lit)
    return lit


def _field(message: Any, name: str) -> int:
    return message.DESCRIPTOR.fields_by_name[name].number


def _length_delimited(number: int, payload: bytes) -> bytes:
    """One protobuf field of wire type 2 (hand-encoded: nesting deeper than protobuf will parse)."""

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def map_entry(name: str, literal_bytes: bytes) -> bytes:
    """One ``LiteralMap.literals`` entry, hand-encoded (a map entry is a message ``{1: key, 2: value}``)."""
    return _length_delimited(_field(literals_pb2.LiteralMap, "literals"),
                             _length_delimited(1, name.encode()) + _length_delimited(2, literal_bytes))  # fmt: skip


def nested_lists(depth: int) -> bytes:
    """``inputs.pb`` whose ``xs`` is a list of a list of ... ``depth`` levels deep."""
    data = lit_of(1, int).SerializeToString()
    collection = _field(literals_pb2.Literal, "collection")
    items = _field(literals_pb2.LiteralCollection, "literals")
    for _ in range(depth):
        data = _length_delimited(collection, _length_delimited(items, data))
    return map_entry("xs", data)


def nested_struct(depth: int) -> bytes:
    """``inputs.pb`` whose ``doc`` is a generic Struct ``{"a": {"a": ...}}`` nested ``depth`` levels."""
    from google.protobuf import struct_pb2

    fields, struct_value = _field(struct_pb2.Struct, "fields"), _field(struct_pb2.Value, "struct_value")
    data = b""
    for _ in range(depth):
        data = _length_delimited(
            fields, _length_delimited(1, b"a") + _length_delimited(2, _length_delimited(struct_value, data))
        )
    scalar = _length_delimited(_field(literals_pb2.Scalar, "generic"), data)
    return map_entry("doc", _length_delimited(_field(literals_pb2.Literal, "scalar"), scalar))


def nested_type(depth: int) -> bytes:
    """A template whose input ``xs`` is declared list<list<...>> ``depth`` levels deep (sound protobuf).

    The interface is appended as a second ``interface`` field, which protobuf merges into the first.
    """
    data = INT.SerializeToString()
    for _ in range(depth):
        data = _length_delimited(_field(types_pb2.LiteralType, "collection_type"), data)
    variable = _length_delimited(_field(interface_pb2.Variable, "type"), data)
    entry = _length_delimited(1, b"xs") + _length_delimited(2, variable)  # map entry {key, value}
    variables = _length_delimited(_field(interface_pb2.VariableMap, "variables"), entry)
    typed = _length_delimited(_field(interface_pb2.TypedInterface, "inputs"), variables)
    base = make_template("echo", {}, {}).SerializeToString()
    return base + _length_delimited(_field(tasks_pb2.TaskTemplate, "interface"), typed)


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1 and len(old) == len(new)
    return data.replace(old, new)


def msgpack_literal(payload: bytes) -> literals_pb2.Literal:
    def build(lit: literals_pb2.Literal) -> None:
        lit.scalar.binary.value, lit.scalar.binary.tag = payload, "msgpack"

    return literal(build)


def timestamp_literal(kind: str, seconds: int) -> literals_pb2.Literal:
    return literal(lambda lit: setattr(getattr(lit.scalar.primitive, kind), "seconds", seconds))


def good_inputs() -> bytes:
    return encode_inputs(VALUES, TYPES)


def offloaded(uri: str) -> literals_pb2.Literal:
    return literal(lambda lit: setattr(lit.offloaded_metadata, "uri", uri))


def lit_of(value: Any, python_type: Any) -> literals_pb2.Literal:
    from taskbox.literals import TypeEngine

    return TypeEngine.to_literal(value, python_type)


def list_literal(*items: literals_pb2.Literal) -> literals_pb2.Literal:
    return literal(lambda lit: lit.collection.literals.extend(items))


def inputs_with(**changed: literals_pb2.Literal) -> bytes:
    """The good inputs with some literals replaced or added."""
    good = literals_pb2.LiteralMap.FromString(good_inputs()).literals
    return literal_map(**{**dict(good), **changed})


def sqlite_template(
    custom: dict[str, Any], inputs: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None
) -> bytes:
    return make_template(
        "sqlite", inputs or {}, {"results": DATASET} if outputs is None else outputs, custom
    ).SerializeToString()


def put_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
