"""How a StructuredDataset's table is stored: parquet and CSV, laid out and read as flytekit does.

Why: a StructuredDataset literal declares its storage format (``structured_dataset_type.format``) and
flytekit picks its decoder by that string. Its default handlers (F:flytekit/types/structured/basic_dfs.py)
cover two formats: ``parquet`` (pandas and pyarrow, the default for both) and ``csv`` (pandas only).
taskbox reads and writes both, for pyarrow tables and pandas frames alike, so a table flytekit wrote as
``Annotated[StructuredDataset, "csv"]`` opens in a taskbox task and a CSV taskbox writes opens in flytekit.

Invariants:
    * Formats: ``parquet`` (``""``, flytekit's generic format, means parquet too: its default for every
      dataframe type) and ``csv``, matched case-insensitively. Any other format is a
      :class:`~taskbox.errors.UnsupportedType` naming it and the supported ones, raised before any data
      moves.
    * Layout written (flytekit's): a fresh folder ``<raw>/<random32hex>`` holding one file, ``00000`` for
      parquet (pandas frames with microsecond timestamps, as ``DataFrame.to_parquet`` there) and ``.csv``
      for CSV (UTF-8, ``,``, LF line ends, a header row, no index, nulls as empty fields, quotes where needed).
      The literal's URI is the folder.
    * Layout read: parquet from a file or a folder (pyarrow's rules: names starting with ``.`` or ``_``
      are skipped); CSV from a file, or from a folder's ``.csv`` (flytekit's), else from its other files
      in name order (a Spark-style ``part-*`` folder), concatenated.
    * CSV keeps no types. Declared columns (the literal's or the reader's) give them back: ``STRING``
      stays text (``"007"`` is not 7), ``BOOLEAN`` and ``FLOAT`` are parsed as such, ``INTEGER`` and
      ``DATETIME`` are inferred then cast (pandas writes an integer column with nulls as ``1.0``),
      anything else is inferred, as are undeclared columns. A value that does not fit its declared
      type is an :class:`~taskbox.errors.InputError`. Empty and blank fields are nulls, as in pandas.
    * A header-only or empty CSV file reads as a table with no rows (flytekit's own reader rejects the
      lone line end pandas writes for a frame without columns; taskbox writes the same bytes).
    * pyarrow is imported only when a table is read or written; pandas is never imported (a frame is
      converted by pyarrow).
"""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Mapping
from typing import Any

from flyteidl.core import types_pb2

from taskbox import storage
from taskbox.errors import InputError, UnsupportedType
from taskbox.literals.context import local_path

__all__ = [
    "CSV",
    "FORMATS",
    "PARQUET",
    "is_pandas",
    "part_name",
    "read_table",
    "storage_format",
    "supported",
    "write_table",
]

PARQUET = "parquet"
CSV = "csv"
FORMATS = (PARQUET, CSV)
"""The formats flytekit's default StructuredDataset handlers read and write; taskbox handles the same."""

_PART_NAMES = {PARQUET: f"{0:05}", CSV: ".csv"}  # flytekit's file inside the dataset folder
_PANDAS_FRAMES = frozenset({"pandas.DataFrame", "pandas.core.frame.DataFrame"})
_SIMPLE_TYPES: dict[Any, int] = {
    int: types_pb2.INTEGER,
    float: types_pb2.FLOAT,
    str: types_pb2.STRING,
    bool: types_pb2.BOOLEAN,
    datetime.datetime: types_pb2.DATETIME,
}


def supported(fmt: str) -> bool:
    """Tell whether taskbox can read and write tables declared in format ``fmt``."""
    return (fmt or PARQUET).lower() in FORMATS


def storage_format(fmt: str, action: str = "read or write") -> str:
    """Return the storage format ``fmt`` stands for: ``"parquet"`` or ``"csv"`` (``""`` is parquet).

    Args:
        fmt: A StructuredDataset format, as declared by a literal or a type.
        action: What was attempted, for the error message ("read", "write").

    Raises:
        UnsupportedType: ``fmt`` is neither parquet nor csv.

    """
    if supported(fmt):
        return (fmt or PARQUET).lower()
    names = " and ".join(repr(f) for f in FORMATS)
    raise UnsupportedType(
        f"cannot {action} a StructuredDataset in the {fmt!r} format: taskbox reads and writes {names} "
        "(flytekit's default formats); declare one of them"
    )


