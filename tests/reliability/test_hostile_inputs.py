"""The hostile input corpus, part 1: ``inputs.pb`` and task templates, run through the real entrypoint.

Why: ``inputs.pb`` and the task template come from storage the task does not control. Flyte retries an
attempt only when ``error.pb`` says RECOVERABLE, so a hostile file that crashes the process, leaves no
error document, or is reported as an untranslated exception (``SYSTEM:<Type>``) costs retries and hides
the cause. Who is to blame is decided per row (docs/reliability.md, *Who is to blame for platform-written
data*): a missing or damaged file that Flyte wrote is SYSTEM and recoverable (``SYSTEM:Inputs...``,
``SYSTEM:Template...``); values that parse but do not fit, and bytes nested past protobuf's limit, are the
user's. Each case writes its hostile file, runs ``taskbox execute`` with Flyte's arguments in
a subprocess (a few ``taskbox run`` with plain files), and checks the contract with
:func:`hostile.expect_error`:

* exit code 0 after ``error.pb`` (``taskbox run``: 1, a user error);
* ``error.pb`` alone under the prefix (no ``outputs.pb``) with the expected code, origin and kind, and a
  message naming the problem (which input, which limit, which field);
* no Python traceback on stderr (it belongs in the error document), only the one-line summary.

Every run is judged and recorded in the reliability ledger (families ``hostile inputs.pb``, ``hostile
template`` and their ``taskbox run`` variants). Part 2 (code bundles, SQL, HTTP) is
test_hostile_executors.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import types_pb2
from hostile import (
    ABSENT,
    MIB,
    STRUCT,
    TYPES,
    Case,
    echo_template,
    expect_error,
    good_inputs,
    inputs_with,
    list_literal,
    lit_of,
    literal_map,
    msgpack_literal,
    nested_lists,
    nested_struct,
    nested_type,
    offloaded,
    put_bytes,
    replace_once,
    run_case,
    sqlite_template,
    timestamp_literal,
)  # fmt: skip

from helpers import TASKBOX, make_template, run, simple

pytestmark = pytest.mark.timeout(120)


# ----------------------------------------------------------------------------- inputs.pb


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
#: Words of a damaged inputs.pb (SYSTEM:InputsCorrupt, recoverable: the platform wrote the file).
DAMAGED = ("inputs.pb", "is damaged", "not a serialized LiteralMap")
#: Words of a damaged template file at {{.taskTemplatePath}} (SYSTEM:TemplateCorrupt, recoverable).
TEMPLATE_DAMAGED = ("task template", "is damaged", "not a serialized TaskTemplate")

# name -> tmp_path -> Case. Built lazily: each test builds only its own (two of them hold 64 MiB).
INPUT_CASES: dict[str, Callable[[Path], Case]] = {
    "empty": lambda _: Case("USER:InvalidInput", ("is missing",), inputs=b""),
    "garbage": lambda _: Case("SYSTEM:InputsCorrupt", DAMAGED, recoverable=True, inputs=b"\x0a\xff\xff\xff junk"),
    "all-byte-values": lambda _: Case("SYSTEM:InputsCorrupt", DAMAGED, recoverable=True, inputs=bytes(range(256))),
    "truncated": lambda _: Case("SYSTEM:InputsCorrupt", DAMAGED, recoverable=True, inputs=good_inputs()[:-3]),
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
        "USER:InputTooLarge",
        ("LiteralMap file is too large", "over the limit", "TASKBOX_MAX_INPUTS_BYTES"),
        inputs=inputs_with(text=lit_of(HUGE, str)),
        env={"TASKBOX_MAX_INPUTS_BYTES": str(16 * MIB)},
    ),
    "lists-nested-past-protobuf-limit": lambda _: Case(  # sound protobuf (Flyte's Go reads it): the user's value
        "USER:InvalidInput", ("input 'xs'", "nested deeper than protobuf's limit"), inputs=nested_lists(200)
    ),
    "lists-nested-deeper-than-declared": lambda _: Case(
        "USER:InvalidInput",
        ("input 'xs'", "expected integer"),
        inputs=literal_map(n=lit_of(1, int), text=lit_of("a", str)) + nested_lists(40),
    ),
    "struct-nested-past-protobuf-limit": lambda _: Case(
        "USER:InvalidInput",
        ("input 'doc'", "nested deeper than protobuf's limit"),
        template=echo_template(DOC),
        inputs=nested_struct(200),
    ),
    "msgpack-nested-5000-deep": lambda _: Case(
        "USER:InvalidInput",
        ("input 'doc'",),
        template=echo_template(DOC),
        inputs=literal_map(doc=msgpack_literal(b"\x81\xa1a" * 5000 + b"\x01")),
    ),
    "non-utf8-string": lambda _: Case(  # Go's protobuf cannot write it: the file is damaged, not the user's value
        "SYSTEM:InputsCorrupt",
        ("inputs.pb", "input 'text'", "not a serialized LiteralMap", "UTF-8"),
        recoverable=True,
        inputs=replace_once(inputs_with(text=lit_of("QQQQ", str)), b"QQQQ", b"\xff\xfe\xfd\xfc"),
    ),
    "non-utf8-map-key": lambda _: Case(
        "SYSTEM:InputsCorrupt",
        (*DAMAGED, "UTF-8"),
        recoverable=True,
        inputs=replace_once(good_inputs(), b"text", b"t\xffxt"),
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
    # An offloaded literal is written by the upstream task's runtime, as inputs.pb by the platform: the same blame.
    "offloaded-literal-missing": lambda tmp: Case(
        "SYSTEM:InputsNotFound",
        ("an offloaded input literal", "input 'n'", "missing-literal.pb"),
        recoverable=True,
        inputs=inputs_with(n=offloaded(str(tmp / "missing-literal.pb"))),
    ),
    "offloaded-literal-garbage": lambda tmp: Case(
        "SYSTEM:InputsCorrupt",
        ("an offloaded input literal", "input 'n'", "not a serialized Literal"),
        recoverable=True,
        inputs=inputs_with(n=offloaded(_garbage_file(tmp))),
    ),
    "offloaded-literal-points-at-itself": lambda tmp: Case(
        "USER:InvalidInput", ("input 'n'",), inputs=inputs_with(n=offloaded(_self_reference(tmp)))
    ),
    "inputs-file-missing": lambda _: Case(
        "SYSTEM:InputsNotFound", ("inputs.pb", "does not exist"), recoverable=True, inputs=ABSENT
    ),
}


@pytest.mark.parametrize("name", sorted(INPUT_CASES))
def test_hostile_inputs_pb(tmp_path, name):
    run_case("hostile inputs.pb", tmp_path, INPUT_CASES[name](tmp_path))


# ----------------------------------------------------------------------------- the task template

TEMPLATE_CASES: dict[str, Callable[[Path], Case]] = {
    "empty": lambda _: Case("USER:InvalidTemplate", ("no type",), template=b""),
    "garbage": lambda _: Case("SYSTEM:TemplateCorrupt", TEMPLATE_DAMAGED, recoverable=True, template=b"\xff\xff junk"),
    "truncated": lambda _: Case(
        "SYSTEM:TemplateCorrupt", TEMPLATE_DAMAGED, recoverable=True, template=echo_template()[:-3]
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
    "type-nested-past-protobuf-limit": lambda _: Case(  # sound protobuf: the user's registered type
        "USER:InvalidTemplate",
        ("not a serialized TaskTemplate", "nested deeper than protobuf's limit"),
        template=nested_type(200),
    ),
    "non-utf8-type": lambda _: Case(
        "SYSTEM:TemplateCorrupt",
        (*TEMPLATE_DAMAGED, "UTF-8"),
        recoverable=True,
        template=replace_once(make_template("QQQQ", TYPES, TYPES).SerializeToString(), b"QQQQ", b"ec\xffo"),
    ),
    "over-the-size-cap": lambda _: Case(
        "USER:InputTooLarge",
        ("TaskTemplate file is too large", "over the limit", "TASKBOX_MAX_TEMPLATE_BYTES"),
        template=echo_template(custom={"pad": "x" * 8192}),
        env={"TASKBOX_MAX_TEMPLATE_BYTES": "4096"},
    ),
    "template-file-missing": lambda _: Case(
        "SYSTEM:TemplateNotFound", ("task template", "task.pb", "does not exist"), recoverable=True, template=ABSENT
    ),
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
