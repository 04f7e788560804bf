"""What a task start imports: a heavy import on the ``echo`` path fails here, not in a benchmark.

Each run is a fresh interpreter (a task start is a fresh container) running ``taskbox execute`` through a
tiny wrapper that writes ``sys.modules`` to a file at exit. No timings: only which modules were loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from flyteidl.core import interface_pb2, literals_pb2, tasks_pb2, types_pb2

# Modules an echo run must not import: optional dependencies, protobuf's text and JSON printers and its
# descriptor messages, the stdlib's argument parser, every literal family an int input does not need, and
# Dagster Pipes (loaded only under Dagster).
DENIED = (
    "adlfs",
    "argparse",
    "ast",
    "azure",
    "dagster_pipes",
    "dataclasses",
    "inspect",
    "fsspec",
    "google.protobuf.descriptor_pb2",
    "google.protobuf.json_format",
    "google.protobuf.text_format",
    "httpx",
    "msgpack",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "sqlglot",
    "taskbox.literals.blobs",
    "taskbox.literals.containers",
    "taskbox.literals.primitives",
    "taskbox.literals.schema",
    "taskbox.literals.structs",
    "taskbox.literals.tables",
    "taskbox.literals.unions",
    "taskbox.storage.azure",  # Azure Blob Storage: only for abfs:// URIs
    "taskbox.entrypoint.pipes",  # Dagster Pipes: only when DAGSTER_PIPES_CONTEXT is set
    "yaml",
)

_WRAPPER = """
import atexit, json, sys
_path = sys.argv[1]
def _dump():
    import importlib.util
    lazy = [n for n, m in list(sys.modules.items()) if isinstance(m, importlib.util._LazyModule)]
    with open(_path, "w") as f:
        json.dump({"loaded": sorted(set(sys.modules) - set(lazy)), "lazy": sorted(lazy)}, f)
atexit.register(_dump)
from taskbox.entrypoint.cli import main
sys.argv = ["taskbox", *sys.argv[2:]]
sys.exit(main())
"""


def _echo_task(tmp_path: Path) -> tuple[Path, Path]:
    int_type = types_pb2.LiteralType(simple=types_pb2.SimpleType.INTEGER)
    variables = interface_pb2.VariableMap(variables={"x": interface_pb2.Variable(type=int_type)})
    template = tasks_pb2.TaskTemplate(
        type="echo", interface=interface_pb2.TypedInterface(inputs=variables, outputs=variables)
    )
    task, inputs = tmp_path / "task.pb", tmp_path / "inputs.pb"
    task.write_bytes(template.SerializeToString())
    lm = literals_pb2.LiteralMap()
    lm.literals["x"].scalar.primitive.integer = 42
    inputs.write_bytes(lm.SerializeToString())
    return task, inputs


def _run_echo(tmp_path: Path) -> dict[str, list[str]]:
    task, inputs = _echo_task(tmp_path)
    out, dump = tmp_path / "out", tmp_path / "modules.json"
    argv = ["execute", "--inputs", str(inputs), "--output-prefix", str(out)]
    argv += ["--raw-output-data-prefix", str(tmp_path / "raw"), "--resolver", "taskbox.template", "--", str(task)]
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(dump), *argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    outputs = literals_pb2.LiteralMap()
    outputs.ParseFromString((out / "outputs.pb").read_bytes())
    assert outputs.literals["x"].scalar.primitive.integer == 42  # a fast failure is no pass
    return json.loads(dump.read_text())


def test_an_echo_run_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    modules = _run_echo(tmp_path)
    loaded = set(modules["loaded"])
    heavy = sorted(
        m for m in loaded if m.split(".")[0] in DENIED or any(m == d or m.startswith(d + ".") for d in DENIED)
    )
    assert heavy == []
    # protobuf's pure-Python message module is created but never run: upb does the work
    assert "google.protobuf.internal.python_message" not in loaded


def test_the_literal_families_load_one_at_a_time(tmp_path: Path) -> None:
    """Converting an int loads ``primitives`` only; a hint the table does not know loads every family."""
    code = """
