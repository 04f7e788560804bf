"""Plain literals straight from and to protobuf bytes, without one protobuf message per element.

Why: issue 14 item 16. The Python protobuf runtime (upb) spends about 120 bytes per parsed or built
``Literal``; a ``list[int]`` of two million elements arrives as a 15 MiB ``inputs.pb`` and used to cost
~200 MiB to parse and as much again to build the outputs, so a 256 MiB input was an OOM kill without
an error document. Here ``inputs.pb`` is split into one byte string per input (a wire-compatible
``map<string, bytes>`` parsed by protobuf itself), and the plain shapes - int/float/str/bool, lists and
``str``-keyed maps of them, nested - are read and written directly in the wire format. Everything
else goes through :class:`~taskbox.literals.engine.TypeEngine`, one element at a time where the frame
around it is sound, so peak memory stays a small multiple of the file size.

Invariants:
    * Only the canonical shape takes the fast path: a ``Literal`` holding exactly one field (``scalar``
      with exactly one ``primitive`` holding exactly one value, or ``collection``, or ``map`` whose entries
      are ``key`` then ``value``). Anything else (a hash, metadata, unions, blobs, datetimes, unknown or
      reordered fields) is decoded by the engine, so every value equals what the engine returns.
    * The fast path is used only while no custom transformer is registered (they may claim any type).
    * Encoded bytes equal ``Literal.SerializeToString(deterministic=True)`` of the literal the engine
      builds, map entries in upb's deterministic key order (:func:`_map_order`), checked by the golden
      tests.
    * Bytes that do not parse raise :class:`InputDecodeError` saying the inputs are "not a serialized
      LiteralMap"; bytes refused only for their nesting (:func:`too_deep`) are a plain ``InputError``.
    * An input decodes to at most :func:`containers_allowed` lists and maps (its size x 6 / 64 + 1M);
      more is :class:`~taskbox.errors.InputTooLarge` (nests of empty lists would cost ~16x the file).
"""

from __future__ import annotations

import functools
import math
import struct
import typing
from collections.abc import Iterator
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, InputTooLarge, OutputError
from taskbox.literals.engine import TypeEngine, reprefix, strip_annotated

