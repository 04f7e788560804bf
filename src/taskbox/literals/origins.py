"""What a decoded input value carried that its Python form cannot: the union variant, the hash, metadata.

Why: an executor sees plain values. A ``dict`` read from ``Union[Leaf, Branch]`` no longer says which
dataclass it was, and an ``int`` no longer carries the ``Literal.hash`` flytekit's ``HashMethod`` set (or
``Literal.metadata``). When the executor hands such a value back unchanged (``echo``, a field copied
from an input), the output must be the literal the input was: flytekit's identity task writes it back
byte for byte, Flyte's cache keys use the hash, and a union value must never be re-guessed. One
:class:`Origins` lives for one task attempt (its ``ConversionContext``); decoding notes, encoding asks.

Invariants:
    * Only what the value cannot say is kept: the union variant of a ``dict`` or ``list`` (objects made
      fresh by each decode, so their identity is theirs alone), and the hash and metadata of a literal
      that had any. Values are held by reference for the attempt, so an identity is never reused.
    * A hash or metadata comes back only on a literal equal to the one it was read from once both are
      stripped of every hash and metadata: a changed value, or a container with a changed element,
      loses them all. A container passed through whole gets its elements' hashes back with its own.
    * Values with an identity of their own (``dict``, ``list``, objects) are matched by identity at any
      depth. An immutable value (``42``, a string: their identities are shared) is matched only as a
      whole input returned under the same output name (``echo``), never inside a new container.
    * A union variant is only a preference: if the value no longer fits it, the union is encoded as if
      nothing were known.
"""

from __future__ import annotations

import datetime
import enum
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

__all__ = ["Origins", "of"]


class Origins:
    """Per-attempt memory of decoded values' union variants and literal metadata."""

    __slots__ = ("_last", "_literals", "_noted", "_top", "_variants")

    def __init__(self) -> None:
        self._variants: dict[int, tuple[Any, types_pb2.LiteralType]] = {}
        self._literals: dict[int, list[_Entry]] = {}
        self._top: dict[str, _Entry] = {}
        self._last: _Entry | None = None
        self._noted = 0

    # ---------------------------------------------------------------- unions

    def note_variant(self, value: Any, variant: types_pb2.LiteralType) -> None:
        """Remember that ``value`` was decoded as union ``variant`` (for a ``dict`` or a ``list`` only)."""
        if type(value) in (dict, list):
            self._variants[id(value)] = (value, variant)

    def variant_of(self, value: Any) -> types_pb2.LiteralType | None:
        """Return the union variant ``value`` was decoded as, if it was."""
        entry = self._variants.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    # ---------------------------------------------------------------- literal metadata

    @property
    def restores(self) -> bool:
        """Whether some input literal carried a hash or metadata (encoders then take the engine's path)."""
        return bool(self._literals or self._top)

    @property
    def noted(self) -> int:
        """How many literals with a hash or metadata were noted so far (a decoder compares before and after)."""
        return self._noted

    def note_literal(self, value: Any, literal: literals_pb2.Literal) -> None:
        """Remember ``literal``, which decoded to ``value`` and carries a hash or metadata (or holds one that does).

        ``value`` is remembered by identity if it has its own (a ``dict``, a ``list``, an object); an
        immutable value (``42``, a string) is held until :meth:`claim_input` names the input it was.
        """
        original = literals_pb2.Literal()
        original.CopyFrom(literal)
        entry = (value, _stripped(literal), original)
        self._noted += 1
        if isinstance(value, _SHARED):
            self._last = entry
        else:
            self._literals.setdefault(id(value), []).append(entry)

    def claim_input(self, name: str, value: Any) -> None:
        """Input ``name`` decoded to ``value``: if that is the immutable value just noted, keep it by name."""
        last, self._last = self._last, None
        if last is not None and last[0] is value:
            self._top[name] = last

    def restore(self, value: Any, literal: literals_pb2.Literal) -> literals_pb2.Literal:
        """Return the input literal ``value`` was read from if ``literal`` equals it but for hashes and metadata."""
        entries = self._literals.get(id(value))
        if not entries:
            return literal
        return _restored([e for e in entries if e[0] is value], literal) or literal

    def restore_output(self, name: str, value: Any, literal: literals_pb2.Literal) -> literals_pb2.Literal | None:
        """Input ``name``'s literal if output ``name`` is that immutable input's ``value`` unchanged, else ``None``."""
        entry = self._top.get(name)
        if entry is None or entry[0] is not value:
            return None
        return _restored([entry], literal)

    def holds_input(self, name: str) -> bool:
        """Whether input ``name`` is an immutable value whose literal carried a hash or metadata."""
        return name in self._top


_Entry = tuple[Any, literals_pb2.Literal, literals_pb2.Literal]
#: Values whose identity is shared (small ints, interned strings, singletons): never matched by identity.
_SHARED = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset, enum.Enum,
           datetime.date, datetime.time, datetime.timedelta)  # fmt: skip


def _stripped(literal: literals_pb2.Literal) -> literals_pb2.Literal:
    """A copy of ``literal`` without any hash or metadata, at any depth of collections, maps and unions."""
    bare = literals_pb2.Literal()
    bare.CopyFrom(literal)
    stack = [bare]
    while stack:
        node = stack.pop()
        node.ClearField("hash")
        node.ClearField("metadata")
        kind = node.WhichOneof("value")
        if kind == "collection":
            stack.extend(node.collection.literals)
        elif kind == "map":
            stack.extend(node.map.literals.values())
        elif kind == "scalar" and node.scalar.WhichOneof("value") == "union":
            stack.append(node.scalar.union.value)
    return bare


def _restored(entries: list[_Entry], literal: literals_pb2.Literal) -> literals_pb2.Literal | None:
    """The one original among ``entries`` that ``literal`` equals once both are stripped; ``None`` otherwise."""
    bare = _stripped(literal)
    matches = [original for _, stripped, original in entries if stripped == bare]
    if not matches or any(m != matches[0] for m in matches[1:]):
        return None
    return matches[0]


def of(ctx: Any) -> Origins | None:
    """Return the :class:`Origins` a conversion context carries, if any."""
    return getattr(ctx, "origins", None)
