"""Turn a query's rows into the task's declared outputs: a Parquet dataset, one row, or nothing.

Why: flytekit reads the whole result into a pandas DataFrame and then writes it, so memory grows with
the row count and types go through pandas' object columns. Here rows are fetched in batches from the
cursor (a server-side one where the driver has it), converted column by column straight to Arrow
arrays and appended to one Parquet file, so memory is bounded by the batch, whatever the row count.

Output shapes (decided by the declared outputs, :class:`OutputPlan`):
    * one StructuredDataset (or flytekit's legacy ``schema``) output: the whole result, as Parquet at
      ``<raw output prefix>/<32 hex>/00000`` (flytekit's layout), returned as a
      :class:`taskbox.literals.StructuredDataset`;
    * only primitive outputs: the single row's columns, by name (case-insensitively if need be);
      zero or several rows is a :class:`~taskbox.sql.errors.ResultShapeError`;
    * no outputs: the statement is executed only.

Invariants:
    * Column types are fixed from the first rows (looking ahead while a column is still all NULL) and
      driver type hints; a later value that does not fit is a USER error naming the column, never a
      silently mixed column.
    * A batch holds at most ``batch_rows`` rows and, after the first batch has been measured, about
      :func:`target_batch_bytes` bytes.
    * On failure nothing is left at the output location: the Parquet file is written under a
      temporary name (or in the working directory) and moved or uploaded only when complete.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskbox import storage
from taskbox.errors import Terminated
from taskbox.sql.errors import ResultShapeError

__all__ = ["OutputPlan", "RowSource", "collect", "target_batch_bytes", "write_parquet"]

log = logging.getLogger("taskbox.sql")

DEFAULT_BATCH_ROWS = 65_536
MAX_BATCH_BYTES = 64 * 1024 * 1024
MIN_BATCH_BYTES = 4 * 1024 * 1024
PARQUET_FILE = "00000"  # flytekit's file name inside a StructuredDataset folder

# Values Arrow converts natively; anything else is converted by _converter_for.
_NATIVE = (bool, int, float, str, bytes, decimal.Decimal, dt.datetime, dt.date, dt.time, dt.timedelta, list)


class RowSource(Protocol):
    """What a cursor must offer: column names, optional Arrow type hints, and batched fetching."""

    columns: Sequence[str]
    type_hints: Sequence[Any]

    def fetch(self, n: int) -> Sequence[Sequence[Any]]:
        """Return up to ``n`` rows; an empty sequence at the end."""
        ...


@dataclass
class CursorSource:
    """A :class:`RowSource` over a DBAPI cursor or a SQLAlchemy result.

    Args:
        columns: Column names in order.
        fetchmany: ``fetchmany(n)`` of the cursor.
        type_hints: Arrow types from the driver's description (``None`` where unknown).
    """

    columns: Sequence[str]
    fetchmany: Callable[[int], Sequence[Sequence[Any]]]
    type_hints: Sequence[Any] = field(default_factory=list)

    def fetch(self, n: int) -> Sequence[Sequence[Any]]:
        """Fetch up to ``n`` rows."""
        return self.fetchmany(n)


# ------------------------------------------------------------------------------------------ outputs


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
            from flyteidl.core import types_pb2  # noqa: PLC0415

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
    import types  # noqa: PLC0415
    import typing  # noqa: PLC0415

    args = typing.get_args(t)
    if (typing.get_origin(t) is typing.Union or isinstance(t, types.UnionType)) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _shape_of_python(rest[0]) if len(rest) == 1 else None
        return (inner[0], True) if inner and inner[0] != "TABLE" else None
    simple = {int: "INTEGER", float: "FLOAT", str: "STRING", bool: "BOOLEAN", dt.datetime: "DATETIME",
              dt.timedelta: "DURATION", dict: "STRUCT"}
    if t in simple:
        return (simple[t], False)
    if isinstance(t, type) and t.__name__ in ("StructuredDataset", "DataFrame", "Table"):
        return ("TABLE", False)
    return None


def collect(
    source: RowSource,
    plan: OutputPlan,
    *,
    raw_output_prefix: str,
    working_dir: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    cancelled: Any = None,
) -> tuple[dict[str, Any], Callable[[], None]]:
    """Read the result into the declared outputs.

    Args:
        source: The result's rows.
        plan: The output shape.
        raw_output_prefix: Where a dataset goes (Flyte's raw output prefix).
        working_dir: Local scratch space (remote datasets are written here first).
        batch_rows: Rows per fetch and per Parquet row group (at most).
        cancelled: An event; when set, reading stops with :class:`taskbox.errors.Terminated`.

    Returns:
        ``(outputs, publish)``: the output values, and a function that makes a written dataset visible
        (moves it into place or uploads it). Call ``publish`` after the transaction ends, so no upload
        happens while the database holds a transaction open.
    """
    if plan.kind == "none":
        return {}, _nothing
    if plan.kind == "row":
        return single_row(source, plan), _nothing
    folder = storage.join(raw_output_prefix, uuid.uuid4().hex)
    target = storage.join(folder, PARQUET_FILE)
    if storage.is_local(target):
        from taskbox.storage import local  # noqa: PLC0415

        final = local.to_path(target)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        staging = os.path.join(os.path.dirname(final), f".{PARQUET_FILE}.{uuid.uuid4().hex}.tmp")
    else:
        final = None
        os.makedirs(working_dir, exist_ok=True)
        staging = os.path.join(working_dir, f"{uuid.uuid4().hex}.parquet")
    try:
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

    from taskbox.literals import StructuredDataset  # noqa: PLC0415

    dataset = StructuredDataset(uri=folder, file_format="parquet")
    # The file is already at its final place under the raw output prefix: the literal engine must pass the
    # URI on rather than upload a local URI again (it otherwise copies local datasets under a new folder).
    dataset._from_literal = True
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


def _coerce(name: str, value: Any, kind: str, nullable: bool) -> Any:  # noqa: C901 - one branch per type
    if value is None:
        if nullable:
            return None
        raise ResultShapeError(f"column {name!r} is NULL, but output {name!r} ({kind}) is not optional")
    fail = ResultShapeError(f"column {name!r} holds {type(value).__name__} {value!r:.60}, which does not fit output {name!r} ({kind})")
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
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                raise fail from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
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


# ------------------------------------------------------------------------------------------ Parquet


def target_batch_bytes() -> int:
    """Bytes one batch may take: 1/16 of the cgroup memory limit, between 4 and 64 MiB."""
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            text = fh.read().strip()
    except OSError:
        return MAX_BATCH_BYTES
    if not text.isdigit():
        return MAX_BATCH_BYTES
    return max(MIN_BATCH_BYTES, min(MAX_BATCH_BYTES, int(text) // 16))


def _converter_for(value: Any) -> Callable[[Any], Any] | None:
    if isinstance(value, _NATIVE):
        return None
    if isinstance(value, (bytearray, memoryview)):
        return bytes
    if isinstance(value, (dict, tuple)):
        return lambda v: json.dumps(v, default=str, ensure_ascii=False)
    return str  # UUID, IP addresses, ranges, enums...


class _Schema:
    """Column types fixed from the first rows, and per-column value converters."""

    def __init__(self, columns: Sequence[str], hints: Sequence[Any]) -> None:
        import pyarrow as pa  # noqa: PLC0415

        self.pa = pa
        self.columns = list(columns)
        self.hints = list(hints) + [None] * (len(columns) - len(hints))
        self.types: list[Any] = [None] * len(columns)
        self.converters: list[Callable[[Any], Any] | None] = [None] * len(columns)
        self.resolved = [False] * len(columns)

    def observe(self, rows: Sequence[Sequence[Any]]) -> None:
        """Infer the type of every column that had only NULLs so far."""
        pa = self.pa
        for i in range(len(self.columns)):
            if self.resolved[i]:
                continue
            values = [r[i] for r in rows if r[i] is not None]
            if not values:
                continue
            conv = _converter_for(values[0])
            if conv is not None:
                values = [conv(v) for v in values]
            hint = self.hints[i]
            try:
                inferred = pa.array(values).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as exc:
                raise self._mixed(i, exc) from None
            if hint is not None and (pa.types.is_decimal(hint) or not pa.types.is_decimal(inferred)):
                inferred = hint if _compatible(pa, hint, inferred) else inferred
            self.types[i] = inferred
            self.converters[i] = conv
            self.resolved[i] = True

    def finish(self, more_rows: bool) -> Any:
        """Fix the schema; columns still unknown take the driver's hint, else null (end) or string."""
        pa = self.pa
        for i in range(len(self.columns)):
            if not self.resolved[i]:
                self.types[i] = self.hints[i] or (pa.string() if more_rows else pa.null())
                self.resolved[i] = True
        return pa.schema([pa.field(name, t) for name, t in zip(self.columns, self.types, strict=True)])

    def batch(self, rows: Sequence[Sequence[Any]], schema: Any) -> Any:
        """Convert rows to a ``RecordBatch`` of ``schema``."""
        pa = self.pa
        if rows:
            columns = list(zip(*rows, strict=True))
        else:
            columns = [() for _ in self.columns]
        arrays = []
        for i, values in enumerate(columns):
            conv = self.converters[i]
            if conv is not None:
                values = [None if v is None else conv(v) for v in values]
            try:
                arrays.append(pa.array(values, type=self.types[i]))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as exc:
                raise self._mixed(i, exc) from None
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _mixed(self, i: int, exc: BaseException) -> ResultShapeError:
        fixed = f" (the column was typed {self.types[i]} from its first values)" if self.types[i] is not None else ""
        return ResultShapeError(
            f"column {self.columns[i]!r} cannot be stored in one Parquet column{fixed}: {exc}. Its values have "
            "different types (SQLite columns may mix them); CAST the column to one type in the query"
        )


def _compatible(pa: Any, hint: Any, inferred: Any) -> bool:
    if hint.equals(inferred):
        return True
    if pa.types.is_decimal(hint) and pa.types.is_decimal(inferred):
        return True
    same_family = [pa.types.is_integer, pa.types.is_floating, pa.types.is_timestamp, pa.types.is_string]
    return any(f(hint) and f(inferred) for f in same_family)


def write_parquet(
    source: RowSource,
    path: str,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    cancelled: Any = None,
    compression: str = "snappy",
) -> tuple[int, list[str]]:
    """Stream all rows of ``source`` into one Parquet file at ``path``.

    Args:
        source: The rows.
        path: A local file path (overwritten).
        batch_rows: Upper bound on rows per fetch / row group.
        cancelled: An event that stops the copy with ``Terminated``.
        compression: Parquet codec (snappy, as pandas' default).

    Returns:
        ``(row count, column names)``.

    Raises:
        ResultShapeError: Duplicate column names, or values that do not fit their column's type.
    """
    import pyarrow.parquet as pq  # noqa: PLC0415

    columns = [str(c) for c in source.columns]
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise ResultShapeError(f"the result has several columns named {duplicates}; give them distinct aliases")
    schema_builder = _Schema(columns, list(source.type_hints or []))
    batch_rows = max(1, int(batch_rows))

    def fetch(n: int) -> list[Sequence[Any]]:
        if cancelled is not None and cancelled.is_set():
            raise Terminated("the query was stopped: the task is being terminated")
        return list(source.fetch(n))

    # Look ahead (at most 4 batches) while a column has only NULLs, so its type comes from real values.
    pending: list[list[Sequence[Any]]] = []
    ended = False
    while True:
        rows = fetch(batch_rows)
        if not rows:
            ended = True
            break
        pending.append(rows)
        schema_builder.observe(rows)
        if all(schema_builder.resolved) or len(pending) >= 4:
            break
    schema = schema_builder.finish(more_rows=not ended)
    total = 0
    limit = target_batch_bytes()
    with pq.ParquetWriter(path, schema, compression=compression) as writer:
        for rows in pending:
            batch = schema_builder.batch(rows, schema)
            writer.write_batch(batch)
            total += len(rows)
            if batch.num_rows:
                per_row = max(1, batch.nbytes // batch.num_rows)
                batch_rows = max(1, min(batch_rows, limit // per_row))
        pending.clear()
        while not ended:
            rows = fetch(batch_rows)
            if not rows:
                break
            writer.write_batch(schema_builder.batch(rows, schema))
            total += len(rows)
    return total, columns
