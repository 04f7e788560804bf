"""Flyte 2 tasks and values for the ``a0`` wire tests; imported inside ``.venv-flyte2`` only (it needs ``flyte``).

Each case is an echo-shaped task ``f(x: T) -> T`` (the SDK builds its interface) and a value of ``T``.
``same(a, b)`` says whether the value read back equals the one sent (files and directories by content).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import os
import tempfile

import flyte
import pydantic
from flyte.io import Dir, File

env = flyte.TaskEnvironment("taskbox-v2-cases")


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x: int
    y: float
    label: str


class Model(pydantic.BaseModel):
    name: str
    tags: list[str]
    weight: float


@env.task
async def t_int(x: int) -> int:
    return x


@env.task
async def t_str(x: str) -> str:
    return x


@env.task
async def t_float(x: float) -> float:
    return x


@env.task
async def t_bool(x: bool) -> bool:
    return x


@env.task
async def t_datetime(x: datetime.datetime) -> datetime.datetime:
    return x


@env.task
async def t_list(x: list[int]) -> list[int]:
    return x


@env.task
async def t_dict(x: dict[str, float]) -> dict[str, float]:
    return x


@env.task
async def t_dataclass(x: Point) -> Point:
    return x


@env.task
async def t_pydantic(x: Model) -> Model:
    return x


@env.task
async def t_enum(x: Colour) -> Colour:
    return x


@env.task
async def t_optional(x: int | None) -> int | None:
    return x


@env.task
async def t_union(x: int | str) -> int | str:
    return x


@env.task
async def t_file(x: File) -> File:
    return x


@env.task
async def t_dir(x: Dir) -> Dir:
    return x


@env.task
async def t_dataframe(x: flyte.io.DataFrame) -> flyte.io.DataFrame:
    return x


class Opaque:
    """A type the SDK has no transformer for: it travels pickled (FlytePickle)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.value == self.value


@env.task
async def t_pickled(x: Opaque) -> Opaque:
    return x


@env.task
async def t_sleeps(x: int) -> int:
    """Writes ``$TASKBOX_TEST_MARKER`` once running, then sleeps (for the SIGTERM test)."""
    import asyncio

    with open(os.environ["TASKBOX_TEST_MARKER"], "w", encoding="utf-8") as fh:
        fh.write(str(os.getpid()))
    await asyncio.sleep(60)
    return x


@env.task
async def t_fails(x: int) -> int:
    raise ValueError(f"bad x: {x}")


def _file() -> File:
    fd, path = tempfile.mkstemp(suffix=".txt")
    os.write(fd, b"hello from a flyte.io.File\n")
    os.close(fd)
    return File.from_existing_remote(path)


def _dir() -> Dir:
    path = tempfile.mkdtemp()
    for name in ("a.txt", "b.txt"):
        with open(os.path.join(path, name), "w", encoding="utf-8") as fh:
            fh.write(name)
    return Dir.from_existing_remote(path)


def _dataframe() -> flyte.io.DataFrame:
    import pandas as pd

    path = tempfile.mkdtemp()
    pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"]}).to_parquet(os.path.join(path, "00000.parquet"))
    return flyte.io.DataFrame.from_existing_remote(path, format="parquet")


#: case name -> (task, value factory)
CASES = {
    "int": (t_int, lambda: 42),
    "str": (t_str, lambda: "héllo {{ .inputs.x }}"),
    "float": (t_float, lambda: 2.5),
    "bool": (t_bool, lambda: True),
    "datetime": (t_datetime, lambda: datetime.datetime(2026, 12, 7, 10, 30, 15, 123000, tzinfo=datetime.UTC)),
    "list": (t_list, lambda: [1, 2, 3]),
    "dict": (t_dict, lambda: {"a": 1.5, "b": -2.0}),
    "dataclass": (t_dataclass, lambda: Point(x=1, y=2.5, label="p")),
    "pydantic": (t_pydantic, lambda: Model(name="m", tags=["x", "y"], weight=0.5)),
    "enum": (t_enum, lambda: Colour.GREEN),
    "optional-none": (t_optional, lambda: None),
    "optional-set": (t_optional, lambda: 7),
    "union-int": (t_union, lambda: 3),
    "union-str": (t_union, lambda: "three"),
    "file": (t_file, _file),
    "dir": (t_dir, _dir),
    "dataframe": (t_dataframe, _dataframe),
    "pickled": (t_pickled, lambda: Opaque(3)),
}


async def same(a: object, b: object) -> bool:
    """Whether ``b`` (read back) equals ``a`` (sent); files, directories and tables by content."""
    if isinstance(a, File):
        with open(a.path, "rb") as fa, open(b.path, "rb") as fb:  # type: ignore[union-attr]
            return fa.read() == fb.read()
    if isinstance(a, Dir):
        return sorted(os.listdir(a.path)) == sorted(os.listdir(b.path))  # type: ignore[union-attr]
    if isinstance(a, flyte.io.DataFrame):
        import pandas as pd

        return pd.read_parquet(a.uri).equals(pd.read_parquet(b.uri))  # type: ignore[union-attr]
    return a == b
