"""Equal inputs give byte-identical outputs: the whole flytekit-made golden corpus through ``echo``, twice.

Why: Flyte's cache keys and data-catalog hashes are computed over the output bytes. A protobuf map (a
``Struct``'s fields, a ``LiteralMap``) iterates in an order that changes from process to process, so any
value rebuilt in that order (flytekit's legacy JSON-struct dataclasses, ``FLYTE_USE_OLD_DC_FORMAT``, or
flytekit < 1.14) would be re-encoded differently on every run. Each run here is a fresh process with its
own hash seed, as every task start is.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from flyteidl.core import interface_pb2, literals_pb2, tasks_pb2, types_pb2

from helpers import TASKBOX, commit_files, subprocess_env

FIXTURES = Path(__file__).resolve().parents[1] / "golden" / "fixtures"
#: Fixtures whose literal names a file on the machine that made them (no such file here).
MACHINE_BOUND = {"file_local", "directory_local", "structured_dataset_pandas"}


def _corpus() -> dict[str, tuple[literals_pb2.Literal, types_pb2.LiteralType]]:
    corpus = {}
    for literal_file in sorted(FIXTURES.glob("*.literal.pb")):
        name = literal_file.name[: -len(".literal.pb")]
        if name in MACHINE_BOUND:
            continue
        literal = literals_pb2.Literal.FromString(literal_file.read_bytes())
        literal_type = types_pb2.LiteralType.FromString((FIXTURES / f"{name}.type.pb").read_bytes())
        corpus[name] = (literal, literal_type)
    return corpus


def _run(tmp_path: Path, template: Path, inputs: Path, run: int) -> bytes:
    prefix = tmp_path / f"out{run}"
    raw = str(tmp_path / "raw")
    args = [TASKBOX, "execute", "--inputs", str(inputs), "--output-prefix", str(prefix),
            "--raw-output-data-prefix", raw, "--resolver", "taskbox.template", "--", str(template)]  # fmt: skip
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=120, env=subprocess_env(PYTHONHASHSEED=str(run))
    )
    assert proc.returncode == 0, proc.stderr
    assert commit_files(str(prefix)) == {"outputs.pb"}, proc.stderr[-3000:]
    return (prefix / "outputs.pb").read_bytes()


def test_the_golden_corpus_twice_gives_the_same_bytes(tmp_path):
    corpus = _corpus()
    assert len(corpus) >= 35, sorted(corpus)  # the corpus is there (make golden)
    variables = interface_pb2.VariableMap(
        variables={name: interface_pb2.Variable(type=lt) for name, (_, lt) in corpus.items()}
    )
    template = tasks_pb2.TaskTemplate(
        type="echo", interface=interface_pb2.TypedInterface(inputs=variables, outputs=variables)
    )
    inputs = literals_pb2.LiteralMap()
    for name, (literal, _) in corpus.items():
        inputs.literals[name].CopyFrom(literal)
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    (tmp_path / "inputs.pb").write_bytes(inputs.SerializeToString())
    runs = [_run(tmp_path, tmp_path / "task.pb", tmp_path / "inputs.pb", seed) for seed in (1, 2, 3)]
    assert runs[0] == runs[1] == runs[2], _first_difference(runs)


@pytest.mark.parametrize("name", ["legacy_dataclass", "legacy_untyped_dict"])
def test_legacy_structs_alone_are_deterministic(tmp_path, name):
    literal, literal_type = _corpus()[name]
    variables = interface_pb2.VariableMap(variables={"x": interface_pb2.Variable(type=literal_type)})
    template = tasks_pb2.TaskTemplate(
        type="echo", interface=interface_pb2.TypedInterface(inputs=variables, outputs=variables)
    )
    inputs = literals_pb2.LiteralMap()
    inputs.literals["x"].CopyFrom(literal)
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    (tmp_path / "inputs.pb").write_bytes(inputs.SerializeToString())
    runs = {_run(tmp_path, tmp_path / "task.pb", tmp_path / "inputs.pb", seed) for seed in (11, 12, 13, 14)}
    assert len(runs) == 1


def _first_difference(runs: list[bytes]) -> str:
    maps = [literals_pb2.LiteralMap.FromString(r) for r in runs]
    for name in maps[0].literals:
        values = {m.literals[name].SerializeToString(deterministic=True) for m in maps}
        if len(values) > 1:
            return f"output {name!r} differs between runs"
    return "the maps differ in their framing"
