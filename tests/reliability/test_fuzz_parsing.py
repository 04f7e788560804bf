"""Fuzzing the paths that read untrusted task files: ``inputs.pb``, the ``TaskTemplate`` and the conversion of
inputs by the declared interface.

Why: both files come from storage the task does not control, and every failure while reading them must
end in ``error.pb`` with the right USER/SYSTEM class. An exception that is not a ``TaskboxError`` would
be reported as a recoverable ``SYSTEM:<Type>`` error (Flyte would retry a hopeless input), so the
property of every target here is: **the only outcomes are success or a ``TaskboxError`` whose Flyte
mapping is consistent** (code prefix = origin, and an ``ErrorDocument`` can be built from it).

Targets, in-process, through the functions ``taskbox execute`` itself uses (``read_inputs``,
``load_template_task``, ``literal_map_to_python``):

* arbitrary bytes as ``inputs.pb`` and as the template;
* valid ``LiteralMap`` / ``TaskTemplate`` bytes with bits flipped, bytes cut, spliced and inserted;
* structure-aware: generated ``Literal`` trees (every scalar kind, collections, maps, unions, blobs,
  datasets, offloaded literals, msgpack and Struct payloads) converted by generated ``LiteralType``
  interfaces and by Python type hints (the ``taskbox.function`` path).

Invariants:
    * Bounded: ``make test`` runs the derandomised ``ci`` settings (the same examples every run, a few
      seconds per target); ``make fuzz`` sets ``TASKBOX_FUZZ_SECONDS`` and each target then runs
      randomised batches until its share of that budget is spent.
    * Nothing leaves the machine: blob and offload URIs are local paths; a tripwire refuses any
      connection or name lookup that is not loopback (a safety net, not a double of the code under test).
    * Failing inputs are printed by hypothesis (``print_blob``); keep a crasher as an explicit example.
"""

# ruff: noqa: UP007, UP045 - typing.Optional/Union spelled out on purpose (the typing.Union path of the engine)

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import math
import os
import socket
import time
from collections.abc import Iterator
from typing import Any, Optional, Union

import pytest
from flyteidl.core import errors_pb2, execution_pb2, literals_pb2, tasks_pb2, types_pb2
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from helpers import encode_inputs, make_template, put
from reliability.ledger import ERROR, FUZZ_SECONDS, LEDGER, LOST, OUTPUTS
from taskbox.entrypoint.commit import error_document
from taskbox.entrypoint.execute import read_inputs
from taskbox.entrypoint.template import load_template_task
from taskbox.errors import TaskboxError
from taskbox.literals import ConversionContext, Directory, File, StructuredDataset, TypeEngine, literal_map_to_python

TARGETS = 6  # test functions sharing TASKBOX_FUZZ_SECONDS
CI_EXAMPLES = 250
SHARE_S = FUZZ_SECONDS / TARGETS