def part_name(fmt: str) -> str:
    """The file flytekit writes inside a dataset folder for ``fmt``: ``00000`` or ``.csv``."""
    return _PART_NAMES[storage_format(fmt)]


def _qualname(t: Any) -> str:
    return f"{getattr(t, '__module__', '')}.{getattr(t, '__qualname__', '')}"


def is_pandas(frame: Any) -> bool:
    """Tell whether ``frame`` is a ``pandas.DataFrame`` (checked without importing pandas)."""
    return _qualname(type(frame)) in _PANDAS_FRAMES


# ---------------------------------------------------------------- writing


def write_table(ctx: Any, frame: Any, fmt: str) -> str:
    """Write a pyarrow table or pandas frame as flytekit does; return the dataset folder's URI.

    Args:
        ctx: The conversion context (its raw-output prefix and working directory).
        frame: A ``pyarrow.Table`` or ``pandas.DataFrame``.
        fmt: The declared format (``""``, ``"parquet"`` or ``"csv"``).

    Returns:
        ``<raw>/<random32hex>``, holding ``00000`` (parquet) or ``.csv``.

    Raises:
        UnsupportedType: ``fmt`` is not a supported format.
        TypeError: ``frame`` is not a table.
        ValueError: The table cannot be stored in that format (a nested column in a CSV, say).

    """
    import pyarrow as pa

    fmt = storage_format(fmt, "write")
    pandas = is_pandas(frame)
    if pandas:
        frame = pa.Table.from_pandas(frame, preserve_index=None if fmt == PARQUET else False)
    if not isinstance(frame, pa.Table):
        raise TypeError(f"expected a pyarrow.Table or pandas.DataFrame, got {type(frame).__name__}")
    part = _PART_NAMES[fmt]
    uri = ctx.random_remote_path()
    if storage.is_local(uri):
        target = os.path.join(local_path(uri), part)
    else:
        target = ctx.random_local_path(part)
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    try:
        if fmt == CSV:
            _write_csv(frame, target)
        else:
            import pyarrow.parquet as pq

            # flytekit's pandas writer: DataFrame.to_parquet(coerce_timestamps="us", allow_truncated_timestamps=False)
            options = {"coerce_timestamps": "us", "allow_truncated_timestamps": False} if pandas else {}
            pq.write_table(frame, target, **options)
        if not storage.is_local(uri):
            storage.upload(target, storage.join(uri, part))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no half-written dataset is left behind
        raise
    finally:
        if not storage.is_local(uri):
            shutil.rmtree(folder, ignore_errors=True)  # the local staging copy
    return uri


