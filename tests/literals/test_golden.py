"""Golden tests: literals and types produced by flytekit 1.16.31 (tests/golden/make_fixtures.py).

taskbox must decode flytekit's literals (by Python type and by LiteralType alone), declare the same
LiteralTypes for the mirrored Python types, and encode the same values to the same literals wherever
flytekit's output is deterministic (everything but freshly uploaded URIs).
"""

# ruff: noqa: UP006, UP007, UP035, UP045 - typing.List/Optional/Union spelled out on purpose

from __future__ import annotations

import datetime
import json
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import pytest
from flyteidl.core import literals_pb2, types_pb2

from taskbox.literals import Directory, File, StructuredDataset, TypeEngine
from taskbox.literals.offload import compute_hash_string
from taskbox.literals.typeinfo import essence

from .golden_types import Color, Inner, Record, record_from_json, settings_model

FIXTURES = Path(__file__).resolve().parents[1] / "golden" / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CASES = MANIFEST["cases"]


def _dt(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


# name -> (taskbox python type, expected JSON -> python value)
PY: dict[str, tuple[Any, Any]] = {
    "int": (int, int),
    "int_max": (int, int),
    "int_min": (int, int),
    "float": (float, float),
    "float_negative_zero": (float, float),
    "str": (str, str),
    "bool": (bool, bool),
    "datetime": (datetime.datetime, _dt),
    "datetime_naive": (datetime.datetime, _dt),
    "datetime_offset": (datetime.datetime, _dt),
    "date": (datetime.date, datetime.date.fromisoformat),
    "timedelta": (datetime.timedelta, lambda e: datetime.timedelta(microseconds=e["microseconds"])),
    "timedelta_negative": (datetime.timedelta, lambda e: datetime.timedelta(microseconds=e["microseconds"])),
    "none": (type(None), lambda e: None),
    "list_int": (List[int], list),
    "list_empty": (List[str], list),
    "dict_str_float": (Dict[str, float], dict),
    "nested_list_dict": (List[Dict[str, int]], list),
    "list_list_float": (List[List[float]], list),
    "enum": (Color, Color),
    "optional_int_value": (Optional[int], lambda e: e),
    "optional_int_none": (Optional[int], lambda e: e),
    "union_int_str_int": (Union[int, str], lambda e: e),
    "union_int_str_str": (Union[int, str], lambda e: e),
    "union_str_enum": (Union[str, Color], lambda e: e),
    "union_list_dict": (Union[List[int], Dict[str, int]], dict),
    "optional_dataclass": (Optional[Inner], lambda e: Inner(**e)),
    "dataclass": (Record, record_from_json),
    "legacy_dataclass": (Record, record_from_json),
    "untyped_dict": (dict, dict),
    "legacy_untyped_dict": (dict, dict),
    "dict_int_keys": (Dict[int, str], lambda e: {int(k): v for k, v in e.items()}),
    "file_remote": (File, lambda e: File(e)),
    "file_csv_remote": (File["csv"], lambda e: File["csv"](e)),
    "file_local": (File, None),
    "directory_remote": (Directory, lambda e: Directory(e)),
    "directory_local": (Directory, None),
    "structured_dataset_remote": (StructuredDataset, lambda e: StructuredDataset(**e)),
    "structured_dataset_pandas": (StructuredDataset, None),
    "pydantic_model": (None, lambda e: settings_model()(**e)),
}


def py_type(name: str) -> Any:
    t = PY[name][0]
    return settings_model() if name == "pydantic_model" else t


def expected(name: str) -> Any:
    return PY[name][1](CASES[name]["expected"])


def load(name: str, tmp_path: Path | None = None) -> tuple[literals_pb2.Literal, types_pb2.LiteralType]:
    entry = CASES[name]
    lit = literals_pb2.Literal()
    lit.ParseFromString((FIXTURES / entry["literal"]).read_bytes())
    lt = types_pb2.LiteralType()
    lt.ParseFromString((FIXTURES / entry["type"]).read_bytes())
    if "data" in entry and tmp_path is not None:  # point uploaded URIs at a copy of the uploaded data
        root = tmp_path / "flytekit-raw"
        shutil.copytree(FIXTURES / entry["data"], root, dirs_exist_ok=True)
        uri = str(root / entry["relative_uri"])
        if lit.scalar.WhichOneof("value") == "blob":
            lit.scalar.blob.uri = uri
        else:
            lit.scalar.structured_dataset.uri = uri
    return lit, lt


def test_every_fixture_is_covered():
    assert set(CASES) == set(PY), "update PY when make_fixtures.py gains or loses a case"
    assert MANIFEST["flytekit"] == "1.16.31"


@pytest.mark.parametrize("name", sorted(CASES))
def test_literal_type_equals_flytekits(name):
    _, lt = load(name)
    assert TypeEngine.to_literal_type(py_type(name)) == lt


@pytest.mark.parametrize("name", sorted(CASES))
def test_transformer_name_is_flytekits(name):
    assert TypeEngine.get_transformer(py_type(name)).name == CASES[name]["transformer"]


def _check_decoded(name: str, value: Any, tmp_path: Path) -> None:
    if name == "file_local":
        assert isinstance(value, File) and value.format == ""
        assert Path(value.download()).read_text() == "a,b\n1,2\n"
    elif name == "directory_local":
        assert isinstance(value, Directory)
        assert sorted(value.files()) == CASES[name]["expected"]["files"]
    elif name == "structured_dataset_pandas":
        assert isinstance(value, StructuredDataset) and value.file_format == "parquet"
        assert value.to_arrow().to_pydict() == CASES[name]["expected"]["columns"]
    else:
        want = expected(name)
        assert value == want
        assert type(value) is type(want)
        if isinstance(want, float):
            assert str(value) == str(want)  # keeps -0.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_decode_by_python_type(name, ctx, tmp_path):
    lit, _ = load(name, tmp_path)
    _check_decoded(name, TypeEngine.to_python_value(lit, py_type(name), ctx=ctx), tmp_path)


def _by_type_form(name: str) -> Any:
    """What decoding by LiteralType alone yields: plain data for structs, aware datetimes, str enums."""
    raw = CASES[name]["expected"]
    if name in (
        "dataclass",
        "legacy_dataclass",
        "optional_dataclass",
        "untyped_dict",
        "legacy_untyped_dict",
        "pydantic_model",
    ):
        return raw
    if name == "dict_int_keys":
        return {int(k): v for k, v in raw.items()}
    if name == "date":
        return datetime.datetime.fromisoformat(raw).replace(tzinfo=datetime.UTC)
    if name in ("enum",):
        return raw
    return expected(name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_decode_by_literal_type(name, ctx, tmp_path):
    lit, lt = load(name, tmp_path)
    value = TypeEngine.to_python_value(lit, literal_type=lt, ctx=ctx)
    if name in ("file_local", "directory_local", "structured_dataset_pandas"):
        _check_decoded(name, value, tmp_path)
    else:
        assert value == _by_type_form(name)


DETERMINISTIC = sorted(set(CASES) - {"file_local", "directory_local", "structured_dataset_pandas"})


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_encoding_equals_flytekits(name, ctx, monkeypatch):
    for key, value in CASES[name]["env"].items():
        monkeypatch.setenv(key, value)
    lit, lt = load(name)
    ours = TypeEngine.to_literal(expected(name), py_type(name), ctx=ctx)
    assert ours == lit
    # msgpack payloads must match byte for byte, not only after decoding
    if lit.scalar.WhichOneof("value") == "binary":
        assert ours.scalar.binary.value == lit.scalar.binary.value


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_encoding_by_literal_type_equals_flytekits(name, ctx, monkeypatch):
    for key, value in CASES[name]["env"].items():
        monkeypatch.setenv(key, value)
    lit, lt = load(name)
    ours = TypeEngine.to_literal(expected(name), literal_type=lt, ctx=ctx)
    if lit.scalar.WhichOneof("value") == "union":
        # flytekit stores the transformer's own type; by LiteralType we store the declared variant
        assert ours.scalar.union.type.structure.tag == lit.scalar.union.type.structure.tag
        assert essence(ours.scalar.union.type) == essence(lit.scalar.union.type)
        assert ours.scalar.union.value == lit.scalar.union.value
    else:
        assert ours == lit


@pytest.mark.parametrize("name", sorted(CASES))
def test_offload_hash_equals_flytekits(name):
    lit, _ = load(name)
    assert compute_hash_string(lit) == CASES[name]["hash"]


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("file_local", r"[0-9a-f]{32}/report\.csv"),
        ("directory_local", r"[0-9a-f]{32}"),
        ("structured_dataset_pandas", r"[0-9a-f]{32}"),
    ],
)
def test_upload_layout_matches_flytekits(name, pattern, ctx, tmp_path):
    entry = CASES[name]
    assert re.fullmatch(pattern, entry["relative_uri"])
    lit, lt = load(name, tmp_path)
    decoded = TypeEngine.to_python_value(lit, py_type(name), ctx=ctx)
    if name == "file_local":
        local = File(decoded.download(str(tmp_path / "copy" / "report.csv")))
        ours = TypeEngine.to_literal(local, File, ctx=ctx)
        uri = ours.scalar.blob.uri
    elif name == "directory_local":
        local = Directory(decoded.download(str(tmp_path / "copy-dir")))
        ours = TypeEngine.to_literal(local, Directory, ctx=ctx)
        uri = ours.scalar.blob.uri
        assert sorted(Directory(uri).files()) == entry["expected"]["files"]
    else:
        ours = TypeEngine.to_literal(decoded.to_arrow(), StructuredDataset, ctx=ctx)
        uri = ours.scalar.structured_dataset.uri
        assert (Path(uri) / "00000").is_file()
        assert ours.scalar.structured_dataset.metadata == lit.scalar.structured_dataset.metadata
    relative = str(Path(uri).relative_to(ctx.raw_output_prefix))
    assert re.fullmatch(pattern, relative)
    assert essence(TypeEngine.to_literal_type(py_type(name))) == essence(lt)


def test_union_tags_are_flytekits():
    for name in (
        "optional_int_value",
        "optional_int_none",
        "union_int_str_int",
        "union_int_str_str",
        "union_str_enum",
        "union_list_dict",
        "optional_dataclass",
    ):
        _, lt = load(name)
        ours = TypeEngine.to_literal_type(py_type(name))
        assert [v.structure.tag for v in ours.union_type.variants] == [v.structure.tag for v in lt.union_type.variants]


def test_pydantic_is_not_imported_by_plain_conversions():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from taskbox.literals import TypeEngine\n"
        "lit = TypeEngine.to_literal({'a': [1, 2]}, dict)\n"
        "assert TypeEngine.to_python_value(lit, dict) == {'a': [1, 2]}\n"
        "print(sorted(m for m in ('pydantic', 'pyarrow', 'pandas', 'fsspec') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
