"""The hostile input corpus, run through the real entrypoint: every bad file ends in a typed error document.

Why: ``inputs.pb``, the task template, code bundles, SQL templates and HTTP targets come from people and
storage the task does not control. Flyte retries an attempt only when ``error.pb`` says RECOVERABLE, so a
hostile input that crashes the process, leaves no error document or is reported as a recoverable SYSTEM
error (an untranslated exception) costs retries and hides the cause. Each case here writes its hostile
file(s), runs ``taskbox execute`` (or ``fast-execute`` / ``taskbox run``) with Flyte's arguments in a
subprocess, and checks the contract:

* exit code 0 after ``error.pb`` (``taskbox run``: its documented exit code);
* ``error.pb`` alone under the prefix (no ``outputs.pb``), with the expected code, origin and kind, and a
  message naming the problem (which input, which member, which limit);
* no Python traceback on stderr (the traceback belongs in the error document), and the one-line summary.

Every run is judged and recorded in the reliability ledger (families ``hostile inputs.pb``, ``hostile
template``, ``hostile archive``, ``hostile SQL``, ``hostile HTTP``): ``error`` when the document is the
expected typed one, ``outputs`` for the hostile values that must simply run (SQL injection attempts are
values), ``lost`` otherwise. The SSRF cases that name a host resolving to a forbidden address run
in-process through the executor's public entry (``run_template``) with the stub resolver of
tests/http/test_http_guard.py and a loopback-only tripwire, so no packet can leave for those addresses.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import errors_pb2, execution_pb2, literals_pb2, types_pb2

TESTS = Path(__file__).resolve().parents[1]
for sub in ("bundles", "sql", "http"):
    sys.path.insert(0, str(TESTS / sub))

import sqltesting  # noqa: E402

from helpers import TASKBOX, encode_inputs, execute_args, list_of, make_template, run, simple  # noqa: E402
from reliability.ledger import ERROR, LEDGER, LOST, judge  # noqa: E402
from taskbox.entrypoint.commit import MAX_MESSAGE_BYTES  # noqa: E402

pytestmark = pytest.mark.timeout(120)

INT, STR, FLOAT, STRUCT = simple("INTEGER"), simple("STRING"), simple("FLOAT"), simple("STRUCT")
DATASET = sqltesting.DATASET
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
                 recoverable: bool = False, exit_code: int = 0) -> errors_pb2.ContainerError:  # fmt: skip
    """Judge the run, record it in the ledger and check the error contract; returns the error."""
    origin = execution_pb2.ExecutionError.USER if code.startswith("USER:") else execution_pb2.ExecutionError.SYSTEM
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
    from google.protobuf import struct_pb2  # noqa: PLC0415

    fields, struct_value = _field(struct_pb2.Struct, "fields"), _field(struct_pb2.Value, "struct_value")
    data = b""
    for _ in range(depth):
        data = _length_delimited(
            fields, _length_delimited(1, b"a") + _length_delimited(2, _length_delimited(struct_value, data))
        )
    scalar = _length_delimited(_field(literals_pb2.Scalar, "generic"), data)
    return map_entry("doc", _length_delimited(_field(literals_pb2.Literal, "scalar"), scalar))


def nested_type(depth: int) -> bytes:
    """A template whose input ``xs`` is declared list<list<...>> ``depth`` levels deep."""
    base = make_template("echo", {"xs": INT}, {})
    data = INT.SerializeToString()
    for _ in range(depth):
        data = _length_delimited(_field(types_pb2.LiteralType, "collection_type"), data)
    good = base.SerializeToString()
    return good.replace(INT.SerializeToString(), data, 1)


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1 and len(old) == len(new)
    return data.replace(old, new)


def struct_literal(value: Any) -> literals_pb2.Literal:
    return literal(lambda lit: lit.scalar.generic.update(value))


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


# ----------------------------------------------------------------------------- inputs.pb


def lit_of(value: Any, python_type: Any) -> literals_pb2.Literal:
    from taskbox.literals import TypeEngine  # noqa: PLC0415

    return TypeEngine.to_literal(value, python_type)


def list_literal(*items: literals_pb2.Literal) -> literals_pb2.Literal:
    return literal(lambda lit: lit.collection.literals.extend(items))


def inputs_with(**changed: literals_pb2.Literal) -> bytes:
    """The good inputs with some literals replaced or added."""
    good = literals_pb2.LiteralMap.FromString(good_inputs()).literals
    return literal_map(**{**dict(good), **changed})


def _garbage_file(tmp_path: Path) -> str:
    path = tmp_path / "garbage-literal.pb"
    path.write_bytes(b"\xff\xfe not a literal")
    return str(path)


def _self_reference(tmp_path: Path) -> str:
    path = tmp_path / "self.pb"
    path.write_bytes(offloaded(str(path)).SerializeToString())
    return str(path)


DOC = {"doc": STRUCT}
HUGE = "9" * (64 * MIB)

# name -> tmp_path -> Case. Built lazily: each test builds only its own (two of them hold 64 MiB).
INPUT_CASES: dict[str, Callable[[Path], Case]] = {
    "empty": lambda _: Case("USER:InvalidInput", ("is missing",), inputs=b""),
    "garbage": lambda _: Case("USER:InvalidInput", ("not a serialized LiteralMap",), inputs=b"\x0a\xff\xff\xff junk"),
    "all-byte-values": lambda _: Case("USER:InvalidInput", ("not a serialized LiteralMap",), inputs=bytes(range(256))),
    "truncated": lambda _: Case("USER:InvalidInput", ("not a serialized LiteralMap",), inputs=good_inputs()[:-3]),
    "a-template-instead": lambda _: Case("USER:InvalidInput", ("is missing",), inputs=echo_template()),
    "string-for-integer": lambda _: Case(
        "USER:InvalidInput", ("input 'n'", "expected integer"), inputs=inputs_with(n=lit_of("one", str))
    ),
    "string-in-int-list": lambda _: Case(
        "USER:InvalidInput",
        ("input 'xs'", "[1]", "expected integer"),
        inputs=inputs_with(xs=list_literal(lit_of(1, int), lit_of("two", str))),
    ),
    "map-for-list": lambda _: Case(
        "USER:InvalidInput", ("input 'xs'", "expected list"), inputs=inputs_with(xs=lit_of({"a": 1}, dict[str, int]))
    ),
    "missing-one": lambda _: Case(
        "USER:InvalidInput", ("input 'xs'", "missing"), inputs=literal_map(n=lit_of(1, int), text=lit_of("a", str))
    ),
    "extra-one": lambda _: Case(
        "USER:InvalidInput", ("input 'zzz' is not declared",), inputs=inputs_with(zzz=lit_of(1, int))
    ),
    "64MiB-string-for-integer": lambda _: Case(
        "USER:InvalidInput", ("input 'n'", "expected integer"), inputs=inputs_with(n=lit_of(HUGE, str))
    ),
    "64MiB-inputs-over-the-cap": lambda _: Case(
        "SYSTEM:StorageError",
        ("over the limit",),
        inputs=inputs_with(text=lit_of(HUGE, str)),
        env={"TASKBOX_MAX_INPUTS_BYTES": str(16 * MIB)},
    ),
    "lists-nested-past-protobuf-limit": lambda _: Case(
        "USER:InvalidInput", ("not a serialized LiteralMap",), inputs=nested_lists(200)
    ),
    "lists-nested-deeper-than-declared": lambda _: Case(
        "USER:InvalidInput",
        ("input 'xs'", "expected integer"),
        inputs=literal_map(n=lit_of(1, int), text=lit_of("a", str)) + nested_lists(40),
    ),
    "struct-nested-past-protobuf-limit": lambda _: Case(
        "USER:InvalidInput", ("not a serialized LiteralMap",), template=echo_template(DOC), inputs=nested_struct(200)
    ),
    "msgpack-nested-5000-deep": lambda _: Case(
        "USER:InvalidInput",
        ("input 'doc'",),
        template=echo_template(DOC),
        inputs=literal_map(doc=msgpack_literal(b"\x81\xa1a" * 5000 + b"\x01")),
    ),
    "non-utf8-string": lambda _: Case(
        "USER:InvalidInput",
        ("not a serialized LiteralMap",),
        inputs=replace_once(inputs_with(text=lit_of("QQQQ", str)), b"QQQQ", b"\xff\xfe\xfd\xfc"),
    ),
    "non-utf8-map-key": lambda _: Case(
        "USER:InvalidInput", ("not a serialized LiteralMap",), inputs=replace_once(good_inputs(), b"text", b"t\xffxt")
    ),
    "non-utf8-msgpack-text": lambda _: Case(  # {"a": <2 bytes that are not UTF-8>}
        "USER:InvalidInput",
        ("input 'doc'",),
        template=echo_template(DOC),
        inputs=literal_map(doc=msgpack_literal(b"\x81\xa1a\xa2\xff\xfe")),
    ),
    "datetime-out-of-range": lambda _: Case(
        "USER:InvalidInput",
        ("input 'when'", "datetime"),
        template=echo_template({"when": simple("DATETIME")}),
        inputs=literal_map(when=timestamp_literal("datetime", 2**62)),
    ),
    "duration-out-of-range": lambda _: Case(
        "USER:InvalidInput",
        ("input 'span'", "duration"),
        template=echo_template({"span": simple("DURATION")}),
        inputs=literal_map(span=timestamp_literal("duration", -(2**62))),
    ),
    "nan-for-integer": lambda _: Case(
        "USER:InvalidInput", ("input 'n'", "nan"), inputs=inputs_with(n=lit_of(math.nan, float))
    ),
    "offloaded-literal-missing": lambda tmp: Case(
        "SYSTEM:StorageNotFound",
        ("input 'n'", "missing-literal.pb"),
        inputs=inputs_with(n=offloaded(str(tmp / "missing-literal.pb"))),
    ),
    "offloaded-literal-garbage": lambda tmp: Case(
        "USER:InvalidInput",
        ("input 'n'", "not a serialized Literal"),
        inputs=inputs_with(n=offloaded(_garbage_file(tmp))),
    ),
    "offloaded-literal-points-at-itself": lambda tmp: Case(
        "USER:InvalidInput", ("input 'n'",), inputs=inputs_with(n=offloaded(_self_reference(tmp)))
    ),
    "inputs-file-missing": lambda _: Case("SYSTEM:StorageNotFound", ("inputs.pb",), inputs=ABSENT),
}


@pytest.mark.parametrize("name", sorted(INPUT_CASES))
def test_hostile_inputs_pb(tmp_path, name):
    run_case("hostile inputs.pb", tmp_path, INPUT_CASES[name](tmp_path))


# ----------------------------------------------------------------------------- the task template


def sqlite_template(
    custom: dict[str, Any], inputs: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None
) -> bytes:
    return make_template(
        "sqlite", inputs or {}, {"results": DATASET} if outputs is None else outputs, custom
    ).SerializeToString()


TEMPLATE_CASES: dict[str, Callable[[Path], Case]] = {
    "empty": lambda _: Case("USER:InvalidTemplate", ("no type",), template=b""),
    "garbage": lambda _: Case("USER:InvalidTemplate", ("not a serialized TaskTemplate",), template=b"\xff\xff junk"),
    "truncated": lambda _: Case(
        "USER:InvalidTemplate", ("not a serialized TaskTemplate",), template=echo_template()[:-3]
    ),
    "inputs-instead": lambda _: Case("USER:InvalidTemplate", ("no type",), template=good_inputs()),
    "unknown-type": lambda _: Case(
        "USER:ExecutorNotFound",
        ("no-such-type",),
        template=make_template("no-such-type", TYPES, TYPES).SerializeToString(),
    ),
    "unknown-executor": lambda _: Case("USER:ExecutorNotFound", ("no-such-executor",), executor="no-such-executor"),
    "executor-as-import-path": lambda _: Case(
        "USER:ExecutorNotFound", ("no_such_module",), executor="no_such_module:X"
    ),
    "config-missing-fields": lambda _: Case(
        "USER:InvalidConfig", ("query_template",), template=sqlite_template({"uri": "x.db"})
    ),
    "config-wrong-field-type": lambda _: Case(
        "USER:InvalidConfig",
        ("timeout_seconds",),
        template=sqlite_template({"uri": "x.db", "query_template": "SELECT 1", "timeout_seconds": "soon"}),
    ),
    "config-unknown-field": lambda _: Case(
        "USER:InvalidConfig",
        ("no_such_field",),
        template=sqlite_template({"uri": "x.db", "query_template": "SELECT 1", "no_such_field": 1}),
    ),
    "config-with-infinity": lambda _: Case(  # crashed as SYSTEM:ValueError before (found by test_fuzz_parsing)
        "USER:InvalidConfig",
        ("custom config",),
        template=sqlite_template({"uri": "x.db", "query_template": "SELECT 1", "timeout_seconds": math.inf}),
    ),
    "config-for-echo": lambda _: Case(
        "USER:InvalidConfig", ("takes no configuration",), template=echo_template(custom={"query": "x"})
    ),
    "empty-declared-type": lambda _: Case(
        "USER:InvalidInput", ("input 'n'", "empty"), template=echo_template({**TYPES, "n": types_pb2.LiteralType()})
    ),
    "unsupported-declared-type": lambda _: Case(
        "USER:UnsupportedType", ("input 'n'", "binary"), template=echo_template({**TYPES, "n": simple("BINARY")})
    ),
    "type-nested-past-protobuf-limit": lambda _: Case(
        "USER:InvalidTemplate", ("not a serialized TaskTemplate",), template=nested_type(200)
    ),
    "non-utf8-type": lambda _: Case(
        "USER:InvalidTemplate",
        ("not a serialized TaskTemplate",),
        template=replace_once(make_template("QQQQ", TYPES, TYPES).SerializeToString(), b"QQQQ", b"ec\xffo"),
    ),
    "over-the-size-cap": lambda _: Case(
        "SYSTEM:StorageError",
        ("over the limit",),
        template=echo_template(custom={"pad": "x" * 8192}),
        env={"TASKBOX_MAX_TEMPLATE_BYTES": "4096"},
    ),
    "template-file-missing": lambda _: Case("SYSTEM:StorageNotFound", ("task.pb",), template=ABSENT),
}


@pytest.mark.parametrize("name", sorted(TEMPLATE_CASES))
def test_hostile_template(tmp_path, name):
    run_case("hostile template", tmp_path, TEMPLATE_CASES[name](tmp_path))


# ----------------------------------------------------------------------------- taskbox run (plain files, exit codes)


def _deep_json(depth: int) -> str:
    return '{"n": 1, "text": "a", "xs": ' + "[" * depth + "]" * depth + "}"


def _json_template(tmp_path: Path, types: dict[str, Any]) -> str:
    variables = {"variables": {n: {"type": t} for n, t in types.items()}}
    path = tmp_path / "task.json"
    path.write_text(json.dumps({"type": "echo", "interface": {"inputs": variables, "outputs": variables}}))
    return str(path)


JSON_TYPES = {"n": {"simple": "INTEGER"}, "text": {"simple": "STRING"}, "xs": {"collectionType": {"simple": "INTEGER"}}}
DEEP_DOC = '{"doc": ' + '{"a": ' * 700 + "1" + "}" * 700 + "}"

# name -> (family, template: tmp_path -> path, inputs file content or None, extra args, code, words)
RUN_CASES: dict[str, tuple[str, Callable[[Path], str], bytes | None, tuple[str, ...], str, tuple[str, ...]]] = {
    "inputs-pb-garbage": (
        "inputs",
        lambda tmp: _json_template(tmp, JSON_TYPES),
        b"\x0a\xff\xff junk",
        (),
        "USER:InvalidInput",
        ("LiteralMap",),
    ),
    "inputs-json-nested-100000-deep": (
        "inputs",
        lambda tmp: _json_template(tmp, JSON_TYPES),
        _deep_json(100_000).encode(),
        (),
        "USER:InvalidInput",
        ("nested too deeply",),
    ),
    "inputs-json-not-utf8": (
        "inputs",
        lambda tmp: _json_template(tmp, JSON_TYPES),
        b'{"n": 1, "text": "\xff\xfe"}',
        (),
        "USER:InvalidInput",
        ("not UTF-8",),
    ),
    "struct-input-nested-700-deep": (
        "inputs",
        lambda tmp: _json_template(tmp, {"doc": {"simple": "STRUCT"}}),
        DEEP_DOC.encode(),
        (),
        "USER:InvalidInput",
        ("input 'doc'",),
    ),
    "input-flag-of-the-wrong-type": (
        "inputs",
        lambda tmp: _json_template(tmp, JSON_TYPES),
        None,
        ("--input", "n=abc", "--input", "text=a", "--input", "xs=[1]"),
        "USER:InvalidInput",
        ("input 'n'",),
    ),
    "input-flag-nested-60000-deep": (
        "inputs",
        lambda tmp: _json_template(tmp, JSON_TYPES),
        None,
        ("--input", "n=1", "--input", "text=a", "--input", "xs=" + "[" * 60_000 + "]" * 60_000),
        "USER:InvalidInput",
        ("input 'xs'",),
    ),
    "template-pb-garbage": (
        "template",
        lambda tmp: str(Path(put_bytes(tmp / "task.pb", b"\xff junk"))),
        None,
        (),
        "USER:InvalidTemplate",
        ("TaskTemplate",),
    ),
    "template-json-nested-100000-deep": (
        "template",
        lambda tmp: str(
            put_bytes(tmp / "task.json", ('{"type": "echo", "custom": ' + "[" * 100_000 + "]" * 100_000 + "}").encode())
        ),
        None,
        (),
        "USER:InvalidTemplate",
        ("nested too deeply",),
    ),
    "template-json-malformed": (
        "template",
        lambda tmp: str(put_bytes(tmp / "task.json", b'{"type": "echo",')),
        None,
        (),
        "USER:InvalidTemplate",
        ("not valid JSON",),
    ),
}


def put_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", sorted(RUN_CASES))
def test_hostile_files_through_taskbox_run(tmp_path, name):
    """``taskbox run``: exit 1 (user error), ``error.json`` + ``error.pb`` and no outputs."""
    family, template, inputs, extra, code, words = RUN_CASES[name]
    args = [TASKBOX, "run", "--template", template(tmp_path), "--outputs", str(tmp_path / "out"), *extra]
    if inputs is not None:
        suffix = ".pb" if inputs.startswith(b"\x0a") else ".json"
        args += ["--inputs", str(put_bytes(tmp_path / f"inputs{suffix}", inputs))]
    proc = run(args)
    error = expect_error(f"hostile {family} / taskbox run", proc, str(tmp_path / "out"), code, words, exit_code=1)
    document = json.loads((tmp_path / "out" / "error.json").read_text())
    assert (document["code"], document["exit_code"]) == (error.code, 1)
    assert not (tmp_path / "out" / "outputs.json").exists()
