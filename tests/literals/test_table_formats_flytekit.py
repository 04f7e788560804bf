"""Tables taskbox writes, read by flytekit 1.16.31 (.venv-flytekit, subprocesses), and tables through tasks.

flytekit must read taskbox's CSV exactly as it reads the CSV it writes itself for the same frame (the
golden ``flytekit_read`` of tests/golden/tables/manifest.json), and taskbox's parquet exactly as its own.
Then a table goes through real ``taskbox execute`` runs (a ``@taskbox.task`` function and the ``echo``
executor) and keeps its declared format on the way out.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pytest
from flyteidl.core import errors_pb2, literals_pb2, types_pb2

from helpers import ROOT, commit_files, execute_args, make_template, put, read_error, read_literal_map, run
from taskbox.literals import TypeEngine
from taskhelpers import function_args, run_with_path, write_module

from .test_table_formats import DECLARED, FRAME, GOLDEN, MANIFEST, check_table, load

GOLDEN_SCRIPTS = ROOT / "tests" / "golden"

# Reads every literal of a LiteralMap file as a pandas DataFrame, the way a flytekit task receives it.
READ_WITH_FLYTEKIT = r"""
import json, sys
import pandas as pd
from flyteidl.core import literals_pb2
from flytekit import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import Literal

lm = literals_pb2.LiteralMap()
lm.ParseFromString(open(sys.argv[1], "rb").read())
ctx = FlyteContextManager.current_context()
out = {}
for name, pb in lm.literals.items():
    try:
        df = TypeEngine.to_python_value(ctx, Literal.from_flyte_idl(pb), pd.DataFrame)
    except Exception as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        continue
    out[name] = {
        "columns": [str(c) for c in df.columns],
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "rows": json.loads(df.to_json(orient="values", date_format="iso", date_unit="us")),
    }
print(json.dumps(out))
"""

# taskbox inside flytekit's environment (pandas installed): a pandas frame written by taskbox as CSV and
# parquet, a flytekit CSV read by taskbox as a pandas DataFrame.
PANDAS_THROUGH_TASKBOX = r"""
import json, sys
from typing import Annotated
import pandas as pd
from flyteidl.core import literals_pb2
from taskbox.literals import ConversionContext, TypeEngine
sys.path.insert(0, sys.argv[1])
from make_table_fixtures import FRAME, pandas_frame

