r"""Build the request (URL, query, headers, body) from the config's templates and the task's inputs.

Why: pasting input values into a URL or a JSON text lets a value change the request's structure
(``../admin``, ``?x=1&admin=true``, ``"}, "role": "admin``). Here a value is percent-encoded for the
URL component it lands in, and a body is a data structure whose leaves are replaced, serialised by
httpx afterwards.

Invariants:
    * Placeholders are ``{{ .inputs.x }}`` (style ``flyte``), ``{inputs.x}`` (style ``webhook``) or
      ``{{ .job.x }}`` (style ``job``: the ``http-job`` executor's handle fields).
    * In the path, query and fragment of the URL template a value is quoted with no safe characters
      (``/`` becomes ``%2F``); in the host it must be a plain host name or IP literal.
    * A path segment that holds a value reaches the server as exactly that one segment: a segment that
      is, or decodes to, a dot segment (``.``, ``..``, ``%2e%2e``, ``%252e.``, fullwidth dots, with ``/`` or
      ``\`` as separators after decoding) is refused as ``InputError`` before anything is sent, because
      httpx (RFC 3986 section 5.2.4) and many servers remove dot segments, which would change the path.
    * A string that is exactly one placeholder becomes the input's value with its JSON type;
      placeholders inside a longer string are replaced as text inside that string only.
    * An unknown placeholder is an ``InputError`` naming it.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from taskbox.errors import InputError

__all__ = [
    "check_header_value",
    "is_dot_segment",
    "jsonable",
    "placeholder_pattern",
    "render_text",
    "render_url",
    "render_value",
]

_PATTERNS = {
    "flyte": re.compile(r"\{\{\s*\.?inputs\.(\w+)\s*\}\}", re.IGNORECASE),
    "webhook": re.compile(r"\{inputs\.(\w+)\}"),
    # ``http-job`` status/cancel URLs: fields of the submitted job's handle (``{{ .job.id }}``).
    "job": re.compile(r"\{\{\s*\.?job\.(\w+)\s*\}\}", re.IGNORECASE),
}
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$")


def placeholder_pattern(style: str) -> re.Pattern[str]:
    """Return the regular expression of a placeholder style (``flyte``, ``webhook``, ``job``); group 1 is the name."""
    return _PATTERNS[style]


def jsonable(value: Any) -> Any:
    """``value`` as JSON types (datetimes as ISO text, tuples/sets as lists, dataclass-like as dicts)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return jsonable(dataclasses.asdict(value))
    return str(value)


def _text(value: Any) -> str:
    value = jsonable(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def _lookup(inputs: Mapping[str, Any], name: str) -> Any:
    if name not in inputs:
        known = ", ".join(sorted(inputs)) or "none"
        raise InputError(f"placeholder for input {name!r}, but the task has no such input (inputs: {known})")
    return inputs[name]


def render_text(template: str, inputs: Mapping[str, Any], style: str = "flyte", quote_value: Any = None) -> str:
    """Replace placeholders in ``template`` with text, passing each value through ``quote_value``."""
    pattern = _PATTERNS[style]

    def sub(match: re.Match[str]) -> str:
        text = _text(_lookup(inputs, match.group(1)))
        return quote_value(text) if quote_value else text

    return pattern.sub(sub, template)


def render_value(template: Any, inputs: Mapping[str, Any], style: str = "flyte") -> Any:
    """Replace placeholders in a JSON-like structure (keys are text; whole-string leaves keep their type)."""
    pattern = _PATTERNS[style]
    if isinstance(template, str):
        whole = pattern.fullmatch(template.strip())
        if whole:
            return jsonable(_lookup(inputs, whole.group(1)))
        return render_text(template, inputs, style)
    if isinstance(template, Mapping):
        return {render_text(str(k), inputs, style): render_value(v, inputs, style) for k, v in template.items()}
    if isinstance(template, list):
        return [render_value(v, inputs, style) for v in template]
    if isinstance(template, float) and template.is_integer():
        return int(template)  # protobuf Struct numbers come back as floats
    return template


def is_dot_segment(segment: str) -> bool:
    r"""Whether a (percent-encoded) path segment is, or decodes to, a dot segment anywhere along the way.

    Decodes percent-escapes repeatedly (double-encoded ``%252e``), normalises Unicode (NFKC: fullwidth
    dots) and treats ``/`` and ``\`` as separators, as lenient servers and proxies do.
    """
    seen = segment
    for _ in range(8):
        text = unicodedata.normalize("NFKC", seen)
        if any(piece in (".", "..") for piece in re.split(r"[/\\]", text)):
            return True
        decoded = unquote(text)
        if decoded == seen:
            return False
        seen = decoded
    return True  # still decoding after 8 rounds: not a value anyone meant as one segment


def render_url(template: str, inputs: Mapping[str, Any], style: str = "flyte") -> str:
    """Build the URL: each component of the template is filled with values quoted for that component.

    Args:
        template: The URL template.
        inputs: Input values by name.
        style: Placeholder style.

    Returns:
        The URL (every substituted value percent-encoded; the template's own text kept).

    """
    parts = urlsplit(template)

    def component(text: str) -> str:
        return render_text(text, inputs, style, lambda v: quote(v, safe=""))

    def host_value(value: str) -> str:
        if not _HOST.match(value):
            raise InputError(f"an input placed in the URL's host must be a host name or IP address, got {value!r}")
        return value

    def path(text: str) -> str:
        segments = []
        for raw in text.split("/"):
            segment = component(raw)
            if segment != raw and is_dot_segment(segment):
                raise InputError(
                    f"a value placed into the URL path segment {raw!r} makes it {segment!r}, which is not exactly one "
                    "path segment (a '.' or '..' segment, also percent-encoded, is removed by clients and servers "
                    "and would change the path); pass a value that is one path segment"
                )
            segments.append(segment)
        return "/".join(segments)

    netloc = render_text(parts.netloc, inputs, style, host_value)
    scheme = render_text(parts.scheme, inputs, style, host_value).lower()
    return urlunsplit((scheme, netloc, path(parts.path), component(parts.query), component(parts.fragment)))


#: What may go into a header value: printable ASCII and tab.
_SENDABLE = re.compile(r"^[\t\x20-\x7e]*$")


def check_header_value(name: str, value: str, template: str) -> None:
    """Raise ``InputError`` when an input placed into header ``name`` makes it unsendable.

    Args:
        name: The header's name.
        value: The rendered value.
        template: The configured value (only a value that placeholders changed is the inputs' doing;
            a bad literal value is refused as ``USER:InvalidConfig`` where the request is built).

    """
    if value != template and not _SENDABLE.match(value):
        raise InputError(
            f"header {name!r}: an input made its value unsendable (only printable ASCII and tab may go into a "
            f"header; got {value!r})"
        )
