"""Offloaded literals: large outputs stored beside ``outputs.pb`` and referenced by URI.

Why: propeller keeps literals in its etcd-backed state, so flytekit's entrypoint moves any output
literal of at least ``_F_L_MIN_SIZE_MB`` MiB into ``<output_prefix>/<var>_offloaded_metadata.pb`` and
puts ``Literal{offloaded_metadata{uri, size_bytes, inferred_type}, hash}`` in ``outputs.pb`` instead
(F:flytekit/bin/entrypoint.py ``_dispatch_execute``); literals of ``_F_L_MAX_SIZE_MB`` MiB (default
1000) or more fail the task. Readers fetch the serialized ``Literal`` before decoding
(``TypeEngine.unwrap_offloaded_literal``).

Invariants:
    * The offloaded file holds the serialized original ``Literal`` (including its own hash).
    * The replacement keeps the original hash if it has one, else flytekit's deterministic hash:
      base64(sha256(json.dumps(MessageToDict(literal), sort_keys=True, separators=(",", ":")))).
    * Sizes are ``Literal.ByteSize()``; the maximum is checked before the minimum, both with ``>=``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from taskbox import settings
from taskbox.errors import ConfigError, InputError, OutputError, PlatformError

__all__ = [
    "OffloadedDecodeError",
    "compute_hash_string",
    "load_offloaded",
    "offload_encoded",
    "offload_limits_from_env",
    "offload_literals",
]

MIN_SIZE_ENV = "_F_L_MIN_SIZE_MB"
MAX_SIZE_ENV = "_F_L_MAX_SIZE_MB"
_MIB = 1024 * 1024


def compute_hash_string(message: Any) -> str:
    """Flytekit's ``compute_hash_string``: a stable base64 SHA-256 of a protobuf message's JSON form."""
    import base64
    import hashlib
    import json

    from google.protobuf import json_format  # lazy: only offloading needs it

    text = json.dumps(json_format.MessageToDict(message), sort_keys=True, separators=(",", ":"))
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("utf-8")


class OffloadedDecodeError(InputError):
    """An offloaded input literal whose bytes do not parse: ``USER:InvalidInput``, or the platform's.

    Under ``execute``/``fast-execute``/``a0`` the platform (an upstream task's SDK) wrote it, as it wrote
    ``inputs.pb``: :mod:`taskbox.entrypoint.blame` makes it ``SYSTEM:InputsCorrupt``, recoverable.
    """


def load_offloaded(literal: literals_pb2.Literal) -> literals_pb2.Literal:
    """Fetch and parse the literal an ``offloaded_metadata`` literal points to.

    Raises:
        InputError: The reference has no URI (:class:`OffloadedDecodeError`: the stored bytes are not a
            ``Literal``).
        StorageError: Reading the object failed.

    """
    uri = literal.offloaded_metadata.uri
    if not uri:
        raise InputError("an offloaded literal has no uri")
    from taskbox import storage

    data = storage.read_bytes(uri)
    loaded = literals_pb2.Literal()
    try:
        loaded.ParseFromString(data)
    except Exception as exc:
        raise OffloadedDecodeError(f"the offloaded literal at {uri} is not a serialized Literal: {exc}") from exc
    return loaded


def offload_limits_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """Read flytekit's offloading switches.

    Args:
        environ: Environment to read; ``os.environ`` if omitted.

    Returns:
        ``(min_bytes, max_bytes)`` when ``_F_L_MIN_SIZE_MB`` is set, else ``None``.

    Raises:
        PlatformError: A size is not an integer number of MiB (not recoverable).

    """
    env = os.environ if environ is None else environ
    if MIN_SIZE_ENV not in env:
        return None
    try:
        min_bytes = settings.integer(MIN_SIZE_ENV, environ=env)
        max_bytes = settings.integer(MAX_SIZE_ENV, environ=env)
    except ConfigError as exc:  # set by Flyte's platform, not the user
        raise PlatformError(f"invalid literal offloading size in the environment: {exc}", recoverable=False) from exc
    return min_bytes, max_bytes


def _declared_type(spec: Any) -> types_pb2.LiteralType | None:
    if spec is None:
        return None
    if isinstance(spec, types_pb2.LiteralType):
        return spec
    if isinstance(getattr(spec, "type", None), types_pb2.LiteralType):  # interface_pb2.Variable
        return spec.type
    from taskbox.literals.engine import TypeEngine

    return TypeEngine.to_literal_type(spec)


def offload_literals(
    lm: literals_pb2.LiteralMap,
    output_prefix: str,
    min_bytes: int,
    max_bytes: int,
    *,
    variables: Mapping[str, Any] | None = None,
) -> literals_pb2.LiteralMap:
    """Move literals of at least ``min_bytes`` to ``<output_prefix>/<name>_offloaded_metadata.pb``.

    Args:
        lm: The output literal map.
        output_prefix: The task's output prefix (where ``outputs.pb`` goes).
        min_bytes: Offload literals at least this large.
        max_bytes: Refuse literals at least this large.
        variables: Declared output types (``LiteralType``, ``Variable`` or Python type) used as
            ``inferred_type``; inferred from the literal when absent.

    Returns:
        A new map with offloaded entries replaced by references; ``lm`` is not modified.

    Raises:
        OutputError: A literal is at least ``max_bytes`` large (names the output).
        StorageError: Writing an offloaded literal failed.

    """
    from taskbox import storage
    from taskbox.literals.typeinfo import infer_literal_type

    out = literals_pb2.LiteralMap()
    for name in sorted(lm.literals):
        literal = lm.literals[name]
        size = literal.ByteSize()
        if size >= max_bytes:
            raise OutputError(
                f"output {name!r} is too large to be offloaded: {size} bytes, the limit is {max_bytes} bytes"
            )
        if size < min_bytes:
            out.literals[name].CopyFrom(literal)
            continue
        uri = storage.join(output_prefix, f"{name}_offloaded_metadata.pb")
        storage.write_bytes(uri, literal.SerializeToString(deterministic=True))
        declared = _declared_type((variables or {}).get(name))
        ref = out.literals[name]
        ref.offloaded_metadata.uri = uri
        ref.offloaded_metadata.size_bytes = size
        ref.offloaded_metadata.inferred_type.CopyFrom(declared if declared is not None else infer_literal_type(literal))
        ref.hash = literal.hash or compute_hash_string(literal)
    return out


def offload_encoded(
    encoded: Any,
    output_prefix: str,
    min_bytes: int,
    max_bytes: int,
    *,
    variables: Mapping[str, Any] | None = None,
) -> Any:
    """:func:`offload_literals` for a :class:`taskbox.literals.wire.EncodedLiteralMap` (serialized literals).

    Only an offloaded literal is parsed (for its hash and, undeclared, its type); the others stay bytes.

    Returns:
        A new ``EncodedLiteralMap``; ``encoded`` is not modified.

    Raises:
        OutputError: A literal is at least ``max_bytes`` large (names the output).
        StorageError: Writing an offloaded literal failed.

    """
    from taskbox import storage
    from taskbox.literals.typeinfo import infer_literal_type
    from taskbox.literals.wire import EncodedLiteralMap

    out: dict[str, bytes] = {}
    for name in sorted(encoded.literals):
        data = encoded.literals[name]
        size = len(data)
        if size >= max_bytes:
            raise OutputError(
                f"output {name!r} is too large to be offloaded: {size} bytes, the limit is {max_bytes} bytes"
            )
        if size < min_bytes:
            out[name] = data
            continue
        uri = storage.join(output_prefix, f"{name}_offloaded_metadata.pb")
        storage.write_bytes(uri, data)
        literal = literals_pb2.Literal.FromString(data)
        declared = _declared_type((variables or {}).get(name))
        ref = literals_pb2.Literal()
        ref.offloaded_metadata.uri = uri
        ref.offloaded_metadata.size_bytes = size
        ref.offloaded_metadata.inferred_type.CopyFrom(declared if declared is not None else infer_literal_type(literal))
        ref.hash = literal.hash or compute_hash_string(literal)
        del literal
        out[name] = ref.SerializeToString(deterministic=True)
    return EncodedLiteralMap(out)
