"""Write flytekit-made StructuredDataset literals (parquet and CSV) and their data, for taskbox's table tests.

Run with an interpreter that has ``flytekit==1.16.31 pandas pyarrow`` installed -- ``make golden`` runs
every ``tests/golden/make_*.py`` in ``.venv-flytekit``::

    .venv-flytekit/bin/python tests/golden/make_table_fixtures.py [--out tests/golden/tables]

For every case it writes ``<case>.literal.pb`` (the ``flyteidl.core.Literal`` flytekit's type engine made),
``<case>.type.pb`` (the ``LiteralType`` flytekit declares for the Python type), the files flytekit wrote
(``data/<case>/<random>/...``: ``00000`` for parquet, ``.csv`` for CSV) and ``manifest.json``: per case the
Python type, the input frame as JSON (``frame``), the literal's format and columns, and what flytekit itself
reads back as a pandas DataFrame (``flytekit_read``: columns, dtypes, rows; or the error it raises).

The script imports nothing from taskbox: it must run in flytekit's environment only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NamedTuple

FLYTEKIT_VERSION = "1.16.31"

# The input every non-empty case starts from: nulls in every column, a string with a comma, quotes, a
# newline and non-ASCII text, zero-padded codes that only stay strings when declared so, naive and UTC
# timestamps (ISO text here; pandas datetime64 columns in the frame).
FRAME: dict[str, list[Any]] = {
    "id": [1, 2, None],
    "name": ["plain", 'comma, "quoted"', "line\nbreak é ✓"],
    "flag": [True, False, True],
    "score": [0.5, None, -2.25],
    "when": ["2024-01-02T03:04:05", "2024-05-06T07:08:09.123456", None],
    "at": ["2024-01-02T03:04:05+00:00", None, "2024-12-31T23:59:59.500000+00:00"],
    "code": ["007", None, "10"],
}
SINGLE_COLUMN: dict[str, list[Any]] = {"x": [1.5, None, 3.0]}
EMPTY_WITH_COLUMNS: dict[str, list[Any]] = {"a": [], "b": []}


class Case(NamedTuple):
    name: str
    python_type: Any
    value: Callable[[], Any]
    frame: dict[str, list[Any]] | None


def pandas_frame(data: dict[str, list[Any]]) -> Any:
    import pandas as pd

    frame = pd.DataFrame({k: v for k, v in data.items() if k not in ("when", "at")})
    if "when" in data:
        frame.insert(4, "when", pd.to_datetime(data["when"], format="ISO8601"))
        frame.insert(5, "at", pd.to_datetime(data["at"], format="ISO8601", utc=True))
    return frame


def arrow_table(data: dict[str, list[Any]]) -> Any:
    import pyarrow as pa

    types = {
        "id": pa.int64(),
        "name": pa.string(),
        "flag": pa.bool_(),
        "score": pa.float64(),
        "when": pa.timestamp("us"),
        "at": pa.timestamp("us", tz="UTC"),
        "code": pa.string(),
    }
    values = dict(data)
    values["when"] = [datetime.datetime.fromisoformat(v) if v else None for v in data["when"]]
    values["at"] = [datetime.datetime.fromisoformat(v) if v else None for v in data["at"]]
    return pa.table({k: pa.array(v, types[k]) for k, v in values.items()})


def cases() -> list[Case]:
    import pandas as pd
    import pyarrow as pa
    from flytekit import kwtypes
    from flytekit.types.structured import StructuredDataset

    typed = kwtypes(id=int, name=str, flag=bool, score=float, when=datetime.datetime, at=datetime.datetime, code=str)
    return [
        # CSV: flytekit's pandas handler, chosen by the declared format of a StructuredDataset.
        Case(
            "csv_pandas",
            Annotated[StructuredDataset, "csv"],
            lambda: StructuredDataset(dataframe=pandas_frame(FRAME)),
            FRAME,
        ),
        Case(
            "csv_pandas_columns",
            Annotated[StructuredDataset, typed, "csv"],
            lambda: StructuredDataset(dataframe=pandas_frame(FRAME)),
            FRAME,
        ),
        Case(
            "csv_pandas_column_subset",
            Annotated[StructuredDataset, kwtypes(code=str, id=int), "csv"],
            lambda: StructuredDataset(dataframe=pandas_frame(FRAME)),
            FRAME,
        ),
        Case(
            "csv_single_column_nulls",
            Annotated[StructuredDataset, "csv"],
            lambda: StructuredDataset(dataframe=pd.DataFrame(SINGLE_COLUMN)),
            SINGLE_COLUMN,
        ),
        Case(
            "csv_empty_frame",
            Annotated[StructuredDataset, "csv"],
            lambda: StructuredDataset(dataframe=pd.DataFrame()),
            {},
        ),
        Case(
            "csv_empty_with_columns",
            Annotated[StructuredDataset, kwtypes(a=int, b=str), "csv"],
            lambda: StructuredDataset(dataframe=pd.DataFrame(EMPTY_WITH_COLUMNS)),
            EMPTY_WITH_COLUMNS,
        ),
        # Parquet: the default for pandas frames and pyarrow tables.
        Case("parquet_pandas", pd.DataFrame, lambda: pandas_frame(FRAME), FRAME),
        Case("parquet_pandas_columns", Annotated[pd.DataFrame, typed], lambda: pandas_frame(FRAME), FRAME),
        Case("parquet_arrow", pa.Table, lambda: arrow_table(FRAME), FRAME),
        Case(
            "parquet_sd_declared",
            Annotated[StructuredDataset, "parquet"],
            lambda: StructuredDataset(dataframe=pandas_frame(FRAME)),
            FRAME,
        ),
        # flytekit's encoder for a bare frame ignores the annotation's format: parquet, declared "csv".
        Case("parquet_bare_frame_declared_csv", Annotated[pd.DataFrame, "csv"], lambda: pandas_frame(FRAME), FRAME),
    ]


def flytekit_read(ctx: Any, lit: Any) -> dict[str, Any]:
    """What flytekit reads back from the literal as a pandas DataFrame (or the error it raises)."""
    import pandas as pd
    from flytekit.core.type_engine import TypeEngine

    try:
        df = TypeEngine.to_python_value(ctx, lit, pd.DataFrame)
    except Exception as exc:  # noqa: BLE001 - recorded: flytekit cannot read its own empty CSV
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "columns": [str(c) for c in df.columns],
        "dtypes": {str(c): str(t) for c, t in df.dtypes.items()},
        "rows": json.loads(df.to_json(orient="values", date_format="iso", date_unit="us")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "tables"))
    args = parser.parse_args(argv)

    import flytekit
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.data_persistence import FileAccessProvider
    from flytekit.core.type_engine import TypeEngine

    if flytekit.__version__ != FLYTEKIT_VERSION:
        print(
            f"warning: fixtures are specified for flytekit {FLYTEKIT_VERSION}, running {flytekit.__version__}",
            file=sys.stderr,
        )
    out = Path(args.out)
    shutil.rmtree(out / "data", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"flytekit": flytekit.__version__, "frame": FRAME, "cases": {}}

    with tempfile.TemporaryDirectory(prefix="golden-tables-") as tmp_name:
        tmp = Path(tmp_name)
        raw = str(tmp / "raw")
        provider = FileAccessProvider(local_sandbox_dir=str(tmp / "sandbox"), raw_output_prefix=raw)
        base = FlyteContextManager.current_context()
        with FlyteContextManager.with_context(base.with_file_access(provider)) as ctx:
            for case in cases():
                lt = TypeEngine.to_literal_type(case.python_type)
                lit = TypeEngine.to_literal(ctx, case.value(), case.python_type, lt)
                lit_pb = lit.to_flyte_idl()
                sd = lit_pb.scalar.structured_dataset
                relative = os.path.relpath(sd.uri, raw)
                shutil.copytree(sd.uri, out / "data" / case.name / relative)
                (out / f"{case.name}.literal.pb").write_bytes(lit_pb.SerializeToString(deterministic=True))
                (out / f"{case.name}.type.pb").write_bytes(lt.to_flyte_idl().SerializeToString(deterministic=True))
                manifest["cases"][case.name] = {
                    "literal": f"{case.name}.literal.pb",
                    "type": f"{case.name}.type.pb",
                    "python_type": repr(case.python_type),
                    "format": sd.metadata.structured_dataset_type.format,
                    "declared_format": lt.to_flyte_idl().structured_dataset_type.format,
                    "columns": [c.name for c in sd.metadata.structured_dataset_type.columns],
                    "files": sorted(os.listdir(sd.uri)),
                    "raw_prefix": raw,
                    "data": f"data/{case.name}",
                    "relative_uri": relative,
                    "frame": case.frame,
                    "flytekit_read": flytekit_read(ctx, lit),
                }
                print(f"wrote {case.name}")
    text = json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
