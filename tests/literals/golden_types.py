"""taskbox mirrors of the Python types used by tests/golden/make_fixtures.py (same names and fields)."""

# ruff: noqa: UP006, UP035, UP045 - typing.List/Optional/Union spelled out on purpose

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
from typing import Dict, List, Optional

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


def record_from_json(data: dict) -> Record:
    return Record(
        count=data["count"],
        ratio=data["ratio"],
        name=data["name"],
        flag=data["flag"],
        values=list(data["values"]),
        scores=dict(data["scores"]),
        maybe=data["maybe"],
        inner=Inner(**data["inner"]),
        color=Color(data["color"]),
        when=datetime.datetime.fromisoformat(data["when"]),
        extras=[Inner(**e) for e in data["extras"]],
        note=data["note"],
    )


@functools.cache
def settings_model():
    """The pydantic mirror, built lazily so importing this module does not import pydantic."""
    import pydantic

    class Settings(pydantic.BaseModel):
        name: str
        retries: int = 3
        ratio: float = 0.5
        tags: List[str] = []
        limits: Optional[Dict[str, int]] = None
        color: Color = Color.RED

    return Settings
