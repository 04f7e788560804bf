"""Files and directories as Blob literals (flytekit's FlyteFile / FlyteDirectory).

Why: flytekit encodes a file as ``Blob{uri, metadata.type{format, SINGLE}}`` and a directory as a
MULTIPART Blob whose URI is a prefix (F:flytekit/types/file/file.py ``FlyteFilePathTransformer``,
F:flytekit/types/directory/types.py ``FlyteDirToMultipartBlobTransformer``). Local data is uploaded to
the raw-output prefix: a file to ``<raw>/<random32hex>/<basename>``, a directory's contents to
``<raw>/<random32hex>/`` (``put_raw_data`` / ``get_random_remote_directory``).

Invariants:
    * Remote URIs, handles that came from a literal, and local paths already under a local raw-output
      prefix are passed through unchanged (no copy).
    * The Blob format is the declared one (``File["csv"]``, or the template's ``blob.format``), never
      guessed from the file name; the plain types use ``""`` like flytekit.
    * Decoding never downloads: it returns a handle that downloads on first local access. A *local*
      URI that does not exist is an error at decode time, as in flytekit.
    * Union tags: ``FlyteFilePath`` and ``FlyteDirectory``.
"""

from __future__ import annotations

import os
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from taskbox import storage
from taskbox.literals.context import local_path
from taskbox.literals.engine import Mismatch, TypeTransformer, strip_annotated
from taskbox.literals.primitives import msgpack_value, scalar_of
from taskbox.literals.structs import struct_to_plain
from taskbox.literals.types import Directory, File, _BlobHandle

__all__ = ["DIRECTORY", "FILE", "REGISTERED"]

_SINGLE = types_pb2.BlobType.SINGLE
_MULTIPART = types_pb2.BlobType.MULTIPART


class _BlobTransformer(TypeTransformer[_BlobHandle]):
    handle: type[_BlobHandle] = File
    dimensionality: int = _SINGLE

    def _format(self, t: Any) -> str:
        t = strip_annotated(t)
        return t.format if isinstance(t, type) and issubclass(t, _BlobHandle) else ""

    def get_literal_type(self, t: Any) -> types_pb2.LiteralType:
        return types_pb2.LiteralType(
            blob=types_pb2.BlobType(format=self._format(t), dimensionality=self.dimensionality)
        )

    def to_literal(
        self, ctx: Any, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        if expected.WhichOneof("type") == "blob":
            if expected.blob.dimensionality != self.dimensionality:
                raise Mismatch()
            fmt = expected.blob.format
        else:
            fmt = self._format(python_type)
        uri = self._uri_for(ctx, value)
        literal = literals_pb2.Literal()
        blob = literal.scalar.blob
        blob.uri = uri
        blob.metadata.type.format = fmt
        blob.metadata.type.dimensionality = self.dimensionality
        return literal

    def _uri_for(self, ctx: Any, value: Any) -> str:
        if isinstance(value, _BlobHandle):
            if isinstance(value, File) != (self.handle is File):
                raise Mismatch()
            if value.uri is not None:
                return value.uri
            source = value.path
        elif isinstance(value, (str, os.PathLike)):
            source = os.fspath(value)
            if not storage.is_local(source):
                return source
        else:
            raise Mismatch()
        assert source is not None
        path = local_path(source) if "://" in source else source
        if ctx.holds(path):
            self._check_local(path)
            return source  # already in the raw-output area: final, not copied again
        return self._upload(ctx, path)

    def _upload(self, ctx: Any, path: str) -> str:
        raise NotImplementedError

    def to_python_value(self, ctx: Any, literal: literals_pb2.Literal, expected_python_type: Any) -> _BlobHandle:
        scalar = scalar_of(literal)
        kind = scalar.WhichOneof("value")
        if kind == "binary":
            uri = self._path_of(msgpack_value(scalar))
        elif kind == "generic":
            uri = self._path_of(struct_to_plain(scalar.generic))
        elif kind == "blob":
            if scalar.blob.metadata.type.dimensionality != self.dimensionality:
                what = "a directory" if self.dimensionality == _SINGLE else "a single file"
                raise Mismatch(f"{scalar.blob.uri} is {what}")
            uri = scalar.blob.uri
        else:
            raise Mismatch()
        cls = strip_annotated(expected_python_type)
        if not (isinstance(cls, type) and issubclass(cls, self.handle)):
            cls = self.handle  # os.PathLike and friends read as the plain handle
        if storage.is_local(uri):
            self._check_local(local_path(uri))
        handle = cls(uri=uri)
        handle._ctx = ctx
        return handle

    @staticmethod
    def _path_of(data: Any) -> str:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise Mismatch("expected {'path': ...}")
        return data["path"]

    def _check_local(self, path: str) -> None:
        raise NotImplementedError


class FileTransformer(_BlobTransformer):
    """:class:`~taskbox.literals.File` (and ``os.PathLike``) as a SINGLE Blob ("FlyteFilePath")."""

    handle = File
    dimensionality = _SINGLE

    def _upload(self, ctx: Any, path: str) -> str:
        if not os.path.isfile(path):
            raise ValueError(f"{path} is not a file")
        return storage.upload(path, ctx.random_remote_path(os.path.basename(path)))

    def _check_local(self, path: str) -> None:
        if not os.path.isfile(path):
            raise ValueError(f"the file {path} does not exist")


class DirectoryTransformer(_BlobTransformer):
    """:class:`~taskbox.literals.Directory` as a MULTIPART Blob ("FlyteDirectory")."""

    handle = Directory
    dimensionality = _MULTIPART

    def _upload(self, ctx: Any, path: str) -> str:
        if not os.path.isdir(path):
            raise ValueError(f"{path} is not a directory")
        return storage.upload(path, ctx.random_remote_path(), recursive=True)

    def _check_local(self, path: str) -> None:
        if not os.path.isdir(path):
            raise ValueError(f"the directory {path} does not exist")


FILE = FileTransformer("FlyteFilePath", File)
DIRECTORY = DirectoryTransformer("FlyteDirectory", Directory)

REGISTERED: list[tuple[TypeTransformer[Any], list[Any] | None]] = [(FILE, [os.PathLike]), (DIRECTORY, None)]
