"""Tables as StructuredDataset literals: StructuredDataset handles, pyarrow tables, pandas frames.

Why: flytekit writes a dataframe to a folder ``<raw>/<random32hex>`` (``00000`` for parquet, ``.csv`` for
CSV) and emits ``structured_dataset{uri=<raw>/<random32hex>, metadata.structured_dataset_type{columns,
format}}`` (F:flytekit/types/structured/basic_dfs.py, structured_dataset.py). Its declared type for any
dataframe is ``structured_dataset_type{}`` unless ``Annotated`` adds columns or a format. Old FlyteSchema
producers send ``Scalar.schema`` instead, which is read as a parquet dataset. Formats, layouts and the
CSV typing rules are in :mod:`taskbox.literals.tableformats`.

Invariants:
    * pyarrow (and pandas) are imported only when a table is actually written or read; dataframe types
      are recognised by qualified name, so the check itself imports nothing.
    * A dataframe is written in the declared format (``""``: parquet); the literal's format is the one
      written. flytekit writes a bare ``Annotated[pd.DataFrame, "csv"]`` output as parquet (its encoder
      for bare frames ignores the annotation) and a pyarrow table only as parquet; taskbox writes what
      the type declares, which flytekit reads either way (it decodes by the literal's format).
    * A StructuredDataset that already has a URI is passed through (a local one is uploaded to
      ``<raw>/<random32hex>/<basename>`` first, as flytekit's ``put_raw_data``, unless it already lies
      under a local raw-output prefix or came from a literal; a single local CSV file goes to
      ``<raw>/<random32hex>/.csv``, where flytekit's reader looks).
    * The literal's format is the declared one if non-empty, else the dataset's own ``file_format``. One
      exception keeps the literal true: data whose format is known (read from a literal, or staged by
      an executor: ``in_place``) and differs from the declared one is converted to the declared format
      when both are supported, and otherwise keeps its own format (as flytekit passes a literal through).
    * Reading goes by the literal's format, never the reader's annotation (flytekit picks its decoder so).
    * The literal's columns are the declared ones if any, else the dataset's own.
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
from taskbox.literals import tableformats
from taskbox.literals.context import local_path
from taskbox.literals.engine import Mismatch, TypeEngine, TypeTransformer, strip_annotated
from taskbox.literals.primitives import msgpack_value, scalar_of
from taskbox.literals.structs import struct_to_plain
from taskbox.literals.tableformats import CSV, PARQUET, write_table
from taskbox.literals.typeinfo import schema_column_simple_type
from taskbox.literals.types import StructuredDataset

__all__ = ["DATAFRAMES", "REGISTERED", "is_dataframe"]

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
            uri, fmt = self._pass_on(ctx, value, declared.format)
            columns = columns or _columns(value.columns)
        else:
            frame = value.dataframe if isinstance(value, StructuredDataset) else value
            if not is_dataframe(frame):
                raise Mismatch()
            fmt = tableformats.storage_format(declared.format, "write")
            uri = write_table(ctx, frame, fmt)
        literal = literals_pb2.Literal()
        sd = literal.scalar.structured_dataset
        sd.uri = uri
        sdt = sd.metadata.structured_dataset_type
        sdt.CopyFrom(declared)
        del sdt.columns[:]
        sdt.columns.extend(columns)
        sdt.format = fmt
        return literal

    @staticmethod
    def _pass_on(ctx: Any, value: StructuredDataset, declared: str) -> tuple[str, str]:
        """Where a dataset handle with a URI ends up, and the format its literal declares."""
        assert value.uri is not None
        own = value.file_format
        fmt = declared or own
        known = own and declared and own != declared and value.in_place
        if known and tableformats.supported(own) and tableformats.supported(declared):
            if tableformats.storage_format(own) != tableformats.storage_format(declared):
                # The data is `own`; the type says `declared`: store it as declared.
                return write_table(ctx, value.to_arrow(), declared), declared
        elif known:
            fmt = own  # cannot convert: keep the literal true to the data
        uri = value.uri
        if storage.is_local(uri) and not value.in_place and not ctx.holds(local_path(uri)):
            path = local_path(uri)
            name = os.path.basename(path.rstrip("/"))
            if os.path.isfile(path) and fmt.lower() == CSV:
                # flytekit's CSV reader opens <uri>/.csv: lay a single file out that way.
                folder = ctx.random_remote_path()
                storage.upload(path, storage.join(folder, tableformats.part_name(CSV)))
                return folder, fmt
            uri = storage.upload(path, ctx.random_remote_path(name), recursive=os.path.isdir(path))
        return uri, fmt

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
