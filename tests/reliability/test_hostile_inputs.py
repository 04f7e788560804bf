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
import os
import sqlite3
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flyteidl.core import errors_pb2, execution_pb2, literals_pb2, types_pb2

TESTS = Path(__file__).resolve().parents[1]
for sub in ("bundles", "sql", "http"):
    sys.path.insert(0, str(TESTS / sub))

import httptesting  # noqa: E402
import sqltesting  # noqa: E402
from bundle_helpers import make_many_empty, make_targz, make_zero_bomb, write_tree  # noqa: E402
from test_bundle_hostile import CASES as ARCHIVE_MEMBERS  # noqa: E402
from test_bundle_hostile import REASONS as ARCHIVE_REASONS  # noqa: E402
from test_fuzz_parsing import loopback_only  # noqa: E402
from test_http_guard import stub_resolver  # noqa: E402

from helpers import TASKBOX, encode_inputs, execute_args, list_of, make_template, read_outputs, run, simple  # noqa: E402
from reliability.ledger import ERROR, LEDGER, LOST, OUTPUTS, judge  # noqa: E402
from taskbox.authoring import TaskFailed, run_template  # noqa: E402
from taskbox.bundles import pack  # noqa: E402
from taskbox.entrypoint.commit import MAX_MESSAGE_BYTES  # noqa: E402
from taskbox.entrypoint.fast_execute import BUNDLES_DIR, bundle_dir  # noqa: E402
from taskbox.executors import http as http_executor  # noqa: E402

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


# ----------------------------------------------------------------------------- code bundles (fast-execute)

SENTINEL = b"do not touch\n"


def _targz(case: str) -> Callable[[Path], str]:
    fmt = tarfile.PAX_FORMAT if case == "long-name" else tarfile.GNU_FORMAT
    return lambda path: make_targz(path, ARCHIVE_MEMBERS[case](), format=fmt)


def _truncated(path: Path) -> str:
    data = pack(write_tree(path.parent / "src", {f"m{i}.py": os.urandom(2000).hex() for i in range(20)}))
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def _zip(path: Path) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../sentinel.txt", b"overwritten")
        zf.writestr("/etc/x", b"x")
    return str(path)


# name -> (builder, words of the reason); the member cases are tests/bundles/test_bundle_hostile.py's.
ARCHIVES: dict[str, tuple[Callable[[Path], str], str]] = {
    **{case: (_targz(case), ARCHIVE_REASONS[case]) for case in ARCHIVE_MEMBERS},
    "zero-bomb-1GiB": (make_zero_bomb, "zeros.bin"),
    "100001-empty-files": (lambda path: make_many_empty(path, count=100_001), "100000"),  # one over the cap
    "truncated-gzip": (_truncated, "truncated or corrupt"),
    "zip-with-dotdot-and-absolute": (_zip, "truncated or corrupt"),
    "not-an-archive": (lambda path: str(put_bytes(path, b"not an archive at all")), "truncated or corrupt"),
}


@pytest.mark.parametrize("name", sorted(ARCHIVES))
def test_hostile_code_bundle(tmp_path, name):
    """``fast-execute`` rejects the bundle before any member lands, and the task never runs."""
    build, reason = ARCHIVES[name]
    (tmp_path / "store").mkdir()
    bundle = build(tmp_path / "store" / "evil.tar.gz")
    dest = tmp_path / "dest"
    dest.mkdir()
    for sentinel in (tmp_path / "sentinel.txt", dest / "sentinel.txt"):
        sentinel.write_bytes(SENTINEL)
    template, inputs = (
        put_bytes(tmp_path / "task.pb", echo_template()),
        put_bytes(tmp_path / "inputs.pb", good_inputs()),
    )
    prefix = str(tmp_path / "out")
    inner = execute_args(str(inputs), prefix, str(template))[1:]
    args = [
        TASKBOX,
        "fast-execute",
        "--additional-distribution",
        bundle,
        "--dest-dir",
        str(dest),
        "--",
        "taskbox",
        *inner,
    ]
    expect_error("hostile archive", run(args), prefix, "USER:BundleRejected", ("code bundle rejected", reason))
    assert (tmp_path / "sentinel.txt").read_bytes() == SENTINEL
    assert (dest / "sentinel.txt").read_bytes() == SENTINEL
    assert not os.path.exists("/etc/x")
    key = os.path.basename(bundle_dir(str(dest), bundle))
    assert sorted(os.listdir(dest)) == [BUNDLES_DIR, "sentinel.txt"]
    assert os.listdir(dest / BUNDLES_DIR) == [f".{key}.lock"]  # no tree, no staging, no download left


# ----------------------------------------------------------------------------- SQL templates and values

