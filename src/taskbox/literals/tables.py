"""Tables as StructuredDataset literals: StructuredDataset handles, pyarrow tables, pandas frames.

Why: flytekit writes a dataframe as parquet to ``<raw>/<random32hex>/00000`` and emits
``structured_dataset{uri=<raw>/<random32hex>, metadata.structured_dataset_type{columns, format}}``
(F:flytekit/types/structured/basic_dfs.py, structured_dataset.py). Its declared type for any dataframe
is ``structured_dataset_type{}`` unless ``Annotated`` adds columns or a format. Old FlyteSchema producers
send ``Scalar.schema`` instead, which is read as a parquet dataset.

Invariants:
    * pyarrow (and pandas) are imported only when a table is actually written or read; dataframe types
      are recognised by qualified name, so the check itself imports nothing.
    * Only parquet is written. A StructuredDataset that already has a URI is passed through (a local
      one is uploaded to ``<raw>/<random32hex>/<basename>`` first, as flytekit's ``put_raw_data``,
      unless it already lies under a local raw-output prefix or came from a literal).
    * The literal's format is the declared one if non-empty, else the dataset's own ``file_format``;
      its columns are the declared ones if any, else the dataset's own.
    * Union tag: ``StructuredDataset Transformer``.
"""

from __future__ import annotations

import collections
import os
import typing
from collections.abc import Mapping
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from taskbox import storage
from taskbox.literals.context import local_path
from taskbox.literals.engine import Mismatch, TypeEngine, TypeTransformer, strip_annotated
from taskbox.literals.primitives import msgpack_value, scalar_of
from taskbox.literals.structs import struct_to_plain
from taskbox.literals.typeinfo import schema_column_simple_type
from taskbox.literals.types import StructuredDataset

__all__ = ["DATAFRAMES", "REGISTERED", "is_dataframe", "write_parquet"]

PARQUET = "parquet"
PART_NAME = f"{0:05}"  # flytekit's single parquet part, "00000"
_ARROW_TABLES = frozenset({"pyarrow.lib.Table", "pyarrow.Table"})
_PANDAS_FRAMES = frozenset({"pandas.DataFrame", "pandas.core.frame.DataFrame"})
_Columns = list[types_pb2.StructuredDatasetType.DatasetColumn]


def _qualname(t: Any) -> str:
    return f"{getattr(t, '__module__', '')}.{getattr(t, '__qualname__', '')}"


def is_dataframe(value: Any) -> bool:
    """Tell whether ``value`` is a ``pyarrow.Table`` or ``pandas.DataFrame`` (checked without importing them)."""
    return _qualname(type(value)) in _ARROW_TABLES | _PANDAS_FRAMES


def _annotations(t: Any) -> tuple[Any, Mapping[str, Any] | None, str]:
    """``Annotated[X, {"col": type}, "format"]`` -> ``(X, columns, format)`` (flytekit's extract_cols_and_format)."""
    columns: Mapping[str, Any] | None = None
    fmt = ""
    if typing.get_origin(t) is typing.Annotated:
        for meta in t.__metadata__:
            if isinstance(meta, str):
                fmt = meta
            elif isinstance(meta, Mapping):
                columns = collections.OrderedDict(meta)
            elif hasattr(meta, "__annotations__") and isinstance(meta, type):
                columns = collections.OrderedDict(meta.__annotations__)
    return strip_annotated(t), columns, fmt


def _columns(columns: Mapping[str, Any] | None) -> _Columns:
    out: _Columns = []
    for name, col_type in (columns or {}).items():
        lt = col_type if isinstance(col_type, types_pb2.LiteralType) else TypeEngine.to_literal_type(col_type)
        out.append(types_pb2.StructuredDatasetType.DatasetColumn(name=name, literal_type=lt))
    return out


