"""Property tests: every value the literal engine carries survives Python -> Literal -> bytes -> Python.

Covered (docs/reliability-security.md section 8): int64 bounds, NaN/±inf/-0.0, non-BMP text, naive and
tz-aware datetimes, durations, nested lists/maps, unions and optionals (both conversion paths), enums,
dataclasses (msgpack, nested, with every leaf type), files and directories (bytes through storage), and
structured datasets (parquet through storage). ``HYPOTHESIS_PROFILE=fuzz`` (``make fuzz``) runs them longer.
"""

# ruff: noqa: UP007, UP045 - typing.Optional/Union spelled out on purpose

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import math
import os
import tempfile
from collections.abc import Iterator
from typing import Any, Optional, Union

from flyteidl.core import literals_pb2
from hypothesis import given
from hypothesis import strategies as st

from taskbox.literals import ConversionContext, Directory, File, StructuredDataset, TypeEngine

UTC = datetime.UTC
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, math.inf, -math.inf])
TEXT = st.text() | st.text(alphabet=st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF), min_size=1)
OFFSETS = st.integers(min_value=-1439, max_value=1439).map(lambda m: datetime.timezone(datetime.timedelta(minutes=m)))
AWARE = st.datetimes(
    min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30), timezones=st.just(UTC) | OFFSETS
)
DURATIONS = st.timedeltas(min_value=datetime.timedelta(days=-3_650_000), max_value=datetime.timedelta(days=3_650_000))

LEAVES: dict[Any, st.SearchStrategy[Any]] = {
    int: INT64,
    float: FLOATS,
    str: TEXT,
    bool: st.booleans(),
    datetime.datetime: AWARE,
    datetime.timedelta: DURATIONS,
    type(None): st.none(),
}
UNIONS = [
    Union[int, str],
    Union[float, str, None],
    Union[int, float],
    Union[list[int], dict[str, int]],
    Optional[datetime.timedelta],
    Union[bool, list[str], None],
]


