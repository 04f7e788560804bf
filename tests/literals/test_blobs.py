from __future__ import annotations

import os
import pathlib
import re

import msgpack
import pytest
from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError
from taskbox.literals import Directory, File, TypeEngine

SINGLE = types_pb2.BlobType.SINGLE
MULTIPART = types_pb2.BlobType.MULTIPART


def blob_type(fmt: str = "", dim: int = SINGLE) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(blob=types_pb2.BlobType(format=fmt, dimensionality=dim))


def test_literal_types_and_names():
    assert TypeEngine.to_literal_type(File) == blob_type()
    assert TypeEngine.to_literal_type(File["csv"]) == blob_type("csv")
    assert TypeEngine.to_literal_type(Directory) == blob_type(dim=MULTIPART)
    assert TypeEngine.to_literal_type(os.PathLike) == blob_type()
    assert TypeEngine.get_transformer(File["csv"]).name == "FlyteFilePath"
    assert TypeEngine.get_transformer(Directory).name == "FlyteDirectory"
    assert File["csv"] is File["csv"] and File[""] is File
    assert TypeEngine.guess_python_type(blob_type("csv")) is File["csv"]
    assert TypeEngine.guess_python_type(blob_type(dim=MULTIPART)) is Directory


def test_local_file_is_uploaded_with_flytekits_layout(ctx, tmp_path):
    src = tmp_path / "data.csv"
    src.write_text("1,2\n")
    lit = TypeEngine.to_literal(File(str(src)), File["csv"], ctx=ctx)
    blob = lit.scalar.blob
    assert blob.metadata.type == types_pb2.BlobType(format="csv", dimensionality=SINGLE)
    relative = os.path.relpath(blob.uri, ctx.raw_output_prefix)
    assert re.fullmatch(r"[0-9a-f]{32}/data\.csv", relative)
    assert pathlib.Path(blob.uri).read_text() == "1,2\n"


def test_paths_and_strings_are_accepted(ctx, tmp_path):
    src = tmp_path / "x.bin"
    src.write_bytes(b"\x00\x01")
    for value in (str(src), src, f"file://{src}"):
        lit = TypeEngine.to_literal(value, File, ctx=ctx)
        assert pathlib.Path(lit.scalar.blob.uri).read_bytes() == b"\x00\x01"


def test_remote_uri_is_passed_through_untouched(ctx):
    for value in ("s3://bucket/key.txt", File("gs://b/k"), File(uri="https://example.com/f")):
        lit = TypeEngine.to_literal(value, File, ctx=ctx)
        assert lit.scalar.blob.uri == (value if isinstance(value, str) else value.uri)
    assert not os.path.exists(ctx.raw_output_prefix)


def test_decode_is_lazy_and_downloads_on_access(ctx, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "in.txt").write_text("payload")
    lit = literals_pb2.Literal()
    lit.scalar.blob.uri = f"file://{store / 'in.txt'}"
    lit.scalar.blob.metadata.type.dimensionality = SINGLE
    value = TypeEngine.to_python_value(lit, File, ctx=ctx)
    assert value.uri == f"file://{store / 'in.txt'}" and value.path == str(store / "in.txt")
    copy = value.download(str(tmp_path / "copy.txt"))
    assert pathlib.Path(copy).read_text() == "payload"
    with value.open("r") as fh:
        assert fh.read() == "payload"
    assert TypeEngine.to_literal(value, File, ctx=ctx) == lit  # passthrough, no re-upload


def test_remote_file_handle_downloads_into_the_working_dir(ctx, tmp_path):
    handle = File("s3://bucket/k/name.txt")
    assert handle.remote and handle.path is None and handle.uri == "s3://bucket/k/name.txt"
    assert repr(handle) == "File(uri='s3://bucket/k/name.txt')"
    decoded = TypeEngine.to_python_value(TypeEngine.to_literal(handle, File, ctx=ctx), File, ctx=ctx)
    assert decoded == handle and decoded._ctx is ctx