ctx = ConversionContext(raw_output_prefix=sys.argv[2] + "/raw", working_dir=sys.argv[2] + "/work")
frame = pandas_frame(FRAME)
lm = literals_pb2.LiteralMap()
lm.literals["csv"].CopyFrom(TypeEngine.to_literal(frame, Annotated[pd.DataFrame, "csv"], ctx=ctx))
lm.literals["parquet"].CopyFrom(TypeEngine.to_literal(frame, pd.DataFrame, ctx=ctx))
open(sys.argv[2] + "/written.pb", "wb").write(lm.SerializeToString())
golden = literals_pb2.Literal()
golden.ParseFromString(open(sys.argv[3], "rb").read())
golden.scalar.structured_dataset.uri = sys.argv[4]
df = TypeEngine.to_python_value(golden, pd.DataFrame, ctx=ctx)
print(json.dumps({"type": type(df).__name__, "records": json.loads(df.to_json(orient="records", date_format="iso"))}))
"""


@pytest.fixture(scope="module")
def flytekit_python() -> str:
    """flytekit's interpreter: $TASKBOX_FLYTEKIT_PYTHON or .venv-flytekit (`make flytekit-venv` if missing)."""
    python = os.environ.get("TASKBOX_FLYTEKIT_PYTHON") or str(ROOT / ".venv-flytekit" / "bin" / "python")
    if not Path(python).exists():
        subprocess.run(["make", "flytekit-venv"], cwd=ROOT, check=True, timeout=900)
    probe = subprocess.run([python, "-c", "import flytekit, pandas, pyarrow"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"{python} cannot import flytekit/pandas/pyarrow (run `make flytekit-venv`): {probe.stderr[-500:]}")
    return python


def flytekit_reads(python: str, path: Path) -> dict[str, Any]:
    proc = subprocess.run([python, "-c", READ_WITH_FLYTEKIT, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_map(path: Path, literals: dict[str, literals_pb2.Literal]) -> Path:
    lm = literals_pb2.LiteralMap()
    for name, lit in literals.items():
        lm.literals[name].CopyFrom(lit)
    path.write_bytes(lm.SerializeToString())
    return path


def _instant(text: str | None) -> datetime.datetime | None:
    """Timestamps reach pandas as text (CSV has no types); pandas and pyarrow spell them differently."""
    if text is None:
        return None
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def normalized(read: dict[str, Any], text_timestamps: tuple[str, ...] = ("when", "at")) -> dict[str, Any]:
    columns = read["columns"]
    rows = [
        [_instant(v) if c in text_timestamps else v for c, v in zip(columns, row, strict=True)] for row in read["rows"]
    ]
    return {"columns": columns, "dtypes": read["dtypes"], "rows": rows}


def golden_table() -> pa.Table:
    """The golden frame as a pyarrow table with its declared types."""
    return pa.table({name: pa.array(values, kind) for name, (values, kind) in DECLARED.items()})


FRAME_COLUMNS = {
    "id": int,
    "name": str,
    "flag": bool,
    "score": float,
    "when": datetime.datetime,
    "at": datetime.datetime,
    "code": str,
}


def test_flytekit_reads_taskboxs_tables_as_it_reads_its_own(flytekit_python, ctx, tmp_path):
    table = golden_table()
    written = {
        "csv": TypeEngine.to_literal(table, Annotated[pa.Table, "csv"], ctx=ctx),
        "csv_columns": TypeEngine.to_literal(table, Annotated[pa.Table, FRAME_COLUMNS, "csv"], ctx=ctx),
        "parquet": TypeEngine.to_literal(table, pa.Table, ctx=ctx),
        "single": TypeEngine.to_literal(pa.table({"x": [1.5, None, 3.0]}), Annotated[pa.Table, "csv"], ctx=ctx),
        "empty": TypeEngine.to_literal(pa.table({}), Annotated[pa.Table, "csv"], ctx=ctx),
        "empty_columns": TypeEngine.to_literal(
            pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.string())}),
            Annotated[pa.Table, {"a": int, "b": str}, "csv"],
            ctx=ctx,
        ),
    }
    read = flytekit_reads(flytekit_python, write_map(tmp_path / "written.pb", written))
    own = {name: entry["flytekit_read"] for name, entry in MANIFEST["cases"].items()}
    assert normalized(read["csv"]) == normalized(own["csv_pandas"])
    assert normalized(read["csv_columns"]) == normalized(own["csv_pandas_columns"])
    assert read["parquet"] == own["parquet_arrow"]
    assert read["single"] == own["csv_single_column_nulls"]
    assert read["empty"] == own["csv_empty_frame"]  # flytekit fails on its own empty CSV too
    assert read["empty_columns"] == own["csv_empty_with_columns"]


