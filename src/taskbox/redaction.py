r"""Process-wide redaction of secret values from logs, error documents and outputs.

Why: a secret leaks through the text of an exception (a driver echoing its DSN, a server echoing an
auth header) far more often than through a deliberate log call, so redaction cannot be left to the
code that formats a message. Every secret value the :mod:`taskbox.secrets` accessor hands out is
registered here; the logging filter and the error-document builder pass all text through
:func:`redact` last.

Invariants:
    * Values shorter than :data:`MIN_LENGTH` characters are not masked (masking a 1-character secret
      would mask every occurrence of that letter, Airflow's known pitfall), but they are still never
      logged by taskbox itself.
    * Each value is masked in every encoding a server or library plausibly echoes: plain; URL-encoded
      (``%2F`` or ``%2f``, fully or partly, ``+`` for a space, double-encoded ``%252F``); base64 standard
      and URL-safe, with or without padding; JSON/JavaScript/Python-escaped (``\/``, ``\u0026`` or
      ``\u002B``, a surrogate pair, ``\x2f``, ``\n``, a backslash before punctuation, and one level of
      nesting, ``\\u0026`` or ``\\\/``) -- and any mix of these inside one value.
    * How: text holding ``\`` or ``%`` is decoded (escape sequences and percent-escapes, twice, for
      nesting) into a canonical text with a map back to the original offsets; the plain forms are
      searched in the original and in each decoded layer, and every match is masked in the original
      text (a match that starts or ends inside an escape masks the whole escape). Text without ``\`` or
      ``%`` costs one search of the plain forms (one literal alternation), as before.
    * Redaction comes before truncation: code that cuts text for a message cuts the redacted text
      (:func:`taskbox.net.errors.body_excerpt`, the entrypoint's bounded error message), so a cut can
      never leave a secret's prefix.
    * Registration is thread-safe and cheap; :func:`redact` is a no-op until a secret is registered.
    * URLs are scrubbed without any registration: :func:`redact_uri` (one URI) and :func:`redact_urls`
      (URLs inside free text) mask userinfo and the values of the query parameters named in
      :data:`CREDENTIAL_PARAMS` (case-insensitive), the one list of them (storage uses these functions).
      Azure's ``abfs://container@account.dfs.core.windows.net`` is the exception: there the part before
      ``@`` is a container's name, kept (a container name has no ``:``; anything with one is masked).
    * :func:`redact_urls` also masks the secrets of connection strings in free text (the values of
      :data:`CONNECTION_STRING_SECRETS`: ``AccountKey=...;``, ``SharedAccessSignature=...;``).
"""

from __future__ import annotations

import base64
import bisect
import functools
import logging
import re
import threading

MIN_LENGTH = 6
MASK = "***"

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None
_SHORT_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
#: One escape: backslashes and what they escape, or a run of percent-escapes (decoded together as UTF-8).
_TOKEN = re.compile(r"(\\+)(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[^0-9A-Za-z\s]|[ntrbf])|(?:%[0-9a-fA-F]{2})+")
_LAYERS = 2


