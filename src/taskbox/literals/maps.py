"""Whole interfaces: a ``LiteralMap`` of inputs to keyword arguments, produced values to a ``LiteralMap``.

Why: the entrypoint converts all inputs before the task runs and all outputs after; failures must name
the variable, and a missing or undeclared variable is an error of its own kind (flytekit raises on extra
inputs; propeller reports missing outputs as ``OutputsNotFound``).

Invariants:
    * Inputs fail with :class:`~taskbox.errors.InputError`, outputs with
      :class:`~taskbox.errors.OutputError`; the message starts with ``input 'x'`` / ``output 'x'``.
      Storage errors keep their class (and retry flag) and gain the same prefix.
    * A variable's declared type may be a ``LiteralType``, a Python type hint or an
      ``interface_pb2.Variable``; a ``LiteralType`` drives the conversion by itself.
    * The ``encoded`` variants (the entrypoint's) hold each literal as bytes and convert plain shapes
      through :mod:`taskbox.literals.wire`; they return what the message variants return, and drop each
      input's bytes once it is converted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError, TaskboxError
from taskbox.literals.context import ConversionContext
from taskbox.literals.engine import TypeEngine, reprefix
from taskbox.literals.typeinfo import describe_python_type, describe_type

__all__ = ["encoded_map_to_python", "literal_map_to_python", "python_to_encoded_map", "python_to_literal_map"]


def _split(spec: Any) -> tuple[Any, types_pb2.LiteralType | None]:
    if isinstance(spec, types_pb2.LiteralType):
        return None, spec
    declared = getattr(spec, "type", None)
    if isinstance(declared, types_pb2.LiteralType):  # interface_pb2.Variable
        return None, declared
    return spec, None


def _describe(spec: Any) -> str:
    python_type, literal_type = _split(spec)
    return describe_type(literal_type) if literal_type is not None else describe_python_type(python_type)


def literal_map_to_python(
    lm: literals_pb2.LiteralMap,
    variables: Mapping[str, Any],
    ctx: ConversionContext | None = None,
    *,
    optional: Collection[str] = (),
) -> dict[str, Any]:
    """Convert task inputs to Python values.

    Args:
        lm: The inputs (``inputs.pb``).
        variables: Declared inputs: name -> ``LiteralType`` | Python type | ``Variable``.
        ctx: Conversion context.
        optional: Declared inputs that may be absent (a function task's defaulted parameters); they
            are left out of the result.

    Returns:
        name -> value, in the order of ``variables``.

    Raises:
        InputError: An input is missing, undeclared or of the wrong type (names the input).

    """
    _check_inputs(lm.literals, variables)
    out: dict[str, Any] = {}
    for name, spec in variables.items():
        if name not in lm.literals:
            if name in optional:
                continue
            raise InputError(f"input {name!r} ({_describe(spec)}) is missing")
        python_type, literal_type = _split(spec)
        try:
            out[name] = TypeEngine.to_python_value(lm.literals[name], python_type, literal_type=literal_type, ctx=ctx)
        except TaskboxError as exc:
            raise reprefix(exc, f"input {name!r}") from exc
        if ctx is not None and ctx.origins is not None:
            ctx.origins.claim_input(name, out[name])
    return out


def python_to_literal_map(
    values: Mapping[str, Any], variables: Mapping[str, Any], ctx: ConversionContext | None = None
) -> literals_pb2.LiteralMap:
    """Convert task outputs to a ``LiteralMap``.

    Args:
        values: Produced values by output name.
        variables: Declared outputs: name -> ``LiteralType`` | Python type | ``Variable``.
        ctx: Conversion context (uploads go under its raw-output prefix).

    Raises:
        OutputError: An output is missing, undeclared or of the wrong type (names the output).
        StorageError: Uploading an output's data failed (prefixed with the output's name).

    """
    extra = sorted(set(values) - set(variables))
    if extra:
        raise OutputError(f"output {extra[0]!r} is not declared by the task (declared: {sorted(variables)})")
    lm = literals_pb2.LiteralMap()
    for name, spec in variables.items():
        if name not in values:
            raise OutputError(f"output {name!r} ({_describe(spec)}) was not produced")
        python_type, literal_type = _split(spec)
        try:
            literal = TypeEngine.to_literal(values[name], python_type, literal_type=literal_type, ctx=ctx)
        except TaskboxError as exc:
            raise reprefix(exc, f"output {name!r}") from exc
        origins = ctx.origins if ctx is not None else None
        if origins is not None and origins.holds_input(name):  # an immutable input passed through by name
            literal = origins.restore_output(name, values[name], literal) or literal
        lm.literals[name].CopyFrom(literal)
    return lm


def _check_inputs(names: Collection[str], variables: Mapping[str, Any]) -> None:
    extra = sorted(set(names) - set(variables))
    if extra:
        raise InputError(f"input {extra[0]!r} is not declared by the task (declared: {sorted(variables)})")


def encoded_map_to_python(
    encoded: dict[str, bytes],
    variables: Mapping[str, Any],
    ctx: ConversionContext | None = None,
    *,
    optional: Collection[str] = (),
) -> dict[str, Any]:
    """Convert task inputs held as name -> serialized ``Literal`` (see :func:`taskbox.literals.wire.split_map`).

    Like :func:`literal_map_to_python`; ``encoded`` is emptied as the inputs are converted, so each
    input's bytes are freed as soon as its value exists. Declared inputs are converted before an
    undeclared or missing input is reported, so damaged bytes are reported first, as before.

    Raises:
        InputError: An input is missing, undeclared, of the wrong type or not a serialized literal.

    """
    from taskbox.literals import wire

    # Bytes that do not parse are found while converting, so conversion comes first: a damaged file is
    # reported as such, as when the whole map was parsed before anything else.
    extra = sorted(set(encoded) - set(variables))
    out: dict[str, Any] = {}
    missing: str | None = None
    for name, spec in variables.items():
        if name not in encoded:
            if name not in optional and missing is None:
                missing = f"input {name!r} ({_describe(spec)}) is missing"
            continue
        python_type, literal_type = _split(spec)
        try:  # no reference kept here: decode_literal drops the bytes once parsed
            out[name] = wire.decode_literal(encoded.pop(name), python_type, literal_type, ctx)
        except TaskboxError as exc:
            raise reprefix(exc, f"input {name!r}") from exc
        if ctx is not None and ctx.origins is not None:
            ctx.origins.claim_input(name, out[name])
    _check_inputs(extra, variables)
    if missing is not None:
        raise InputError(missing)
    return out


def python_to_encoded_map(
    values: Mapping[str, Any], variables: Mapping[str, Any], ctx: ConversionContext | None = None
) -> Any:
    """Convert task outputs to a :class:`taskbox.literals.wire.EncodedLiteralMap` (serialized literals).

    Like :func:`python_to_literal_map`, with the same errors; ``SerializeToString()`` of the result is
    the ``LiteralMap`` that function's result serializes to deterministically.
    """
    from taskbox.literals import wire

    extra = sorted(set(values) - set(variables))
    if extra:
        raise OutputError(f"output {extra[0]!r} is not declared by the task (declared: {sorted(variables)})")
    encoded: dict[str, bytes] = {}
    for name, spec in variables.items():
        if name not in values:
            raise OutputError(f"output {name!r} ({_describe(spec)}) was not produced")
        python_type, literal_type = _split(spec)
        try:
            encoded[name] = wire.encode_literal(values[name], python_type, literal_type, ctx)
        except TaskboxError as exc:
            raise reprefix(exc, f"output {name!r}") from exc
        origins = ctx.origins if ctx is not None else None
        if origins is not None and origins.holds_input(name):  # an immutable input passed through by name
            original = origins.restore_output(name, values[name], literals_pb2.Literal.FromString(encoded[name]))
            if original is not None:
                encoded[name] = original.SerializeToString(deterministic=True)
    return wire.EncodedLiteralMap(encoded)
