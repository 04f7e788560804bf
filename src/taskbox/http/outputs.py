"""Map a response (or a series of pages) onto the task's declared outputs.

Why: the next task wants parts of the answer, typed: an id, a list of records, a file. JSON pointers
(RFC 6901) name the parts; the literal engine converts them to the declared types, so a response that
does not fit fails as the user's error instead of producing a wrong literal.

Invariants:
    * Every configured output must be declared, and every declared output must be produced.
    * A missing pointer, a non-JSON body where JSON is needed, or a page whose items are not a list is
      a :class:`~taskbox.net.errors.ResponseShapeError` (USER).
    * An output declared as a blob (File) gets a file: the raw body, or the JSON of a pointed-at part;
      a body larger than ``file_threshold_bytes`` can only go to a File output.
    * Secret values are masked in every literal output (strings inside JSON values, headers, text
      bodies, webhook ``info``); a File output holds the raw bytes the server sent.
    * Pages are followed up to ``max_pages``; more pages fail unless ``truncate`` is set. Every page is
      requested through the same :class:`~taskbox.http.client.Caller`, which sends secret headers only
      to the configured origins (whatever origin a ``Link`` or a redirect led to).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from typing import Any

from taskbox.net.errors import ResponseShapeError

__all__ = ["collect", "json_pointer", "next_link", "paginate", "parse_body"]

log = logging.getLogger("taskbox.http")
_MISSING = object()
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")


def json_pointer(doc: Any, pointer: str, default: Any = _MISSING) -> Any:
    """Resolve an RFC 6901 JSON pointer; ``default`` (if given) when a step is missing."""
    if pointer == "":
        return doc
    if not pointer.startswith("/"):
        raise ResponseShapeError(f"JSON pointer {pointer!r} must start with '/'")
    current = doc
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, Mapping) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            if default is not _MISSING:
                return default
            raise ResponseShapeError(f"the response has nothing at JSON pointer {pointer!r} (missing {token!r})")
    return current


def parse_body(reply: Any) -> Any:
    """The body as JSON, or a ResponseShapeError."""
    try:
        return json.loads(reply.body())
    except (ValueError, UnicodeDecodeError):
        ctype = reply.headers.get("content-type", "?")
        raise ResponseShapeError(
            f"the response body is not JSON (content-type {ctype}), but an output needs it"
        ) from None


def body_value(reply: Any) -> Any:
    """The body as JSON when it is JSON, else as text (flytekit's ``response_data``)."""
    data = reply.body()
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data.decode("utf-8", errors="replace")


def next_link(values: list[str]) -> str | None:
    """The target of the ``rel="next"`` link among ``Link`` header values (RFC 8288)."""
    for value in values:
        for target, params in _LINK.findall(value):
            for param in params.split(";"):
                key, _, val = param.strip().partition("=")
                if key.strip().lower() == "rel" and "next" in val.strip().strip('"').lower().split():
                    return target
    return None


def paginate(
    caller: Any, config: Any, first: Any, method: str, headers: dict[str, str], body: dict[str, Any]
) -> tuple[Any, list[Any]]:
    """Follow pages from ``first``; return the last reply and all items, in order."""
    pg = config.pagination
    items: list[Any] = []
    reply, pages = first, 0
    body = {k: v for k, v in body.items() if k != "params"}
    while True:
        pages += 1
        doc = parse_body(reply)
        page_items = json_pointer(doc, pg.items_pointer)
        if not isinstance(page_items, list):
            raise ResponseShapeError(f"page {pages}: {pg.items_pointer or 'the body'} is not a list")
        items.extend(page_items)
        if pg.next == "link":
            target = next_link(reply.headers.get_list("link"))
            url = reply.url.join(target) if target else None
        else:
            cursor = json_pointer(doc, pg.cursor_pointer or "", None)
            url = reply.url.copy_set_param(pg.cursor_param, str(cursor)) if cursor not in (None, "", False) else None
        if url is None:
            break
        if pages >= pg.max_pages:
            if pg.truncate:
                log.warning("stopping after max_pages=%d pages; more pages were available", pg.max_pages)
                break
            raise ResponseShapeError(f"more than max_pages={pg.max_pages} pages; raise max_pages or set truncate")
        reply = caller.request(method, url, headers=headers, **body)
    log.info("read %d page(s), %d item(s)", pages, len(items))
    return reply, items


def redacted(value: Any) -> Any:
    """``value`` with every registered secret masked in its strings (keys included)."""
    from taskbox.redaction import redact

    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redacted(k): redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


def _kind(literal_type: Any) -> str:
    which = getattr(literal_type, "WhichOneof", None)
    return (which("type") or "") if which else ""


def _is_string(literal_type: Any) -> bool:
    from flyteidl.core import types_pb2

    return _kind(literal_type) == "simple" and literal_type.simple == types_pb2.STRING


def _file(working_dir: str, data: bytes | None = None, path: str | None = None, suffix: str = "") -> Any:
    from taskbox.literals import File

    if path is None:
        os.makedirs(working_dir, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="http-output-", suffix=suffix, dir=working_dir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data or b"")
    return File(path)


def _table(items: list[Any]) -> Any:
    import pyarrow as pa

    from taskbox.literals import StructuredDataset

    if not all(isinstance(i, Mapping) for i in items):
        raise ResponseShapeError("a StructuredDataset output needs a list of JSON objects")
    return StructuredDataset(dataframe=pa.Table.from_pylist([dict(i) for i in items]))


def _shaped(name: str, value: Any, literal_type: Any, working_dir: str) -> Any:
    kind = _kind(literal_type)
    if kind == "blob":
        return _file(working_dir, json.dumps(value).encode(), suffix=".json")
    if kind == "structured_dataset_type":
        if not isinstance(value, list):
            raise ResponseShapeError(f"output {name!r} is a StructuredDataset, but the value is not a list")
        return _table(value)
    return value


def collect(
    config: Any,
    reply: Any,
    items: list[Any] | None,
    output_types: Mapping[str, Any],
    working_dir: str,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the outputs by name.

    Args:
        config: The :class:`taskbox.http.config.HTTPConfig`.
        reply: The last reply.
        items: All pages' items (pagination), or None.
        output_types: Declared outputs, name -> LiteralType.
        working_dir: Where files are written.
        info: The webhook ``info`` dict, if the template is a webhook.

    Returns:
        Output values by name.

    """
    out: dict[str, Any] = {}
    doc: Any = _MISSING
    big = reply.size > config.file_threshold_bytes
    for name, pointer in config.outputs.items():
        if big and _kind(output_types.get(name)) != "blob":
            raise ResponseShapeError(
                f"the response body ({reply.size} bytes) is over file_threshold_bytes={config.file_threshold_bytes}; "
                f"map it to a File output with body_output instead of the literal output {name!r}"
            )
        if doc is _MISSING:
            doc = parse_body(reply)
        out[name] = _shaped(name, redacted(json_pointer(doc, pointer)), output_types.get(name), working_dir)
    if config.status_output:
        out[config.status_output] = reply.status
    if config.headers_output:
        out[config.headers_output] = redacted(dict(reply.headers.items()))
    if config.body_output:
        if _kind(output_types.get(config.body_output)) == "blob":
            out[config.body_output] = _file(working_dir, None if reply.path else reply.body(), reply.path)
        elif big:
            raise ResponseShapeError(
                f"the response body ({reply.size} bytes) is over file_threshold_bytes={config.file_threshold_bytes}; "
                f"declare output {config.body_output!r} as a File"
            )
        elif _is_string(output_types.get(config.body_output)):
            out[config.body_output] = redacted(reply.body().decode("utf-8", errors="replace"))
        else:
            out[config.body_output] = redacted(body_value(reply))
    if config.pagination is not None:
        name = config.pagination.output
        items = redacted(items or [])
        out[name] = (
            _table(items or []) if _kind(output_types.get(name)) == "structured_dataset_type" else list(items or [])
        )
    if config.webhook and info is not None:
        out[config.webhook] = redacted(info)
    missing = sorted(set(output_types) - set(out))
    if missing:
        raise ResponseShapeError(
            f"declared output(s) {', '.join(missing)} are not mapped: add them to 'outputs' (JSON pointers) "
            "or name them as status_output/headers_output/body_output/pagination.output"
        )
    extra = sorted(set(out) - set(output_types))
    if extra:
        raise ResponseShapeError(f"the config maps output(s) {', '.join(extra)} that the task does not declare")
    return out