def _forms(value: str) -> set[str]:
    from urllib.parse import quote_plus  # lazy: only once a secret is read

    raw = value.encode()
    forms = {value, quote_plus(value, safe=""), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    forms.update(f.rstrip("=") for f in list(forms))
    if any(ord(c) > 0xFFFF for c in value):  # as a JSON \ud83d\ude00 pair decodes, one surrogate at a time
        forms.add("".join(_surrogates(c) for c in value))
    return {f for f in forms if len(f) >= MIN_LENGTH}


def _surrogates(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return char
    code -= 0x10000
    return chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


def _decode_token(match: re.Match[str]) -> str:
    slashes, escaped = match.group(1), match.group(2)
    if slashes is None:  # a run of %XX: the bytes they spell, as UTF-8
        return bytes.fromhex(match.group(0).replace("%", "")).decode("utf-8", errors="replace")
    kept = "\\" * (len(slashes) // 2)  # each pair of backslashes is one escaped backslash
    if len(slashes) % 2 == 0:
        return kept + escaped  # the last backslash is itself escaped: what follows is plain text
    head = escaped[0]
    if head in "ux" and len(escaped) > 1:
        return kept + chr(int(escaped[1:], 16))
    return kept + _SHORT_ESCAPES.get(head, head)


class _Decoded:
    """``text`` with its escapes decoded, and a map from decoded offsets back to ``text``'s."""

    __slots__ = ("ends", "exact", "parent", "starts", "sources", "text")

    def __init__(self, text: str, parent: _Decoded | None = None) -> None:
        self.parent = parent
        self.starts: list[int] = []  # decoded offset where each piece starts
        self.sources: list[int] = []  # ... and where it starts in the source text
        self.ends: list[int] = []  # ... and ends in the source text
        self.exact: list[bool] = []  # a plain piece maps character by character; an escape as a whole
        out: list[str] = []
        at = length = 0

        def piece(decoded: str, start: int, end: int, exact: bool) -> None:
            nonlocal length
            self.starts.append(length)
            self.sources.append(start)
            self.ends.append(end)
            self.exact.append(exact)
            out.append(decoded)
            length += len(decoded)

        for match in _TOKEN.finditer(text):
            if match.start() > at:
                piece(text[at : match.start()], at, match.start(), True)
            piece(_decode_token(match), match.start(), match.end(), False)
            at = match.end()
        if at < len(text):
            piece(text[at:], at, len(text), True)
        self.text = "".join(out)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the ORIGINAL text that decoded ``[start, end)`` comes from (whole escapes at the edges)."""
        first = bisect.bisect_right(self.starts, start) - 1
        last = bisect.bisect_right(self.starts, end - 1) - 1
        begin = self.sources[first] + (start - self.starts[first]) if self.exact[first] else self.sources[first]
        stop = self.sources[last] + (end - self.starts[last]) if self.exact[last] else self.ends[last]
        return self.parent.span(begin, stop) if self.parent is not None else (begin, stop)


def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span (overlapping ones merged) replaced by one :data:`MASK`."""
    out: list[str] = []
    at = 0
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        out.append(text[at:start])
        out.append(MASK)
        at = end
    out.append(text[at:])
    return "".join(out)


def register(value: str | bytes) -> None:
    """Mask ``value`` (and its encodings) in everything :func:`redact` sees from now on.

    Args:
        value: A secret value; bytes are decoded as UTF-8 (undecodable bytes are masked by their
            base64 form only).

    """
    global _pattern
    if isinstance(value, bytes):
        try:
            text = value.decode()
        except UnicodeDecodeError:
            text = base64.b64encode(value).decode()
    else:
        text = value
    text = text.strip()
    if len(text) < MIN_LENGTH:
        return
    with _lock:
        new = _forms(text) - _values
        if not new:
            return
        _values.update(new)
        # Longest first, so a value is masked whole before any shorter value inside it.
        alternatives = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in alternatives))


def redact(text: str) -> str:
    """Return ``text`` with every registered secret, in any of its encodings, replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    if "\\" not in text and "%" not in text:
        return pattern.sub(MASK, text)
    spans = [m.span() for m in pattern.finditer(text)]
    layer: _Decoded | None = None
    source = text
    for _ in range(_LAYERS):
        layer = _Decoded(source, layer)
        spans.extend(layer.span(m.start(), m.end()) for m in pattern.finditer(layer.text))
        source = layer.text
        if "\\" not in source and "%" not in source:
            break
    return _mask_spans(text, spans) if spans else text


#: Query parameters whose values are credentials (signed-URL signatures, tokens, keys, passwords);
#: matched case-insensitively, by the whole name.
CREDENTIAL_PARAMS = (
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "signature",
    "sig",
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "password",
    "client_secret",
    "x-goog-signature",
    "x-goog-credential",
    "awsaccesskeyid",
)


#: Connection-string keys whose values are credentials (Azure Storage, Event Hubs, Service Bus); the
#: value runs to the next ``;``.
CONNECTION_STRING_SECRETS = ("AccountKey", "SharedAccessSignature", "SharedAccessKey")

#: Schemes whose userinfo is a container name, not a credential (``abfs://container@account.dfs...``).
_CONTAINER_SCHEMES = frozenset({"abfs", "abfss", "az", "wasb", "wasbs"})


@functools.cache
def _url_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """The patterns, compiled once.

    Returns:
        A whole credential parameter name; userinfo in text; a credential parameter in text; a
        connection-string secret in text.
    """
    names = "|".join(re.escape(name) for name in CREDENTIAL_PARAMS)
    keys = "|".join(re.escape(name) for name in CONNECTION_STRING_SECRETS)
    return (
        re.compile(rf"(?i)^(?:{names})$"),
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*)(://)([^/\s@'\"]+)@"),
        re.compile(rf"(?i)([?&;](?:{names})=)[^&\s'\"]+"),
        re.compile(rf"(?i)\b((?:{keys})=)[^;\s'\"]+"),
    )


def _is_container(scheme: str, userinfo: str) -> bool:
    """True when ``userinfo`` is an Azure container's name (kept), not a user or password (masked)."""
    return scheme.lower() in _CONTAINER_SCHEMES and ":" not in userinfo


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, sep, userinfo = match.group(1), match.group(2), match.group(3)
    return match.group(0) if _is_container(scheme, userinfo) else f"{scheme}{sep}***@"


def redact_urls(text: str) -> str:
    """Return ``text`` with the userinfo and credential query parameters of every URL in it masked.

    Connection-string secrets (``AccountKey=...``) are masked too. Example:
    ``"GET https://u:pw@h/o?X-Amz-Signature=abc&v=1"`` -> ``"GET https://***@h/o?X-Amz-Signature=***&v=1"``.
    """
    _, userinfo, param, connection = _url_patterns()
    text = param.sub(r"\1***", userinfo.sub(_mask_userinfo, text))
    return connection.sub(r"\1***", text)


def redact_uri(uri: str) -> str:
    """Return ``uri`` without its userinfo and the values of its credential query parameters.

    A URI without either comes back unchanged (the same string); one that does not parse is scrubbed
    as text (:func:`redact_urls`).
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit  # lazy: only once a URL is shown

    try:
        parts = urlsplit(uri)
    except ValueError:
        return redact_urls(uri)
    secret_name = _url_patterns()[0]
    netloc = parts.netloc
    if "@" in netloc and not _is_container(parts.scheme, netloc.rpartition("@")[0]):
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(secret_name.match(k) for k, _ in pairs):
        query = urlencode([(k, MASK if secret_name.match(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def clear() -> None:
    """Forget every registered value (tests only)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record and masks secrets in the result.

    The record's ``msg`` is replaced by its redacted, fully formatted text and ``args`` cleared, so
    handlers further down never see the raw arguments. Exception text is redacted too.
    """

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102 - documented on the class
        if _pattern is None:
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True
