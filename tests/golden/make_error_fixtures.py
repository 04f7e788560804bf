"""Measure what flytekit's ``pyflyte-execute`` reports when the platform-written files are missing or broken.

Run with flytekit's own interpreter (``make golden`` does; or by hand)::

    .venv-flytekit/bin/python tests/golden/make_error_fixtures.py

The script imports nothing from taskbox. It serializes a plain python task (``t(a: int, b: str) -> str``) and a
``SQLite3Task`` with flytekit, runs ``pyflyte-execute`` with their own container args (placeholders filled the
way propeller fills them) once per row, and keeps the error document flytekit wrote. The files land in
tests/golden/errors/ and are committed; tests/entrypoint/test_error_golden.py runs ``taskbox execute`` with
the same args shape on the same files and compares the classification (docs/reliability.md, *Who is to blame
for platform-written data*).

Fixtures:
    errtask.py                 the python task's module (the taskbox test runs the same function as a
                               ``@taskbox.task``).
    task.pb                    its ``TaskTemplate``, as ``pyflyte register`` would serialize it.
    sqlite3_task.pb            a ``SQLite3Task`` template (the template rows: ``{{.taskTemplatePath}}``).
    template-garbage.task.pb   what the template row ``template-garbage`` finds at ``{{.taskTemplatePath}}``.
    <row>.inputs.pb            the inputs file of each row (none when the row's inputs file is missing).
    valid.outputs.pb           the ``outputs.pb`` of the control row.
    <row>.error.pb             the ``ErrorDocument`` flytekit wrote, with its timestamp dropped and its message
                               cut to the exception line, paths replaced by ``<tmp>``.
    manifest.json              flytekit's version and, per row, what was broken and what flytekit reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections import OrderedDict
from pathlib import Path

OUT = Path(__file__).resolve().parent / "errors"
PYFLYTE_EXECUTE = Path(sys.executable).with_name("pyflyte-execute")

TASK_MODULE = '''\
"""The python task of tests/golden/make_error_fixtures.py (taskbox's test imports ``task`` from taskbox instead)."""

from flytekit import task


@task
def t(a: int, b: str) -> str:
    return f"{a}{b}"
'''

#: row -> (task, what is broken, description). ``python``: the python task; ``template``: the SQLite3Task.
ROWS: dict[str, tuple[str, str]] = {
    "valid": ("python", "nothing: the control row (outputs.pb)"),
    "inputs-missing": ("python", "inputs.pb does not exist"),
    "inputs-empty": ("python", "inputs.pb is 0 bytes (a valid, empty LiteralMap)"),
    "inputs-garbage": ("python", "inputs.pb is bytes that are not protobuf"),
    "inputs-truncated": ("python", "inputs.pb is a valid LiteralMap cut 3 bytes short"),
    "inputs-nested-past-protobuf-limit": ("python", "input a is a list nested 200 deep (protobuf parses 100)"),
    "input-wrong-type": ("python", "a valid LiteralMap whose a is a string"),
    "input-missing": ("python", "a valid LiteralMap without b"),
    "input-extra": ("python", "a valid LiteralMap with an undeclared input zzz"),
    "template-missing": ("template", "the task template (task.pb) does not exist"),
    "template-garbage": ("template", "the task template is bytes that are not protobuf"),
}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, hand-encoded (nesting deeper than protobuf builds)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _nested_list(depth: int) -> bytes:
    """A ``Literal`` holding a list of a list of ... ``depth`` levels (Literal.collection=2, .literals=1)."""
    data = _field(1, _field(1, b"\x08\x01"))  # scalar { primitive { integer: 1 } }
    for _ in range(depth):
        data = _field(2, _field(1, data))
    return data


def _inputs(python_task) -> dict[str, bytes | None]:
    from flytekit import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.literals import LiteralMap

    ctx = FlyteContextManager.current_context()

    def encode(values: dict, types: dict) -> bytes:
        literals = {
            n: TypeEngine.to_literal(ctx, v, types[n], TypeEngine.to_literal_type(types[n])) for n, v in values.items()
        }
        return LiteralMap(literals=literals).to_flyte_idl().SerializeToString(deterministic=True)

    declared = dict(python_task.python_interface.inputs)
    good = encode({"a": 1, "b": "x"}, declared)
    b_only = encode({"b": "x"}, declared)
    return {
        "valid": good,
        "inputs-missing": None,
        "inputs-empty": b"",
        "inputs-garbage": b"\x0a\xff\xff\xff not protobuf",
        "inputs-truncated": good[:-3],
        "inputs-nested-past-protobuf-limit": b_only + _field(1, _field(1, b"a") + _field(2, _nested_list(200))),
        "input-wrong-type": encode({"a": "one", "b": "x"}, {"a": str, "b": str}),
        "input-missing": encode({"a": 1}, declared),
        "input-extra": encode({"a": 1, "b": "x", "zzz": 3}, {**declared, "zzz": int}),
        "template-missing": b"",
        "template-garbage": b"",
    }


def _message(text: str, tmp: str) -> tuple[str, str]:
    """flytekit's ``Trace: ... Message: <Type>: <text>`` -> (exception type, its line without paths)."""
    tail = text.split("\nMessage:\n", 1)[-1]
    line = textwrap.dedent(tail).strip().replace(tmp, "<tmp>")
    return line.split(":", 1)[0], line[:2000]


def _run(args: list[str], values: dict[str, str], cwd: str) -> subprocess.CompletedProcess[str]:
    filled = [values.get(a, a) for a in args]
    assert filled[0] == "pyflyte-execute", filled
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_", "_F_", "AWS_"))}
    env["PYTHONPATH"] = cwd
    return subprocess.run(
        [str(PYFLYTE_EXECUTE), *filled[1:]], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


def main() -> int:
    import flytekit
    from flyteidl.core import errors_pb2, execution_pb2
    from flytekit.extras.sqlite3.task import SQLite3Config, SQLite3Task
    from flytekit.tools.translator import get_serializable
    from flytekit_common import serialization_settings

    settings = serialization_settings()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    (OUT / "errtask.py").write_text(TASK_MODULE)
    sys.dont_write_bytecode = True  # no __pycache__ among the fixtures
    sys.path.insert(0, str(OUT))
    import errtask  # the module pyflyte-execute imports, from the fixture itself

    def template(task) -> bytes:
        return (
            get_serializable(OrderedDict(), settings, task)
            .template.to_flyte_idl()
            .SerializeToString(deterministic=True)
        )

    from flyteidl.core import tasks_pb2

    sqlite_task = SQLite3Task(
        "golden.errors_sqlite3",
        query_template="SELECT 1 AS n",
        output_schema_type=None,
        task_config=SQLite3Config(uri="/nonexistent/golden.db"),
    )
    templates = {"python": template(errtask.t), "template": template(sqlite_task)}
    (OUT / "task.pb").write_bytes(templates["python"])
    (OUT / "sqlite3_task.pb").write_bytes(templates["template"])
    inputs = _inputs(errtask.t)
    rows = {}
    for row, (which, broken) in ROWS.items():
        args = list(tasks_pb2.TaskTemplate.FromString(templates[which]).container.args)
        with tempfile.TemporaryDirectory(prefix="flyte-errors-") as tmp:
            shutil.copy(OUT / "errtask.py", tmp)
            inputs_path, task_path, prefix = (os.path.join(tmp, n) for n in ("inputs.pb", "task.pb", "out"))
            data = inputs[row]
            if data is not None:
                Path(inputs_path).write_bytes(data)
                (OUT / f"{row}.inputs.pb").write_bytes(data)
            if row == "template-garbage":
                (OUT / f"{row}.task.pb").write_bytes(b"\xff\xfe not a TaskTemplate")
                shutil.copy(OUT / f"{row}.task.pb", task_path)
            values = {
                "{{.input}}": inputs_path,
                "{{.outputPrefix}}": prefix,
                "{{.rawOutputDataPrefix}}": os.path.join(tmp, "raw"),
                "{{.taskTemplatePath}}": task_path,
            }
            proc = _run(args, values, tmp)
            files = sorted(os.listdir(prefix)) if os.path.isdir(prefix) else []
            record: dict = {"task": which, "broken": broken, "exit_code": proc.returncode, "files": files}
            if "error.pb" in files:
                error = errors_pb2.ErrorDocument.FromString(Path(prefix, "error.pb").read_bytes()).error
                exception, message = _message(error.message, tmp)
                kept = errors_pb2.ErrorDocument(
                    error=errors_pb2.ContainerError(
                        code=error.code, message=message, kind=error.kind, origin=error.origin
                    )
                )
                (OUT / f"{row}.error.pb").write_bytes(kept.SerializeToString(deterministic=True))
                record.update(
                    code=error.code,
                    origin=execution_pb2.ExecutionError.ErrorKind.Name(error.origin),
                    kind=errors_pb2.ContainerError.Kind.Name(error.kind),
                    recoverable=error.kind == errors_pb2.ContainerError.RECOVERABLE,
                    exception=exception,
                    message=message,
                )
            elif row == "valid" and files == ["outputs.pb"]:
                shutil.copy(os.path.join(prefix, "outputs.pb"), OUT / "valid.outputs.pb")
            else:
                raise SystemExit(f"{row}: flytekit wrote {files} (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            rows[row] = record
            print(f"{row}: {record.get('code', 'ok')} {record.get('kind', '')} {record.get('exception', '')}")
    manifest = {
        "flytekit": flytekit.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "task_module": "errtask",
        "rows": rows,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(rows)} rows to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
