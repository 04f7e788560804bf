"""The transformer registry and the two dispatch paths: by Python type hint and by ``LiteralType``.

Why: user functions declare Python types, but prebuilt executors only know the template's interface
(``LiteralType`` values). Both must produce the literals flytekit produces, so both paths end in the same
transformers: the type-driven path derives the Python type the literal type stands for
(:meth:`TypeEngine.guess_python_type`) or, when the value's own type already maps onto the declared
literal type, uses that (flytekit's ``strict_type_hint_matching``).

Invariants:
    * ``to_literal`` failures raise :class:`~taskbox.errors.OutputError`, ``to_python_value`` failures
      raise :class:`~taskbox.errors.InputError`; both name the expected and the actual type. Other
      ``TaskboxError`` subclasses (storage) pass through untouched so their retry semantics survive.
    * Offloaded literals are fetched before any transformer sees them, at every nesting level.
    * Lookup order for a Python type: ``Annotated`` transformer, exact registration, unions,
      generic origin (``list``/``dict``), enums, registered base classes (MRO), dataclasses, pydantic
      models, dataframe types. Built-in transformers are registered lazily, one family module at a time
      (:data:`_FAMILIES`): an exact hit on a built-in type loads only its family (an ``int`` input loads
      ``primitives``, not pydantic-aware ``structs`` or ``tables``); any other lookup loads them all first.
    * Importing this module loads no optional dependency (pydantic, pyarrow, msgpack, fsspec).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import enum
import functools
import keyword
import os
import threading
import types
import typing
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError, TaskboxError, UnsupportedType
from taskbox.literals.context import ConversionContext
from taskbox.literals.typeinfo import (
    describe_literal,
    describe_python_type,
    describe_type,
    describe_value,
    essence,
    infer_literal_type,
    is_castable,
)

__all__ = [
    "Mismatch",
    "NoneType",
    "TypeEngine",
    "TypeTransformer",
    "is_strict",
    "reprefix",
    "strict_matching",
    "unsupported",
]

T = TypeVar("T")
NoneType = type(None)
# RecursionError: a value nested deeper than the interpreter can walk (hostile input) is a mismatch too.
_CONVERSION_ERRORS = (TypeError, ValueError, AssertionError, OverflowError, KeyError, IndexError, RecursionError)
_VAGUE = (None, Any, object)


_strict: contextvars.ContextVar[bool] = contextvars.ContextVar("taskbox_literals_strict", default=False)


@contextlib.contextmanager
def strict_matching(enabled: bool = True) -> Iterator[None]:
    """Within the block, transformers refuse lenient conversions (int as float, enum as str...).

    Unions try their variants strictly first, so ``Union[list[int], list[float]]`` picks ``list[int]``
    for ``[1, 2]`` as flytekit does, and fall back to lenient matching only when nothing fits strictly.
    """
    token = _strict.set(enabled)
    try:
        yield
    finally:
        _strict.reset(token)


def is_strict() -> bool:
    """Tell whether the caller runs inside :func:`strict_matching` (checked before lenient conversions)."""
    return _strict.get()


class Mismatch(TypeError):
    """Raised by transformers for "this value/literal is not of my type"; the engine words the error.

    It never leaves :class:`TypeEngine`: the engine turns it into ``OutputError``/``InputError`` stating
    the expected and the actual type (plus this exception's message, if any, as the detail).
    """


def _mismatch_message(expected: str, actual: str, exc: BaseException) -> str:
    detail = str(exc)
    if isinstance(exc, KeyError) and exc.args:
        detail = f"missing key {exc.args[0]!r}"
    return f"expected {expected}, got {actual}: {detail}" if detail else f"expected {expected}, got {actual}"


def unsupported(what: str) -> UnsupportedType:
    """Build the error for a type taskbox cannot convert (a user's signature or a template's interface)."""
    return UnsupportedType(what)


def strip_annotated(t: Any) -> Any:
    """``Annotated[X, ...]`` -> ``X``; anything else unchanged."""
    while typing.get_origin(t) is typing.Annotated:
        t = t.__origin__
    return t


def is_union(t: Any) -> bool:
    """Tell whether ``t`` is ``Union[...]``, ``Optional[...]`` or ``X | Y``."""
    return typing.get_origin(t) is typing.Union or isinstance(t, types.UnionType)


class TypeTransformer(Generic[T]):
    """Converts one family of Python values to and from Flyte literals (the extension point).

    Subclasses implement :meth:`get_literal_type`, :meth:`to_literal` and :meth:`to_python_value`, and
    may implement :meth:`guess_python_type` so that executors driven only by ``LiteralType`` values decode
    into their type. Register instances with :meth:`TypeEngine.register`.

    Args:
        name: The transformer's name; for unions this is the variant tag, so it must equal flytekit's
            transformer name when wire compatibility with flytekit matters.
        t: The Python type this transformer is registered for.

    """

    def __init__(self, name: str, t: Any) -> None:
        self._name = name
        self._t = t

    @property
    def name(self) -> str:
        """Transformer name (the union tag of values it produces)."""
        return self._name

    @property
    def python_type(self) -> Any:
        """The Python type the transformer is registered for."""
        return self._t

    def handles(self, python_type: Any) -> bool:
        """Structural match for types that are not registered by identity (dataclasses, enums...)."""
        return False

    def get_literal_type(self, t: Any) -> types_pb2.LiteralType:
        """Return the ``LiteralType`` for the Python type ``t``."""
        raise NotImplementedError(f"{type(self).__name__}.get_literal_type")

    def guess_python_type(self, literal_type: types_pb2.LiteralType) -> Any:
        """Return the Python type for ``literal_type``, or raise ``ValueError`` if it is not ours."""
        raise ValueError(f"{self.name} cannot reverse {describe_type(literal_type)}")

    def to_literal(
        self, ctx: ConversionContext, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        """Convert ``value`` (declared as ``python_type``) to a literal of type ``expected``."""
        raise NotImplementedError(f"{type(self).__name__}.to_literal")

    def to_python_value(self, ctx: ConversionContext, literal: literals_pb2.Literal, expected_python_type: Any) -> T:
        """Convert ``literal`` to a value of ``expected_python_type``."""
        raise NotImplementedError(f"{type(self).__name__}.to_python_value")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} for {describe_python_type(self._t)}>"


class TypeEngine:
    """Registry of transformers and the entry points for every conversion."""

    _REGISTRY: typing.ClassVar[dict[Any, TypeTransformer[Any]]] = {}
    _CUSTOM: typing.ClassVar[list[TypeTransformer[Any]]] = []
    _STRUCTURAL: typing.ClassVar[list[TypeTransformer[Any]]] = []
    _UNION: typing.ClassVar[TypeTransformer[Any] | None] = None
    _SIMPLE_BY_TAG: typing.ClassVar[dict[str, TypeTransformer[Any]]] = {}
    _lock = threading.RLock()
    _defaults_loaded = False

    # ---------------------------------------------------------------- registry

    @classmethod
    def register(
        cls, transformer: TypeTransformer[Any], additional_types: list[Any] | None = None, *, override: bool = False
    ) -> None:
        """Register a transformer for its ``python_type`` (and ``additional_types``).

        Args:
            transformer: The transformer to register.
            additional_types: More Python types it converts.
            override: Replace an existing registration instead of raising ``ValueError``.

        """
        cls._ensure_defaults()
        with cls._lock:
            cls._register(transformer, additional_types, override=override)
            cls._CUSTOM.append(transformer)

    @classmethod
    def _register(
        cls, transformer: TypeTransformer[Any], additional_types: list[Any] | None = None, *, override: bool = False
    ) -> None:
        for t in [transformer.python_type, *(additional_types or [])]:
            existing = cls._REGISTRY.get(t)
            if existing is not None and not override:
                raise ValueError(f"transformer {existing.name!r} is already registered for {describe_python_type(t)}")
            cls._REGISTRY[t] = transformer

    @classmethod
    def _ensure_defaults(cls) -> None:
        """Load and register every built-in family (a custom registration, or a lookup the table misses)."""
        if cls._defaults_loaded:
            return
        with cls._lock:
            if cls._defaults_loaded:
                return
            for family in _FAMILIES:
                cls._load_family(family)
            from taskbox.literals import primitives, structs, tables

            cls._STRUCTURAL = [primitives.ENUM, structs.DATACLASS, structs.PYDANTIC, tables.DATAFRAMES]
            cls._defaults_loaded = True

    @classmethod
    def _load_family(cls, family: str) -> None:
        """Import one built-in family module and register its transformers (once)."""
        if family in _LOADED_FAMILIES:
            return
        with cls._lock:
            if family in _LOADED_FAMILIES:
                return
            import importlib

            module = importlib.import_module(f"taskbox.literals.{family}")
            for transformer, extra in getattr(module, "REGISTERED", ()):
                cls._register(transformer, extra)
            if family == "primitives":
                cls._SIMPLE_BY_TAG = {t.name: t for t, _ in module.REGISTERED}
            elif family == "unions":
                cls._UNION = module.UNION
            _LOADED_FAMILIES.add(family)

    @classmethod
    def _load_family_of(cls, t: Any) -> bool:
        """Load the family that registers exactly ``t``; ``False`` if no built-in family names it."""
        try:
            family = _family_of().get(t)
        except TypeError:  # unhashable hint
            return False
        if family is None:
            return False
        cls._load_family(family)
        return True

    @classmethod
    def get_transformer(cls, python_type: Any) -> TypeTransformer[Any]:
        """Find the transformer for a Python type hint.

        Raises:
            UnsupportedType: No transformer converts this type.

        """
        t = python_type
        if typing.get_origin(t) is typing.Annotated:
            for meta in t.__metadata__:
                if isinstance(meta, TypeTransformer):
                    return meta
            t = strip_annotated(t)
        if t is None:
            t = NoneType
        cls._load_family_of(t)  # families load per need; registrations are unique, so the hit is the same
        try:
            found = cls._REGISTRY.get(t)
        except TypeError:  # unhashable hint
            found = None
        if found is not None:
            return found
        if is_union(t):
            cls._load_family("unions")
            assert cls._UNION is not None
            return cls._UNION
        origin = typing.get_origin(t)
        if origin is not None and cls._load_family_of(origin) and origin in cls._REGISTRY:
            return cls._REGISTRY[origin]
        cls._ensure_defaults()  # everything below may need any family
        if origin is not None and origin in cls._REGISTRY:
            return cls._REGISTRY[origin]
        if cls._STRUCTURAL[0].handles(t):  # enums before bases: a ``(str, Enum)`` is an enum, not a str
            return cls._STRUCTURAL[0]
        if isinstance(t, type):
            for base in t.__mro__[1:]:
                if base is not object and base in cls._REGISTRY:
                    return cls._REGISTRY[base]
        for transformer in cls._STRUCTURAL[1:]:
            if transformer.handles(t):
                return transformer
        raise unsupported(f"no literal conversion is known for the Python type {describe_python_type(python_type)}")

    # ---------------------------------------------------------------- types

    @classmethod
    def to_literal_type(cls, python_type: Any) -> types_pb2.LiteralType:
        """Return the ``LiteralType`` flytekit declares for ``python_type``.

        Raises:
            UnsupportedType: The type cannot be declared.

        """
        transformer = cls.get_transformer(python_type)
        try:
            return transformer.get_literal_type(python_type)
        except TaskboxError:
            raise
        except _CONVERSION_ERRORS as exc:
            raise unsupported(f"cannot declare {describe_python_type(python_type)} as a Flyte type: {exc}") from exc

    @classmethod
    def guess_python_type(cls, literal_type: types_pb2.LiteralType) -> Any:
        """Return the Python type that values of ``literal_type`` decode to.

        Custom transformers are asked first (latest registration first), then the built-in mapping:
        simple types to ``int``/``float``/..., STRUCT to ``dict``, enums to a ``str`` enum, blobs to
        :class:`~taskbox.literals.File` / :class:`~taskbox.literals.Directory`, datasets to
        :class:`~taskbox.literals.StructuredDataset`.
        """
        for transformer in reversed(cls._CUSTOM):  # a custom registration loaded every family first
            try:
                return transformer.guess_python_type(literal_type)
            except (ValueError, NotImplementedError):
                continue
        return _guess_builtin(literal_type)

    # ---------------------------------------------------------------- values

    @classmethod
    def to_literal(
        cls,
        value: Any,
        python_type: Any = None,
        *,
        literal_type: types_pb2.LiteralType | None = None,
        ctx: ConversionContext | None = None,
    ) -> literals_pb2.Literal:
        """Convert a Python value to a literal.

        Args:
            value: The value.
            python_type: Its declared Python type (a user function's hint); optional if ``literal_type``.
            literal_type: The declared ``LiteralType`` (the template's interface); optional if ``python_type``.
            ctx: Where to upload files, directories and tables; a temporary default if omitted.

        Returns:
            The literal.

        Raises:
            OutputError: The value does not match the declared type.
            StorageError: Uploading data failed.

        """
        if python_type is None and literal_type is None:
            raise TypeError("TypeEngine.to_literal needs python_type or literal_type")
        ctx = ctx or ConversionContext.default()
        try:
            literal = cls._encode(ctx, value, python_type, literal_type)
        except TaskboxError:
            raise
        except _CONVERSION_ERRORS as exc:
            hinted = python_type not in _VAGUE and (literal_type is None or cls._hint_fits(python_type, literal_type))
            target = describe_python_type(python_type) if hinted else describe_type(literal_type)
            raise OutputError(_mismatch_message(target, describe_value(value), exc)) from exc
        origins = ctx.origins
        if origins is not None and origins.restores:  # a value passed through keeps its hash and metadata
            literal = origins.restore(value, literal)
        return literal

    @classmethod
    def _encode(
        cls, ctx: ConversionContext, value: Any, python_type: Any, literal_type: types_pb2.LiteralType | None
    ) -> literals_pb2.Literal:
        if python_type not in _VAGUE and (literal_type is None or cls._hint_fits(python_type, literal_type)):
            transformer = cls.get_transformer(python_type)
            expected = literal_type if literal_type is not None else transformer.get_literal_type(python_type)
            return transformer.to_literal(ctx, value, python_type, expected)
        if literal_type is None:
            what = describe_python_type(python_type)
            raise unsupported(f"{what} needs a LiteralType to convert {describe_value(value)}")
        return cls._encode_by_type(ctx, value, literal_type)

    @classmethod
    def _encode_by_type(cls, ctx: ConversionContext, value: Any, lt: types_pb2.LiteralType) -> literals_pb2.Literal:
        kind = lt.WhichOneof("type")
        if kind is None:
            raise TypeError("the declared LiteralType is empty")
        if kind == "union_type":
            from taskbox.literals import unions

            return unions.encode_by_type(ctx, value, lt)
        if kind in ("collection_type", "map_value_type"):
            from taskbox.literals import containers

            return containers.encode_by_type(ctx, value, lt)
        by_tag = cls._tagged_simple(lt)
        if by_tag is not None:
            return by_tag.to_literal(ctx, value, by_tag.python_type, lt)
        own = cls._own_transformer(value, lt)
        if own is not None:
            return own.to_literal(ctx, value, type(value), lt)
        guessed = cls.guess_python_type(lt)
        return cls.get_transformer(guessed).to_literal(ctx, value, guessed, lt)

    @classmethod
    def _tagged_simple(cls, lt: types_pb2.LiteralType) -> TypeTransformer[Any] | None:
        """Return the simple transformer a union variant's tag names (``date``, not ``datetime``, for "date")."""
        if lt.WhichOneof("type") != "simple":
            return None
        cls._load_family("primitives")
        transformer = cls._SIMPLE_BY_TAG.get(lt.structure.tag)
        if transformer is None or transformer.get_literal_type(transformer.python_type).simple != lt.simple:
            return None
        return transformer

    @classmethod
    def _hint_fits(cls, python_type: Any, literal_type: types_pb2.LiteralType) -> bool:
        """Whether a hint may drive the encoding of a value declared as ``literal_type``.

        A hint that says less or something else than the declaration (``type(v)`` for a list, ``int``
        for a FLOAT output, a non-union for a union output) yields to the declared ``LiteralType``.
        """
        if python_type in (list, dict):
            return False
        if literal_type.WhichOneof("type") == "union_type" and not is_union(strip_annotated(python_type)):
            return False
        try:
            own = cls.to_literal_type(python_type)
        except TaskboxError:
            return False
        return is_castable(own, literal_type)

    @classmethod
    def _own_transformer(cls, value: Any, lt: types_pb2.LiteralType) -> TypeTransformer[Any] | None:
        """Return the transformer of ``type(value)`` if it declares the same literal type (strict matching)."""
        try:
            transformer = cls.get_transformer(type(value))
            own_type = transformer.get_literal_type(type(value))
        except (TaskboxError, *_CONVERSION_ERRORS):
            return None
        return transformer if own_type == lt or essence(own_type) == essence(lt) else None

    @classmethod
    def to_python_value(
        cls,
        literal: literals_pb2.Literal,
        python_type: Any = None,
        *,
        literal_type: types_pb2.LiteralType | None = None,
        ctx: ConversionContext | None = None,
    ) -> Any:
        """Convert a literal to a Python value.

        Args:
            literal: The literal (offloaded literals are fetched first).
            python_type: The Python type to produce (a user function's hint).
            literal_type: The declared ``LiteralType``, used when ``python_type`` is omitted. With
                neither, the type is inferred from the literal itself.
            ctx: Where remote files are downloaded to on access; a temporary default if omitted.

        Raises:
            InputError: The literal does not match the requested type.
            StorageError: Fetching an offloaded literal failed.

        """
        ctx = ctx or ConversionContext.default()
        origins = ctx.origins
        noted = origins.noted if origins is not None else 0
        try:
            value = cls._decode(ctx, literal, python_type, literal_type)
        except TaskboxError:
            raise
        except _CONVERSION_ERRORS as exc:
            target = describe_python_type(python_type) if python_type is not None else None
            if target is None:
                target = describe_type(literal_type) if literal_type is not None else "a Python value"
            raise InputError(_mismatch_message(target, describe_literal(literal), exc)) from exc
        if origins is not None and (literal.hash or literal.metadata or origins.noted != noted):
            origins.note_literal(value, literal)  # it, or a literal inside it, carries a hash or metadata
        return value

    @classmethod
    def _decode(
        cls,
        ctx: ConversionContext,
        literal: literals_pb2.Literal,
        python_type: Any,
        literal_type: types_pb2.LiteralType | None,
    ) -> Any:
        if literal.WhichOneof("value") == "offloaded_metadata":
            from taskbox.literals import offload

            literal = offload.load_offloaded(literal)
        if _is_union_literal(literal) and not _wants_union(python_type, literal_type):
            literal = literal.scalar.union.value  # a union value read as one of its variants
        if python_type not in _VAGUE and not (literal_type is not None and python_type in (list, dict)):
            return cls.get_transformer(python_type).to_python_value(ctx, literal, python_type)
        if literal_type is None:
            return cls._decode_inferred(ctx, literal)
        return cls._decode_by_type(ctx, literal, literal_type)

    @classmethod
    def _decode_inferred(cls, ctx: ConversionContext, literal: literals_pb2.Literal) -> Any:
        """Decode with no declared type: containers element by element, leaves by their inferred type."""
        kind = literal.WhichOneof("value")
        if kind == "collection":
            return [cls.to_python_value(item, ctx=ctx) for item in literal.collection.literals]
        if kind == "map":
            return {key: cls.to_python_value(item, ctx=ctx) for key, item in literal.map.literals.items()}
        if _is_union_literal(literal):
            return cls.to_python_value(literal.scalar.union.value, ctx=ctx)
        return cls._decode_by_type(ctx, literal, infer_literal_type(literal))

    @classmethod
    def _decode_by_type(cls, ctx: ConversionContext, literal: literals_pb2.Literal, lt: types_pb2.LiteralType) -> Any:
        kind = lt.WhichOneof("type")
        if kind is None:
            raise TypeError("the declared LiteralType is empty")
        if kind == "union_type":
            from taskbox.literals import unions

            return unions.decode_by_type(ctx, literal, lt)
        if kind in ("collection_type", "map_value_type") and literal.WhichOneof("value") in ("collection", "map"):
            from taskbox.literals import containers

            return containers.decode_by_type(ctx, literal, lt)
        by_tag = cls._tagged_simple(lt)
        if by_tag is not None:
            return by_tag.to_python_value(ctx, literal, by_tag.python_type)
        guessed = cls.guess_python_type(lt)
        if guessed is dict and kind == "simple":
            from taskbox.literals import structs

            return structs.decode_struct_by_type(ctx, literal, lt)
        return cls.get_transformer(guessed).to_python_value(ctx, literal, guessed)


#: The built-in transformer families (modules of this package), in registration order.
_FAMILIES = ("primitives", "containers", "blobs", "tables", "structs", "unions")
_LOADED_FAMILIES: set[str] = set()


@functools.cache
def _family_of() -> dict[Any, str]:
    """Python type -> the family module that registers exactly it (tests check it against ``REGISTERED``)."""
    from taskbox.literals.types import Directory, File, StructuredDataset  # lazy: no optional deps

    primitives = (int, float, str, bool, datetime.datetime, datetime.date, datetime.timedelta, NoneType)
    table: dict[Any, str] = dict.fromkeys(primitives, "primitives")
    table.update({list: "containers", dict: "containers", File: "blobs", os.PathLike: "blobs", Directory: "blobs"})
    table[StructuredDataset] = "tables"
    return table


def _is_union_literal(literal: literals_pb2.Literal) -> bool:
    return literal.WhichOneof("value") == "scalar" and literal.scalar.WhichOneof("value") == "union"


def _wants_union(python_type: Any, literal_type: types_pb2.LiteralType | None) -> bool:
    if python_type not in _VAGUE:
        return is_union(strip_annotated(python_type))
    return literal_type is None or literal_type.WhichOneof("type") == "union_type"


# -------------------------------------------------------------------- guessing


def _is_pickle(lt: types_pb2.LiteralType) -> bool:
    """Whether ``lt`` is a pickled value's (flytekit, flyte 2): tag ``FlytePickle``, blob ``PythonPickle``, a union."""
    kind = lt.WhichOneof("type")
    if lt.structure.tag == "FlytePickle" or (kind == "blob" and lt.blob.format == "PythonPickle"):
        return True
    variants = lt.union_type.variants if kind == "union_type" else ()
    return bool(variants) and all(_is_pickle(v) for v in variants)


def _pickle_error(lt: types_pb2.LiteralType) -> Exception:
    name = lt.metadata.fields["python_class_name"].string_value if "python_class_name" in lt.metadata.fields else ""
    what = f" ({name})" if name else ""
    return unsupported(
        f"a pickled Python object{what}: the SDK pickles types it has no transformer for, and a prebuilt "
        "executor cannot unpickle them; declare a type both sides know (int, float, str, bool, datetime, list, "
        "dict, a dataclass or pydantic model, an enum, File, Dir, DataFrame)"
    )


def _guess_builtin(lt: types_pb2.LiteralType) -> Any:
    if _is_pickle(lt):
        raise _pickle_error(lt)
    kind = lt.WhichOneof("type")
    if kind == "simple":
        simple = _SIMPLE_TO_PYTHON.get(lt.simple)
        if simple is None:
            raise unsupported(f"the literal type {describe_type(lt)} has no Python equivalent")
        return simple
    if kind == "collection_type":
        return list[TypeEngine.guess_python_type(lt.collection_type)]  # type: ignore[misc]
    if kind == "map_value_type":
        return dict[str, TypeEngine.guess_python_type(lt.map_value_type)]  # type: ignore[misc]
    if kind == "union_type":
        return typing.Union[tuple(TypeEngine.guess_python_type(v) for v in lt.union_type.variants)]  # noqa: UP007
    if kind == "enum_type":
        return dynamic_enum(tuple(lt.enum_type.values))
    if kind == "blob":
        from taskbox.literals.types import Directory, File

        base: Any = Directory if lt.blob.dimensionality == types_pb2.BlobType.MULTIPART else File  # Any: File[fmt]
        return base[lt.blob.format] if lt.blob.format else base
    if kind in ("structured_dataset_type", "schema"):
        from taskbox.literals.types import StructuredDataset

        return StructuredDataset
    raise unsupported(f"the literal type {describe_type(lt)} has no Python equivalent")


_SIMPLE_TO_PYTHON: dict[int, Any] = {
    types_pb2.INTEGER: int,
    types_pb2.FLOAT: float,
    types_pb2.STRING: str,
    types_pb2.BOOLEAN: bool,
    types_pb2.DATETIME: datetime.datetime,
    types_pb2.DURATION: datetime.timedelta,
    types_pb2.NONE: NoneType,
    types_pb2.STRUCT: dict,
}


@functools.lru_cache(maxsize=256)
def dynamic_enum(values: tuple[str, ...]) -> type[enum.Enum]:
    """Create a ``(str, Enum)`` class for an ``enum_type`` known only from a template; cached per value list.

    Members compare equal to their string values, so executors can treat them as plain strings.
    """
    members: list[tuple[str, str]] = []
    for i, value in enumerate(values):
        usable = value.isidentifier() and not keyword.iskeyword(value) and not value.startswith("_")
        name = value if usable and value not in dict(members) else f"V{i}"
        members.append((name, value))
    return enum.Enum("TemplateEnum", members, type=str)  # type: ignore[return-value]


def reprefix(exc: TaskboxError, prefix: str) -> TaskboxError:
    """Re-create ``exc`` (same class, code and retry flag) with ``prefix`` in front of its message.

    Index prefixes (``[2]``, ``['k']``) chain without a separator: ``[0]['k']: expected int, got str``.
    """
    sep = "" if exc.message.startswith("[") and prefix.endswith("]") else ": "
    try:
        return type(exc)(f"{prefix}{sep}{exc.message}", code=exc.code, recoverable=exc.recoverable)
    except TypeError:  # a subclass with another constructor: keep the original
        return exc