def write_parquet(ctx: Any, frame: Any) -> str:
    """Write a pyarrow table or pandas frame to ``<raw>/<random32hex>/00000``; return the folder URI."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    options: dict[str, Any] = {}
    if _qualname(type(frame)) in _PANDAS_FRAMES:
        frame = pa.Table.from_pandas(frame)
        options = {"coerce_timestamps": "us", "allow_truncated_timestamps": False}  # flytekit's pandas writer
    if not isinstance(frame, pa.Table):
        raise Mismatch()
    uri = ctx.random_remote_path()
    if storage.is_local(uri):
        folder = local_path(uri)
        os.makedirs(folder, exist_ok=True)
        pq.write_table(frame, os.path.join(folder, PART_NAME), **options)
        return uri
    staging = ctx.random_local_path(PART_NAME)
    os.makedirs(os.path.dirname(staging), exist_ok=True)
    pq.write_table(frame, staging, **options)
    storage.upload(staging, storage.join(uri, PART_NAME))
    return uri


class StructuredDatasetTransformer(TypeTransformer[Any]):
    """StructuredDataset handles and dataframes ("StructuredDataset Transformer")."""

    def handles(self, python_type: Any) -> bool:
        return _qualname(strip_annotated(python_type)) in _ARROW_TABLES | _PANDAS_FRAMES

    def get_literal_type(self, t: Any) -> types_pb2.LiteralType:
        _, columns, fmt = _annotations(t)
        sdt = types_pb2.StructuredDatasetType(columns=_columns(columns), format=fmt)
        return types_pb2.LiteralType(structured_dataset_type=sdt)

    def to_literal(
        self, ctx: Any, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        if expected.WhichOneof("type") == "structured_dataset_type":
            declared = expected.structured_dataset_type
        else:
            declared = self.get_literal_type(python_type).structured_dataset_type
        columns: _Columns = list(declared.columns)
        if isinstance(value, StructuredDataset) and value.dataframe is None:
            assert value.uri is not None
            uri = value.uri
            if storage.is_local(uri) and not value.in_place and not ctx.holds(local_path(uri)):
                path = local_path(uri)
                uri = storage.upload(
                    path, ctx.random_remote_path(os.path.basename(path.rstrip("/"))), recursive=os.path.isdir(path)
                )
            fmt = declared.format or value.file_format
            columns = columns or _columns(value.columns)
        else:
            frame = value.dataframe if isinstance(value, StructuredDataset) else value
            if not is_dataframe(frame):
                raise Mismatch()
            if declared.format not in ("", PARQUET):
                raise ValueError(f"only parquet can be written, the declared format is {declared.format!r}")
            uri = write_parquet(ctx, frame)
            fmt = PARQUET
        literal = literals_pb2.Literal()
        sd = literal.scalar.structured_dataset
        sd.uri = uri
        sdt = sd.metadata.structured_dataset_type
        sdt.CopyFrom(declared)
        del sdt.columns[:]
        sdt.columns.extend(columns)
        sdt.format = fmt
        return literal

    def to_python_value(self, ctx: Any, literal: literals_pb2.Literal, expected_python_type: Any) -> Any:
        uri, fmt, incoming = self._read_literal(literal)
        base, declared_columns, _ = _annotations(expected_python_type)
        columns = _columns(declared_columns) if declared_columns else incoming
        dataset = StructuredDataset(uri=uri, file_format=fmt, columns={c.name: c.literal_type for c in columns} or None)
        dataset._ctx = ctx
        dataset.in_place = True
        if isinstance(base, type) and issubclass(base, StructuredDataset):
            return dataset
        names = [c.name for c in columns] if declared_columns else None
        table = dataset.to_arrow(names)
        return table.to_pandas() if _qualname(base) in _PANDAS_FRAMES else table

    @staticmethod
    def _read_literal(literal: literals_pb2.Literal) -> tuple[str, str, _Columns]:
        scalar = scalar_of(literal)
        kind = scalar.WhichOneof("value")
        if kind == "structured_dataset":
            sdt = scalar.structured_dataset.metadata.structured_dataset_type
            return scalar.structured_dataset.uri, sdt.format, list(sdt.columns)
        if kind == "schema":
            columns = [
                types_pb2.StructuredDatasetType.DatasetColumn(
                    name=c.name, literal_type=types_pb2.LiteralType(simple=schema_column_simple_type(c.type))
                )
                for c in scalar.schema.type.columns
            ]
            return scalar.schema.uri, PARQUET, columns
        if kind in ("binary", "generic"):
            data = msgpack_value(scalar) if kind == "binary" else struct_to_plain(scalar.generic)
            if not isinstance(data, dict) or not isinstance(data.get("uri"), str):
                raise Mismatch("expected {'uri': ..., 'file_format': ...}")
            return data["uri"], data.get("file_format") or "", []
        raise Mismatch()


DATAFRAMES = StructuredDatasetTransformer("StructuredDataset Transformer", StructuredDataset)

REGISTERED: list[tuple[TypeTransformer[Any], list[Any] | None]] = [(DATAFRAMES, None)]