def values_for(t: Any) -> st.SearchStrategy[Any]:
    if t in LEAVES:
        return LEAVES[t]
    origin = getattr(t, "__origin__", None)
    args = getattr(t, "__args__", ())
    if origin is list:
        return st.lists(values_for(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(TEXT, values_for(args[1]), max_size=4)
    if origin is Union:
        return st.one_of(*(values_for(a) for a in args))
    raise AssertionError(t)


TYPES = st.recursive(
    st.sampled_from(list(LEAVES)) | st.sampled_from(UNIONS),
    lambda inner: st.one_of(
        inner.map(lambda t: list[t]),  # type: ignore[valid-type]
        inner.map(lambda t: dict[str, t]),  # type: ignore[valid-type]
        inner.map(lambda t: Optional[t]),
    ),
    max_leaves=3,
)


def same(a: Any, b: Any) -> bool:
    """Equality that also requires equal types, treats NaN as equal to NaN and tells -0.0 from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b


def reparsed(lit: literals_pb2.Literal) -> literals_pb2.Literal:
    out = literals_pb2.Literal()
    out.ParseFromString(lit.SerializeToString())
    return out


@given(st.data())
def test_round_trip_by_python_type(data):
    python_type = data.draw(TYPES, label="type")
    value = data.draw(values_for(python_type), label="value")
    lit = reparsed(TypeEngine.to_literal(value, python_type))
    assert same(TypeEngine.to_python_value(lit, python_type), value)


@given(st.data())
def test_round_trip_by_literal_type(data):
    python_type = data.draw(TYPES, label="type")
    value = data.draw(values_for(python_type), label="value")
    lt = TypeEngine.to_literal_type(python_type)
    lit = reparsed(TypeEngine.to_literal(value, literal_type=lt))
    assert same(TypeEngine.to_python_value(lit, literal_type=lt), value)
    assert lit == TypeEngine.to_literal(value, python_type)  # both paths write the same literal


@given(st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31)))
def test_naive_datetimes_come_back_as_utc(value):
    lit = TypeEngine.to_literal(value, datetime.datetime)
    assert TypeEngine.to_python_value(lit, datetime.datetime) == value.replace(tzinfo=UTC)


@given(INT64)
def test_ints_read_as_floats_and_back(value):
    as_float = TypeEngine.to_python_value(TypeEngine.to_literal(value, int), float)
    assert as_float == float(value)
    if abs(value) < 2**53:
        assert TypeEngine.to_python_value(TypeEngine.to_literal(as_float, float), int) == value


# ----------------------------------------------------------------------------- enums and dataclasses


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    NON_BMP = "\U0001d11e"


@dataclasses.dataclass
class Inner:
    n: int
    when: Optional[datetime.datetime] = None


@dataclasses.dataclass
class Record:
    n: int
    x: float
    text: str
    flag: bool
    when: datetime.datetime
    span: datetime.timedelta
    xs: list[int]
    by_name: dict[str, float]
    maybe: Optional[str]
    color: Color
    inner: Inner
    inners: list[Inner]


INNERS = st.builds(Inner, n=INT64, when=st.none() | AWARE)
# Inside a dataclass a duration travels as float seconds (mashumaro's encoding, as in flytekit), which is
# exact to the microsecond only while |seconds| < 2**32 (about 136 years): generated within ±100 years.
FLOAT_SECONDS_DURATIONS = st.timedeltas(
    min_value=datetime.timedelta(days=-36_500), max_value=datetime.timedelta(days=36_500)
)
RECORDS = st.builds(
    Record, n=INT64, x=FLOATS, text=TEXT, flag=st.booleans(), when=AWARE, span=FLOAT_SECONDS_DURATIONS,
    xs=st.lists(INT64, max_size=4), by_name=st.dictionaries(TEXT, FLOATS, max_size=3), maybe=st.none() | TEXT,
    color=st.sampled_from(Color), inner=INNERS, inners=st.lists(INNERS, max_size=2),
)  # fmt: skip


@given(st.sampled_from(Color), st.sampled_from([Color, list[Color], dict[str, Color], Optional[Color]]))
def test_enum_round_trip(value, python_type):
    wrapped = {list[Color]: [value, value], dict[str, Color]: {"k": value}}.get(python_type, value)
    lit = reparsed(TypeEngine.to_literal(wrapped, python_type))
    assert TypeEngine.to_python_value(lit, python_type) == wrapped


@given(RECORDS, st.sampled_from(["one", "list", "map", "optional"]))
def test_dataclass_round_trip(record, shape):
    python_type, value = {
        "one": (Record, record),
        "list": (list[Record], [record, record]),
        "map": (dict[str, Record], {"k": record}),
        "optional": (Optional[Record], record),
    }[shape]
    lit = reparsed(TypeEngine.to_literal(value, python_type))
    assert same(TypeEngine.to_python_value(lit, python_type), value)


# ----------------------------------------------------------------------------- data through storage


@contextlib.contextmanager
def scratch_context() -> Iterator[ConversionContext]:
    """A fresh conversion context per example, removed afterwards (function-scoped fixtures are not reset)."""
    with tempfile.TemporaryDirectory(prefix="taskbox-props-") as root:
        yield ConversionContext(raw_output_prefix=os.path.join(root, "raw"), working_dir=os.path.join(root, "work"))


@given(st.binary(max_size=4096), st.sampled_from([File, Optional[File], list[File]]))
def test_file_round_trip_keeps_the_bytes(content, python_type):
    with scratch_context() as ctx:
        path = os.path.join(ctx.working_dir, "in.bin")
        os.makedirs(ctx.working_dir, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(content)
        value = [File(path)] if python_type == list[File] else File(path)
        lit = reparsed(TypeEngine.to_literal(value, python_type, ctx=ctx))
        back = TypeEngine.to_python_value(lit, python_type, ctx=ctx)
        handle = back[0] if isinstance(back, list) else back
        assert handle.uri.startswith(ctx.raw_output_prefix)  # uploaded, not pointing back at the source
        with handle.open("rb") as fh:
            assert fh.read() == content


NAMES = st.text(alphabet="abcxyz_-.0123456789é", min_size=1, max_size=8).filter(lambda n: n not in (".", ".."))


@given(st.dictionaries(st.lists(NAMES, min_size=1, max_size=3).map("/".join), st.binary(max_size=256), max_size=5))
def test_directory_round_trip_keeps_the_tree(files):
    paths = sorted(files)
    if any(other.startswith(p + "/") for p in paths for other in paths):
        return  # a name cannot be both a file and a directory
    with scratch_context() as ctx:
        src = os.path.join(ctx.working_dir, "tree")
        os.makedirs(src)
        for rel, content in files.items():
            os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
            with open(os.path.join(src, rel), "wb") as fh:
                fh.write(content)
        lit = reparsed(TypeEngine.to_literal(Directory(src), Directory, ctx=ctx))
        back = TypeEngine.to_python_value(lit, Directory, ctx=ctx)
        assert sorted(back.files()) == paths
        for rel, content in files.items():
            with open(os.path.join(back.download(), rel), "rb") as fh:
                assert fh.read() == content


COLUMNS = {
    "int64": INT64,
    "float": FLOATS.filter(lambda x: not math.isnan(x)),  # NaN != NaN in table comparison; NaN is covered above
    "text": TEXT,
    "flag": st.booleans(),
    "when": AWARE.map(lambda d: d.astimezone(UTC).replace(microsecond=d.microsecond)),
}


@given(
    st.integers(0, 5).flatmap(
        lambda n: st.fixed_dictionaries({k: st.lists(v, min_size=n, max_size=n) for k, v in COLUMNS.items()})
    )
)
def test_structured_dataset_round_trip_through_parquet(columns):
    import pyarrow as pa

    table = pa.table({
        "int64": pa.array(columns["int64"], pa.int64()),
        "float": pa.array(columns["float"], pa.float64()),
        "text": pa.array(columns["text"], pa.string()),
        "flag": pa.array(columns["flag"], pa.bool_()),
        "when": pa.array(columns["when"], pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    with scratch_context() as ctx:
        lit = reparsed(TypeEngine.to_literal(StructuredDataset(dataframe=table), StructuredDataset, ctx=ctx))
        back = TypeEngine.to_python_value(lit, StructuredDataset, ctx=ctx).to_arrow()
        assert back.schema.equals(table.schema) and back.to_pylist() == table.to_pylist()
