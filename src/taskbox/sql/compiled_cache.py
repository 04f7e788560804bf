"""Compiled query templates, cached on disk: a task start does not import sqlglot to re-read a template.

Why: :func:`~taskbox.sql.templating.compile_template` tokenizes and classifies the template with sqlglot,
whose import alone costs ~150 ms, a quarter of a small SQLite query's run. The result depends only on the
template, the declared inputs, the dialect, the allowed identifiers and the code that compiled it, so it
is kept beside the downloaded databases (:mod:`taskbox.sql.sqlite_fetch`) and read back by later starts.

Invariants:
    * The key is a SHA-256 of the template, the inputs, the dialect, the identifiers, :data:`FORMAT` and
      the identity (path, size, mtime) of the compiling code: taskbox's ``templating``, ``dialects`` and
      ``quoted_placeholders`` sources and sqlglot's (and its optional Rust tokenizer's) installed package. A
      change to any is a miss.
    * Only a successful compilation is stored; a rejected template is compiled, and rejected, every time.
    * Entries live in the cache's verified private root (mode 0700, ours); a file that is not ours and
      0600, is a symbolic link, does not parse or does not match its key is ignored and recompiled.
    * The SQLite connection stays the write barrier (read-only file, ``query_only``, the authorizer); the
      cache only skips recomputing what the same code computed before.

Example:
    >>> q = compile_cached("SELECT * FROM t WHERE id = {{ .inputs.x }}", ["x"], dialect="sqlite")
    >>> q.render({"x": 1}, quote=str, style="sqlite")[0]
    'SELECT * FROM t WHERE id = :x'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from taskbox.sql import dialects, quoted_placeholders, templating
from taskbox.sql.templating import CompiledQuery, _Bind, _Identifier, _Text, compile_template

__all__ = ["FORMAT", "compile_cached"]

log = logging.getLogger("taskbox.sql")

FORMAT = 2
_MAX_ENTRY_BYTES = 4 * 1024 * 1024


def _code_identity() -> list[Any]:
    import importlib.util

    files: list[str | None] = [templating.__file__, dialects.__file__, quoted_placeholders.__file__]
    for package in ("sqlglot", "sqlglotrs"):
        spec = importlib.util.find_spec(package)
        files.append(spec.origin if spec is not None else None)
    identity: list[Any] = []
    for path in files:
        if path is None:
            identity.append(None)
            continue
        st = os.stat(path)
        identity.append([path, st.st_size, st.st_mtime_ns])
    return identity


def _key(template: str, inputs: Sequence[str], dialect: str | None, identifiers: Mapping[str, Sequence[str]]) -> str:
    material = [FORMAT, template, list(inputs), dialect, {k: list(v) for k, v in identifiers.items()}]
    material.append(_code_identity())
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _dump(key: str, q: CompiledQuery) -> bytes:
    segments: list[list[Any]] = []
    for s in q._segments:
        if isinstance(s, _Text):
            segments.append(["t", s.text])
        elif isinstance(s, _Bind):
            segments.append(["b", s.input, s.op, s.negated, s.text])
        else:
            segments.append(["i", s.input])
    document = {
        "key": key,
        "template": q.template,
        "inputs": list(q.inputs),
        "kind": q.kind,
        "statement": q.statement,
        "segments": segments,
        "identifiers": {k: list(v) for k, v in q._identifiers.items()},
        "hazard": q.hazard,
        "dialect": q.dialect,
    }
    return json.dumps(document).encode()


def _load(key: str, data: bytes) -> CompiledQuery:
    d = json.loads(data)
    if d["key"] != key:
        raise ValueError("the entry belongs to another key")
    segments: list[_Text | _Bind | _Identifier] = []
    for s in d["segments"]:
        if s[0] == "t":
            segments.append(_Text(str(s[1])))
        elif s[0] == "b":
            segments.append(_Bind(str(s[1]), str(s[2]), bool(s[3]), bool(s[4])))
        elif s[0] == "i":
            segments.append(_Identifier(str(s[1])))
        else:
            raise ValueError(f"unknown segment {s[0]!r}")
    return CompiledQuery(
        template=d["template"],
        inputs=tuple(d["inputs"]),
        kind=d["kind"],
        statement=d["statement"],
        _segments=tuple(segments),
        _identifiers={k: tuple(v) for k, v in d["identifiers"].items()},
        hazard=d["hazard"],
        dialect=d["dialect"],
    )


def _directory() -> str | None:
    from taskbox.sql.sqlite_fetch import DatabaseCache

    cache = DatabaseCache()
    try:
        cache._ready(create=True)
        directory = os.path.join(cache.root, "compiled")
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
    except OSError:
        return None
    return directory


def _read(path: str) -> bytes | None:
    from taskbox.sql.sqlite_fetch import _open_private, _untrusted

    try:
        fd = _open_private(path, os.O_RDONLY)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if _untrusted(path, directory=False, private=True) is not None:
            return None
        data = f.read(_MAX_ENTRY_BYTES + 1)
    return data if len(data) <= _MAX_ENTRY_BYTES else None


def _write(path: str, data: bytes) -> None:
    from taskbox.sql.sqlite_fetch import _open_private

    staging = f"{path}.{os.getpid()}.tmp"
    try:
        fd = _open_private(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, path)
    except OSError as exc:
        log.debug("the compiled template could not be cached: %s", exc)
        with contextlib.suppress(OSError):
            os.unlink(staging)


def compile_cached(
    template: str,
    inputs: Sequence[str],
    *,
    dialect: str | None,
    identifiers: Mapping[str, Sequence[str]] | None = None,
) -> CompiledQuery:
    """:func:`~taskbox.sql.templating.compile_template`, read from the cache when the same code compiled it before.

    Args and raises: as :func:`~taskbox.sql.templating.compile_template`.
    """
    identifiers = identifiers or {}
    key = _key(template, inputs, dialect, identifiers)
    directory = _directory()
    path = os.path.join(directory, key + ".json") if directory else None
    if path is not None:
        data = _read(path)
        if data is not None:
            try:
                return _load(key, data)
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                log.debug("ignoring a damaged compiled-template cache entry %s", path)
    compiled = compile_template(template, inputs, dialect=dialect, identifiers=identifiers)
    if path is not None:
        _write(path, _dump(key, compiled))
    return compiled