def test_pandas_frames_through_taskbox_in_flytekits_environment(flytekit_python, tmp_path):
    """pandas is no taskbox dependency: its frames are checked where pandas is, in flytekit's venv."""
    lit, _ = load("csv_pandas_columns", tmp_path)
    golden = tmp_path / "golden.pb"
    golden.write_bytes(lit.SerializeToString())
    proc = subprocess.run(
        [
            flytekit_python, "-c", PANDAS_THROUGH_TASKBOX,
            str(GOLDEN_SCRIPTS), str(tmp_path), str(golden), lit.scalar.structured_dataset.uri,
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    taskbox_read = json.loads(proc.stdout.strip().splitlines()[-1])
    assert taskbox_read["type"] == "DataFrame"
    assert [r["code"] for r in taskbox_read["records"]] == FRAME["code"]  # declared str: "007" stays text
    assert [r["name"] for r in taskbox_read["records"]] == FRAME["name"]
    read = flytekit_reads(flytekit_python, tmp_path / "written.pb")
    own = {name: entry["flytekit_read"] for name, entry in MANIFEST["cases"].items()}
    assert normalized(read["csv"]) == normalized(own["csv_pandas"])
    assert read["parquet"] == own["parquet_pandas"]
    written = read_literal_map(str(tmp_path / "written.pb"))
    assert written.literals["csv"].scalar.structured_dataset.metadata.structured_dataset_type.format == "csv"
    assert os.listdir(written.literals["csv"].scalar.structured_dataset.uri) == [".csv"]


# ---------------------------------------------------------------- through tasks

TASKS = """
from typing import Annotated

import pyarrow as pa
import pyarrow.compute as pc

import taskbox
from taskbox.literals import StructuredDataset


@taskbox.task
def doubled(t: Annotated[pa.Table, "csv"]) -> Annotated[pa.Table, "csv"]:
    return t.append_column("twice", pc.multiply(t["score"], 2))


@taskbox.task
def keep(sd: Annotated[StructuredDataset, "csv"]) -> Annotated[StructuredDataset, "csv"]:
    return sd


@taskbox.task
def typed(t: Annotated[pa.Table, {"code": str, "id": int}]) -> pa.Table:
    return t


@taskbox.task
def rows(t: pa.Table) -> int:
    return t.num_rows
"""


def run_task(tmp_path: Path, name: str, inputs: dict[str, literals_pb2.Literal]) -> tuple[Any, str]:
    module_dir = tmp_path / "code"
    if not (module_dir / "table_tasks.py").exists():
        module_dir.mkdir(exist_ok=True)
        write_module(module_dir, "table_tasks", TASKS)
    path = write_map(tmp_path / f"{name}-inputs.pb", inputs)
    prefix = str(tmp_path / "out" / name)
    raw = ("--raw-output-data-prefix", str(tmp_path / "raw"))
    proc = run_with_path(function_args(str(path), prefix, "table_tasks", name, *raw), module_dir)
    return proc, prefix


def sd_of(prefix: str, output: str = "o0") -> literals_pb2.StructuredDataset:
    return read_literal_map(os.path.join(prefix, "outputs.pb")).literals[output].scalar.structured_dataset


def test_a_taskbox_task_reads_and_writes_csv_tables(flytekit_python, ctx, tmp_path):
    lit, _ = load("csv_pandas_columns", tmp_path)
    proc, prefix = run_task(tmp_path, "doubled", {"t": lit})
    assert proc.returncode == 0 and commit_files(prefix) == {"outputs.pb"}, proc.stderr
    sd = sd_of(prefix)
    assert sd.metadata.structured_dataset_type.format == "csv"
    assert os.listdir(sd.uri) == [".csv"] and sd.uri.startswith(str(tmp_path / "raw"))
    read = flytekit_reads(flytekit_python, tmp_path / "out" / "doubled" / "outputs.pb")["o0"]
    assert read["columns"] == [*DECLARED, "twice"]
    assert [row[-1] for row in read["rows"]] == [1.0, None, -4.5]
    # taskbox reads its own CSV back with the input's declared types
    back = TypeEngine.to_python_value(
        read_literal_map(os.path.join(prefix, "outputs.pb")).literals["o0"],
        Annotated[pa.Table, FRAME_COLUMNS],
        ctx=ctx,
    )
    check_table(back, DECLARED)


def test_a_passed_through_csv_dataset_keeps_its_literal(tmp_path):
    lit, _ = load("csv_pandas", tmp_path)
    proc, prefix = run_task(tmp_path, "keep", {"sd": lit})
    assert proc.returncode == 0, proc.stderr
    assert sd_of(prefix) == lit.scalar.structured_dataset


def test_reader_columns_and_a_parquet_output(tmp_path):
    lit, _ = load("csv_pandas", tmp_path)
    proc, prefix = run_task(tmp_path, "typed", {"t": lit})
    assert proc.returncode == 0, proc.stderr
    sd = sd_of(prefix)
    assert sd.metadata.structured_dataset_type.format == "parquet" and os.listdir(sd.uri) == ["00000"]
    table = pa.parquet.read_table(sd.uri)
    assert table.to_pydict() == {"code": FRAME["code"], "id": FRAME["id"]}


@pytest.mark.parametrize("name", sorted(MANIFEST["cases"]))
def test_every_golden_table_is_a_task_input(name, tmp_path):
    lit, _ = load(name, tmp_path)
    proc, prefix = run_task(tmp_path, "rows", {"t": lit})
    assert proc.returncode == 0, proc.stderr
    expected = len(next(iter(MANIFEST["cases"][name]["frame"].values()), []))
    assert read_literal_map(os.path.join(prefix, "outputs.pb")).literals["o0"].scalar.primitive.integer == expected


def test_an_unsupported_format_fails_the_task_as_a_user_error(tmp_path):
    lit, _ = load("csv_pandas", tmp_path)
    lit.scalar.structured_dataset.metadata.structured_dataset_type.format = "avro"
    proc, prefix = run_task(tmp_path, "rows", {"t": lit})
    assert proc.returncode == 0 and commit_files(prefix) == {"error.pb"}, proc.stderr
    error = read_error(prefix)
    assert error.code == "USER:UnsupportedType" and error.kind == errors_pb2.ContainerError.NON_RECOVERABLE
    assert "'avro' format" in error.message and "'parquet' and 'csv'" in error.message


def sd_type(fmt: str) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format=fmt))


