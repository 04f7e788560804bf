"""Map a query's result onto the task's declared outputs: a Parquet dataset, one row, or nothing.

Why: the declared outputs decide the shape, not the query. flytekit always builds a DataFrame; here one
StructuredDataset output (or flytekit's legacy ``schema``) receives the whole result as Parquet, written
by :mod:`taskbox.sql.results`; only primitive outputs receive the columns of the single row by name; no
outputs means the statement is executed only.

Invariants:
    * A table lands at ``<raw output prefix>/<32 hex>/00000`` (flytekit's layout) and becomes visible
      only when ``publish`` is called, after the database transaction has ended.
    * Zero or several rows for primitive outputs, a missing column, a NULL for a non-optional output or a
      value of the wrong type is a :class:`~taskbox.sql.errors.ResultShapeError` (USER).
    * On failure nothing is left at the output location.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskbox import storage
from taskbox.sql.errors import ResultShapeError
from taskbox.sql.results import DEFAULT_BATCH_ROWS, PARQUET_FILE, RowSource, write_parquet

__all__ = ["OutputPlan", "collect", "single_row"]

log = logging.getLogger("taskbox.sql")


@dataclass(frozen=True)
class OutputPlan:
    """How the declared outputs take the result.

    Attributes:
        kind: ``"none"``, ``"table"`` or ``"row"``.
        table: The StructuredDataset output's name (``kind == "table"``).
        row: Output name -> (simple type name, nullable), for ``kind == "row"``.

    """

    kind: str
    table: str | None = None
    row: Mapping[str, tuple[str, bool]] = field(default_factory=dict)

    @classmethod
    def from_types(cls, output_types: Mapping[str, Any]) -> OutputPlan:
        """Classify the declared outputs (``LiteralType`` messages or Python types).

        Raises:
            ResultShapeError: A mix of a table and other outputs, several tables, or a type a query
                result cannot fill (files, lists, maps...).

        """
        if not output_types:
            return cls("none")
        tables: list[str] = []
        row: dict[str, tuple[str, bool]] = {}
        for name, t in output_types.items():
            shape = _shape_of(t)
            if shape is None:
                raise ResultShapeError(
                    f"output {name!r} has a type a query result cannot fill; declare a StructuredDataset "
                    "(the whole result) or primitive outputs (the columns of one row)"
                )
            if shape[0] == "TABLE":
                tables.append(name)
            else:
                row[name] = shape
        if tables and (len(tables) > 1 or row):
            raise ResultShapeError(
                "a SQL task declares either one StructuredDataset output (the whole result) or only primitive "
                f"outputs (the columns of one row); this one declares {', '.join(sorted(output_types))}"
            )
        return cls("table", table=tables[0]) if tables else cls("row", row=row)


def _shape_of(t: Any) -> tuple[str, bool] | None:
    """``("TABLE", False)``, ``(simple type name, nullable)`` or ``None``."""
    which = getattr(t, "WhichOneof", None)
    if which is not None:  # a flyteidl LiteralType
        kind = which("type")
        if kind in ("structured_dataset_type", "schema"):
            return ("TABLE", False)
        if kind == "simple":
            from flyteidl.core import types_pb2

            name = types_pb2.SimpleType.Name(t.simple)
            return (name, False) if name not in ("NONE", "BINARY", "ERROR") else None
        if kind == "union_type":
            variants = [_shape_of(v) for v in t.union_type.variants]
            nones = [v for v in t.union_type.variants if v.WhichOneof("type") == "simple" and v.simple == 0]
            others = [v for v, lt in zip(variants, t.union_type.variants, strict=True) if lt not in nones]
            if nones and len(others) == 1 and others[0] is not None and others[0][0] != "TABLE":
                return (others[0][0], True)
        return None
    return _shape_of_python(t)


def _shape_of_python(t: Any) -> tuple[str, bool] | None:
    import types
    import typing

    args = typing.get_args(t)
    if (typing.get_origin(t) is typing.Union or isinstance(t, types.UnionType)) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _shape_of_python(rest[0]) if len(rest) == 1 else None
        return (inner[0], True) if inner and inner[0] != "TABLE" else None
    simple = {
        int: "INTEGER",
        float: "FLOAT",
        str: "STRING",
        bool: "BOOLEAN",
        dt.datetime: "DATETIME",
        dt.timedelta: "DURATION",
        dict: "STRUCT",
    }
    if t in simple:
        return (simple[t], False)
    if isinstance(t, type) and t.__name__ in ("StructuredDataset", "DataFrame", "Table"):
        return ("TABLE", False)
    return None


def collect(
    source: RowSource | None,
    plan: OutputPlan,
    *,
    raw_output_prefix: str,
    working_dir: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    cancelled: Any = None,
    write: Callable[[str], tuple[int, list[str]]] | None = None,
) -> tuple[dict[str, Any], Callable[[], None]]:
    """Read the result into the declared outputs.

    Args:
        source: The result's rows (``None`` only with ``write`` and a table plan).
        plan: The output shape.
        raw_output_prefix: Where a dataset goes (Flyte's raw output prefix).
        working_dir: Local scratch space (remote datasets are written here first).
        batch_rows: Rows per fetch and per Parquet row group (at most).
        cancelled: An event; when set, reading stops with :class:`taskbox.errors.Terminated`.
        write: Writes the whole result as Parquet to the given local path and returns
            ``(rows, columns)``, instead of reading ``source`` (an executor's own fast path).

    Returns:
        ``(outputs, publish)``: the output values, and a function that makes a written dataset visible
        (moves it into place or uploads it). Call ``publish`` after the transaction ends, so no upload
        happens while the database holds a transaction open.

    """
    if plan.kind == "none":
        return {}, _nothing
    if plan.kind == "row":
        if source is None:
            raise ValueError("a single-row output needs the result's rows (source)")
        return single_row(source, plan), _nothing
    folder = storage.join(raw_output_prefix, uuid.uuid4().hex)
    target = storage.join(folder, PARQUET_FILE)
    if storage.is_local(target):
        from taskbox.storage import local

        final = local.to_path(target)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        staging = os.path.join(os.path.dirname(final), f".{PARQUET_FILE}.{uuid.uuid4().hex}.tmp")
    else:
        final = None
        os.makedirs(working_dir, exist_ok=True)
        staging = os.path.join(working_dir, f"{uuid.uuid4().hex}.parquet")
    try:
        if write is not None:
            rows, columns = write(staging)
        else:
            if source is None:
                raise ValueError("a table output needs the result's rows (source) or a writer (write)")
            rows, columns = write_parquet(source, staging, batch_rows=batch_rows, cancelled=cancelled)
    except BaseException:
        _remove(staging)
        if final is not None:
            _remove_empty_dir(os.path.dirname(final))
        raise
    log.info("query returned %d rows in %d columns", rows, len(columns))

    def publish() -> None:
        try:
            if final is not None:
                os.replace(staging, final)
            else:
                storage.upload(staging, target)
        finally:
            _remove(staging)

    from taskbox.literals import StructuredDataset

    # The file is already at its final place under the raw output prefix: pass the URI on, do not re-upload.
    dataset = StructuredDataset(uri=folder, file_format="parquet", in_place=True)
    return {plan.table: dataset}, publish  # type: ignore[dict-item]


def _nothing() -> None:
    return None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _remove_empty_dir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


# ------------------------------------------------------------------------------------------ one row


def single_row(source: RowSource, plan: OutputPlan) -> dict[str, Any]:
    """Map the result's single row onto primitive outputs by column name.

    Raises:
        ResultShapeError: Zero or several rows, a missing column, or a value of the wrong type.

    """
    rows = list(source.fetch(2))
    wanted = ", ".join(sorted(plan.row))
    if not rows:
        raise ResultShapeError(f"the query returned no rows; the outputs {wanted} take the columns of exactly one row")
    if len(rows) > 1:
        raise ResultShapeError(
            f"the query returned more than one row; the outputs {wanted} take the columns of exactly one row "
            "(declare a StructuredDataset output for a table, or add LIMIT 1 / an aggregate)"
        )
    row = rows[0]
    columns = list(source.columns)
    outputs: dict[str, Any] = {}
    for name, (kind, nullable) in plan.row.items():
        index = _column_index(columns, name)
        outputs[name] = _coerce(name, row[index], kind, nullable)
    return outputs


def _column_index(columns: list[str], name: str) -> int:
    if columns.count(name) == 1:
        return columns.index(name)
    folded = [i for i, c in enumerate(columns) if c.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    if not folded and name not in columns:
        raise ResultShapeError(f"output {name!r} has no column of that name in the result; columns: {columns}")
    raise ResultShapeError(f"output {name!r} matches several columns of the result ({columns}); alias them apart")


def _coerce(name: str, value: Any, kind: str, nullable: bool) -> Any:
    if value is None:
        if nullable:
            return None
        raise ResultShapeError(f"column {name!r} is NULL, but output {name!r} ({kind}) is not optional")
    fail = ResultShapeError(
        f"column {name!r} holds {type(value).__name__} {value!r:.60}, which does not fit output {name!r} ({kind})"
    )
    if kind == "INTEGER":
        if isinstance(value, bool) or isinstance(value, int):
            return int(value)
        if isinstance(value, (float, decimal.Decimal)) and value == int(value):
            return int(value)
        raise fail
    if kind == "FLOAT":
        if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
            return float(value)
        raise fail
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise fail
    if kind == "STRING":
        if isinstance(value, str):
            return value
        if isinstance(value, (bytes, bytearray, memoryview, dict, list)):
            raise fail
        return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)
    if kind == "DATETIME":
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                raise fail from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        raise fail
    if kind == "DURATION":
        if isinstance(value, dt.timedelta):
            return value
        raise fail
    if kind == "STRUCT":
        if isinstance(value, dict):
            return value
        if isinstance(value, str):
            try:
                loaded = json.loads(value)
            except ValueError:
                raise fail from None
            if isinstance(loaded, dict):
                return loaded
        raise fail
    return value