CI = settings(
    derandomize=True,
    max_examples=CI_EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
BATCH = settings(CI, derandomize=False, max_examples=200)
pytestmark = pytest.mark.timeout(int(SHARE_S) + 240)


def fuzz(prop: Any, examples: int = CI_EXAMPLES) -> None:
    """Run a ``@given`` property: once with the ``ci`` settings, or in random batches for ``SHARE_S`` seconds."""
    if not FUZZ_SECONDS:
        settings(CI, max_examples=examples)(prop)()
        return
    batched, deadline = BATCH(prop), time.monotonic() + SHARE_S
    while time.monotonic() < deadline:
        seed(int.from_bytes(os.urandom(8), "big"))(batched)()


# ----------------------------------------------------------------------------- the outcome rule


def check_outcome(run: Any, family: str = "fuzz parsing (in-process)") -> str:
    """Call ``run``; success or a consistent taskbox error passes, anything else fails the property.

    Each call is one hostile input, counted in the ledger under ``family``: ``outputs`` when it converted,
    ``error`` for a consistent taskbox error, ``lost`` for anything else (then the property fails).
    """
    try:
        run()
    except TaskboxError as exc:
        error = error_document(exc).error
        final = errors_pb2.ContainerError.RECOVERABLE if exc.recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
        consistent = (
            exc.origin in ("USER", "SYSTEM")
            and exc.code.startswith(exc.origin + ":")
            and bool(exc.message)
            and (error.code, error.kind, error.origin)
            == (exc.code, final, getattr(execution_pb2.ExecutionError, exc.origin))
        )
        LEDGER.record(
            family, ERROR if consistent else LOST, faults=1, detail=f"inconsistent {exc.code}: {exc.message[:200]}"
        )
        assert consistent, (exc.code, exc.origin, exc.recoverable, exc.message[:500])
        return exc.code
    except Exception as exc:  # not BaseException: hypothesis' own control flow must pass through
        LEDGER.record(family, LOST, faults=1, detail=f"{type(exc).__name__}: {str(exc)[:200]}")
        raise
    LEDGER.record(family, OUTPUTS, faults=1)
    return "ok"


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Refuse any connection or name lookup that is not loopback, in this process, within the block.

    A safety net for code that is handed hostile URIs and addresses (not a double of the code under test):
    whatever the code does, no packet leaves for anything but 127.0.0.1 / ::1.
    """
    real_connect, real_lookup = socket.socket.connect, socket.getaddrinfo
    loopback = ("127.0.0.1", "::1", "localhost", b"127.0.0.1", b"localhost")

    def connect(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in loopback:
            raise OSError(f"tripwire: connection to {address!r} refused")
        return real_connect(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in loopback:
            raise socket.gaierror(f"tripwire: lookup of {host!r} refused")
        return real_lookup(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.getaddrinfo = real_lookup


@pytest.fixture(scope="module", autouse=True)
def _no_network_and_no_retries() -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("TASKBOX_STORAGE_RETRIES", "0")
    with loopback_only():
        yield
    mp.undo()


# ----------------------------------------------------------------------------- seeds and files


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0
    tags: list[str] = dataclasses.field(default_factory=list)


PYTHON_TYPES: list[Any] = [
    int, float, str, bool, dt.datetime, dt.timedelta, type(None), dict, list[int], dict[str, list[float]],
    Optional[str], Union[int, str], Union[list[int], dict[str, int]], Color, Point, list[Point], File, Directory,
    StructuredDataset,
]  # fmt: skip
INTERFACE = {f"v{i}": TypeEngine.to_literal_type(t) for i, t in enumerate(PYTHON_TYPES)}


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Local files the fuzzed literals may point at, the seed messages and a conversion context."""
    root = tmp_path_factory.mktemp("fuzz")
    put(str(root / "file.txt"), b"hello\n")
    put(str(root / "dir" / "a.txt"), b"a")
    put(str(root / "garbage.pb"), b"\xff\xfe\x00garbage")
    put(str(root / "literal.pb"), TypeEngine.to_literal([1, 2], list[int]).SerializeToString())
    self_ref = literals_pb2.Literal()
    self_ref.offloaded_metadata.uri = str(root / "self.pb")
    put(str(root / "self.pb"), self_ref.SerializeToString())
    import pyarrow as pa

    values = [
        -(2**63), -0.0, "h\U0001d11e\x00", True, dt.datetime(2026, 1, 2, tzinfo=dt.UTC), dt.timedelta(microseconds=-1),
        None, {"a": [1, {"b": None}]}, [1, 2], {"k": [1.5, math.nan]}, None, "x", [3], Color.GREEN,
        Point(1, 2.5, ["t"]), [Point(2)], File(str(root / "file.txt")), Directory(str(root / "dir")),
        StructuredDataset(dataframe=pa.table({"a": [1, 2]})),
    ]  # fmt: skip
    raw = str(root / "raw")
    inputs = encode_inputs({f"v{i}": v for i, v in enumerate(values)}, INTERFACE, raw)
    uris = [str(root / n) for n in ("file.txt", "dir", "garbage.pb", "literal.pb", "self.pb", "missing.pb")]
    return {
        "root": root,
        "inputs": inputs,
        "template": make_template("echo", INTERFACE, INTERFACE, name="fuzz.echo").SerializeToString(),
        "uris": uris + [str(root / "raw"), "", "../../etc/passwd", "file:///nonexistent", "\x00"],
        "ctx": ConversionContext(raw_output_prefix=raw, working_dir=str(root / "work")),
    }


def write(area: dict[str, Any], name: str, data: bytes) -> str:
    return put(str(area["root"] / name), data)


def parse_and_convert(area: dict[str, Any], inputs: bytes, template: bytes | None = None) -> None:
    """What ``taskbox execute`` does before the task body runs: load the template, read and convert the inputs."""
    template_uri = write(area, "task.pb", area["template"] if template is None else template)
    task = load_template_task([template_uri], str(area["root"] / "work"))
    lm = read_inputs(write(area, "inputs.pb", inputs))
    literal_map_to_python(lm, task.input_types, area["ctx"], optional=task.optional_inputs)


# ----------------------------------------------------------------------------- byte-level targets


@st.composite
def mutated(draw: Any, original: bytes) -> bytes:
    """``original`` with 1-6 edits: bit flips, byte overwrites, truncation, splices of its own bytes, inserts."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "splice", "insert", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif op == "cut":
            data = data[:at]
        elif op == "splice" and data:
            start = draw(st.integers(0, len(data) - 1))
            data[at:at] = data[start : start + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


def test_arbitrary_bytes_as_inputs_and_template(area):
    @given(inputs=st.binary(max_size=512), template=st.one_of(st.none(), st.binary(max_size=512)))
    def prop(inputs: bytes, template: bytes | None) -> None:
        check_outcome(lambda: parse_and_convert(area, inputs, template))

    fuzz(prop)


def test_mutated_literal_maps(area):
    @given(data=st.data())
    def prop(data: Any) -> None:
        inputs = data.draw(mutated(area["inputs"]))
        check_outcome(lambda: parse_and_convert(area, inputs))

    fuzz(prop)


def test_mutated_task_templates(area):
    @given(data=st.data())
    def prop(data: Any) -> None:
        template = data.draw(mutated(area["template"]))
        check_outcome(lambda: parse_and_convert(area, area["inputs"], template))

    fuzz(prop)


# ----------------------------------------------------------------------------- structure-aware targets

INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
STRUCT_JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
TAGS = st.sampled_from(["", "none", "msgpack", "dataclass", "int", "str", "FlytePickle", "list", "x"])


@st.composite
def literal_types(draw: Any, depth: int = 0) -> types_pb2.LiteralType:
    """Any ``LiteralType`` shape, including empty, unknown enum values, schemas in ``metadata`` and tags."""
    lt = types_pb2.LiteralType()
    kinds = ["simple", "enum", "blob", "dataset", "schema", "empty"] + (["list", "map", "union"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "simple":
        lt.simple = draw(st.sampled_from([*types_pb2.SimpleType.values(), 42]))
    elif kind == "enum":
        lt.enum_type.values.extend(draw(st.lists(st.text(max_size=6), max_size=4)))
    elif kind == "blob":
        lt.blob.format = draw(st.sampled_from(["", "csv", "PythonPickle", "parquet"]))
        lt.blob.dimensionality = draw(st.sampled_from([0, 1, 7]))
    elif kind == "dataset":
        lt.structured_dataset_type.format = draw(st.sampled_from(["", "parquet", "csv"]))
        for name in draw(st.lists(st.text(max_size=4), max_size=2)):
            lt.structured_dataset_type.columns.add(name=name, literal_type=draw(literal_types(depth=3)))
    elif kind == "schema":
        lt.schema.columns.add(name=draw(st.text(max_size=4)), type=draw(st.integers(0, 9)))
    elif kind == "list":
        lt.collection_type.CopyFrom(draw(literal_types(depth=depth + 1)))
    elif kind == "map":
        lt.map_value_type.CopyFrom(draw(literal_types(depth=depth + 1)))
    elif kind == "union":
        for _ in range(draw(st.integers(0, 3))):
            lt.union_type.variants.add().CopyFrom(draw(literal_types(depth=depth + 1)))
    if draw(st.booleans()):
        lt.structure.tag = draw(TAGS)
    if draw(st.integers(0, 4)) == 0:
        schema = draw(st.dictionaries(st.sampled_from(["type", "properties", "required", "$ref", "$defs", "title"]),
                                      STRUCT_JSON, max_size=3))  # fmt: skip
        lt.metadata.update(schema)
    if draw(st.integers(0, 6)) == 0:
        lt.structure.dataclass_type["f"].CopyFrom(draw(literal_types(depth=3)))
    return lt


@st.composite
def literals(draw: Any, uris: list[str], depth: int = 0) -> literals_pb2.Literal:
    """Any ``Literal`` shape: every scalar kind with extreme values, containers, unions and offloads."""
    lit = literals_pb2.Literal()
    kinds = ["primitive", "none", "error", "generic", "binary", "blob", "dataset", "schema", "offloaded", "empty"]
    if depth < 3:
        kinds += ["collection", "map", "union"]
    kind = draw(st.sampled_from(kinds))
    scalar = lit.scalar
    if kind == "primitive":
        which = draw(st.sampled_from(["integer", "float_value", "string_value", "boolean", "datetime", "duration"]))
        if which == "integer":
            scalar.primitive.integer = draw(INT64)
        elif which == "float_value":
            scalar.primitive.float_value = draw(st.floats())
        elif which == "string_value":
            scalar.primitive.string_value = draw(st.text(max_size=16))
        elif which == "boolean":
            scalar.primitive.boolean = draw(st.booleans())
        else:
            stamp = getattr(scalar.primitive, which)
            stamp.seconds, stamp.nanos = draw(INT64), draw(INT32)
    elif kind == "none":
        scalar.none_type.SetInParent()
    elif kind == "error":
        scalar.error.message = draw(st.text(max_size=8))
    elif kind == "generic":
        scalar.generic.update(draw(st.dictionaries(st.text(max_size=4), STRUCT_JSON, max_size=3)))
    elif kind == "binary":
        import msgpack

        payload = draw(st.one_of(st.binary(max_size=24), JSONISH.map(lambda v: msgpack.packb(v, use_bin_type=True))))
        scalar.binary.value, scalar.binary.tag = payload, draw(TAGS)
    elif kind == "blob":
        scalar.blob.uri = draw(st.sampled_from(uris))
        scalar.blob.metadata.type.dimensionality = draw(st.sampled_from([0, 1, 5]))
        scalar.blob.metadata.type.format = draw(st.sampled_from(["", "csv", "PythonPickle"]))
    elif kind == "dataset":
        scalar.structured_dataset.uri = draw(st.sampled_from(uris))
        if draw(st.booleans()):
            scalar.structured_dataset.metadata.structured_dataset_type.format = draw(st.sampled_from(["", "parquet"]))
    elif kind == "schema":
        scalar.schema.uri = draw(st.sampled_from(uris))
    elif kind == "offloaded":
        lit.offloaded_metadata.uri = draw(st.sampled_from(uris))
        lit.offloaded_metadata.size_bytes = draw(st.integers(0, 2**40))
    elif kind == "collection":
        lit.collection.SetInParent()
        for _ in range(draw(st.integers(0, 3))):
            lit.collection.literals.add().CopyFrom(draw(literals(uris, depth + 1)))
    elif kind == "map":
        lit.map.SetInParent()
        for key in draw(st.lists(st.text(max_size=4), max_size=3)):
            lit.map.literals[key].CopyFrom(draw(literals(uris, depth + 1)))
    elif kind == "union":
        scalar.union.value.CopyFrom(draw(literals(uris, depth + 1)))
        if draw(st.booleans()):
            scalar.union.type.CopyFrom(draw(literal_types(depth=2)))
    return lit


def test_generated_literals_against_generated_literal_types(area):
    """Prebuilt executors: inputs converted by the template's ``LiteralType`` interface."""

    @given(data=st.data())
    def prop(data: Any) -> None:
        lm = literals_pb2.LiteralMap()
        lm.literals["x"].CopyFrom(data.draw(literals(area["uris"]), label="literal"))
        declared = {"x": data.draw(literal_types(), label="type")}
        check_outcome(lambda: literal_map_to_python(lm, declared, area["ctx"]))

    fuzz(prop)


def test_generated_literals_against_python_hints(area):
    """``taskbox.function`` tasks: inputs converted by the function's type hints."""

    @given(data=st.data())
    def prop(data: Any) -> None:
        lm = literals_pb2.LiteralMap()
        lm.literals["x"].CopyFrom(data.draw(literals(area["uris"]), label="literal"))
        hint = data.draw(st.sampled_from(PYTHON_TYPES), label="hint")
        check_outcome(lambda: literal_map_to_python(lm, {"x": hint}, area["ctx"]))

    fuzz(prop)


def test_generated_templates(area):
    """Templates with generated interfaces, names, types and ``custom`` configs, read from bytes."""

    @given(data=st.data())
    def prop(data: Any) -> None:
        template = tasks_pb2.TaskTemplate(type=data.draw(st.sampled_from(["echo", "sqlite", "http", "", "nope"])))
        for name in data.draw(st.lists(st.text(max_size=4), max_size=3), label="inputs"):
            template.interface.inputs.variables[name].type.CopyFrom(data.draw(literal_types()))
        for name in data.draw(st.lists(st.text(max_size=4), max_size=2), label="outputs"):
            template.interface.outputs.variables[name].type.CopyFrom(data.draw(literal_types()))
        if data.draw(st.booleans()):
            template.custom.update(data.draw(st.dictionaries(st.text(max_size=12), STRUCT_JSON, max_size=3)))
        lm = literals_pb2.LiteralMap()
        for name in list(template.interface.inputs.variables)[:2]:
            lm.literals[name].CopyFrom(data.draw(literals(area["uris"])))
        check_outcome(lambda: parse_and_convert(area, lm.SerializeToString(), template.SerializeToString()))

    fuzz(prop, examples=100)


# ----------------------------------------------------------------------------- crashers found, kept as examples


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan])
def test_custom_config_with_a_non_finite_number_is_a_config_error(area, number):
    """Found by ``test_generated_templates``: ``custom`` holding Infinity crashed ``MessageToDict``
    (``SYSTEM:ValueError``, recoverable) instead of failing as the user's config."""
    template = make_template(
        "sqlite", {}, {}, custom={"uri": "x.db", "query_template": "SELECT 1", "timeout_seconds": number}
    )
    assert check_outcome(lambda: parse_and_convert(area, b"", template.SerializeToString())) == "USER:InvalidConfig"
