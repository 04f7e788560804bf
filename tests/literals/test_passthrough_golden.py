"""A value passed through an executor comes back as flytekit's identity task writes it (issue 18, items 1 and 3).

The fixtures (tests/golden/passthrough, ``make golden``) hold, per case, the declared type, the input
literal flytekit 1.16.31 wrote and the output literal its identity task ``def identity(x: T) -> T``
returned. taskbox runs the same input through ``echo`` under ``taskbox execute``: the output must be
flytekit's, byte for byte. The cases are unions of two struct types (whose plain-dict form fits both
variants) and literals carrying the ``hash`` flytekit's ``HashMethod`` sets.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from flyteidl.core import interface_pb2, literals_pb2, tasks_pb2, types_pb2

from helpers import TASKBOX, commit_files, subprocess_env

FIXTURES = Path(__file__).resolve().parents[1] / "golden" / "passthrough"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CASES = MANIFEST["cases"]


def _load(name: str) -> tuple[types_pb2.LiteralType, bytes, bytes]:
    entry = CASES[name]
    literal_type = types_pb2.LiteralType.FromString((FIXTURES / entry["type"]).read_bytes())
    return literal_type, (FIXTURES / entry["input"]).read_bytes(), (FIXTURES / entry["output"]).read_bytes()


def _echo(tmp_path: Path, declared: dict[str, types_pb2.LiteralType], inputs: literals_pb2.LiteralMap) -> Path:
    variables = interface_pb2.VariableMap(
        variables={name: interface_pb2.Variable(type=lt) for name, lt in declared.items()}
    )
    template = tasks_pb2.TaskTemplate(
        type="echo", interface=interface_pb2.TypedInterface(inputs=variables, outputs=variables)
    )
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    (tmp_path / "inputs.pb").write_bytes(inputs.SerializeToString())
    prefix = tmp_path / "out"
    args = [TASKBOX, "execute", "--inputs", str(tmp_path / "inputs.pb"), "--output-prefix", str(prefix),
            "--raw-output-data-prefix", str(tmp_path / "raw"), "--resolver", "taskbox.template", "--",
            str(tmp_path / "task.pb")]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert commit_files(str(prefix)) == {"outputs.pb"}, proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    return prefix / "outputs.pb"


def test_the_corpus_is_there():
    assert MANIFEST["flytekit"] == "1.16.31"
    assert {"union_structs_first", "union_dataclass_pydantic", "hashed_int", "hashed_elements"} <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_echo_writes_what_flytekits_identity_task_writes(tmp_path, name):
    literal_type, input_bytes, output_bytes = _load(name)
    inputs = literals_pb2.LiteralMap()
    inputs.literals["x"].ParseFromString(input_bytes)
    outputs = literals_pb2.LiteralMap.FromString(_echo(tmp_path, {"x": literal_type}, inputs).read_bytes())
    ours = outputs.literals["x"]
    assert ours == literals_pb2.Literal.FromString(output_bytes)
    assert ours.SerializeToString(deterministic=True) == output_bytes
    assert ours.hash == CASES[name]["output_hash"]


def test_every_case_at_once_under_other_names(tmp_path):
    """All cases in one task, each input echoed twice: same variants and hashes on every copy."""
    declared: dict[str, types_pb2.LiteralType] = {}
    inputs = literals_pb2.LiteralMap()
    for name in CASES:
        literal_type, input_bytes, _ = _load(name)
        declared[name] = literal_type
        inputs.literals[name].ParseFromString(input_bytes)
    outputs = literals_pb2.LiteralMap.FromString(_echo(tmp_path, declared, inputs).read_bytes())
    for name in CASES:
        assert outputs.literals[name].SerializeToString(deterministic=True) == _load(name)[2], name