def _write_csv(table: Any, path: str) -> None:
    """Write ``table`` as pandas' ``to_csv(index=False)`` would, in bytes pandas and pyarrow read back."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if table.num_columns == 0:
        with open(path, "wb") as out:
            out.write(b"\n")  # pandas' bytes for a frame without columns
        return
    quoting, written = "needed", table
    try:
        if table.num_columns == 1 and table.column(0).null_count:
            # A lone null would be a blank line, which readers skip (the row would be lost): pandas writes '""'.
            import pyarrow.compute as pc

            column = pc.fill_null(table.column(0).cast(pa.string()), "")
            written, quoting = pa.table({table.column_names[0]: column}), "all_valid"
        pacsv.write_csv(written, path, write_options=pacsv.WriteOptions(quoting_style=quoting))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        kinds = ", ".join(f"{f.name}: {f.type}" for f in table.schema)
        raise ValueError(f"cannot write the table ({kinds}) as CSV: {exc}") from None


# ---------------------------------------------------------------- reading


def read_table(
    path: str,
    fmt: str,
    columns: Mapping[str, Any] | None = None,
    select: list[str] | None = None,
    where: str | None = None,
) -> Any:
    """Read a stored dataset into a ``pyarrow.Table``.

    Args:
        path: A local file or folder (a remote dataset is downloaded first by the caller).
        fmt: The literal's format (``""``, ``"parquet"`` or ``"csv"``).
        columns: Declared columns: name -> ``LiteralType`` or Python type; CSV columns get these types.
        select: Columns to read, in this order; ``None`` reads every column.
        where: The dataset's URI, for error messages (``path`` if omitted).

    Raises:
        UnsupportedType: ``fmt`` is not a supported format.
        InputError: The data cannot be read as ``fmt``, a selected column is missing, or a CSV value does
            not fit its declared column type.

    """
    import pyarrow as pa

    fmt = storage_format(fmt, "read")
    where = where or path
    try:
        if fmt == CSV:
            return _read_csv(path, columns or {}, select, where)
        import pyarrow.parquet as pq

        if os.path.isdir(path) and not _visible_files(path):
            raise InputError(f"the parquet dataset {where} holds no parquet file (flytekit writes '00000' in it)")
        return pq.read_table(path, columns=select)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError) and not os.path.exists(path):
            raise InputError(f"the {fmt} dataset {where} does not exist") from exc
        raise InputError(f"cannot read the {fmt} dataset {where}: {exc}") from exc


def _csv_files(path: str, where: str) -> list[str]:
    if not os.path.isdir(path):
        return [path]
    flytekits = os.path.join(path, _PART_NAMES[CSV])
    if os.path.isfile(flytekits):
        return [flytekits]
    found = _visible_files(path)
    if not found:
        raise InputError(f"the csv dataset {where} is an empty folder (flytekit writes {_PART_NAMES[CSV]!r} in it)")
    return found


def _visible_files(path: str) -> list[str]:
    """The files under a folder, in name order, skipping names that start with ``.`` or ``_`` (pyarrow's rule)."""
    found = []
    for base, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        found += [os.path.join(base, n) for n in sorted(names) if not n.startswith((".", "_"))]
    return found


def _arrow_type(spec: Any) -> Any:
    """The pyarrow type a declared column (``LiteralType`` or Python type) reads as; ``None``: infer it."""
    import pyarrow as pa

    if isinstance(spec, types_pb2.LiteralType):
        simple = spec.simple if spec.WhichOneof("type") == "simple" else None
    else:
        simple = _SIMPLE_TYPES.get(spec)
    return {
        types_pb2.INTEGER: pa.int64(),
        types_pb2.FLOAT: pa.float64(),
        types_pb2.STRING: pa.string(),
        types_pb2.BOOLEAN: pa.bool_(),
        types_pb2.DATETIME: pa.timestamp("us"),
    }.get(simple)


def _read_csv(path: str, columns: Mapping[str, Any], select: list[str] | None, where: str) -> Any:
    import pyarrow as pa

    wanted = {name: _arrow_type(spec) for name, spec in columns.items()}
    typed = {name: t for name, t in wanted.items() if t is not None}
    tables = [_read_csv_file(f, typed, select, where) for f in _csv_files(path, where)]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    for index, name in enumerate(table.column_names):
        target = typed.get(name)
        column = table.column(index)
        if target is None:
            continue
        if pa.types.is_timestamp(target) and pa.types.is_timestamp(column.type):
            target = pa.timestamp("us", tz=column.type.tz)  # naive stays naive, UTC stays UTC
        if column.type != target:
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InputError(
                    f"column {name!r} of the csv dataset {where} is declared {target} "
                    f"but holds {column.type} values that do not convert: {exc}"
                ) from None
            table = table.set_column(index, name, column)
    return table


def _read_csv_file(path: str, typed: Mapping[str, Any], select: list[str] | None, where: str) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if _blank(path):
        names = select if select is not None else list(typed)
        return pa.table({n: pa.array([], typed.get(n) or pa.null()) for n in names})
    # Parsed directly: text stays text, and booleans/floats have one spelling each. Integers and
    # timestamps are inferred first and cast afterwards ("1.0" is an integer column with nulls in pandas).
    direct = {n: t for n, t in typed.items() if t in (pa.string(), pa.bool_(), pa.float64())}
    convert = pacsv.ConvertOptions(
        column_types=direct,
        strings_can_be_null=True,
        include_columns=select or [],
    )
    parse = pacsv.ParseOptions(newlines_in_values=True)
    try:
        return pacsv.read_csv(path, parse_options=parse, convert_options=convert)
    except KeyError as exc:  # pyarrow.lib.ArrowKeyError: a selected column is not in the header
        detail = exc.args[0] if exc.args else exc
        raise InputError(f"the csv dataset {where} lacks a selected column: {detail}") from None


def _blank(path: str) -> bool:
    """True for a file holding only whitespace (pandas writes a lone line end for a frame without columns)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    return not head.strip() and len(head) < 4096
