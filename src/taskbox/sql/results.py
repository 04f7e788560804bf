"""Stream a cursor's rows into one Parquet file, column by column, without pandas.

Why: flytekit reads the whole result into a pandas DataFrame and then writes it, so memory grows with
the row count and types go through pandas' object columns. Here rows are fetched in batches from the
cursor (a server-side one where the driver has it), converted column by column straight to Arrow
arrays and appended to one Parquet file, so memory is bounded by the batch, whatever the row count.
:mod:`taskbox.sql.outputs` decides where the file goes and what the task's outputs are.

Invariants:
    * Column types are fixed from the first rows (looking ahead while a column is still all NULL) and
      driver type hints; a later value that does not fit is a USER error naming the column, never a
      silently mixed column.
    * A batch holds at most ``batch_rows`` rows and, after the first batch has been measured, about
      :func:`target_batch_bytes` bytes; at most two more batches wait in the prefetch queue.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskbox.errors import Terminated
from taskbox.sql.errors import ResultShapeError

__all__ = ["CursorSource", "RowSource", "target_batch_bytes", "write_parquet"]

log = logging.getLogger("taskbox.sql")

DEFAULT_BATCH_ROWS = 65_536
MAX_BATCH_BYTES = 16 * 1024 * 1024
MIN_BATCH_BYTES = 4 * 1024 * 1024
FIRST_BATCH_ROWS = 4096
PARQUET_FILE = "00000"  # flytekit's file name inside a StructuredDataset folder

# Values Arrow converts natively; anything else is converted by _converter_for.
_NATIVE = (bool, int, float, str, bytes, decimal.Decimal, dt.datetime, dt.date, dt.time, dt.timedelta, list)


class RowSource(Protocol):
    """What a cursor must offer: column names, optional Arrow type hints, and batched fetching.

    ``casts`` (optional, per column) says how a driver that hands out text for some types wants it
    converted: an Arrow type (the strings are cast in bulk, C speed) or a callable applied per value.
    """

    columns: Sequence[str]
    type_hints: Sequence[Any]
    casts: Sequence[Any]

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
    casts: Sequence[Any] = field(default_factory=list)

    def fetch(self, n: int) -> Sequence[Sequence[Any]]:
        """Fetch up to ``n`` rows."""
        return self.fetchmany(n)


# ------------------------------------------------------------------------------------------ Parquet


def target_batch_bytes() -> int:
    """Bytes one batch may take: 1/16 of the cgroup memory limit, between 4 and 16 MiB.

    Up to four batches are alive at once (two queued, one fetching, one converting), each several times
    its Arrow size as Python rows, so 16 MiB keeps a wide-row result near 150 MB of peak RSS.
    """
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

    def __init__(self, columns: Sequence[str], hints: Sequence[Any], casts: Sequence[Any] = ()) -> None:
        import pyarrow as pa

        self.pa = pa
        self.columns = list(columns)
        self.hints = list(hints) + [None] * (len(columns) - len(hints))
        self.types: list[Any] = [None] * len(columns)
        self.converters: list[Callable[[Any], Any] | None] = [None] * len(columns)
        self.resolved = [False] * len(columns)
        self.bulk: list[Any] = [None] * len(columns)  # Arrow type to cast a string column to
        self._struct: Any = None  # the row type of _batch_from_tuples, built once the types are fixed
        self._one_pass = True  # until Arrow refuses a batch as a whole (see batch)
        for i, cast in enumerate(list(casts)[: len(columns)]):
            if isinstance(cast, pa.DataType):
                self.bulk[i] = self.types[i] = cast
                self.resolved[i] = True
            elif cast is not None:
                self.converters[i] = cast

    def observe(self, rows: Sequence[Sequence[Any]]) -> None:
        """Infer the type of every column that had only NULLs so far."""
        pa = self.pa
        for i in range(len(self.columns)):
            if self.resolved[i]:
                continue
            values = [r[i] for r in rows if r[i] is not None]
            if not values:
                continue
            conv = self.converters[i] or _converter_for(values[0])
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
        if self._one_pass and rows and type(rows[0]) is tuple and not any(self.converters):
            fast = self._batch_from_tuples(rows, schema)
            if fast is not None:
                return fast
            self._one_pass = False  # refused once: later batches go column by column, not converted twice
        return self._batch_by_column(rows, schema)

    def _batch_from_tuples(self, rows: Sequence[Sequence[Any]], schema: Any) -> Any:
        """Convert tuples in one pass (Arrow transposes them in C, ~3x faster than by column).

        Returns:
            The batch, or ``None`` when Arrow refused a value: the column-by-column path then names
            the column in its error (or converts what the struct conversion did not).
        """
        pa = self.pa
        if self._struct is None:
            self._struct = pa.struct(
                [pa.field(f"c{i}", pa.string() if bulk is not None else t)
                 for i, (t, bulk) in enumerate(zip(self.types, self.bulk, strict=True))]
            )  # fmt: skip
        try:
            arrays = pa.array(rows, type=self._struct).flatten()
            for i, bulk in enumerate(self.bulk):
                if bulk is not None:
                    arrays[i] = arrays[i].cast(bulk)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            return None
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _batch_by_column(self, rows: Sequence[Sequence[Any]], schema: Any) -> Any:
        pa = self.pa
        columns: list[Sequence[Any]]
        if rows:
            columns = list(zip(*rows))  # noqa: B905 - rows of one cursor have one length
        else:
            columns = [() for _ in self.columns]
        arrays = []
        for i, values in enumerate(columns):
            conv = self.converters[i]
            if conv is not None:
                values = [None if v is None else conv(v) for v in values]
            try:
                if self.bulk[i] is not None:
                    arrays.append(pa.array(values, type=pa.string()).cast(self.bulk[i]))
                    continue
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


def _compute_call() -> Any:
    """Arrow's ``call_function``, without ``pyarrow.compute``'s ~70 ms of generated wrappers and docstrings.

    ``pyarrow.compute`` re-exports it from its compiled core ``pyarrow._compute``; the public module is the
    fallback should that name move.
    """
    try:
        from pyarrow._compute import call_function
    except ImportError:  # pragma: no cover - a pyarrow that moved it
        from pyarrow.compute import call_function
    return call_function


def dictionary_columns(batch: Any) -> list[str]:
    """Columns worth Parquet's dictionary encoding, judged from a first batch.

    Parquet writers dictionary-encode every column by default and fall back to plain encoding once a
    column chunk's dictionary outgrows its page; for a column of mostly distinct values (ids, timestamps,
    free text) that is wasted hashing, about 60% of the writer's time on a typical result. A column
    whose first rows repeat values (at most half distinct) keeps the dictionary, and the smaller file.
    """
    call_function = _compute_call()
    rows = max(1, batch.num_rows)
    chosen = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if column.null_count == len(column) or call_function("count_distinct", [column]).as_py() <= rows // 2:
            chosen.append(name)
    return chosen


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
    import pyarrow.parquet as pq

    columns = [str(c) for c in source.columns]
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise ResultShapeError(f"the result has several columns named {duplicates}; give them distinct aliases")
    schema_builder = _Schema(columns, list(source.type_hints or []), list(getattr(source, "casts", None) or []))
    batch_rows = max(1, int(batch_rows))

    def fetch(n: int) -> list[Sequence[Any]]:
        if cancelled is not None and cancelled.is_set():
            raise Terminated("the query was stopped: the task is being terminated")
        return list(source.fetch(n))

    # Look ahead (at most 4 * batch_rows rows) while a column has only NULLs, so its type comes from real
    # values.
    pending: list[list[Sequence[Any]]] = []
    ended = False
    while True:
        # The first batches are small: a row's size is unknown until one batch has been measured.
        rows = fetch(min(batch_rows, FIRST_BATCH_ROWS))
        if not rows:
            ended = True
            break
        pending.append(rows)
        schema_builder.observe(rows)
        if all(schema_builder.resolved) or sum(map(len, pending)) >= 4 * batch_rows:
            break
    schema = schema_builder.finish(more_rows=not ended)
    total = 0
    limit = target_batch_bytes()
    size = [batch_rows]
    batches = [schema_builder.batch(rows, schema) for rows in pending[:1]]
    dictionary = dictionary_columns(batches[0]) if batches else True
    with pq.ParquetWriter(path, schema, compression=compression, use_dictionary=dictionary) as writer:
        for i, rows in enumerate(pending):
            batch = batches[0] if i == 0 else schema_builder.batch(rows, schema)
            writer.write_batch(batch)
            total += len(rows)
            if batch.num_rows:
                per_row = max(1, batch.nbytes // batch.num_rows)
                size[0] = max(1, min(size[0], limit // per_row))
        pending.clear()
        if not ended:
            with _Prefetcher(lambda: fetch(size[0])) as batches:
                for rows in batches:
                    writer.write_batch(schema_builder.batch(rows, schema))
                    total += len(rows)
    return total, columns


class _Prefetcher:
    """Fetches the next batch in a thread while the caller converts and writes the current one.

    Network waits, SQLite's stepping and Parquet compression release the GIL, so fetching and writing
    overlap. At most two batches wait in the queue (memory stays bounded). An exception in the fetching
    thread is re-raised in the caller; leaving the ``with`` block stops the thread and waits for it, so
    the cursor is never used after the caller moves on.
    """

    _END = object()

    def __init__(self, fetch: Callable[[], Sequence[Any]]) -> None:
        import queue
        import threading

        self._fetch = fetch
        self._queue: Any = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskbox-sql-fetch", daemon=True)

    def _put(self, item: Any) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                rows = self._fetch()
                if not rows:
                    break
                if not self._put(rows):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(exc)
            return
        self._put(self._END)

    def __enter__(self) -> Any:
        self._thread.start()
        return self._iterate()

    def _iterate(self) -> Any:
        import queue

        while True:
            try:
                item = self._queue.get(timeout=0.5)  # a timeout keeps the main thread responsive to SIGTERM
            except queue.Empty:
                continue
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()