__all__ = [
    "EncodedLiteralMap",
    "InputDecodeError",
    "Plan",
    "containers_allowed",
    "decode_literal",
    "encode_literal",
    "parse_literal",
    "plan_for",
    "split_map",
    "too_deep",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_U64 = 1 << 64
_DOUBLE = struct.Struct("<d")
#: Tags (field number << 3 | wire type) of the fields the fast path reads and writes.
_LEN1 = 0x0A  # field 1, length-delimited: Literal.scalar, Scalar.primitive, LiteralCollection.literals, map key
_LEN2 = 0x12  # field 2, length-delimited: Literal.collection, map entry value
_LEN3 = 0x1A  # field 3, length-delimited: Literal.map, Primitive.string_value
_INTEGER, _FLOAT, _BOOLEAN = 0x08, 0x11, 0x20  # Primitive.integer (varint), float_value (fixed64), boolean
_SIMPLE = {types_pb2.INTEGER: "int", types_pb2.FLOAT: "float", types_pb2.STRING: "str", types_pb2.BOOLEAN: "bool"}
_HINTS = {int: "int", float: "float", str: "str", bool: "bool"}
_BIG = 1 << 16  # strings longer than this are copied as few times as possible


#: Lists and maps cost ~64 bytes each as Python objects, and as little as 4 bytes on the wire: an input of
#: mostly empty containers would take ~16x its size. One input may decode at most this many times its size
#: (+ :data:`CONTAINER_FLOOR_BYTES`) in container objects, which keeps every plain shape under 10x + 150 MiB.
CONTAINER_RATIO = 6
CONTAINER_FLOOR_BYTES = 64 * 1024 * 1024
_CONTAINER_COST = 64


def containers_allowed(size: int) -> int:
    """Return how many lists and maps an input of ``size`` bytes may decode to."""
    return (CONTAINER_RATIO * size + CONTAINER_FLOOR_BYTES) // _CONTAINER_COST


class InputDecodeError(InputError):
    """Inputs whose bytes do not parse: ``USER:InvalidInput``, or the platform's (:mod:`taskbox.entrypoint.blame`)."""


class _OverBudget(Exception):
    """More containers than :func:`containers_allowed`: the input would cost too much memory."""


class _Irregular(Exception):
    """The bytes are not framed as the fast path expects: the caller hands the whole literal to protobuf."""


_FALLBACK = object()  # a sound frame with content the fast path does not read: the engine decodes it


class Plan:
    """How one declared type is read and written: ``kind`` is int/float/str/bool/list/map.

    ``python_type``/``literal_type`` are the declaration, handed to the engine for what the fast path
    leaves to it; ``item`` is the plan of a list's elements or a map's values (``None``: the engine's).
    """

    __slots__ = ("item", "kind", "literal_type", "python_type")

    def __init__(self, kind: str, item: Plan | None, python_type: Any, literal_type: types_pb2.LiteralType | None):
        self.kind = kind
        self.item = item
        self.python_type = python_type
        self.literal_type = literal_type


def plan_for(python_type: Any, literal_type: types_pb2.LiteralType | None) -> Plan | None:
    """Return the fast-path plan for a declaration, or ``None`` when the engine must convert it whole.

    Args:
        python_type: A Python type hint (function tasks), or ``None``.
        literal_type: A declared ``LiteralType`` (templates), or ``None``; used when ``python_type`` is.

    """
    if TypeEngine._CUSTOM:  # TypeEngine.register loads the built-in families first; no need to here
        return None
    try:
        if python_type is not None:
            return _plan_hint(python_type)
        if literal_type is not None:
            return _plan_type(literal_type)
    except (TypeError, ValueError):
        return None
    return None


def _plan_type(lt: types_pb2.LiteralType) -> Plan | None:
    kind = lt.WhichOneof("type")
    if kind == "simple":
        simple = _SIMPLE.get(lt.simple)
        return Plan(simple, None, None, lt) if simple else None
    if kind == "collection_type":
        return Plan("list", _plan_type(lt.collection_type), None, lt)
    if kind == "map_value_type":
        return Plan("map", _plan_type(lt.map_value_type), None, lt)
    return None


def _plan_hint(t: Any) -> Plan | None:
    if t is not strip_annotated(t):
        return None  # Annotated may carry a transformer of its own
    if isinstance(t, type) and t in _HINTS:
        return Plan(_HINTS[t], None, t, TypeEngine.to_literal_type(t))
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is list and len(args) == 1:
        return Plan("list", _plan_hint(args[0]), t, TypeEngine.to_literal_type(t))
    if origin is dict and len(args) == 2 and args[0] is str and args[1] not in (Any, object):
        return Plan("map", _plan_hint(args[1]), t, TypeEngine.to_literal_type(t))
    return None


# ------------------------------------------------------------------------------------------ reading


def parse_literal(data: bytes) -> literals_pb2.Literal:
    """Parse one serialized ``Literal``; :class:`InputDecodeError` if it does not, ``InputError`` if too deep."""
    from google.protobuf.message import DecodeError

    literal = literals_pb2.Literal()
    try:
        literal.ParseFromString(data)
    except DecodeError as exc:
        if too_deep(exc):
            raise InputError(f"the inputs are nested deeper than protobuf's limit ({exc})") from None
        raise InputDecodeError(f"the inputs are not a serialized LiteralMap: {exc}") from None
    return literal


def too_deep(exc: Exception) -> bool:
    """Whether protobuf refused sound bytes for their nesting (past its 100 levels; Go's limit is 10,000)."""
    text = str(exc)
    return "MaxDepth" in text or "too many levels of nesting" in text or "recursion" in text.lower()


#: ``FileDescriptorProto`` of ``taskbox_wire.proto``: ``message LiteralMapBytes { map<string, bytes> literals = 1; }``,
#: serialized, so that no ``descriptor_pb2`` import (~3 ms) is paid at each start; tests/test_startup_imports.py
#: rebuilds it with ``descriptor_pb2`` and compares.
LITERAL_MAP_BYTES_PROTO = (
    b'\n\x12taskbox_wire.proto\x12\x0ctaskbox.wire"\x81\x01\n\x0fLiteralMapBytes\x12=\n\x08literals\x18\x01 '
    b"\x03(\x0b2+.taskbox.wire.LiteralMapBytes.LiteralsEntry\x1a/\n\rLiteralsEntry\x12\x0b\n\x03key\x18\x01 "
    b"\x01(\t\x12\r\n\x05value\x18\x02 \x01(\x0c:\x028\x01b\x06proto3"
)


@functools.cache
def _bytes_map_class() -> Any:
    """Build a message ``{map<string, bytes> literals = 1}``: ``LiteralMap`` on the wire, values unparsed."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(LITERAL_MAP_BYTES_PROTO)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("taskbox.wire.LiteralMapBytes"))


def split_map() -> Any:
    """Return an empty message that parses a serialized ``LiteralMap`` into name -> serialized ``Literal``."""
    return _bytes_map_class()()


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    result, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = buf[pos]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise _Irregular


def _frame(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a length prefix at ``pos``; return the payload's (start, end), which must lie within ``end``."""
    size, start = _varint(buf, pos)
    stop = start + size
    if stop > end:
        raise _Irregular
    return start, stop


def _primitive(buf: bytes, pos: int, end: int, kind: str) -> Any:
    """Read ``Literal{scalar{primitive{<one value>}}}`` spanning exactly [pos, end), or :data:`_FALLBACK`."""
    size = end - pos
    if 4 < size < 0x80:  # the usual case, both lengths one byte: inline the checks
        if buf[pos] != _LEN1 or buf[pos + 1] != size - 2 or buf[pos + 2] != _LEN1 or buf[pos + 3] != size - 4:
            return _FALLBACK
        pos += 4
    else:
        if pos >= end or buf[pos] != _LEN1:
            return _FALLBACK
        pos, stop = _frame(buf, pos + 1, end)
        if stop != end or pos >= end or buf[pos] != _LEN1:
            return _FALLBACK
        pos, stop = _frame(buf, pos + 1, end)
        if stop != end or pos >= end:
            return _FALLBACK
    tag = buf[pos]
    if tag == _INTEGER and kind == "int" and pos + 2 == end and buf[pos + 1] < 0x80:
        return buf[pos + 1]  # a one-byte varint
    if tag == _INTEGER and kind in ("int", "float"):
        value, pos = _varint(buf, pos + 1)
        if pos != end or value >= _U64:
            return _FALLBACK
        if value > _INT64_MAX:
            value -= _U64
        return value if kind == "int" else float(value)
    if tag == _FLOAT and kind in ("int", "float") and pos + 9 == end:
        (number,) = _DOUBLE.unpack_from(buf, pos + 1)
        if kind == "float":
            return number
        return int(number) if math.isfinite(number) else _FALLBACK  # flytekit truncates console floats
    if tag == _LEN3 and kind == "str":
        start, stop = _frame(buf, pos + 1, end)
        if stop != end:
            return _FALLBACK
        try:
            if stop - start > _BIG:
                return str(memoryview(buf)[start:stop], "utf-8")  # no copy of a big string's bytes
            return buf[start:stop].decode("utf-8")
        except UnicodeDecodeError:
            return _FALLBACK  # protobuf refuses it with the error the caller reports
    if tag == _BOOLEAN and kind == "bool":
        value, pos = _varint(buf, pos + 1)
        return bool(value) if pos == end else _FALLBACK
    return _FALLBACK


def _container(buf: bytes, pos: int, end: int, plan: Plan, ctx: Any, budget: list[int]) -> Any:
    """Read a collection or map literal spanning exactly [pos, end), or :data:`_FALLBACK`."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _OverBudget
    tag = _LEN2 if plan.kind == "list" else _LEN3
    if pos >= end or buf[pos] != tag:
        return _FALLBACK
    pos, stop = _frame(buf, pos + 1, end)
    if stop != end:
        return _FALLBACK
    item = plan.item
    out: Any
    if plan.kind == "list":
        out = []
        append = out.append
        primitive = item is not None and item.kind not in ("list", "map")
        while pos < end:
            if buf[pos] != _LEN1:
                raise _Irregular
            size = buf[pos + 1]
            if size < 0x80:
                start, pos = pos + 2, pos + 2 + size
                if pos > end:
                    raise _Irregular
            else:
                start, pos = _frame(buf, pos + 1, end)
            try:
                if primitive:
                    value = _primitive(buf, start, pos, item.kind)  # type: ignore[union-attr]
                else:
                    value = _read(buf, start, pos, item, ctx, budget) if item is not None else _FALLBACK
                if value is _FALLBACK:
                    value = _engine_item(buf[start:pos], plan, ctx)
            except InputError as exc:
                raise reprefix(exc, _index(len(out))) from exc
            append(value)
        return out
    out = {}
    while pos < end:
        if buf[pos] != _LEN1:
            raise _Irregular
        entry, pos = _frame(buf, pos + 1, end)
        if entry >= pos or buf[entry] != _LEN1:
            raise _Irregular
        key_start, key_stop = _frame(buf, entry + 1, pos)
        if key_stop >= pos or buf[key_stop] != _LEN2:
            raise _Irregular
        start, stop = _frame(buf, key_stop + 1, pos)
        if stop != pos:
            raise _Irregular
        try:
            key = buf[key_start:key_stop].decode("utf-8")
        except UnicodeDecodeError:
            raise _Irregular from None
        try:
            value = _read(buf, start, stop, item, ctx, budget) if item is not None else _FALLBACK
            out[key] = _engine_item(buf[start:stop], plan, ctx) if value is _FALLBACK else value
        except InputError as exc:
            raise reprefix(exc, _index(key)) from exc
    return out


def _read(buf: bytes, pos: int, end: int, plan: Plan, ctx: Any, budget: list[int]) -> Any:
    if plan.kind in ("list", "map"):
        return _container(buf, pos, end, plan, ctx, budget)
    return _primitive(buf, pos, end, plan.kind)


def _engine_item(data: bytes, plan: Plan, ctx: Any) -> Any:
    """Decode one element the fast path left alone, through the engine."""
    python_type, literal_type = _item_declaration(plan)
    return TypeEngine.to_python_value(parse_literal(data), python_type, literal_type=literal_type, ctx=ctx)


def _item_declaration(plan: Plan) -> tuple[Any, types_pb2.LiteralType | None]:
    """(Python type, LiteralType) of a list's elements or a map's values, as the container declares them."""
    if plan.item is not None:
        return plan.item.python_type, plan.item.literal_type
    args = typing.get_args(plan.python_type) if plan.python_type is not None else ()
    lt = plan.literal_type
    if plan.python_type is not None:
        return (args[-1] if args else None), None
    return None, None if lt is None else (lt.collection_type if plan.kind == "list" else lt.map_value_type)


def _index(index: int | str) -> str:
    """Return the error prefix for an element: ``[2]`` or ``['k']``, as the container transformers word it."""
    return f"[{index!r}]" if isinstance(index, str) else f"[{index}]"


def decode_literal(data: bytes, python_type: Any, literal_type: types_pb2.LiteralType | None, ctx: Any) -> Any:
    """Convert one serialized ``Literal`` to its Python value, as ``TypeEngine.to_python_value`` would.

    Args:
        data: The serialized literal.
        python_type: The declared Python type, or ``None``.
        literal_type: The declared ``LiteralType``, or ``None``.
        ctx: The conversion context.

    Raises:
        InputTooLarge: The literal holds more lists and maps than :func:`containers_allowed` for its size.
        InputError: The literal does not match the declaration, or the bytes do not parse.
        StorageError: Fetching an offloaded literal failed.

    """
    plan = plan_for(python_type, literal_type)
    if plan is not None:
        origins = getattr(ctx, "origins", None)
        noted = origins.noted if origins is not None else 0
        try:
            value = _read(data, 0, len(data), plan, ctx, [containers_allowed(len(data))])
        except (_Irregular, IndexError):
            value = _FALLBACK
        except _OverBudget:
            raise InputTooLarge(
                f"it holds more than {containers_allowed(len(data))} lists and maps in {len(data)} bytes: as Python "
                f"values they would take over {CONTAINER_RATIO} times its size in memory"
            ) from None
        if value is not _FALLBACK:
            if origins is not None and origins.noted != noted:  # an element carried a hash or metadata
                origins.note_literal(value, parse_literal(data))
            return value
    literal = parse_literal(data)
    del data  # the caller holds no reference: the bytes go before the conversion allocates
    return TypeEngine.to_python_value(literal, python_type, literal_type=literal_type, ctx=ctx)


# ------------------------------------------------------------------------------------------ writing


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    _put_varint(out, value)
    return bytes(out)


def _put_field(out: bytearray, tag: int, payload: bytes | bytearray) -> None:
    out.append(tag)
    _put_varint(out, len(payload))
    out += payload


def _primitive_bytes(kind: str, value: Any) -> bytes | None:
    """Return ``Literal{scalar{primitive{value}}}`` serialized, or ``None`` if the value is not plain."""
    cls = type(value)
    if kind == "int" and cls is int:
        if 0 <= value < 0x80:
            return _SMALL_INTS[value]
        if not _INT64_MIN <= value <= _INT64_MAX:
            return None
        prim = bytearray([_INTEGER])
        _put_varint(prim, value + _U64 if value < 0 else value)
    elif kind == "float" and cls is float:
        prim = bytearray([_FLOAT])
        prim += _DOUBLE.pack(value)
    elif kind == "str" and cls is str:
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            return None  # the engine reports it
        if len(data) > _BIG:  # one copy of a big string's bytes, not one per level
            prim = bytearray([_LEN3])
            _put_varint(prim, len(data))
            scalar = bytearray([_LEN1])
            _put_varint(scalar, len(prim) + len(data))
            head = bytearray([_LEN1])
            _put_varint(head, len(scalar) + len(prim) + len(data))
            return b"".join((head, scalar, prim, data))
        prim = bytearray([_LEN3])
        _put_varint(prim, len(data))
        prim += data
    elif kind == "bool" and cls is bool:
        return _TRUE if value else _FALSE
    else:
        return None
    size = len(prim)
    if size < 0x7E:  # both lengths one byte
        return bytes((_LEN1, size + 2, _LEN1, size)) + prim
    scalar = bytearray()
    _put_field(scalar, _LEN1, prim)
    out = bytearray()
    _put_field(out, _LEN1, scalar)
    return bytes(out)


_SMALL_INTS = tuple(bytes((_LEN1, 4, _LEN1, 2, _INTEGER, i)) for i in range(0x80))
_TRUE, _FALSE = bytes((_LEN1, 4, _LEN1, 2, _BOOLEAN, 1)), bytes((_LEN1, 4, _LEN1, 2, _BOOLEAN, 0))


def _put_primitive(out: bytearray, kind: str, value: Any) -> bool:
    """Append ``Literal{scalar{primitive{value}}}``; return ``False`` (appending nothing) if not plain."""
    data = _primitive_bytes(kind, value)
    if data is None:
        return False
    out += data
    return True


def _put(out: bytearray, plan: Plan, value: Any, ctx: Any) -> bool:
    """Append the literal for ``value``; return ``False`` (appending nothing) if the engine must build it."""
    if plan.kind not in ("list", "map"):
        return _put_primitive(out, plan.kind, value)
    if plan.kind == "list":
        if not isinstance(value, list):
            return False
        body = bytearray()
        kind = plan.item.kind if plan.item is not None else None
        if kind in ("int", "float", "str", "bool"):
            for i, item in enumerate(value):
                data = _primitive_bytes(kind, item)
                if data is None:
                    _put_item(body, plan, item, ctx, i)
                else:
                    body.append(_LEN1)
                    _put_varint(body, len(data))
                    body += data
        else:
            for i, item in enumerate(value):
                _put_item(body, plan, item, ctx, i)
        _put_field(out, _LEN2, body)
        return True
    if not isinstance(value, dict) or not all(type(k) is str for k in value):
        return False
    body = bytearray()
    for key in _map_order(value):
        element = bytearray()
        _put_item(element, plan, value[key], ctx, key)
        entry = bytearray()
        try:
            _put_field(entry, _LEN1, key.encode("utf-8"))
        except UnicodeEncodeError:
            return False  # the engine reports it
        _put_field(entry, _LEN2, element)
        _put_field(body, _LEN1, entry)
    _put_field(out, _LEN3, body)
    return True


def _map_order(keys: Any) -> Iterator[str]:
    """Yield string map keys in upb's deterministic order: bytewise, a key after the keys it prefixes.

    Code point order is UTF-8 byte order, and in it the keys extending a key ``p`` directly follow ``p``;
    a stack moves each ``p`` after them (a post-order walk of the prefix tree) without a sort key per key.
    """
    stack: list[str] = []
    for key in sorted(keys):
        while stack and not key.startswith(stack[-1]):
            yield stack.pop()
        stack.append(key)
    while stack:
        yield stack.pop()


def _put_item(out: bytearray, plan: Plan, value: Any, ctx: Any, index: int | str) -> None:
    """Append one element (as ``LiteralCollection.literals`` when ``index`` is an int, else bare)."""
    element = bytearray()
    try:
        if plan.item is None or not _put(element, plan.item, value, ctx):
            element = bytearray(_engine_literal(plan, value, ctx))
    except OutputError as exc:
        raise reprefix(exc, _index(index)) from exc
    if isinstance(index, int):
        _put_field(out, _LEN1, element)
    else:
        out += element


def _engine_literal(plan: Plan, value: Any, ctx: Any) -> bytes:
    python_type, literal_type = _item_declaration(plan)
    literal = TypeEngine.to_literal(value, python_type, literal_type=literal_type, ctx=ctx)
    return literal.SerializeToString(deterministic=True)


def encode_literal(value: Any, python_type: Any, literal_type: types_pb2.LiteralType | None, ctx: Any) -> bytes:
    """Convert a Python value to a serialized ``Literal``, as ``TypeEngine.to_literal`` would.

    Returns:
        The bytes of ``TypeEngine.to_literal(...).SerializeToString(deterministic=True)``.

    Raises:
        OutputError: The value does not match the declaration.
        StorageError: Uploading data failed.

    """
    origins = getattr(ctx, "origins", None)
    # An input literal carried a hash or metadata: the engine puts them back on values passed through.
    plan = None if origins is not None and origins.restores else plan_for(python_type, literal_type)
    if plan is not None and plan.kind not in ("list", "map"):
        data = _primitive_bytes(plan.kind, value)
        if data is not None:
            return data
    elif plan is not None:
        out = bytearray()
        if _put(out, plan, value, ctx):
            return bytes(out)
    literal = TypeEngine.to_literal(value, python_type, literal_type=literal_type, ctx=ctx)
    return literal.SerializeToString(deterministic=True)


class EncodedLiteralMap:
    """A ``LiteralMap`` held as name -> serialized ``Literal``; :meth:`SerializeToString` as protobuf's.

    Args:
        literals: Output name -> serialized ``Literal``.

    """

    def __init__(self, literals: dict[str, bytes]) -> None:
        self.literals = literals

    def SerializeToString(self, deterministic: bool = True) -> bytes:
        """Return the ``LiteralMap`` bytes, entries in protobuf's deterministic order (:func:`_map_order`)."""
        parts: list[bytes] = []
        for name in _map_order(self.literals):
            key, data = bytearray(), self.literals[name]
            _put_field(key, _LEN1, name.encode("utf-8"))
            head = bytearray([_LEN1])
            _put_varint(head, len(key) + 1 + len(_varint_bytes(len(data))) + len(data))
            parts += (bytes(head), bytes(key), bytes([_LEN2]), _varint_bytes(len(data)), data)
        return b"".join(parts)  # one copy of the literals, not one per level

    def to_message(self) -> literals_pb2.LiteralMap:
        """Parse into a ``LiteralMap`` message (costs protobuf's memory per element)."""
        return literals_pb2.LiteralMap.FromString(self.SerializeToString())
