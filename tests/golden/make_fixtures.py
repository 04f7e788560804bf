"""Write golden literal fixtures with flytekit, for taskbox's compatibility tests.

Run with an interpreter that has ``flytekit==1.16.31 pandas pyarrow`` (and, for the pydantic case,
``pydantic``) installed -- ``make golden`` builds ``.venv-flytekit`` for this::

    .venv-flytekit/bin/python tests/golden/make_fixtures.py [--out tests/golden/fixtures]

For every case it writes ``<case>.literal.pb`` (a serialized ``flyteidl.core.Literal``) and
``<case>.type.pb`` (the ``LiteralType`` flytekit declares for the Python type), plus data files that
flytekit uploaded (``data/<case>/...``) and ``manifest.json`` describing the expected Python values.
Cases whose optional library is missing keep their previous fixtures (and say so on stderr).

The script imports nothing from taskbox: it must run in flytekit's environment only.
"""

# ruff: noqa: UP006, UP007, UP035, UP045 - typing.List/Optional/Union spelled out on purpose

from __future__ import annotations

import argparse
import dataclasses
import datetime
import enum
import json
import os
import shutil
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

FLYTEKIT_VERSION = "1.16.31"
UTC = datetime.UTC


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


@dataclasses.dataclass
class Inner:
    x: int
    label: str = "inner"


@dataclasses.dataclass
class Record:
    count: int
    ratio: float
    name: str
    flag: bool
    values: List[int]
    scores: Dict[str, float]
    maybe: Optional[int]
    inner: Inner
    color: Color
    when: datetime.datetime
    extras: List[Inner] = dataclasses.field(default_factory=list)
    note: Optional[str] = None


def record_value() -> Record:
    return Record(
        count=7,
        ratio=0.25,
        name="rec ✓",
        flag=True,
        values=[1, 2, 3],
        scores={"a": 1.5, "b": -2.0},
        maybe=None,
        inner=Inner(x=3),
        color=Color.BLUE,
        when=datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        extras=[Inner(x=1, label="one")],
    )


RECORD_JSON = {
    "count": 7,
    "ratio": 0.25,
    "name": "rec ✓",
    "flag": True,
    "values": [1, 2, 3],
    "scores": {"a": 1.5, "b": -2.0},
    "maybe": None,
    "inner": {"x": 3, "label": "inner"},
    "color": "blue",
    "when": "2024-05-06T07:08:09.123456+00:00",
    "extras": [{"x": 1, "label": "one"}],
    "note": None,
}
UNTYPED = {"a": 1, "b": [1, 2.5, "x"], "c": {"d": None, "e": True}}


class Case(typing.NamedTuple):
    name: str
    python_type: Any
    value: Callable[[], Any]
    expected: Any  # JSON form of the value, interpreted by tests/literals/test_golden.py
    env: Dict[str, str] = {}
    needs: str = ""  # optional module the case needs