import json, sys
from taskbox.literals import TypeEngine
TypeEngine.to_literal(3, int)
first = sorted(m for m in sys.modules if m.startswith("taskbox.literals."))
TypeEngine.to_literal({"a": 1}, dict[str, int])
second = sorted(m for m in sys.modules if m.startswith("taskbox.literals."))
TypeEngine.get_transformer(int | None)
third = sorted(m for m in sys.modules if m.startswith("taskbox.literals."))
print(json.dumps([first, second, third]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    first, second, third = json.loads(proc.stdout)
    assert "taskbox.literals.primitives" in first
    assert not {"taskbox.literals.containers", "taskbox.literals.structs", "taskbox.literals.unions"} & set(first)
    assert "taskbox.literals.containers" in second and "taskbox.literals.tables" not in second
    assert "taskbox.literals.unions" in third


def test_the_family_table_names_what_each_family_registers() -> None:
    """``engine._family_of`` must agree with the ``REGISTERED`` lists, or a lookup would miss its family."""
    from taskbox.literals import blobs, containers, engine, primitives, tables

    registered = {}
    for name, module in (("primitives", primitives), ("containers", containers), ("blobs", blobs), ("tables", tables)):
        for transformer, extra in module.REGISTERED:
            for t in [transformer.python_type, *(extra or [])]:
                registered[t] = name
    assert engine._family_of() == registered
    assert set(engine._FAMILIES) >= set(registered.values())


def test_the_wire_descriptor_constant_is_the_map_of_bytes_message() -> None:
    from google.protobuf import descriptor_pb2

    from taskbox.literals import wire

    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="taskbox_wire.proto", package="taskbox.wire", syntax="proto3")
    msg = proto.message_type.add(name="LiteralMapBytes")
    entry = msg.nested_type.add(name="LiteralsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=f.TYPE_BYTES, label=f.LABEL_OPTIONAL)
    msg.field.add(
        name="literals",
        number=1,
        type=f.TYPE_MESSAGE,
        label=f.LABEL_REPEATED,
        type_name=".taskbox.wire.LiteralMapBytes.LiteralsEntry",
    )
    assert wire.LITERAL_MAP_BYTES_PROTO == proto.SerializeToString(deterministic=True)


@pytest.mark.parametrize("implementation", ["upb", "python"])
def test_the_deferred_protobuf_module_is_transparent(implementation: str) -> None:
    """Printing, JSON and the pure-Python backend still work after the entrypoint deferred python_message."""
    code = """
import taskbox.entrypoint
from flyteidl.core import literals_pb2
from google.protobuf import json_format
from google.protobuf.internal import api_implementation, python_message
lit = literals_pb2.Literal()
lit.scalar.primitive.integer = 7
assert "integer: 7" in str(lit), str(lit)
assert json_format.MessageToDict(lit) == {"scalar": {"primitive": {"integer": "7"}}}
assert python_message.GeneratedProtocolMessageType is not None
print(api_implementation.Type())
"""
    env = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": implementation} if implementation == "python" else {}
    import os

    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == implementation


def test_a_repeated_small_sqlite_query_imports_neither_sqlglot_nor_arrow_compute(tmp_path: Path) -> None:
    """flytekit's SQLite3Task template on a zipped database: the second start reuses the extraction, the
    check and the compiled template (no sqlglot), and writes Parquet without ``pyarrow.compute``."""
    import sqlite3
    import zipfile

    from google.protobuf import struct_pb2

    db = tmp_path / "items.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 101)])
    conn.close()
    archive = tmp_path / "items.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(db, arcname="items.db")
    int_type = types_pb2.LiteralType(simple=types_pb2.SimpleType.INTEGER)
    table = types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format="parquet"))
    custom = struct_pb2.Struct()
    custom.update(
        {
            "query_template": "SELECT id, name FROM items WHERE id <= {{ .inputs.n }}",
            "uri": str(archive),
            "compressed": True,
        }
    )
    template = tasks_pb2.TaskTemplate(
        type="sqlite",
        interface=interface_pb2.TypedInterface(
            inputs=interface_pb2.VariableMap(variables={"n": interface_pb2.Variable(type=int_type)}),
            outputs=interface_pb2.VariableMap(variables={"results": interface_pb2.Variable(type=table)}),
        ),
        custom=custom,
    )
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    lm = literals_pb2.LiteralMap()
    lm.literals["n"].scalar.primitive.integer = 10
    (tmp_path / "inputs.pb").write_bytes(lm.SerializeToString())
    import os

    env = {**os.environ, "TASKBOX_CACHE_DIR": str(tmp_path / "cache")}
    runs = []
    for i in range(2):
        dump = tmp_path / f"modules{i}.json"
        argv = ["execute", "--inputs", str(tmp_path / "inputs.pb"), "--output-prefix", str(tmp_path / f"out{i}")]
        argv += ["--raw-output-data-prefix", str(tmp_path / f"raw{i}"), "--resolver", "taskbox.template", "--"]
        argv.append(str(tmp_path / "task.pb"))
        proc = subprocess.run(
            [sys.executable, "-c", _WRAPPER, str(dump), *argv],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / f"out{i}" / "outputs.pb").exists(), proc.stderr
        runs.append((set(json.loads(dump.read_text())["loaded"]), proc.stderr))
    (first, _), (second, log) = runs
    assert "sqlglot" in first  # the template was compiled once
    assert "using the cached copy" in log
    assert "sqlglot" not in second
    assert "pyarrow.compute" not in first | second
