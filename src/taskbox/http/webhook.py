r"""flytekit ``WebhookTask`` templates (task type ``webhook``): the request flytekit's connector sends.

Why: flytekit runs webhook tasks in its connector service; taskbox runs the same serialized templates
in a container, so a workflow can move without re-authoring. The template's ``custom`` is
``{url, method, headers, data, show_data, show_url, timeout_sec}`` with ``{inputs.x}`` placeholders;
the single output ``info`` is ``{status_code, response_data[, input_data][, url]}``. A receiver must
not see a difference, so this module renders the request the way flytekit 1.16's connector does
(``flytekit/extras/webhook/connector.py``, ``utils/dict_formatter.py``,
``interaction/string_literals.py``), checked byte for byte by tests/http/test_webhook_golden.py.

Invariants (flytekit's rendering):
    * An input's value is what ``literal_string_repr`` makes of its literal: int, float, bool, str,
      ``None``; a list; a typed dict (``Dict[str, T]``, a literal map) as a dict; an untyped dict, a
      dataclass or a pydantic model (msgpack STRUCT) as *JSON text* (``json.dumps``); a datetime as ISO
      text, a duration as seconds (float), a file, directory or dataset as its URI, an enum as its value.
    * ``{inputs.x}`` (also ``{inputs.x.key}`` into a typed dict) that is a whole string becomes that
      value with its type; inside a longer string it becomes ``str(value)`` (``False``, ``None``,
      ``[1, 2]``, ``{'a': 1}``, ``1e-07``). Placeholders are replaced one after another, as flytekit does.
      Only dict values and list items are rendered, never keys. Any other ``{a.b}`` text fails, as
      it makes the connector fail.
    * ``data`` keeps the numbers the template stores: a protobuf ``Struct`` holds floats, so a literal
      ``5`` is sent as ``5.0``. GET sends ``data`` as httpx ``params`` (replacing the URL's own query,
      even when ``data`` is empty), POST as a JSON body; only 200 succeeds; ``info.url`` is the
      rendered URL without ``data``; ``response_data`` is the body decoded as httpx's ``Response.text``.
    * flytekit's ``data`` and ``headers`` come from a ``Struct`` whose key order changes from process
      to process; taskbox sends them in sorted key order (one of the orders flytekit may send).

Invariants (where taskbox keeps a safety rule instead; docs/http.md lists them):
    * A value in the URL's host must be a host name or IP address; in a path segment, ``/``, ``\``,
      ``?`` and ``#`` are percent-encoded and a dot segment is ``InputError``; in the query, ``&`` and
      ``#`` are percent-encoded. A value that starts the URL (``{inputs.base}/x``) or is the whole URL
      chooses the host, as the template says it may; the SSRF guard still applies.
    * Methods other than GET and POST are refused (flytekit would send them as POST).
    * What taskbox adds is on by default even here: the SSRF guard, the body cap, retries of GET.
      Other taskbox fields (``allow``, ``secret_headers``...) may be added to the template.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from taskbox.errors import ConfigError, InputError

__all__ = ["INPUT_NAMES", "WEBHOOK_FIELDS", "render_webhook", "webhook_info", "webhook_to_http", "webhook_value"]

WEBHOOK_FIELDS = ("url", "method", "headers", "data", "show_data", "show_url", "timeout_sec")
#: flytekit's placeholder (``dict_formatter.format_dict``): any braces; only text with a ``.`` is replaced.
PLACEHOLDER = re.compile(r"\{([^}]+)\}")
#: The input names a webhook template uses (``{inputs.x}``, ``{inputs.x.key}``); group 1 is the name.
INPUT_NAMES = re.compile(r"\{inputs\.(\w+)(?:\.[^}]*)?\}")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$")
_NOT_IN_BODY = ("query", "json_body", "form_body")
_ESCAPES = {
    "path": {"/": "%2F", "\\": "%5C", "?": "%3F", "#": "%23"},
    "query": {"&": "%26", "#": "%23"},
}


def webhook_to_http(custom: dict[str, Any]) -> dict[str, Any]:
    """Translate a WebhookTask ``custom`` mapping into :class:`taskbox.http.config.HTTPConfig` fields.

    Raises:
        ValueError: A method other than GET/POST, a header value that is not text (httpx refuses it
            in flytekit's connector too), or ``query``/``json_body``/``form_body`` next to ``data``.
    """
    extra = {k: v for k, v in custom.items() if k not in WEBHOOK_FIELDS}
    clash = [k for k in _NOT_IN_BODY if k in extra]
    if clash:
        raise ValueError(f"a webhook template sends its 'data'; {', '.join(clash)} cannot be added to it")
    method = str(custom.get("method") or "POST").upper()
    if method not in ("GET", "POST"):
        raise ValueError(f"a webhook's method is GET or POST, got {method!r}")
    headers = custom.get("headers") or {}
    for name, value in headers.items():
        if not isinstance(value, str):
            raise ValueError(f"webhook header {name!r}: the value must be text, got {value!r}")
    timeout = float(custom.get("timeout_sec") or 10)
    config: dict[str, Any] = {
        "url": custom.get("url", ""),
        "method": method,
        "headers": dict(headers),
        "placeholder_style": "webhook",
        "expected_status": [200],
        "webhook": "info",
        "webhook_data": custom.get("data"),
        "webhook_show_data": bool(custom.get("show_data", False)),
        "webhook_show_url": bool(custom.get("show_url", False)),
        "timeout_s": timeout,
        "read_timeout_s": timeout,
        "connect_timeout_s": min(timeout, 10.0),
    }
    config.update(extra)
    return config


# ------------------------------------------------------------------ input values as flytekit sees them


def _simple(name: str) -> int:
    from flyteidl.core import types_pb2

    return int(types_pb2.SimpleType.Value(name))


def _is_msgpack(literal_type: Any) -> bool:
    """Whether a STRUCT type is flytekit's msgpack one (untyped dict, dataclass, pydantic model)."""
    fields = literal_type.annotation.annotations.fields
    if "cache-key-metadata" not in fields:
        return False
    meta = fields["cache-key-metadata"].struct_value.fields
    return "serialization-format" in meta and meta["serialization-format"].string_value == "msgpack"


def _fits(value: Any, literal_type: Any) -> bool:
    """Whether ``value`` (as taskbox decoded it) is of the union variant ``literal_type``."""
    kind = literal_type.WhichOneof("type")
    if kind == "simple":
        checks: dict[int, Callable[[Any], bool]] = {
            _simple("NONE"): lambda v: v is None,
            _simple("INTEGER"): lambda v: isinstance(v, int) and not isinstance(v, bool),
            _simple("FLOAT"): lambda v: isinstance(v, float),
            _simple("STRING"): lambda v: isinstance(v, str),
            _simple("BOOLEAN"): lambda v: isinstance(v, bool),
            _simple("DATETIME"): lambda v: isinstance(v, (_dt.datetime, _dt.date)),
            _simple("DURATION"): lambda v: isinstance(v, _dt.timedelta),
            _simple("STRUCT"): lambda v: isinstance(v, dict),
        }
        check = checks.get(literal_type.simple)
        return check(value) if check else False
    if kind == "collection_type":
        return isinstance(value, list)
    if kind == "map_value_type":
        return isinstance(value, dict)
    if kind == "enum_type":
        return isinstance(value, (str, enum.Enum))
    if kind == "union_type":
        return any(_fits(value, v) for v in literal_type.union_type.variants)
    return hasattr(value, "uri")


def webhook_value(value: Any, literal_type: Any = None) -> Any:
    """An input's value as flytekit's connector renders it (``literal_string_repr`` of its literal).

    Args:
        value: The input as taskbox decoded it.
        literal_type: Its ``LiteralType`` (``None``: judged by the value alone, a dict as a typed dict).

    Raises:
        InputError: A msgpack STRUCT holding something JSON cannot carry (flytekit's ``json.dumps`` fails).
    """
    if value is None:
        return None
    kind = literal_type.WhichOneof("type") if literal_type is not None else None
    if kind == "union_type":
        variant = next((v for v in literal_type.union_type.variants if _fits(value, v)), None)
        return webhook_value(value, variant)
    if kind == "simple" and literal_type.simple == _simple("STRUCT") and _is_msgpack(literal_type):
        try:
            return json.dumps(value)  # flytekit: json.dumps(msgpack.unpackb(binary)), default separators
        except (TypeError, ValueError) as exc:
            raise InputError(f"a dict input cannot be written as JSON text: {exc}") from None
    if isinstance(value, (bool, int, float, str)):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=_dt.UTC)).isoformat()
    if isinstance(value, _dt.date):
        return _dt.datetime.combine(value, _dt.time.min, _dt.UTC).isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        inner = literal_type.map_value_type if kind == "map_value_type" else None
        # A literal map's order is protobuf's (random per process in flytekit); sorted here.
        return {k: webhook_value(value[k], inner) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        inner = literal_type.collection_type if kind == "collection_type" else None
        return [webhook_value(v, inner) for v in value]
    uri = getattr(value, "uri", None)
    return uri if isinstance(uri, str) else str(value)


# -------------------------------------------------------------------- flytekit's format_dict


class _Formatter:
    """``format_dict`` of flytekit's connector, over the task's inputs (each converted once, when used)."""

    def __init__(self, inputs: Mapping[str, Any], types: Mapping[str, Any]) -> None:
        self.inputs = inputs
        self.types = types
        self.values: dict[str, Any] = {}

    def lookup(self, match: str) -> Any:
        keys = match.split(".")
        if keys[0] != "inputs":
            raise ConfigError(
                f"{{{match}}} is read as a placeholder (braces around text with a '.'), but only {{inputs.NAME}} "
                "exists; flytekit's connector fails on it too. Remove the braces or the '.'"
            )
        name = keys[1]
        if name not in self.inputs:
            known = ", ".join(sorted(self.inputs)) or "none"
            raise InputError(f"placeholder {{{match}}}: the task has no input {name!r} (inputs: {known})")
        if name not in self.values:
            self.values[name] = webhook_value(self.inputs[name], self.types.get(name))
        value = self.values[name]
        for depth, key in enumerate(keys[2:], start=2):
            if not isinstance(value, dict) or key not in value:
                what = ".".join(keys[:depth])
                raise InputError(f"placeholder {{{match}}}: {what} has no key {key!r} (a {type(value).__name__})")
            value = value[key]
        return value

    def string(self, text: str, replace: Callable[[str, str, str], str] | None = None) -> Any:
        """One string: a whole placeholder gives the value itself, others are replaced in turn as text."""
        if "{" not in text or "}" not in text:
            return text
        for match in PLACEHOLDER.findall(text):
            if "." not in match:
                continue
            value = self.lookup(match)
            if f"{{{match}}}" == text:
                return value
            text = (replace or str.replace)(text, f"{{{match}}}", str(value))
        return text

    def data(self, template: Any) -> Any:
        """A ``data`` structure: string leaves rendered, dict keys kept (and sorted), other values as stored."""
        if isinstance(template, str):
            return self.string(template)
        if isinstance(template, list):
            return [self.data(v) for v in template]
        if isinstance(template, dict):
            return {k: self.data(template[k]) for k in sorted(template)}
        return template


# ------------------------------------------------------------------------------------------ URL


def _check_printable(value: str) -> None:
    if any(c.isascii() and not c.isprintable() for c in value):
        raise InputError(f"an input puts a control character into the URL: {value!r}")


def _component(prefix: str) -> str:
    """The URL component that text following ``prefix`` (the rendered URL so far) lands in."""
    if "#" in prefix:
        return "fragment"
    if "?" in prefix:
        return "query"
    scheme_end = prefix.find("://")
    if scheme_end < 0:
        return "start" if not prefix else ("path" if "/" in prefix else "authority")
    return "path" if "/" in prefix[scheme_end + 3 :] else "authority"


def _url_replace(text: str, placeholder: str, value: str) -> str:
    """``str.replace`` for a URL: each occurrence's value made safe for the component it lands in."""
    _check_printable(value)
    out: list[str] = []
    start = 0
    while (found := text.find(placeholder, start)) >= 0:
        out.append(text[start:found])
        where = _component("".join(out))
        if where == "authority" and not _HOST.match(value):
            raise InputError(f"an input placed in the URL's host must be a host name or IP address, got {value!r}")
        piece = value
        for char, escaped in _ESCAPES.get(where, {}).items():
            piece = piece.replace(char, escaped)
        out.append(piece)
        start = found + len(placeholder)
    out.append(text[start:])
    return "".join(out)


def render_url(formatter: _Formatter, template: str) -> str:
    """The URL flytekit's connector would build, with taskbox's rules for values in the host, path and query."""
    from urllib.parse import urlsplit

    from taskbox.http.templating import is_dot_segment

    url = formatter.string(template, _url_replace)
    if not isinstance(url, str):
        raise InputError(f"the URL is the input's whole value, which must be text, got {type(url).__name__}")
    _check_printable(url)
    try:
        written = set(urlsplit(template).path.split("/"))
        segments = urlsplit(url).path.split("/")
    except ValueError as exc:
        raise InputError(f"the URL {url!r} is not valid: {exc}") from None
    for segment in segments:
        if segment not in written and is_dot_segment(segment):
            raise InputError(
                f"an input makes the URL path segment {segment!r}, which is not exactly one path segment (a '.' or "
                "'..' segment, also percent-encoded, is removed by clients and servers and would change the path)"
            )
    return url


# ------------------------------------------------------------------------------------- request


def render_webhook(
    config: Any, inputs: Mapping[str, Any], template: Any = None
) -> tuple[str, dict[str, str], dict[str, Any], Any]:
    """Render a webhook's request as flytekit's connector does.

    Args:
        config: The :class:`taskbox.http.config.HTTPConfig` translated from the webhook template.
        inputs: Input values by name (as taskbox decoded them).
        template: The ``TaskTemplate`` (its interface gives each input's literal type), if there is one.

    Returns:
        ``(url, headers, httpx body kwargs, data)``: ``params=data`` for GET, ``json=data`` for POST;
        ``data`` is also ``info.input_data``.

    Raises:
        InputError: A value cannot be sent the way the template places it (taskbox's URL rules, a
            header that is not text or not sendable, a number JSON cannot carry).
        ConfigError: Text in braces with a ``.`` that is no ``{inputs.x}`` placeholder.
    """
    import httpx

    from taskbox.http.templating import check_header_value

    types = {}
    if template is not None:
        types = {name: var.type for name, var in template.interface.inputs.variables.items()}
    formatter = _Formatter(inputs, types)
    url = render_url(formatter, config.url)
    headers: dict[str, str] = {}
    for name in sorted(config.headers):
        value = formatter.string(config.headers[name])
        if not isinstance(value, str):
            raise InputError(
                f"header {name!r} is the whole value of an input, a {type(value).__name__}; a header value must be "
                "text (put the placeholder inside text, e.g. 'n={inputs.x}')"
            )
        check_header_value(name, value, config.headers[name])
        headers[name] = value
    data = formatter.data(config.webhook_data)
    if config.method == "GET":
        try:
            httpx.QueryParams(data)
        except (TypeError, ValueError) as exc:
            raise InputError(f"the webhook's data cannot be sent as query parameters: {exc}") from None
        return url, headers, {"params": data}, data
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the webhook's data cannot be sent as JSON: {exc}") from None
    return url, headers, {"json": data}, data


def webhook_info(config: Any, reply: Any, url: str, data: Any) -> dict[str, Any]:
    """The connector's ``info`` output (``response_data`` decoded as httpx's ``Response.text`` does)."""
    import httpx

    content_type = reply.headers.get("content-type")
    text = httpx.Response(200, headers={"content-type": content_type} if content_type else None, content=reply.body())
    info: dict[str, Any] = {"status_code": reply.status, "response_data": text.text}
    if config.webhook_show_data:
        info["input_data"] = data
    if config.webhook_show_url:
        info["url"] = url
    return info
