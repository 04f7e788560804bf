"""Python-side handles for data that lives in blob storage: files, directories and tables.

Why: a Flyte literal only carries a URI. Tasks want a local path they can open, executors want to pass a
remote reference through without copying it, and both must produce the literals flytekit produces. These
small classes hold either a local path (to upload on output) or a remote URI (downloaded lazily, on
first access, into the conversion context's working directory).

Invariants:
    * A handle built from a remote URI never touches storage until ``download()``/``open()``/``fspath``.
    * A handle that came from a literal remembers that literal's URI, so passing it on never re-uploads.
    * ``File["csv"]`` / ``Directory["csv"]`` are cached subclasses whose ``format`` is the Blob format
      (flytekit's ``FlyteFile["csv"]``); the plain classes have format ``""``.
    * pyarrow and pandas are imported only by the table-reading methods; a dataset is read by its
      ``file_format`` (parquet or csv, :mod:`taskbox.literals.tableformats`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from typing import IO, Any, ClassVar

from taskbox.errors import StorageError
from taskbox.literals.context import ConversionContext, local_path

__all__ = ["Directory", "File", "StructuredDataset"]

_subclass_lock = threading.Lock()


def _context(ctx: ConversionContext | None) -> ConversionContext:
    return ctx or ConversionContext.default()


def _storage() -> Any:
    from taskbox import storage  # lazy: loaded on first use, keeps the package import cheap

    return storage


def _basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1] or "data"


class _BlobHandle(os.PathLike):  # type: ignore[type-arg]
    """Common state of :class:`File` and :class:`Directory`: a local path and/or a remote URI."""

    format: ClassVar[str] = ""
    _recursive: ClassVar[bool] = False
    _formats: ClassVar[dict[tuple[type, str], type]] = {}

    def __init__(self, path: str | os.PathLike[str] | None = None, *, uri: str | None = None) -> None:
        if path is None and uri is None:
            raise ValueError(f"{type(self).__name__} needs a path or a uri")
        where = os.fspath(path) if path is not None else None
        if where is not None and uri is None and not _storage().is_local(where):
            uri, where = where, None  # File("s3://...") is a remote reference
        if where is not None and "://" in where:
            where = local_path(where)
        if uri is not None and where is None and _storage().is_local(uri):
            where = local_path(uri)
        self._path = where
        self._uri = uri
        self._ctx: ConversionContext | None = None

    def __class_getitem__(cls, fmt: str) -> type:
        """``File["csv"]``: the subclass whose Blob format is ``fmt``."""
        if not isinstance(fmt, str):
            raise TypeError(f"{cls.__name__}[...] takes a format string, got {fmt!r}")
        base: type[_BlobHandle] = next(c for c in cls.__mro__ if c.__dict__.get("_root"))
        if not fmt:
            return base
        with _subclass_lock:
            key = (base, fmt)
            sub = base._formats.get(key)
            if sub is None:
                sub = type(f"{base.__name__}[{fmt}]", (base,), {"format": fmt, "__module__": base.__module__})
                base._formats[key] = sub
            return sub

    @property
    def uri(self) -> str | None:
        """The remote (or raw-output) URI, if the data is or was stored there."""
        return self._uri

    @property
    def path(self) -> str | None:
        """The local path, if the data is local or has been downloaded."""
        return self._path

    @property
    def remote(self) -> bool:
        """True if the data must be downloaded before local use."""
        return self._path is None

    def download(self, dest: str | os.PathLike[str] | None = None) -> str:
        """Make a local copy and return its path.

        Args:
            dest: Where to put the copy. If omitted, a local handle returns its own path and a remote
                one downloads into the conversion context's working directory (once).

        Raises:
            StorageError: The copy failed.

        """
        if dest is None and self._path is not None:
            return self._path
        source = self._uri if self._uri is not None else self._path
        assert source is not None
        target = os.fspath(dest) if dest is not None else _context(self._ctx).random_local_path(_basename(source))
        _storage().download(source, target, recursive=self._recursive)
        if dest is None:
            self._path = target
        return target

    def __fspath__(self) -> str:
        return self.download()

    def _key(self) -> tuple[str, str]:
        if self._uri is not None:
            return ("uri", self._uri)
        return ("path", os.path.abspath(self._path or ""))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _BlobHandle) or self._recursive != other._recursive:
            return NotImplemented
        return self.format == other.format and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self._recursive, self.format, self._key()))

    def __repr__(self) -> str:
        shown = [f"uri={self._uri!r}"] if self._uri is not None else []
        if self._path is not None and self._path != self._uri:
            shown.append(f"path={self._path!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


class File(_BlobHandle):
    """A single file: ``File("/tmp/out.csv")`` to upload, ``File("s3://b/k")`` to reference.

    Converts to a SINGLE Blob literal whose format is the class's :attr:`format` (``File["csv"]``).
    """

    _root: ClassVar[bool] = True

    def open(self, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        """Open the file (downloading it first when it is remote and ``mode`` reads)."""
        if any(flag in mode for flag in "wax"):
            if self._path is None:
                raise ValueError("only local files can be opened for writing")
            return open(self._path, mode, **kwargs)
        return open(self.download(), mode, **kwargs)


class Directory(_BlobHandle):
    """A directory tree: ``Directory("/tmp/outdir")`` to upload, ``Directory("s3://b/prefix")`` to reference.

    Converts to a MULTIPART Blob literal whose URI is the directory prefix.
    """

    _root: ClassVar[bool] = True
    _recursive: ClassVar[bool] = True

    def files(self) -> Iterator[str]:
        """Yield the relative paths of all files (downloading the tree first when it is remote)."""
        root = self.download()
        for base, _, names in os.walk(root):
            for name in sorted(names):
                yield os.path.relpath(os.path.join(base, name), root)

    def __truediv__(self, other: str | os.PathLike[str]) -> Any:
        """``directory / "name"``: a ``pathlib.Path`` inside the local copy (downloading the tree first)."""
        import pathlib

        return pathlib.Path(self.download()) / other


class StructuredDataset:
    """A table stored as files under a URI (Flyte's StructuredDataset), or a dataframe to be written.

    Args:
        uri: Where the dataset lives: a folder (flytekit's layout: ``00000`` for parquet, ``.csv`` for CSV)
            or a single file.
        file_format: Storage format recorded in the literal: ``"parquet"`` (the default) or ``"csv"``.
        columns: Optional column names mapped to Python types or ``LiteralType`` values.
        dataframe: A ``pyarrow.Table`` or ``pandas.DataFrame`` to write on output instead of a ``uri``.
            A dataframe passed as the first positional argument is taken as ``dataframe`` (flytekit's
            order), so ``StructuredDataset(table)`` works as it does there.
        in_place: The data already sits where the output literal should point (e.g. an executor wrote it
            under the raw output prefix): pass the ``uri`` on as is instead of uploading a copy.
    """

    def __init__(
        self,
        uri: str | None = None,
        file_format: str = "parquet",
        columns: Mapping[str, Any] | None = None,
        *,
        dataframe: Any = None,
        in_place: bool = False,
    ) -> None:
        if uri is not None and not isinstance(uri, str | os.PathLike):
            # flytekit's first positional parameter is the dataframe: StructuredDataset(table) works there too.
            if dataframe is not None:
                raise TypeError(f"StructuredDataset: uri must be a string, not {type(uri).__name__}")
            uri, dataframe = None, uri
        if uri is None and dataframe is None:
            raise ValueError("StructuredDataset needs a uri or a dataframe")
        self.uri = os.fspath(uri) if uri is not None else None
        self.file_format = file_format
        self.columns = dict(columns) if columns else None
        self.dataframe = dataframe
        self._ctx: ConversionContext | None = None
        # True when the data already sits where the output literal should point (read from a literal, or
        # written under the raw output prefix by an executor): the URI is passed on as is, never re-uploaded.
        self.in_place = in_place

    def _local_source(self) -> str:
        if self.uri is None:
            raise ValueError("this StructuredDataset has no uri to read")
        if _storage().is_local(self.uri):
            return local_path(self.uri)
        target = _context(self._ctx).random_local_path(_basename(self.uri))
        try:
            _storage().download(self.uri, target, recursive=True)
        except StorageError:  # a single object rather than a prefix
            if not _storage().exists(self.uri):
                raise
            _storage().download(self.uri, target)
        return target

    def to_arrow(self, columns: list[str] | None = None) -> Any:
        """Read the dataset into a ``pyarrow.Table``, optionally selecting columns.

        Parquet and CSV datasets are read (see :mod:`taskbox.literals.tableformats`); a CSV's columns get
        the types declared in :attr:`columns`, the others are inferred.

        Args:
            columns: Columns to read, in this order; by default the declared :attr:`columns`, else all.

        Raises:
            UnsupportedType: The dataset's format is neither parquet nor csv.
            InputError: The data cannot be read in its format, or does not fit its declared columns.
            StorageError: Downloading a remote dataset failed.

        """
        if self.dataframe is not None:
            import pyarrow as pa

            table = self.dataframe if isinstance(self.dataframe, pa.Table) else pa.Table.from_pandas(self.dataframe)
            return table.select(columns) if columns else table
        from taskbox.literals import tableformats

        tableformats.storage_format(self.file_format, "read")  # an unsupported format fails before any download
        selected = columns if columns is not None else (list(self.columns) if self.columns else None)
        return tableformats.read_table(self._local_source(), self.file_format, self.columns, selected, where=self.uri)

    def to_pandas(self, columns: list[str] | None = None) -> Any:
        """Read the dataset into a ``pandas.DataFrame`` (needs pandas)."""
        return self.to_arrow(columns).to_pandas()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StructuredDataset):
            return NotImplemented
        if self.dataframe is not None or other.dataframe is not None:
            return self is other
        mine = list(self.columns) if self.columns else []
        theirs = list(other.columns) if other.columns else []
        return (self.uri, self.file_format, mine) == (other.uri, other.file_format, theirs)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        cols = f", columns={list(self.columns)!r}" if self.columns else ""
        if self.uri is None:
            return f"StructuredDataset(dataframe={type(self.dataframe).__name__}{cols})"
        return f"StructuredDataset(uri={self.uri!r}, file_format={self.file_format!r}{cols})"
