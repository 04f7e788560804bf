"""JSON schemas for dataclasses, shaped like the ones flytekit gets from mashumaro.

Why: flytekit (>= 1.14) puts ``mashumaro.jsonschema.build_json_schema(cls).to_dict()`` into a dataclass's
``LiteralType.metadata``. The UI renders input forms from it and ``pyflyte``/``FlyteRemote`` rebuild
the dataclass from it, so a taskbox task should declare the same schema. mashumaro is not a taskbox
dependency, so the subset of its rules that dataclasses actually use is reproduced here.

Invariants:
    * Output is plain JSON data (dicts, lists, str, float/int, bool, None), ready for ``Struct.update``.
    * Rules follow mashumaro 3.x ``jsonschema/schema.py``: nested dataclasses are inlined with a
      ``title``; ``required`` lists fields without a default; ``default`` appears only for plain
      defaults (not ``default_factory``); optional types become ``anyOf`` with ``{"type": "null"}``.
    * Types with no known rule map to ``{}`` (any value), never to an error.
"""

from __future__ import annotations

import datetime
import enum
import sys
import typing
from typing import Any

from taskbox.literals.engine import is_union, strip_annotated
from taskbox.literals.types import Directory, File, StructuredDataset

__all__ = ["json_schema"]

_FILE_PATH = {"default": None, "anyOf": [{"type": "string"}, {"format": "path", "type": "string"}]}
_FILE_SCHEMA = {
    "type": "object",
    "title": "FlyteFile",
    "additionalProperties": False,
    "properties": {
        "path": _FILE_PATH,
        "metadata": {
            "default": None,
            "anyOf": [
                {"type": "object", "propertyNames": {"type": "string"}, "additionalProperties": {"type": "string"}},
                {"type": "null"},
            ],
        },
    },
}
_DIRECTORY_SCHEMA = {
    "type": "object",
    "title": "FlyteDirectory",
    "additionalProperties": False,
    "properties": {"path": _FILE_PATH},
}
_DATASET_SCHEMA = {
    "type": "object",
    "title": "StructuredDataset",
    "additionalProperties": False,
    "properties": {
        "uri": {"default": None, "anyOf": [{"type": "string"}, {"type": "null"}]},
        "file_format": {"default": "", "anyOf": [{"type": "string"}, {"type": "null"}]},
    },
}
_HANDLES = (File, Directory, StructuredDataset)
_SIMPLE: dict[Any, dict[str, Any]] = {
    int: {"type": "integer"},
    float: {"type": "number"},
    str: {"type": "string"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.timedelta: {"type": "number", "format": "time-delta"},
    dict: {"type": "object"},
    list: {"type": "array"},
}


def json_schema(t: Any, _seen: frozenset[type] = frozenset()) -> dict[str, Any]:
    """Return the mashumaro-style JSON schema of a type hint (a dataclass at the top level).

    Args:
        t: A type hint.

    Returns:
        The schema as JSON data.

    """
    t = strip_annotated(t)
    if t in _SIMPLE:
        return dict(_SIMPLE[t])
    if is_union(t):
        return {"anyOf": [json_schema(arg, _seen) for arg in typing.get_args(t)]}
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin is list:
        return {"type": "array", "items": json_schema(args[0], _seen)} if args else {"type": "array"}
    if origin is dict:
        if not args:
            return {"type": "object"}
        return {
            "type": "object",
            "additionalProperties": json_schema(args[1], _seen),
            "propertyNames": json_schema(args[0], _seen),
        }
    if not isinstance(t, type):
        return {}
    if issubclass(t, enum.Enum):
        return {"enum": [member.value for member in t]}
    if issubclass(t, File):
        return _copy(_FILE_SCHEMA)
    if issubclass(t, Directory):
        return _copy(_DIRECTORY_SCHEMA)
    if issubclass(t, StructuredDataset):
        return _copy(_DATASET_SCHEMA)
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and issubclass(t, pydantic.BaseModel):
        return typing.cast("type[Any]", t).model_json_schema()
    if hasattr(t, "__dataclass_fields__"):
        return _dataclass_schema(t, _seen)
    return {}


def _dataclass_schema(t: type, seen: frozenset[type]) -> dict[str, Any]:
    if t in seen:  # recursive dataclasses: mashumaro switches to $refs; keep it simple and open
        return {"type": "object", "title": t.__name__}
    from taskbox.literals.structs import field_types, to_plain

    hints = field_types(t)
    properties: dict[str, Any] = {}
    required: list[str] = []
    import dataclasses  # lazy: t is a dataclass, so its module imported dataclasses

    for field in dataclasses.fields(t):
        schema = json_schema(hints.get(field.name, Any), seen | {t})
        if field.default is not dataclasses.MISSING and not isinstance(field.default, _HANDLES):
            try:
                schema["default"] = to_plain(None, field.default, hints.get(field.name, Any))
            except (TypeError, ValueError):
                pass
        elif field.default_factory is dataclasses.MISSING:
            required.append(field.name)
        properties[field.name] = schema
    out: dict[str, Any] = {"type": "object", "title": t.__name__, "additionalProperties": False}
    if properties:
        out["properties"] = properties
    if required:
        out["required"] = required
    return out


def _copy(schema: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(schema)
