"""Process-wide redaction of secret values from logs, error documents and outputs.

Why: a secret leaks through the text of an exception (a driver echoing its DSN, a server echoing an
auth header) far more often than through a deliberate log call, so redaction cannot be left to the
code that formats a message. Every secret value the :mod:`taskbox.secrets` accessor hands out is
registered here; the logging filter and the error-document builder pass all text through
:func:`redact` last.

Invariants:
    * Values shorter than :data:`MIN_LENGTH` characters are not masked (masking a 1-character secret
      would mask every occurrence of that letter, Airflow's known pitfall), but they are still never
      logged by taskbox itself.
    * Each value is masked in its plain, URL-encoded and base64 forms.
    * Registration is thread-safe and cheap; :func:`redact` is a no-op until a secret is registered.
"""

from __future__ import annotations

import base64
import logging
import re
import threading

MIN_LENGTH = 6
MASK = "***"

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _forms(value: str) -> set[str]:
    from urllib.parse import quote, quote_plus  # noqa: PLC0415 - only once a secret is read
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote_plus(value), base64.b64encode(raw).decode()}
    forms.add(base64.urlsafe_b64encode(raw).decode())
    forms.update(f.rstrip("=") for f in list(forms))
    return {f for f in forms if len(f) >= MIN_LENGTH}


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
    """Return ``text`` with every registered secret form replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


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