def test_format_comes_from_the_declared_literal_type(ctx):
    lit = TypeEngine.to_literal("s3://b/k", literal_type=blob_type("jsonl"), ctx=ctx)
    assert lit.scalar.blob.metadata.type.format == "jsonl"
    value = TypeEngine.to_python_value(lit, literal_type=blob_type("jsonl"), ctx=ctx)
    assert type(value) is File["jsonl"] and value.uri == "s3://b/k"
    assert TypeEngine.to_python_value(lit, os.PathLike, ctx=ctx) == File("s3://b/k")


def test_missing_local_file_errors(ctx, tmp_path):
    with pytest.raises(OutputError, match="is not a file"):
        TypeEngine.to_literal(str(tmp_path / "nope"), File, ctx=ctx)
    lit = literals_pb2.Literal()
    lit.scalar.blob.uri = str(tmp_path / "nope")
    with pytest.raises(InputError, match="does not exist"):
        TypeEngine.to_python_value(lit, File, ctx=ctx)


def test_dimensionality_mismatch(ctx):
    lit = TypeEngine.to_literal("s3://b/prefix", Directory, ctx=ctx)
    with pytest.raises(InputError, match="is a directory"):
        TypeEngine.to_python_value(lit, File, ctx=ctx)
    with pytest.raises(OutputError, match="expected file"):
        TypeEngine.to_literal(Directory("s3://b/p"), literal_type=blob_type(), ctx=ctx)
    with pytest.raises(OutputError):
        TypeEngine.to_literal(12, File, ctx=ctx)


def test_directory_upload_layout_and_listing(ctx, tmp_path):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    lit = TypeEngine.to_literal(Directory(str(src)), Directory, ctx=ctx)
    uri = lit.scalar.blob.uri
    assert re.fullmatch(r"[0-9a-f]{32}", os.path.relpath(uri, ctx.raw_output_prefix))
    assert lit.scalar.blob.metadata.type.dimensionality == MULTIPART
    value = TypeEngine.to_python_value(lit, Directory, ctx=ctx)
    assert sorted(value.files()) == ["a.txt", "sub/b.txt"]
    assert pathlib.Path(value / "sub" / "b.txt").read_text() == "b"
    copy = value.download(str(tmp_path / "copy"))
    assert (pathlib.Path(copy) / "a.txt").read_text() == "a"
    with pytest.raises(OutputError, match="is not a directory"):
        TypeEngine.to_literal(str(src / "a.txt"), Directory, ctx=ctx)


def test_blob_from_msgpack_attribute_access(ctx):
    lit = literals_pb2.Literal()
    lit.scalar.binary.value = msgpack.packb({"path": "s3://b/f.txt"})
    lit.scalar.binary.tag = "msgpack"
    assert TypeEngine.to_python_value(lit, File, ctx=ctx) == File("s3://b/f.txt")
    lit.scalar.binary.value = msgpack.packb({"path": "s3://b/dir"})
    assert TypeEngine.to_python_value(lit, Directory, ctx=ctx) == Directory("s3://b/dir")


def test_handles_compare_by_location_and_format():
    assert File("s3://a/b") == File(uri="s3://a/b")
    assert File("s3://a/b") != File["csv"]("s3://a/b")
    assert File("s3://a/b") != Directory("s3://a/b")
    assert len({File("/x"), File("/x")}) == 1
    with pytest.raises(ValueError):
        File()
    with pytest.raises(ValueError, match="only local files"):
        File("s3://a/b").open("w")


def test_files_already_in_the_raw_area_are_not_copied(ctx, tmp_path):
    staged = tmp_path / "raw" / "mine" / "out.txt"
    staged.parent.mkdir(parents=True)
    staged.write_text("x")
    assert TypeEngine.to_literal(str(staged), File, ctx=ctx).scalar.blob.uri == str(staged)
    assert TypeEngine.to_literal(str(staged.parent), Directory, ctx=ctx).scalar.blob.uri == str(staged.parent)
    assert os.listdir(tmp_path / "raw") == ["mine"]
    assert not ctx.holds(str(tmp_path / "raw")) and not ctx.holds(str(tmp_path / "elsewhere"))