SQL_VALUES = ["x' OR '1'='1", "1; DROP TABLE items", "1 UNION SELECT s FROM secrets", "--", "/*", "a\x00b",
              "é’ OR ’1’=’1", ":name", "' || :x || '"]  # fmt: skip
SQL_QUERY = "SELECT id, name FROM items WHERE name = '{{ .inputs.v }}' OR CAST(id AS TEXT) = {{ .inputs.v }}"
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"


def table_intact(db: str) -> bool:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        secrets = conn.execute("SELECT s FROM secrets").fetchall()
    return rows == sqltesting.ITEM_ROWS and secrets == [(sqltesting.SECRET_VALUE,)]


def run_sqlite(tmp_path: Path, custom: dict[str, Any], types: dict[str, Any], values: dict[str, Any],
               outputs: dict[str, Any] | None = None) -> tuple[Any, str]:  # fmt: skip
    template = put_bytes(tmp_path / "task.pb", sqlite_template(custom, types, outputs))
    inputs = put_bytes(tmp_path / "inputs.pb", encode_inputs(values, types))
    prefix = str(tmp_path / "out")
    raw = str(tmp_path / "raw")
    proc = run(execute_args(str(inputs), prefix, str(template), None, "--raw-output-data-prefix", raw),
               TASKBOX_CACHE_DIR=str(tmp_path / "cache"))  # fmt: skip
    return proc, prefix


@pytest.fixture
def db(tmp_path):
    return sqltesting.make_sqlite(tmp_path / "items.db")


@pytest.mark.parametrize("value", SQL_VALUES)
def test_sql_injection_values_stay_values(tmp_path, db, value):
    """Section 2's injection inputs are plain values: the query runs, matches nothing, changes nothing."""
    proc, prefix = run_sqlite(tmp_path, {"uri": db, "query_template": SQL_QUERY}, {"v": STR}, {"v": value})
    rows = lambda: read_outputs(prefix, {"results": DATASET})["results"].to_arrow().num_rows  # noqa: E731
    verdict, detail = judge(prefix, outputs_ok=lambda: rows() == 0 and table_intact(db), error_ok=lambda e: False)
    LEDGER.record("hostile SQL", verdict, faults=1, detail=detail)
    assert verdict == OUTPUTS, f"{detail}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0