def cases(tmp: Path) -> List[Case]:
    from flytekit.types.directory import FlyteDirectory
    from flytekit.types.file import FlyteFile

    local_file = tmp / "src" / "report.csv"
    local_file.parent.mkdir(parents=True, exist_ok=True)
    local_file.write_text("a,b\n1,2\n")
    local_dir = tmp / "src" / "tree"
    (local_dir / "sub").mkdir(parents=True, exist_ok=True)
    (local_dir / "one.txt").write_text("one")
    (local_dir / "sub" / "two.txt").write_text("two")
    csv_file = FlyteFile[typing.TypeVar("csv")]  # type: ignore[misc]

    out = [
        Case("int", int, lambda: 42, 42),
        Case("int_max", int, lambda: 2**63 - 1, 2**63 - 1),
        Case("int_min", int, lambda: -(2**63), -(2**63)),
        Case("float", float, lambda: 3.5, 3.5),
        Case("float_negative_zero", float, lambda: -0.0, -0.0),
        Case("str", str, lambda: "héllo 🌍 wörld", "héllo 🌍 wörld"),
        Case("bool", bool, lambda: True, True),
        Case(
            "datetime",
            datetime.datetime,
            lambda: datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
            "2024-05-06T07:08:09.123456+00:00",
        ),
        Case(
            "datetime_naive",
            datetime.datetime,
            lambda: datetime.datetime(2001, 2, 3, 4, 5, 6),
            "2001-02-03T04:05:06+00:00",
        ),
        Case(
            "datetime_offset",
            datetime.datetime,
            lambda: datetime.datetime(2020, 1, 1, 1, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
            "2019-12-31T23:00:00+00:00",
        ),
        Case("date", datetime.date, lambda: datetime.date(2024, 2, 29), "2024-02-29"),
        Case(
            "timedelta",
            datetime.timedelta,
            lambda: datetime.timedelta(days=1, seconds=2, microseconds=3),
            {"microseconds": 86_402_000_003},
        ),
        Case(
            "timedelta_negative",
            datetime.timedelta,
            lambda: datetime.timedelta(seconds=-1, microseconds=-500_000),
            {"microseconds": -1_500_000},
        ),
        Case("none", type(None), lambda: None, None),
        Case("list_int", List[int], lambda: [1, 2, 3], [1, 2, 3]),
        Case("list_empty", List[str], lambda: [], []),
        Case("dict_str_float", Dict[str, float], lambda: {"a": 1.5, "b": -2.0}, {"a": 1.5, "b": -2.0}),
        Case(
            "nested_list_dict",
            List[Dict[str, int]],
            lambda: [{"a": 1}, {"b": 2, "c": 3}],
            [{"a": 1}, {"b": 2, "c": 3}],
        ),
        Case("list_list_float", List[List[float]], lambda: [[1.0], [], [2.5, -3.0]], [[1.0], [], [2.5, -3.0]]),
        Case("enum", Color, lambda: Color.GREEN, "green"),
        Case("optional_int_value", Optional[int], lambda: 5, 5),
        Case("optional_int_none", Optional[int], lambda: None, None),
        Case("union_int_str_int", Union[int, str], lambda: 7, 7),
        Case("union_int_str_str", Union[int, str], lambda: "seven", "seven"),
        Case("union_str_enum", Union[str, Color], lambda: "red", "red"),
        Case("union_list_dict", Union[List[int], Dict[str, int]], lambda: {"k": 1}, {"k": 1}),
        Case("optional_dataclass", Optional[Inner], lambda: Inner(x=9, label="nine"), {"x": 9, "label": "nine"}),
        Case("dataclass", Record, record_value, RECORD_JSON),
        Case("untyped_dict", dict, lambda: dict(UNTYPED), UNTYPED),
        Case("dict_int_keys", Dict[int, str], lambda: {1: "one", 2: "two"}, {"1": "one", "2": "two"}),
        Case(
            "legacy_dataclass",
            Record,
            record_value,
            RECORD_JSON,
            env={"FLYTE_USE_OLD_DC_FORMAT": "true"},
        ),
        Case("legacy_untyped_dict", dict, lambda: dict(UNTYPED), UNTYPED, env={"FLYTE_USE_OLD_DC_FORMAT": "true"}),
        Case("file_remote", FlyteFile, lambda: FlyteFile("s3://bucket/data/input.bin"), "s3://bucket/data/input.bin"),
        Case("file_csv_remote", csv_file, lambda: csv_file("gs://bucket/t/table.csv"), "gs://bucket/t/table.csv"),
        Case("file_local", FlyteFile, lambda: FlyteFile(str(local_file)), {"basename": "report.csv"}),
        Case(
            "directory_remote",
            FlyteDirectory,
            lambda: FlyteDirectory("s3://bucket/prefix/dir"),
            "s3://bucket/prefix/dir",
        ),
        Case(
            "directory_local",
            FlyteDirectory,
            lambda: FlyteDirectory(str(local_dir)),
            {"files": ["one.txt", "sub/two.txt"]},
        ),
    ]
    out.extend(_dataframe_cases())
    out.extend(_pydantic_cases())
    return out


def _dataframe_cases() -> List[Case]:
    from flytekit.types.structured import StructuredDataset

    out = [
        Case(
            "structured_dataset_remote",
            StructuredDataset,
            lambda: StructuredDataset(uri="s3://bucket/sd/table", file_format="parquet"),
            {"uri": "s3://bucket/sd/table", "file_format": "parquet"},
        )
    ]
    try:
        import pandas as pd
    except ImportError:
        return [*out, Case("structured_dataset_pandas", None, lambda: None, None, needs="pandas")]
    frame = {"id": [1, 2, 3], "name": ["a", "b", "c"], "score": [0.5, 1.5, 2.5]}
    return [*out, Case("structured_dataset_pandas", pd.DataFrame, lambda: pd.DataFrame(frame), {"columns": frame})]


def _pydantic_cases() -> List[Case]:
    try:
        import pydantic
    except ImportError:
        return [Case("pydantic_model", None, lambda: None, None, needs="pydantic")]

    class Settings(pydantic.BaseModel):
        name: str
        retries: int = 3
        ratio: float = 0.5
        tags: List[str] = []
        limits: Optional[Dict[str, int]] = None
        color: Color = Color.RED

    value = {"name": "svc", "retries": 5, "ratio": 0.75, "tags": ["x", "y"], "limits": {"cpu": 2}, "color": "green"}
    return [Case("pydantic_model", Settings, lambda: Settings(**value), value, needs="pydantic")]


def _copy_data(uri: str, raw: str, dest: Path) -> str:
    relative = os.path.relpath(uri, raw)
    source = Path(uri)
    target = dest / relative
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return relative


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "fixtures"))
    args = parser.parse_args(argv)

    import flytekit
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.data_persistence import FileAccessProvider
    from flytekit.core.type_engine import TypeEngine
    from flytekit.utils.pbhash import compute_hash_string

    if flytekit.__version__ != FLYTEKIT_VERSION:
        print(
            f"warning: fixtures are specified for flytekit {FLYTEKIT_VERSION}, running {flytekit.__version__}",
            file=sys.stderr,
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"cases": {}}
    manifest: Dict[str, Any] = {"flytekit": flytekit.__version__, "cases": {}}

    with tempfile.TemporaryDirectory(prefix="golden-") as tmp_name:
        tmp = Path(tmp_name)
        raw = str(tmp / "raw")
        provider = FileAccessProvider(local_sandbox_dir=str(tmp / "sandbox"), raw_output_prefix=raw)
        base = FlyteContextManager.current_context()
        with FlyteContextManager.with_context(base.with_file_access(provider)) as ctx:
            for case in cases(tmp):
                if case.python_type is None:
                    kept = previous["cases"].get(case.name)
                    print(
                        f"skipping {case.name}: {case.needs} is not installed"
                        + ("; keeping the committed fixture" if kept else ""),
                        file=sys.stderr,
                    )
                    if kept:
                        manifest["cases"][case.name] = kept
                    continue
                cache = getattr(TypeEngine, "_LITERAL_CACHE", None)
                if cache is not None:  # flytekit memoises literals by value; env-dependent cases need a fresh one
                    cache.clear()
                saved = {k: os.environ.get(k) for k in case.env}
                os.environ.update(case.env)
                try:
                    lt = TypeEngine.to_literal_type(case.python_type)
                    lit = TypeEngine.to_literal(ctx, case.value(), case.python_type, lt)
                finally:
                    for key, old in saved.items():
                        if old is None:
                            os.environ.pop(key, None)
                        else:
                            os.environ[key] = old
                lit_pb = lit.to_flyte_idl()
                entry: Dict[str, Any] = {
                    "literal": f"{case.name}.literal.pb",
                    "type": f"{case.name}.type.pb",
                    "python_type": repr(case.python_type),
                    "transformer": TypeEngine.get_transformer(case.python_type).name,
                    "expected": case.expected,
                    "env": case.env,
                    "hash": compute_hash_string(lit_pb),
                }
                uri = _uploaded_uri(lit_pb)
                shutil.rmtree(out / "data" / case.name, ignore_errors=True)
                if uri is not None and uri.startswith(raw):
                    entry["raw_prefix"] = raw
                    entry["data"] = f"data/{case.name}"
                    entry["relative_uri"] = _copy_data(uri, raw, out / "data" / case.name)
                (out / entry["literal"]).write_bytes(lit_pb.SerializeToString(deterministic=True))
                (out / entry["type"]).write_bytes(lt.to_flyte_idl().SerializeToString(deterministic=True))
                manifest["cases"][case.name] = entry
                print(f"wrote {case.name}")
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    return 0


def _uploaded_uri(lit_pb: Any) -> Optional[str]:
    scalar = lit_pb.scalar
    if lit_pb.WhichOneof("value") != "scalar":
        return None
    if scalar.WhichOneof("value") == "blob":
        return scalar.blob.uri
    if scalar.WhichOneof("value") == "structured_dataset":
        return scalar.structured_dataset.uri
    return None


if __name__ == "__main__":
    sys.exit(main())
