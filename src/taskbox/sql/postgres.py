"""PostgreSQL result streaming on psycopg 3: a server-side cursor that hands heavy types over as text.

Why: building a ``Decimal`` or a time-zone-aware ``datetime`` per value costs far more than fetching
it, and Arrow then has to take each object apart again. For a table output the cursor instead loads
``numeric``, ``timestamp``, ``timestamptz`` and ``date`` as their text form (psycopg's C text loader)
and Arrow casts each batch's strings to ``decimal128``/``timestamp``/``date32`` in bulk. Everything
else uses psycopg's normal loaders.

Invariants:
    * The statement is executed with psycopg's server-side parameter binding (``%(name)s`` markers
      rendered by :mod:`taskbox.sql.templating`), inside the transaction the caller opened through
      SQLAlchemy, with the session settings it applied.
    * With ``stream`` the cursor is a named (server-side) cursor: rows travel in ``batch_rows`` batches
      and memory stays bounded by one batch.
    * A ``numeric`` column without a declared precision is converted per value through ``Decimal``.
"""

from __future__ import annotations

import decimal
import uuid
from collections.abc import Mapping
from typing import Any

from taskbox.sql.dialects import type_hints
from taskbox.sql.results import CursorSource

__all__ = ["open_cursor", "uses_psycopg"]

# Types loaded as text for bulk conversion: name -> OID.
_TEXT_TYPES = {"numeric": 1700, "timestamptz": 1184, "timestamp": 1114, "date": 1082}


def uses_psycopg(dbapi_connection: Any) -> bool:
    """Tell whether the DBAPI connection is a psycopg 3 connection."""
    return type(dbapi_connection).__module__.split(".")[0] == "psycopg"


def open_cursor(
    dbapi_connection: Any, sql: str, params: Mapping[str, Any], *, stream: bool, batch_rows: int
) -> tuple[Any, CursorSource]:
    """Execute ``sql`` on a psycopg connection and describe its result for :mod:`taskbox.sql.results`.

    Args:
        dbapi_connection: The psycopg ``Connection`` (already inside the transaction).
        sql: The statement with ``%(name)s`` markers.
        params: Bind values.
        stream: Use a named server-side cursor.
        batch_rows: Rows per network round trip of the server-side cursor.

    Returns:
        ``(cursor, source)``; close the cursor when done.

    """
    from psycopg.types.string import TextLoader

    if stream:
        cursor = dbapi_connection.cursor(name=f"taskbox_{uuid.uuid4().hex[:12]}")
        cursor.itersize = batch_rows
    else:
        cursor = dbapi_connection.cursor()
    for name in _TEXT_TYPES:
        cursor.adapters.register_loader(name, TextLoader)
    cursor.execute(sql, params)
    description = cursor.description or []
    hints = type_hints("postgresql", description)
    casts: list[Any] = []
    for column, hint in zip(description, hints, strict=True):
        if column.type_code in _TEXT_TYPES.values():
            casts.append(hint if hint is not None else decimal.Decimal)
        else:
            casts.append(None)
    source = CursorSource([c.name for c in description], cursor.fetchmany, hints, casts)
    return cursor, source
