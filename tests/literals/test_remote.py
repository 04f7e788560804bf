"""Files, directories, tables and offloaded literals on every storage backend (local, S3, GCS).

Each test takes ``storage_base`` (tests/conftest.py) and runs once per backend, so the upload layout
(``<raw>/<32 hex>/<name>``), lazy downloads and parquet staging are checked against real object stores.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from taskbox import storage
from taskbox.literals import (
    ConversionContext,
    Directory,
    File,
    StructuredDataset,
    TypeEngine,
    literal_map_to_python,
    offload_literals,
)


@pytest.fixture
def remote_ctx(storage_base, tmp_path):
    return ConversionContext(raw_output_prefix=storage.join(storage_base, "raw"), working_dir=str(tmp_path / "work"))


def _relative(uri: str, ctx: ConversionContext) -> str:
    prefix = ctx.raw_output_prefix.rstrip("/") + "/"
    assert uri.startswith(prefix), uri
    return uri[len(prefix) :]


def test_file_upload_and_lazy_download(remote_ctx, tmp_path):
    src = tmp_path / "report.csv"
    src.write_text("a,b\n")
    lit = TypeEngine.to_literal(File(str(src)), File["csv"], ctx=remote_ctx)
    assert re.fullmatch(r"[0-9a-f]{32}/report\.csv", _relative(lit.scalar.blob.uri, remote_ctx))
    value = TypeEngine.to_python_value(lit, File["csv"], ctx=remote_ctx)
    assert value.uri == lit.scalar.blob.uri
    with value.open("r") as fh:
        assert fh.read() == "a,b\n"
    assert TypeEngine.to_literal(value, File["csv"], ctx=remote_ctx) == lit


def test_directory_upload_and_download(remote_ctx, tmp_path):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "one.txt").write_text("1")
    (src / "sub" / "two.txt").write_text("2")
    lit = TypeEngine.to_literal(str(src), Directory, ctx=remote_ctx)
    assert re.fullmatch(r"[0-9a-f]{32}", _relative(lit.scalar.blob.uri, remote_ctx))
    value = TypeEngine.to_python_value(lit, Directory, ctx=remote_ctx)
    assert sorted(value.files()) == ["one.txt", "sub/two.txt"]


def test_table_written_as_parquet_part(remote_ctx):
    table = pa.table({"x": [1, 2, 3]})
    lit = TypeEngine.to_literal(table, pa.Table, ctx=remote_ctx)
    uri = lit.scalar.structured_dataset.uri
    assert re.fullmatch(r"[0-9a-f]{32}", _relative(uri, remote_ctx))
    assert storage.exists(storage.join(uri, "00000"))
    assert TypeEngine.to_python_value(lit, pa.Table, ctx=remote_ctx).equals(table)
    handle = TypeEngine.to_python_value(lit, StructuredDataset, ctx=remote_ctx)
    assert handle.to_arrow().equals(table)


def test_offloaded_outputs_round_trip(storage_base):
    lm = TypeEngine.to_literal({"big": list(range(500))}, dict[str, list[int]]).map
    out = offload_literals(lm, storage.join(storage_base, "outputs"), min_bytes=100, max_bytes=10**6)
    assert out.literals["big"].offloaded_metadata.uri == storage.join(
        storage_base, "outputs", "big_offloaded_metadata.pb"
    )
    assert literal_map_to_python(out, {"big": list[int]}) == {"big": list(range(500))}
