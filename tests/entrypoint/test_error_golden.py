"""``taskbox execute``'s error documents against flytekit's, when the platform-written files are missing or broken.

tests/golden/errors/ holds what flytekit's ``pyflyte-execute`` wrote for each row (made by
tests/golden/make_error_fixtures.py under ``.venv-flytekit``). Each row runs here through ``taskbox execute``
with flytekit's own container args and the same files: ``pyflyte-execute`` becomes ``taskbox execute``; the
python task's resolver becomes ``taskbox.function`` on the same function as a ``@taskbox.task``; the template
rows keep flytekit's template resolver and executor class path unchanged. Placeholders are filled the same way
on both sides.

:data:`DECISIONS` is taskbox's table (docs/reliability.md, *Who is to blame for platform-written data*). Where
taskbox agrees with flytekit, its origin and retry flag must equal the ones flytekit wrote; where it
deliberately differs, the test asserts taskbox's decided value, that flytekit's really is different (so a
changed flytekit is noticed), and that the documentation's table gives the row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2, execution_pb2, literals_pb2, tasks_pb2

from helpers import ROOT, TASKBOX, commit_files, read_error, run

GOLDEN = ROOT / "tests" / "golden" / "errors"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
DOCS = (ROOT / "docs" / "reliability.md").read_text()
FLYTEKIT_IMPORT = "from flytekit import task"


@dataclass(frozen=True)
class Decision:
    """taskbox's classification of one row, and whether it agrees with flytekit's (origin and retry flag)."""

    code: str
    recoverable: bool
    words: tuple[str, ...]
    agrees: bool


DECISIONS = {
    # the file propeller wrote is missing or damaged: the platform's, and a new attempt may read it whole
    "inputs-missing": Decision("SYSTEM:InputsNotFound", True, ("inputs.pb", "does not exist"), agrees=True),
    "inputs-garbage": Decision("SYSTEM:InputsCorrupt", True, ("inputs.pb", "is damaged"), agrees=True),
    "inputs-truncated": Decision("SYSTEM:InputsCorrupt", True, ("inputs.pb", "is damaged"), agrees=True),
    "template-missing": Decision("SYSTEM:TemplateNotFound", True, ("task template", "does not exist"), agrees=False),
    "template-garbage": Decision("SYSTEM:TemplateCorrupt", True, ("task template", "is damaged"), agrees=False),
    # the file parses: its values are the user's workflow's, and every retry reads the same bytes
    "inputs-empty": Decision("USER:InvalidInput", False, ("input 'a'", "missing"), agrees=True),
    "input-missing": Decision("USER:InvalidInput", False, ("input 'b'", "missing"), agrees=True),
    "input-wrong-type": Decision("USER:InvalidInput", False, ("input 'a'", "expected int"), agrees=False),
    "input-extra": Decision("USER:InvalidInput", False, ("input 'zzz'", "not declared"), agrees=False),
    "inputs-nested-past-protobuf-limit": Decision(
        "USER:InvalidInput", False, ("input 'a'", "nested deeper than protobuf's limit"), agrees=False
    ),
}


def _flytekit(row: str) -> errors_pb2.ContainerError:
    return errors_pb2.ErrorDocument.FromString((GOLDEN / f"{row}.error.pb").read_bytes()).error


def _template(name: str) -> tasks_pb2.TaskTemplate:
    return tasks_pb2.TaskTemplate.FromString((GOLDEN / name).read_bytes())


def _run_row(row: str, tmp_path: Path):
    """Run the row's files through ``taskbox execute`` with flytekit's args; return the process and the prefix."""
    spec = MANIFEST["rows"][row]
    module = (GOLDEN / "errtask.py").read_text()
    assert module.count(FLYTEKIT_IMPORT) == 1
    (tmp_path / "errtask.py").write_text(module.replace(FLYTEKIT_IMPORT, "from taskbox import task"))
    inputs = GOLDEN / f"{row}.inputs.pb"
    if inputs.exists():
        (tmp_path / "inputs.pb").write_bytes(inputs.read_bytes())
    broken_template = GOLDEN / f"{row}.task.pb"
    if broken_template.exists():
        (tmp_path / "task.pb").write_bytes(broken_template.read_bytes())
    template = _template("task.pb" if spec["task"] == "python" else "sqlite3_task.pb")
    args = list(template.container.args)
    assert args[0] == "pyflyte-execute"
    if spec["task"] == "python":
        args[args.index("--resolver") + 1] = "taskbox.function"
    values = {
        "{{.input}}": str(tmp_path / "inputs.pb"),
        "{{.outputPrefix}}": str(tmp_path / "out"),
        "{{.rawOutputDataPrefix}}": str(tmp_path / "raw"),
        "{{.taskTemplatePath}}": str(tmp_path / "task.pb"),
    }
    command = [TASKBOX, "execute", *(values.get(a, a) for a in args[1:])]
    return run(command, PYTHONPATH=str(tmp_path)), str(tmp_path / "out")


def test_the_fixtures_are_flytekits_and_every_row_has_a_decision():
    assert MANIFEST["flytekit"] == "1.16.31"
    assert set(MANIFEST["rows"]) == {"valid", *DECISIONS}
    python_task = _template("task.pb")
    assert python_task.metadata.runtime.version == MANIFEST["flytekit"]
    assert {n: v.type.simple for n, v in python_task.interface.inputs.variables.items()} == {"a": 1, "b": 3}
    assert _template("sqlite3_task.pb").container.args[-1] == "flytekit.extras.sqlite3.task.SQLite3TaskExecutor"
    for row in DECISIONS:
        stored, flytekit = MANIFEST["rows"][row], _flytekit(row)
        assert stored["files"] == ["error.pb"] and stored["exit_code"] == 0
        assert stored["recoverable"] == (flytekit.kind == errors_pb2.ContainerError.RECOVERABLE)
        assert stored["origin"] == execution_pb2.ExecutionError.ErrorKind.Name(flytekit.origin)
        assert "/tmp" not in flytekit.message


def test_the_control_row_gives_flytekits_outputs(tmp_path):
    proc, prefix = _run_row("valid", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert commit_files(prefix) == {"outputs.pb"}
    ours = literals_pb2.LiteralMap.FromString(Path(prefix, "outputs.pb").read_bytes())
    assert ours == literals_pb2.LiteralMap.FromString((GOLDEN / "valid.outputs.pb").read_bytes())


@pytest.mark.parametrize("row", sorted(DECISIONS))
def test_each_row_gives_the_decided_error_document(tmp_path, row):
    decision = DECISIONS[row]
    proc, prefix = _run_row(row, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]  # Flyte's contract: exit 0 after error.pb
    assert commit_files(prefix) == {"error.pb"}  # no outputs.pb, partial or whole
    ours = read_error(prefix)
    origin = (
        execution_pb2.ExecutionError.USER if decision.code.startswith("USER:") else execution_pb2.ExecutionError.SYSTEM
    )
    kind = errors_pb2.ContainerError.RECOVERABLE if decision.recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
    assert (ours.code, ours.origin, ours.kind) == (decision.code, origin, kind), ours.message[:2000]
    assert all(word in ours.message for word in decision.words), ours.message[:2000]
    assert decision.code in proc.stderr  # the one-line summary for the pod log
    flytekit = _flytekit(row)
    if decision.agrees:
        assert (ours.origin, ours.kind) == (flytekit.origin, flytekit.kind), flytekit.message
    else:  # a deliberate difference: flytekit's is really another, and the documentation gives the reason
        assert (ours.origin, ours.kind) != (flytekit.origin, flytekit.kind), flytekit.message
        assert "differs" in _table_row(row)["flytekit 1.16.31"] and _table_row(row)["why"]


def _table_row(row: str) -> dict[str, str]:
    """The cells of docs/reliability.md's table line that names the golden row ``row``, by column."""
    lines = DOCS.splitlines()
    header = next(line for line in lines if line.startswith("| condition (golden row)"))
    found = [line for line in lines if line.startswith("|") and f"`{row}`" in line]
    assert len(found) == 1, f"docs/reliability.md: no single table line for `{row}`"

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    return dict(zip(cells(header), cells(found[0]), strict=True))


@pytest.mark.parametrize("row", sorted(DECISIONS))
def test_the_documentation_table_has_the_row_as_decided(row):
    decision, cells = DECISIONS[row], _table_row(row)
    assert f"`{decision.code}`" in cells["code"]
    assert cells["kind"] == decision.code.split(":")[0]
    assert cells["recoverable"].startswith("recoverable" if decision.recoverable else "non-recoverable")
    assert ("agrees" if decision.agrees else "differs") in cells["flytekit 1.16.31"]
    assert cells["commands"] in ("every command", "execute, fast-execute", "execute, fast-execute, a0") and cells["why"]