X = {"x": INT}
# name -> (custom config (``{db}`` is the database), declared inputs, values, outputs, code, words, recoverable)
SQL_CASES: dict[
    str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any] | None, str, tuple[str, ...], bool]
] = {
    "placeholder-not-declared": (
        {"query_template": "SELECT * FROM items WHERE id = {{ .inputs.x }} AND name = {{ .inputs.y }}"},
        X,
        {"x": 1},
        None,
        "USER:SqlRejected",
        ("Variable y in Query",),
        False,
    ),
    "declared-input-unused": (
        {"query_template": "SELECT * FROM items WHERE id = {{ .inputs.x }}"},
        {**X, "y": INT},
        {"x": 1, "y": 2},
        None,
        "USER:SqlRejected",
        ("Extra Inputs have no matches",),
        False,
    ),
    "collapsed-comment-swallows-where": (
        {"query_template": "SELECT * FROM items -- all of them WHERE id = {{ .inputs.x }}"},
        X,
        {"x": 1},
        None,
        "USER:SqlRejected",
        ("comments out the rest",),
        False,
    ),
    "two-statements": (
        {"query_template": "SELECT * FROM items; DROP TABLE items"},
        {},
        {},
        None,
        "USER:SqlRejected",
        ("more than one statement",),
        False,
    ),
    "delete-in-read-only-mode": (
        {"query_template": "DELETE FROM items WHERE id = {{ .inputs.x }}"},
        X,
        {"x": 1},
        {},
        "USER:ReadOnlyViolation",
        ("Delete", "read-only"),
        False,
    ),
    "nul-in-template": (
        {"query_template": "SELECT * FROM items\x00; DROP TABLE items"},
        {},
        {},
        None,
        "USER:SqlRejected",
        ("NUL",),
        False,
    ),
    "placeholder-inside-a-comment": (
        {"query_template": "SELECT id FROM items /* {{ .inputs.x }} */"},
        X,
        {"x": 1},
        None,
        "USER:SqlRejected",
        ("inside a SQL comment",),
        False,
    ),
    "placeholder-inside-a-larger-literal": (
        {"query_template": "SELECT id FROM items WHERE name LIKE '%{{ .inputs.v }}%'"},
        {"v": STR},
        {"v": "x' OR 1=1 --"},
        None,
        "USER:SqlRejected",
        ("must be the whole literal",),
        False,
    ),
    "identifier-not-allow-listed": (
        {"query_template": "SELECT count(*) AS n FROM {{ .inputs.t }}", "identifiers": {"t": ["items"]}},
        {"t": STR},
        {"t": "items; DROP TABLE items"},
        {"n": INT},
        "USER:SqlRejected",
        ("allow-listed",),
        False,
    ),
    "value-that-cannot-be-bound": (
        {"query_template": "SELECT id FROM items WHERE id = {{ .inputs.x }}"},
        {"x": STRUCT},
        {"x": {"a": 1}},
        None,
        "USER:SqlRejected",
        ("cannot be bound",),
        False,
    ),
    "endless-query-over-the-timeout": (
        {"query_template": ENDLESS, "timeout_seconds": 0.5},
        {},
        {},
        {"n": INT},
        "SYSTEM:StatementTimeout",
        (),
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(SQL_CASES))
def test_hostile_sql_template(tmp_path, db, name):
    custom, types, values, outputs, code, words, recoverable = SQL_CASES[name]
    proc, prefix = run_sqlite(tmp_path, {"uri": db, **custom}, types, values, outputs)
    expect_error("hostile SQL", proc, prefix, code, words, recoverable=recoverable)
    assert table_intact(db)
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").rglob("*")), "no data on failure"


@pytest.mark.parametrize("case", ["trigger", "not-a-database"])
def test_hostile_sqlite_database(tmp_path, case):
    """A downloaded database is untrusted: one with a trigger (code that runs) or one that is not SQLite."""
    if case == "trigger":
        db = sqltesting.make_sqlite(tmp_path / "evil.db", rows=5, trigger=True)
    else:
        db = str(put_bytes(tmp_path / "evil.db", b"SQLite format 3\x00" + os.urandom(4096)))
    proc, prefix = run_sqlite(tmp_path, {"uri": db, "query_template": "SELECT * FROM items"}, {}, {})
    expect_error("hostile SQL", proc, prefix, "USER:DatabaseRejected")


@pytest.fixture(scope="module")
def postgres():
    server = sqltesting.server("postgres")
    sqltesting.seed(server)
    return server


@pytest.mark.parametrize(
    ("query", "outputs", "code", "recoverable"),
    [
        ("SELECT pg_sleep(5) AS s", {"s": STR}, "SYSTEM:StatementTimeout", True),
        ("DELETE FROM items", {}, "USER:ReadOnlyViolation", False),
        ("SELECT wipe() AS n", {"n": INT}, "USER:ReadOnlyViolation", False),  # a write hidden in a function
    ],
)
def test_hostile_postgres_queries(tmp_path, postgres, query, outputs, code, recoverable):
    """PostgreSQL: a 5 s sleep against a 1 s statement timeout; writes against the read-only transaction."""
    custom = {"query_template": query, "uri": postgres.url, "timeout_seconds": 1,
              "secret_connect_args": {"password": {"group": "db", "key": "password"}}}  # fmt: skip
    template = put_bytes(tmp_path / "task.pb", make_template("sqlalchemy", {}, outputs, custom).SerializeToString())
    prefix = str(tmp_path / "out")
    password = sqltesting.servers_module().PASSWORD
    proc = run(
        execute_args(str(put_bytes(tmp_path / "inputs.pb", b"")), prefix, str(template)), _FSEC_DB_PASSWORD=password
    )
    expect_error("hostile SQL", proc, prefix, code, recoverable=recoverable)
    assert sqltesting.count(postgres, "items") == sqltesting.ITEM_ROWS
    assert password not in proc.stderr


# ----------------------------------------------------------------------------- HTTP targets and answers


def _redirect_chain(hops: int) -> str:
    path = "/echo"
    for _ in range(hops):
        path = "/redirect?to=" + quote(path, safe="")
    return path


# name -> (config (``{base}`` is the loopback server), allow loopback?, code, words, recoverable)
HTTP_CASES: dict[str, tuple[dict[str, Any], bool, str, tuple[str, ...], bool]] = {
    "loopback-not-allow-listed": (
        {"url": "{base}/echo"},
        False,
        "USER:SsrfBlocked",
        ("127.0.0.1", "non-public"),
        False,
    ),
    "file-scheme": ({"url": "file:///etc/passwd"}, False, "USER:SsrfBlocked", ("'file'",), False),
    "gopher-scheme": ({"url": "gopher://127.0.0.1:70/_x"}, False, "USER:SsrfBlocked", ("'gopher'",), False),
    "redirect-to-file-scheme": (
        {"url": "{base}/redirect?to=file:///etc/passwd", "follow_redirects": True},
        True,
        "USER:SsrfBlocked",
        ("'file'",),
        False,
    ),
    "50-hop-redirect-chain": (
        {"url": "{base}" + _redirect_chain(50), "follow_redirects": True},
        True,
        "USER:TooManyRedirects",
        ("more than 5 redirects",),
        False,
    ),
    "redirect-to-an-unparsable-host": (  # httpx refuses the Location header: a protocol error, retryable
        {
            "url": "{base}/redirect?to=http://0251.0376.0251.0376/",
            "follow_redirects": True,
            "retry": {"max_attempts": 1},
        },
        True,
        "SYSTEM:HTTPUnavailable",
        ("Invalid URL in location header",),
        True,
    ),
    "body-over-the-cap": ({"url": "{base}/big?n=" + str(11 * MIB)}, True, "USER:ResponseTooLarge", (), False),
    "gzip-bomb": ({"url": "{base}/gzip?n=" + str(64 * MIB)}, True, "USER:ResponseTooLarge", (), False),
    "slow-server": (
        {"url": "{base}/slow?s=3", "read_timeout_s": 0.2, "retry": {"max_attempts": 1}},
        True,
        "SYSTEM:HTTPUnavailable",
        (),
        True,
    ),
    "retry-after-99999": (
        {"url": "{base}/flaky/5/k?after=99999", "retry": {"retry_after_max_s": 5}},
        True,
        "SYSTEM:HTTPUnavailable",
        ("503",),
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(HTTP_CASES))
def test_hostile_http_target(tmp_path, name):
    """Through ``taskbox execute`` against a loopback server; the child process uses the system resolver."""
    config, allow_loopback, code, words, recoverable = HTTP_CASES[name]
    with httptesting.running() as server:
        custom = json.loads(json.dumps(config).replace("{base}", server.base))
        template = put_bytes(tmp_path / "task.pb", make_template("http", {}, {}, custom).SerializeToString())
        prefix = str(tmp_path / "out")
        env = {"TASKBOX_HTTP_ALLOW": "127.0.0.1/32" if allow_loopback else ""}
        proc = run(execute_args(str(put_bytes(tmp_path / "inputs.pb", b"")), prefix, str(template)), **env)
        expect_error("hostile HTTP", proc, prefix, code, words, recoverable=recoverable)
        if not allow_loopback:
            assert server.connections == 0


# Hosts that resolve (stub resolver) or are written as forbidden addresses: refused before any connection.
# An octal IPv4 host httpx cannot parse is refused too, as an invalid URL (it was a retried SYSTEM:InvalidURL).
SSRF_URLS = {
    **{
        url: "USER:SsrfBlocked"
        for url in (
            "http://metadata.test/latest/meta-data/",
            "http://metadata6.test/",
            "http://alibaba.test/",
            "http://private.test:8080/",
            "http://cgnat.test/",
            "http://mixed.test/",
            "http://2852039166/",
            "http://0xA9FEA9FE/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "http://169.254.169.254/",
        )
    },
    "http://0251.0376.0251.0376/": "USER:InvalidConfig",
    "http://0251.0376.0251.0376/?q=1": "USER:InvalidConfig",
}


@pytest.fixture
def stub_dns(monkeypatch):
    """The HTTP guard tests' stub resolver, and the loopback-only tripwire: no packet leaves for these hosts."""
    monkeypatch.delenv("TASKBOX_HTTP_ALLOW", raising=False)
    monkeypatch.setattr(http_executor, "RESOLVER", stub_resolver)
    with loopback_only():
        yield


def _run_http_in_process(tmp_path: Path, custom: dict[str, Any]) -> str:
    workdir = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    with pytest.raises(TaskFailed):
        run_template(make_template("http", {}, {}, custom), {}, workdir=str(workdir))
    return str(workdir / "out")


def _record_refusal(prefix: str, code: str = "USER:SsrfBlocked") -> None:
    def error_ok(error: errors_pb2.ContainerError) -> bool:
        user, final = execution_pb2.ExecutionError.USER, errors_pb2.ContainerError.NON_RECOVERABLE
        return (error.code, error.origin, error.kind) == (code, user, final)

    verdict, detail = judge(prefix, outputs_ok=lambda: False, error_ok=error_ok)
    LEDGER.record("hostile HTTP", verdict, faults=1, detail=detail)
    assert verdict == ERROR, detail


@pytest.mark.parametrize("url", sorted(SSRF_URLS))
def test_ssrf_targets_are_refused_before_connecting(tmp_path, stub_dns, url):
    custom = {"url": url.split("?")[0], "retry": {"max_attempts": 1}}
    if "?" in url:
        custom["query"] = {"q": "1"}  # the query path builds the URL in the executor, not in the client
    _record_refusal(_run_http_in_process(tmp_path, custom), SSRF_URLS[url])


def test_redirect_hop_to_the_metadata_service_is_refused(tmp_path, stub_dns):
    with httptesting.running() as server:
        custom = {"url": f"{server.base}/redirect?to=http://metadata.test/", "follow_redirects": True,
                  "allow": ["127.0.0.1"]}  # fmt: skip
        _record_refusal(_run_http_in_process(tmp_path, custom))
        assert len(server.requests) == 1