@pytest.mark.parametrize(
    ("case", "declared_in", "declared_out", "converted"),
    [
        ("csv_pandas", "csv", "csv", False),
        ("csv_pandas", "", "", False),
        ("csv_pandas_columns", "csv", "parquet", True),
        ("parquet_pandas", "", "csv", True),
    ],
)
def test_echo_keeps_or_converts_to_the_declared_format(case, declared_in, declared_out, converted, ctx, tmp_path):
    lit, _ = load(case, tmp_path)
    template = make_template("echo", {"t": sd_type(declared_in)}, {"t": sd_type(declared_out)})
    task = put(str(tmp_path / "task.pb"), template.SerializeToString())
    inputs = write_map(tmp_path / "inputs.pb", {"t": lit})
    prefix = str(tmp_path / "out")
    proc = run(execute_args(str(inputs), prefix, task, None, "--raw-output-data-prefix", str(tmp_path / "raw")))
    assert proc.returncode == 0 and commit_files(prefix) == {"outputs.pb"}, proc.stderr
    sd = sd_of(prefix, "t")
    fmt = lit.scalar.structured_dataset.metadata.structured_dataset_type.format
    if not converted:
        assert sd == lit.scalar.structured_dataset
        return
    assert sd.metadata.structured_dataset_type.format == declared_out != fmt
    assert os.listdir(sd.uri) == [".csv" if declared_out == "csv" else "00000"]
    before = TypeEngine.to_python_value(lit, pa.Table, ctx=ctx)
    after = TypeEngine.to_python_value(read_literal_map(os.path.join(prefix, "outputs.pb")).literals["t"], pa.Table)
    assert after.column_names == before.column_names
    assert after.column("name").to_pylist() == FRAME["name"]


def test_golden_tables_are_a_directory_of_flytekit_data():
    """The fixtures hold flytekit's own bytes (regenerated by ``make golden``)."""
    csv = next((GOLDEN / "data" / "csv_pandas").glob("*/.csv")).read_text(encoding="utf-8")
    assert csv.startswith("id,name,flag,score,when,at,code\n1.0,plain,True,0.5,")
