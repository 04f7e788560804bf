r"""Placeholders inside quoted string literals: the literal becomes a concatenation with bound values.

Why: flytekit pastes ``str(value)`` wherever a placeholder is, so ``name LIKE '%{{ .inputs.word }}%'``
runs there (and ``O'Brien`` breaks it, and ``x' OR '1'='1`` injects). To run such templates unchanged
without a value ever becoming SQL text, the literal is cut at each placeholder and rebuilt from its own
pieces and one bound parameter per placeholder: ``('%' || :word || '%')``, or ``CONCAT('%', %s, '%')``
on MySQL/MariaDB (where ``||`` means OR) and SQL Server. The caller binds the text flytekit would have
pasted (``str(value)``: ``True``, ``2024-01-02 03:04:05+00:00``...), so the statement reads the same
string flytekit's would, whatever characters the value holds.

Rules:
    * Each piece keeps the literal's own quoting (``'...'``, MySQL's ``"..."``, ``N'...'``,
      PostgreSQL's ``E'...'`` and ``$tag$...$tag$``), so an escape inside a piece (``''``, ``\'``)
      means what it meant; PostgreSQL's ``N'...'`` (``char``, which would drop a piece's trailing
      spaces) gives plain ``'...'`` pieces. A piece that is no longer one literal of the same kind (MySQL's backslash
      right before a placeholder, which would escape the value's first character) is refused.
    * A typed literal becomes a CAST of the concatenation: on PostgreSQL any one-token type
      (``INTERVAL '{{ .inputs.n }} days'``, ``DATE '...'``, ``jsonb '...'``, ``TIMESTAMP WITH TIME ZONE``),
      on MySQL ``DATE``/``TIME``/``TIMESTAMP``/``DATETIME`` (MySQL's ``INTERVAL`` takes an expression and
      stays); MySQL's charset introducer (``_utf8mb4'...'``) becomes ``CONVERT(... USING utf8mb4)``.
    * Refused with a message: an alias (``AS '...'``), PostgreSQL's ``INTERVAL '...' DAY`` (a unit after
      the literal), U&, bit, hex and raw strings, and typed literals on other databases.
    * A placeholder that is the whole of a plain literal (``'{{ .inputs.x }}'``) is left to the caller
      (bound with its own type), unless the literal is typed (``DATE '{{ .inputs.d }}'``: a CAST of the text).

Invariants:
    * The output holds the template's own text and ``("input", name)`` markers only; no value.
    * The output is one expression in parentheses (or one function call), so an operator around the
      literal (``'{{ .inputs.n }}'::int``) still applies to the whole of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskbox.sql.errors import SqlRejected

__all__ = ["Splice", "rewrite_literal"]

#: Token types (sqlglot) of literals that are cut, and the dialects where each can be.
_CUTTABLE = {"STRING": None, "NATIONAL_STRING": None, "BYTE_STRING": "postgres", "HEREDOC_STRING": "postgres"}
_KIND_NAMES = {
    "UNICODE_STRING": "U&'...' (Unicode escape)",
    "BIT_STRING": "bit-string",
    "HEX_STRING": "hex-string",
    "BYTE_STRING": "byte-string",
    "RAW_STRING": "raw-string",
    "NATIONAL_RAW_STRING": "raw-string",
    "HEREDOC_STRING": "dollar-quoted",
}
#: Type tokens that never start a typed literal.
_NOT_TYPES = frozenset({"NULL", "UNION", "ARRAY", "STRUCT", "MAP", "LIST", "NESTED", "NULLABLE", "RANGE"})
_INTERVAL_UNITS = frozenset({"YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"})
_MYSQL_TYPED = {"DATE": "DATE", "TIME": "TIME", "TIMESTAMP": "DATETIME", "DATETIME": "DATETIME"}
_ANSI_TYPED = frozenset({"DATE", "TIME", "TIMESTAMP"})
_CHARSET = re.compile(r"^_[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Splice:
    """What replaces a literal: the source from ``start`` to the literal's end becomes ``pieces``.

    Attributes:
        start: Where the replaced text starts: the literal, or the type keyword or introducer before it.
        pieces: ``("sql", text)`` (template text: the literal's pieces, operators, parentheses) and
            ``("input", name)`` (a parameter bound to the text of input ``name``), in order.

    """

    start: int
    pieces: tuple[tuple[str, str], ...]


def rewrite_literal(
    tokens: Sequence[Any],
    index: int,
    source: str,
    sentinels: Mapping[str, str],
    dialect: str | None,
    tokenize: Callable[[str, str | None], list[Any]],
    *,
    whole: bool,
) -> Splice | None:
    """Rewrite the string literal ``tokens[index]``, which holds placeholder sentinels, into a concatenation.

    Args:
        tokens: sqlglot tokens of ``source``.
        index: The literal's token.
        source: The template with each placeholder replaced by its sentinel.
        sentinels: Sentinel -> input name.
        dialect: The sqlglot dialect.
        tokenize: ``(sql, dialect) -> tokens``, raising :class:`SqlRejected` on text it cannot read.
        whole: The token is a plain literal holding exactly one sentinel and nothing else.

    Returns:
        The splice; ``None`` for a whole plain literal the caller binds with its own type.

    Raises:
        SqlRejected: The literal cannot be rewritten safely (see the module's rules).

    """
    tok = tokens[index]
    kind = tok.token_type.name
    raw = source[tok.start : tok.end + 1]
    first = _first_input(raw, sentinels)
    prev = tokens[index - 1] if index > 0 else None
    prev_kind = prev.token_type.name if prev is not None else ""
    following = tokens[index + 1].text.upper() if index + 1 < len(tokens) else ""
    typed = _typed(tokens, index, source, dialect, following, first)
    if whole and typed is None:
        return None
    if prev_kind == "ALIAS" and typed is None:
        raise SqlRejected(
            f"the placeholder for input {first!r} is inside a quoted alias (AS '...'); an alias cannot be bound. "
            "Use a fixed alias"
        )
    body = _concatenate(_split(raw, kind, sentinels, dialect, tokenize, first), dialect)
    if typed is not None:
        start, type_text = typed
        return Splice(start, (("sql", "CAST("), *body, ("sql", f" AS {type_text})")))
    if prev is not None and prev_kind == "INTRODUCER":
        charset = prev.text
        if not _CHARSET.match(charset):
            raise SqlRejected(f"the placeholder for input {first!r} follows an unknown introducer {charset!r}")
        return Splice(prev.start, (("sql", "CONVERT("), *body, ("sql", f" USING {charset[1:]})")))
    return Splice(tok.start, tuple(body))


def _first_input(raw: str, sentinels: Mapping[str, str]) -> str:
    positions = [(raw.find(s), name) for s, name in sentinels.items() if s in raw]
    return min(positions)[1]


def _typed(
    tokens: Sequence[Any], index: int, source: str, dialect: str | None, following: str, name: str
) -> tuple[int, str] | None:
    """``(start, type text)`` when the literal is a typed literal that must become a CAST, else ``None``."""
    from sqlglot.parser import Parser

    if index == 0:
        return None
    prev = tokens[index - 1]
    # PostgreSQL's TIMESTAMP/TIME WITH[OUT] TIME ZONE 'literal': four tokens of type.
    if dialect == "postgres" and prev.text.upper() == "ZONE" and index >= 4:
        words = [t.text.upper() for t in tokens[index - 4 : index]]
        if words[0] in ("TIMESTAMP", "TIME") and words[1] in ("WITH", "WITHOUT") and words[2] == "TIME":
            start = tokens[index - 4].start
            return start, source[start : prev.end + 1]
    type_names = {t.name for t in Parser.TYPE_TOKENS} - _NOT_TYPES
    if prev.token_type.name not in type_names:
        return None
    if index >= 2 and tokens[index - 2].token_type.name in ("DCOLON", "ALIAS"):
        return None  # ``x::date 'a'`` / ``AS date 'a'``: not a typed literal; the database says what it is
    word = prev.text.upper()
    if dialect == "postgres":
        if prev.token_type.name == "INTERVAL" and following in _INTERVAL_UNITS:
            raise SqlRejected(
                f"the placeholder for input {name!r} is inside INTERVAL '...' {following}; taskbox rewrites the "
                f"literal into an expression, which cannot take a unit after it. Put the unit inside the literal "
                f"(INTERVAL '{{{{ .inputs.{name} }}}} days')"
            )
        return prev.start, source[prev.start : prev.end + 1]
    if dialect == "mysql":
        return (prev.start, _MYSQL_TYPED[word]) if word in _MYSQL_TYPED else None
    if dialect == "sqlite":
        return None
    if word in _ANSI_TYPED:
        return prev.start, word
    if word == "INTERVAL":
        raise SqlRejected(
            f"the placeholder for input {name!r} is inside an INTERVAL literal, which taskbox rewrites only for "
            "PostgreSQL and MySQL; pass the whole interval as the input's value"
        )
    return None


def _split(
    raw: str,
    kind: str,
    sentinels: Mapping[str, str],
    dialect: str | None,
    tokenize: Callable[[str, str | None], list[Any]],
    first: str,
) -> list[tuple[str, str]]:
    """Cut the literal at each sentinel: its pieces (each quoted as the literal was) and the inputs between."""
    opening, closing = _delimiters(raw, kind, dialect, first)
    body = raw[len(opening) : len(raw) - len(closing)]
    if kind == "NATIONAL_STRING" and dialect == "postgres":
        # PostgreSQL's N'...' is char(n), which drops a piece's trailing spaces when concatenated: the
        # pieces are plain strings (their escapes are the same), as the whole literal read as text.
        opening, kind = "'", "STRING"
    pattern = re.compile("|".join(re.escape(s) for s in sorted(sentinels, key=len, reverse=True)))
    pieces: list[tuple[str, str]] = []
    pos = 0
    for m in pattern.finditer(body):
        name = sentinels[m.group(0)]
        _piece(body[pos : m.start()], opening, closing, kind, dialect, tokenize, name, pieces)
        pieces.append(("input", name))
        pos = m.end()
    _piece(body[pos:], opening, closing, kind, dialect, tokenize, first, pieces)
    return pieces


def _delimiters(raw: str, kind: str, dialect: str | None, name: str) -> tuple[str, str]:
    allowed = kind in _CUTTABLE and _CUTTABLE[kind] in (None, dialect)
    if not allowed:
        what = _KIND_NAMES.get(kind, kind.lower().replace("_", " "))
        raise SqlRejected(
            f"the placeholder for input {name!r} is inside a {what} literal, which taskbox does not cut into pieces; "
            "use a plain '...' literal, or pass the whole value as the input"
        )
    if kind == "HEREDOC_STRING":
        tag = raw[: raw.index("$", 1) + 1]
        return tag, tag
    if kind == "STRING":
        return raw[0], raw[-1]
    return raw[:2], raw[-1]  # N'...', E'...'


def _piece(
    text: str,
    opening: str,
    closing: str,
    kind: str,
    dialect: str | None,
    tokenize: Callable[[str, str | None], list[Any]],
    name: str,
    out: list[tuple[str, str]],
) -> None:
    """Append ``text`` quoted as the literal was; refuse it if it is then not one literal of the same kind."""
    if not text:
        return
    literal = opening + text + closing
    try:
        tokens = tokenize(literal, dialect)
    except SqlRejected:
        tokens = []
    if len(tokens) != 1 or tokens[0].token_type.name != kind or tokens[0].end != len(literal) - 1:
        hint = (
            " (a backslash right before the placeholder would escape the value's first character; "
            "double it, or move it into the value)"
            if text.endswith("\\")
            else ""
        )
        raise SqlRejected(
            f"the string literal holding the placeholder for input {name!r} cannot be cut at the placeholder: "
            f"{literal!r} is not a literal on its own{hint}"
        )
    out.append(("sql", literal))


def _concatenate(pieces: list[tuple[str, str]], dialect: str | None) -> list[tuple[str, str]]:
    """Join the pieces with the dialect's string concatenation, as one parenthesised expression."""
    if len(pieces) == 1:  # the placeholder alone: N'{{ .inputs.x }}', DATE '{{ .inputs.d }}'
        return pieces
    function = dialect in ("mysql", "tsql")
    out: list[tuple[str, str]] = [("sql", "CONCAT(" if function else "(")]
    for i, piece in enumerate(pieces):
        if i:
            out.append(("sql", ", " if function else " || "))
        out.append(piece)
    out.append(("sql", ")"))
    return out
