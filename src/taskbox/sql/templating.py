"""Compile flytekit-style query templates into one statement with bound parameters.

Why: flytekit fills ``{{ .inputs.name }}`` by pasting ``str(value)`` into the SQL text, so an input
value is SQL (``x' OR '1'='1`` injects). Here a placeholder becomes a bind parameter and the value
travels separately from the statement, so the statement text is the same whatever the values are.

Template rules (flytekit's syntax, made safe):
    * ``{{ .inputs.name }}``: case-insensitive, spaces optional. A bare placeholder is a bind
      parameter; so is a placeholder that is a *whole* quoted literal (``'{{ .inputs.name }}'``), which
      flytekit templates use for strings. A placeholder inside a larger literal (``'%{{ .inputs.q }}%'``)
      makes the literal a concatenation of its pieces and a parameter bound to the text flytekit would
      have pasted (:mod:`taskbox.sql.quoted_placeholders`): ``('%' || :q || '%')``.
    * A list value after ``IN`` / ``NOT IN`` binds as *one* array parameter on PostgreSQL
      (``= ANY(%(ids)s)`` / ``<> ALL(...)``, the same rows as the expanded list, any length); elsewhere,
      and on other databases, it expands to one parameter per item. Past the driver's parameter limit
      (:func:`taskbox.sql.dialects.bind_limit`) rendering fails with ``USER:InvalidInput`` before anything
      is sent.
    * Identifiers (a table name from an input) cannot be bound. An input listed in ``identifiers``
      with its allowed values is replaced by the dialect-quoted identifier if its value is allowed.
    * Unknown placeholders and inputs no placeholder uses are errors, as in flytekit.
    * One statement only (a trailing ``;`` is allowed and dropped).
    * flytekit collapses templates to one line. That is accepted, except when a ``--`` comment now
      swallows the rest of the query, which flytekit would silently run without its WHERE clause.

Invariants:
    * The compiled SQL contains no input value, except allow-listed identifiers.
    * For SQLAlchemy's ``text()``, every ``:word`` that is not one of our parameters is escaped, so a
      colon inside a literal or comment is never read as a bind marker.
    * sqlglot (pure Python) is imported when a template is compiled, never at module import.
    * The statement is classified as the server will read it (:func:`taskbox.sql.dialects.server_view`:
      MySQL's executable comments are code); a construct a read-only transaction does not contain
      (:func:`taskbox.sql.dialects.read_only_hazard`) makes it a ``"write"`` and is named in ``hazard``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskbox.sql import dialects
from taskbox.sql.dialects import sqlglot_dialect
from taskbox.sql.errors import BindLimitExceeded, SqlRejected
from taskbox.sql.quoted_placeholders import rewrite_literal

__all__ = ["CompiledQuery", "compile_template", "sqlglot_dialect"]

#: flytekit's placeholder syntax, with the dot escaped (flytekit's unescaped ``.`` also matches ``Xinputs``).
PLACEHOLDER = re.compile(r"\{\{\s*\.inputs\.(\w+)\s*\}\}", re.IGNORECASE)
#: Anything that looks like an attempt at a placeholder but is not one (``{{ inputs.x }}``, ``{{.input.x}}``).
_NEAR_MISS = re.compile(r"\{\{[^{}]*\binputs?\b[^{}]*\}\}", re.IGNORECASE)
# SQLAlchemy text()'s bind-parameter syntax (sqlalchemy.sql.elements.TextClause._bind_params_regex).
_TEXT_BIND = re.compile(r"(?<![:\w\x5c]):(\w+)(?!:)", re.UNICODE)
_ESCAPED_COLON = re.compile(r"\x5c:\w")
_ASCII_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")

_STRING_TOKENS = dialects.STRING_TOKENS
# Token types that show a swallowed one-line comment held real SQL, not prose.
_CLAUSE_TOKENS = frozenset(
    {
        "WHERE",
        "JOIN",
        "GROUP_BY",
        "ORDER_BY",
        "HAVING",
        "LIMIT",
        "OFFSET",
        "UNION",
        "EXCEPT",
        "INTERSECT",
        "EQ",
        "NEQ",
        "LT",
        "GT",
        "LTE",
        "GTE",
        "SEMICOLON",
    }
)


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Bind:
    input: str
    op: str = ""  # the ``IN`` / ``NOT IN`` text right before the placeholder, if any
    negated: bool = False
    text: bool = False  # bound as the text flytekit would paste (a placeholder inside a literal)


@dataclass(frozen=True)
class _Identifier:
    input: str


@dataclass(frozen=True)
class CompiledQuery:
    """A template compiled for one dialect, ready to be rendered with input values.

    Attributes:
        template: The template as the task holds it.
        inputs: The input names the template uses, in order of first use.
        kind: ``"read"`` (SELECT/UNION/VALUES, possibly under WITH), ``"write"`` (anything that
            changes data or schema, or reaches outside a read-only transaction: see ``hazard``) or
            ``"unknown"`` (sqlglot could not classify it).
        statement: sqlglot's class name of the statement (``"Select"``, ``"Insert"``...), or ``""``.
        hazard: What in the statement a read-only transaction does not contain (server files and
            programs, other sessions...), e.g. ``"lo_export() (writes a file on the database server)"``;
            ``""`` when nothing.
        dialect: The sqlglot dialect it was compiled for.

    """

    template: str
    inputs: tuple[str, ...]
    kind: str
    statement: str
    _segments: tuple[_Text | _Bind | _Identifier, ...] = field(repr=False)
    _identifiers: Mapping[str, tuple[str, ...]] = field(repr=False, default_factory=dict)
    hazard: str = ""
    dialect: str | None = None

    def render(
        self,
        values: Mapping[str, Any],
        *,
        quote: Callable[[str], str],
        style: str = "sqlalchemy",
        max_params: int | None = -1,
    ) -> tuple[str, dict[str, Any]]:
        """Produce the SQL text and its parameters.

        Args:
            values: Input values by name (already checked against the template's inputs).
            quote: Quotes one identifier for the dialect (``preparer.quote``).
            style: ``"sqlalchemy"`` for ``sqlalchemy.text()`` (colons escaped, lists expanding),
                ``"sqlite"`` for :mod:`sqlite3`'s named style (lists rendered as ``(:x_0, :x_1)``), or
                ``"pyformat"`` for psycopg/PyMySQL (``%(x)s``, literal ``%`` doubled, lists expanded).
                On PostgreSQL a list after ``IN`` is one array parameter in every style but ``sqlite``.
            max_params: The most bind parameters the driver takes (``None``: no limit); by default
                :func:`taskbox.sql.dialects.bind_limit` of the dialect.

        Returns:
            ``(sql, params)``; ``params`` maps bind names to values.

        Raises:
            SqlRejected: An identifier value is not allow-listed, or a value cannot be bound.
            BindLimitExceeded: The values need more bind parameters than the driver takes.

        """
        sql, params, _ = self._render(values, quote, style, max_params)
        return sql, params

    def _render(
        self, values: Mapping[str, Any], quote: Callable[[str], str], style: str, max_params: int | None
    ) -> tuple[str, dict[str, Any], set[str]]:
        """:meth:`render`, and the names of the list parameters bound as one array."""
        arrays: set[str] = set()
        names, text_names = _bind_names(self.inputs, self._segments)
        parts: list[tuple[str, str]] = []  # (kind, text): kind "text" or "bind"
        params: dict[str, Any] = {}
        counted = 0
        for seg in self._segments:
            if isinstance(seg, _Text):
                parts.append(("text", _escape_text(seg.text, style)))
            elif isinstance(seg, _Identifier):
                parts.append(("text", _escape_text(self._identifier(seg.input, values.get(seg.input), quote), style)))
            else:
                marker = "%({})s" if style == "pyformat" else ":{}"
                if seg.text:
                    name = text_names[seg.input]
                    params[name] = literal_text(seg.input, values.get(seg.input))
                    parts.append(("bind", marker.format(name)))
                    counted += 1
                    continue
                name = names[seg.input]
                value = bindable(seg.input, values.get(seg.input))
                if isinstance(value, list) and seg.op and self.dialect == "postgres" and style != "sqlite":
                    # One array parameter: the same rows as IN (a, b, ...), with no limit on the length.
                    params[name] = value
                    arrays.add(name)
                    parts += [("text", "<> ALL(" if seg.negated else "= ANY("), ("bind", marker.format(name))]
                    parts.append(("text", ")"))
                    counted += 1
                    continue
                parts.append(("text", _escape_text(seg.op, style)))
                if style != "sqlalchemy" and isinstance(value, list):
                    expanded = [f"{name}_{i}" for i in range(len(value))]
                    params.update(zip(expanded, value, strict=True))
                    parts.append(("text", "(" + ", ".join(marker.format(n) for n in expanded) + ")"))
                else:
                    params[name] = value
                    parts.append(("bind", marker.format(name)))
                counted += len(value) if isinstance(value, list) else 1
        limit = dialects.bind_limit(self.dialect) if max_params == -1 else max_params
        if limit is not None and counted > limit:
            raise BindLimitExceeded(
                f"the inputs need {counted} bind parameters, more than the {limit} the "
                f"{self.dialect or 'database'} driver takes in one statement; pass fewer list items "
                + (
                    "(on PostgreSQL a list right after IN is bound as one array, whatever its length)"
                    if self.dialect == "postgres"
                    else "(for example, load them into a table and join it)"
                )
            )
        return _join(parts), params, arrays

    def sqlalchemy_clause(
        self, values: Mapping[str, Any], *, quote: Callable[[str], str]
    ) -> tuple[Any, dict[str, Any]]:
        """Render for ``sqlalchemy.text()``: the clause, with expanding parameters declared, and its values.

        Args:
            values: Input values by name.
            quote: Quotes one identifier for the dialect.

        Returns:
            ``(TextClause, params)``.

        """
        from sqlalchemy import bindparam, text

        sql, params, arrays = self._render(values, quote, "sqlalchemy", -1)
        clause = text(sql)
        expanding: list[Any] = [
            bindparam(n, expanding=True) for n, v in params.items() if isinstance(v, list) and n not in arrays
        ]
        return (clause.bindparams(*expanding) if expanding else clause), params

    def _identifier(self, name: str, value: Any, quote: Callable[[str], str]) -> str:
        allowed = self._identifiers.get(name, ())
        if not isinstance(value, str) or value not in allowed:
            shown = ", ".join(repr(a) for a in allowed)
            raise SqlRejected(
                f"input {name!r} is used as an identifier, so its value must be one of the allow-listed "
                f"identifiers ({shown}); got {_describe(value)}"
            )
        return ".".join(quote(part) for part in value.split("."))


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _bind_names(
    inputs: Sequence[str], segments: Sequence[_Text | _Bind | _Identifier] = ()
) -> tuple[dict[str, str], dict[str, str]]:
    """Bind parameter names: the input's own name when it is a plain ASCII identifier.

    Returns:
        ``(names, text_names)``: the parameter of each input, and of each input bound as text inside a
        literal (the same name unless the input is also bound with its own type: then ``<name>_text``).

    """
    names: dict[str, str] = {}
    used: set[str] = set()
    for i, name in enumerate(inputs):
        candidate = name if _ASCII_NAME.match(name) and name.lower() not in used else f"p{i}_"
        names[name] = candidate
        used.add(candidate.lower())
    typed = {s.input for s in segments if isinstance(s, _Bind) and not s.text}
    text_names: dict[str, str] = {}
    for name in dict.fromkeys(s.input for s in segments if isinstance(s, _Bind) and s.text):
        if name not in typed:
            text_names[name] = names[name]
            continue
        candidate, n = f"{names[name]}_text", 0
        while candidate.lower() in used:
            n += 1
            candidate = f"{names[name]}_text{n}"
        text_names[name] = candidate
        used.add(candidate.lower())
    return names, text_names


def _join(parts: list[tuple[str, str]]) -> str:
    """Join rendered parts, keeping each bind marker readable as one by ``text()`` and the drivers.

    A marker written right after a word character or a colon, or right before a colon (``:x::int``),
    would not be read as a bind; a space keeps it apart (SQL allows white space around ``::``).
    """
    out: list[str] = []
    for i, (kind, text) in enumerate(parts):
        if kind == "bind":
            prev = out[-1][-1:] if out and out[-1] else ""
            if prev and (prev.isalnum() or prev in "_:"):
                out.append(" ")
            out.append(text)
            nxt = parts[i + 1][1][:1] if i + 1 < len(parts) else ""
            if nxt and (nxt.isalnum() or nxt in "_:"):
                out.append(" ")
        else:
            out.append(text)
    return "".join(out)


def _escape_text(text: str, style: str) -> str:
    if style == "sqlalchemy":
        return _escape_text_binds(text)
    if style == "pyformat":
        return text.replace("%", "%%")
    return text


def _escape_text_binds(text: str) -> str:
    r"""Escape ``:word`` so ``sqlalchemy.text()`` keeps it as text (``\:word``, unescaped on compile)."""
    return _TEXT_BIND.sub(lambda m: "\\:" + m.group(1), text)


def literal_text(name: str, value: Any) -> str:
    """The text flytekit pastes for a value (``str(value)``), bound for a placeholder inside a literal.

    flytekit renders every value with ``str()``: ``True``, ``1.5``, ``2024-01-02 03:04:05+00:00``,
    ``1 day, 0:00:05``, ``None``, ``[1, 2]``. An enum gives its value (flytekit would give its Python name).

    Raises:
        SqlRejected: The value cannot be bound at all (see :func:`bindable`).

    """
    return str(bindable(name, value))


def bindable(name: str, value: Any) -> Any:
    """Convert an input value to what a DBAPI driver binds; refuse what no driver can bind.

    Args:
        name: The input's name, for the message.
        value: The value the literal engine produced.

    Returns:
        ``int``/``float``/``str``/``bool``/``bytes``/``datetime``/``date``/``timedelta``/``Decimal``/
        ``None``, or a list of those (an expanding parameter).

    Raises:
        SqlRejected: The value is a mapping, a file, a dataset or another object.

    """
    import datetime as dt
    import decimal
    import enum

    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(
        value, (bool, int, float, str, bytes, dt.date, dt.time, dt.timedelta, decimal.Decimal)
    ):
        return value
    if isinstance(value, (list, tuple)):
        items = [bindable(name, v) for v in value]
        if any(isinstance(v, list) for v in items):
            raise SqlRejected(f"input {name!r} is a nested list, which cannot be bound as a SQL parameter")
        return items
    raise SqlRejected(
        f"input {name!r} has a value of type {type(value).__name__}, which cannot be bound as a SQL parameter; "
        "use int, float, str, bool, datetime, duration, or a list of those"
    )


def _sentinel_nonce(template: str) -> str:
    while True:
        nonce = secrets.token_hex(4)
        if nonce not in template:
            return nonce


def compile_template(
    template: str,
    inputs: Sequence[str],
    *,
    dialect: str | None,
    identifiers: Mapping[str, Sequence[str]] | None = None,
) -> CompiledQuery:
    """Compile a query template for one dialect.

    Args:
        template: The query template (flytekit's ``query_template``).
        inputs: The task's declared input names; each must be used by the template.
        dialect: sqlglot dialect name (see :func:`sqlglot_dialect`), ``None`` for generic SQL.
        identifiers: Input name -> allowed identifier values, for inputs that name tables or columns.

    Returns:
        The compiled query.

    Raises:
        SqlRejected: Unknown placeholder, unused input, placeholder inside a larger literal or a
            comment, more than one statement, a collapsed ``--`` comment, or text sqlglot cannot read.

    """
    identifiers = {k: tuple(v) for k, v in (identifiers or {}).items()}
    if "\x00" in template:
        raise SqlRejected("the query template contains a NUL character")
    if _ESCAPED_COLON.search(template):
        raise SqlRejected(
            "the query template contains a backslash before a colon (\\:name), which SQLAlchemy would rewrite; "
            "write the colon without the backslash"
        )
    matches = list(PLACEHOLDER.finditer(template))
    declared = list(inputs)
    for m in matches:
        if m.group(1) not in declared:
            raise SqlRejected(
                f"Variable {m.group(1)} in Query (part of {m.group(0)}) not found in inputs {sorted(declared)}"
            )
    used = {m.group(1) for m in matches}
    extra = [name for name in declared if name not in used]
    if extra:
        raise SqlRejected(f"Extra Inputs have no matches in query template - missing {set(extra)}")
    for name in identifiers:
        if name not in declared:
            raise SqlRejected(f"identifiers names {name!r}, which is not an input of the task")
    stripped = PLACEHOLDER.sub("", template)
    near = _NEAR_MISS.search(stripped)
    if near:
        raise SqlRejected(f"{near.group(0)!r} looks like a placeholder but is not one; write {{{{ .inputs.NAME }}}}")

    # Replace each placeholder by a sentinel identifier, tokenize, and find where each sentinel landed.
    nonce = _sentinel_nonce(template)
    pieces: list[str] = []
    sentinels: dict[str, str] = {}
    pos = 0
    for i, m in enumerate(matches):
        token = f"tbx{nonce}p{i}x"  # the end mark keeps p1 from matching inside p10
        sentinels[token] = m.group(1)
        pieces += [template[pos : m.start()], token]
        pos = m.end()
    pieces.append(template[pos:])
    source = "".join(pieces)
    try:
        tokens = _tokenize(source, dialect)
    except SqlRejected as exc:  # name the placeholders, not their sentinels
        message = str(exc)
        for token, name in sentinels.items():
            message = message.replace(token, f"{{{{ .inputs.{name} }}}}")
        raise SqlRejected(message) from None

    segments: list[_Text | _Bind | _Identifier] = []
    cursor = 0
    end_of_statement = len(source)
    seen_semicolon = False
    order: list[str] = []
    prev_end = 0
    for index, tok in enumerate(tokens):
        kind = tok.token_type.name
        if seen_semicolon:
            if kind != "SEMICOLON":
                raise SqlRejected("the query template holds more than one statement; taskbox runs exactly one")
            continue
        if kind == "SEMICOLON":
            seen_semicolon = True
            end_of_statement = tok.start
            continue
        raw = source[tok.start : tok.end + 1]
        _check_gap(source[prev_end : tok.start], sentinels, template)
        prev_end = tok.end + 1
        found = [s for s in sentinels if s in raw]
        if not found:
            continue
        name = sentinels[found[0]]
        whole = len(found) == 1 and (
            (kind == "VAR" and raw == found[0])
            or (kind == "STRING" and tok.text == found[0] and len(raw) == len(found[0]) + 2)
        )
        if kind in _STRING_TOKENS:
            for quoted in (sentinels[s] for s in found):
                if quoted in identifiers:
                    raise SqlRejected(f"input {quoted!r} is an identifier; write its placeholder without quotes")
            splice = rewrite_literal(tokens, index, source, sentinels, dialect, _tokenize, whole=whole)
            if splice is not None:
                segments.append(_Text(source[cursor : splice.start]))
                for what, text in splice.pieces:
                    segments.append(_Text(text) if what == "sql" else _Bind(text, text=True))
                    if what == "input" and text not in order:
                        order.append(text)
                cursor = tok.end + 1
                continue
        elif not whole:
            raise SqlRejected(_inside_message(name, kind))
        if name in identifiers:
            segments += [_Text(source[cursor : tok.start]), _Identifier(name)]
        else:
            op_start, negated = _in_operator(tokens, index, cursor)
            op_start = tok.start if op_start is None else op_start
            segments.append(_Text(source[cursor:op_start]))
            segments.append(_Bind(name, source[op_start : tok.start], negated))
        if name not in order:
            order.append(name)
        cursor = tok.end + 1
    tail = source[cursor:end_of_statement]
    _check_collapsed_comment(template, source, tokens, sentinels, dialect)
    _check_gap(source[prev_end:], sentinels, template)
    segments.append(_Text(tail.rstrip() if end_of_statement < len(source) else tail))
    if not any(isinstance(s, _Text) and s.text.strip() for s in segments) and not order:
        raise SqlRejected("the query template is empty")
    try:
        seen, seen_tokens = dialects.server_view(
            "".join(_classify_text(s, sentinels) for s in segments), dialect, _tokenize
        )
    except ValueError as exc:
        raise SqlRejected(f"the query template cannot be classified: {exc}") from None
    kind, statement = dialects.classify(seen, dialect)
    hazard = dialects.read_only_hazard(seen_tokens, [v for allowed in identifiers.values() for v in allowed])
    return CompiledQuery(
        template=template,
        inputs=tuple(order),
        kind="write" if hazard else kind,
        statement=statement,
        _segments=tuple(s for s in segments if not (isinstance(s, _Text) and s.text == "")),
        _identifiers={k: tuple(v) for k, v in identifiers.items()},
        hazard=hazard,
        dialect=dialect,
    )


def _in_operator(tokens: Sequence[Any], index: int, floor: int) -> tuple[int | None, bool]:
    """Where an ``IN`` or ``NOT IN`` right before token ``index`` starts, and whether it is ``NOT IN``."""
    if index < 1 or tokens[index - 1].token_type.name != "IN" or tokens[index - 1].start < floor:
        return None, False
    if index >= 2 and tokens[index - 2].token_type.name == "NOT" and tokens[index - 2].start >= floor:
        return tokens[index - 2].start, True
    return tokens[index - 1].start, False


def _inside_message(name: str, kind: str) -> str:
    if kind == "IDENTIFIER":
        return (
            f"the placeholder for input {name!r} is inside a quoted identifier; list the input under "
            "'identifiers' with its allowed values and write the placeholder without quotes"
        )
    return f"the placeholder for input {name!r} is joined to other SQL text; separate it with white space"


def _tokenize(source: str, dialect: str | None) -> list[Any]:
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        return list(sqlglot.Dialect.get_or_raise(dialect).tokenize(source))
    except SqlglotError as exc:
        raise SqlRejected(f"the query template cannot be read as SQL: {exc}") from None


def _check_gap(gap: str, sentinels: Mapping[str, str], template: str) -> None:
    """Text between tokens is white space and comments; a placeholder there is inside a comment."""
    for token, name in sentinels.items():
        if token in gap:
            raise SqlRejected(
                f"the placeholder for input {name!r} is inside a SQL comment"
                + (
                    " (flytekit collapsed the template to one line, so a '--' comment runs to its end)"
                    if "\n" not in template
                    else ""
                )
            )


def _check_collapsed_comment(
    template: str, source: str, tokens: list[Any], sentinels: Mapping[str, str], dialect: str | None
) -> None:
    """Reject a one-line template whose ``--`` comment swallowed SQL that followed it on another line."""
    if "\n" in template or not tokens:
        return
    last = tokens[-1]
    trailing = source[last.end + 1 :]
    markers = ["--", "#"] if dialect == "mysql" else ["--"]
    for marker in markers:
        at = trailing.find(marker)
        if at < 0 or "/*" in trailing[:at]:
            continue
        comment = trailing[at + len(marker) :]
        try:
            inner = _tokenize(comment, dialect)
        except SqlRejected:
            inner = []
        if any(t.token_type.name in _CLAUSE_TOKENS for t in inner) or any(s in comment for s in sentinels):
            column = len(source[: last.end + 1 + at])
            for token, name in sentinels.items():
                comment = comment.replace(token, f"{{{{ .inputs.{name} }}}}")
            raise SqlRejected(
                f"the query template is a single line (flytekit collapses newlines when a task is defined) and "
                f"its '{marker}' comment at character {column} now comments out the rest of the query: "
                f"{comment.strip()[:120]!r}. Use /* ... */ comments, or remove the comment"
            )


def _classify_text(seg: _Text | _Bind | _Identifier, sentinels: Mapping[str, str]) -> str:
    if isinstance(seg, _Text):
        return seg.text
    return f"{seg.op} tbx_placeholder " if isinstance(seg, _Bind) else " tbx_identifier "
