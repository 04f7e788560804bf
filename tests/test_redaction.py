"""Redaction of secrets in every encoding a server plausibly echoes, and before any truncation (issue 14 item 3)."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

import pytest

from taskbox import redaction

SECRET = "tok/AbC&x+y=z-9"  # '/', '&', '+', '=' are what encoders escape
ASTRAL = "pa\\ss/wörd😀key"


@pytest.fixture(autouse=True)
def _registered():
    redaction.clear()
    redaction.register(SECRET)
    redaction.register(ASTRAL)
    yield
    redaction.clear()


def _u(text: str, upper: bool = False) -> str:
    return "".join(f"\\u{ord(c):04X}" if upper else f"\\u{ord(c):04x}" for c in text)


B64 = base64.b64encode(SECRET.encode()).decode()
ENCODINGS = {
    "plain": SECRET,
    "json-slash": SECRET.replace("/", "\\/"),
    "go-json-amp": SECRET.replace("&", "\\u0026"),
    "every-char-lower": _u(SECRET),
    "every-char-upper": _u(SECRET, upper=True),
    "url-upper": quote(SECRET, safe=""),
    "url-lower": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(SECRET, safe="")),
    "url-plus": quote_plus(SECRET, safe=""),
    "url-double": quote(quote(SECRET, safe=""), safe=""),
    "url-partial": SECRET.replace("&", "%26"),
    "base64": B64,
    "base64-json-escaped": B64.replace("+", "\\u002b").replace("=", "\\u003d"),
    "base64-nopad": B64.rstrip("="),
    "base64-urlsafe": base64.urlsafe_b64encode(SECRET.encode()).decode(),
    "json-in-json": json.dumps(json.dumps(SECRET).replace("/", "\\/"))[1:-1],
    "python-bytes-repr": repr(SECRET.encode()).replace("/", "\\x2f")[2:-1],
    "mixed": "tok\\/Ab%43\\u0026x%2by\\u003dz-9",
    "astral-json": json.dumps(ASTRAL)[1:-1],
    "astral-url": quote(ASTRAL, safe=""),
    "astral-json-in-json": json.dumps(json.dumps(ASTRAL))[1:-1],
}


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_every_encoding_is_masked(name):
    encoded = ENCODINGS[name]
    text = f'{{"error": "bad token", "echo": "{encoded}", "n": 1}}'
    out = redaction.redact(text)
    assert "***" in out, out
    assert out.startswith('{"error": "bad token", "echo": "') and out.endswith('", "n": 1}')
    for fragment in ("AbC", "x+y", "wörd", "ss/w"):  # no recognisable part survives
        assert fragment not in out.replace("***", "")


def test_text_without_secrets_is_unchanged():
    text = 'path %2F and \\u0026 escapes, 100% \\n "tok/AbC" half'
    assert redaction.redact(text) == text


def test_many_secrets_and_long_escaped_text_stay_fast():
    import time

    for i in range(50):
        redaction.register(f"secret-number-{i:03d}-" + "x" * 20)
    text = ("line with \\n escapes and 100% and \\u0041 " * 2000)[:65536] + _u(SECRET)
    start = time.process_time()
    out = redaction.redact(text)
    assert out.endswith("***") and time.process_time() - start < 5


def test_body_excerpt_redacts_before_cutting():
    from taskbox.net.errors import MAX_BODY_IN_MESSAGE, body_excerpt

    for escaped in (SECRET, SECRET.replace("/", "\\/"), _u(SECRET)):
        for at in range(MAX_BODY_IN_MESSAGE - len(escaped), MAX_BODY_IN_MESSAGE + 1):
            body = ("a" * at + escaped + "b" * 2000).encode()
            excerpt = body_excerpt(body)
            assert escaped[:3] not in excerpt.replace("***", ""), (at, excerpt[-40:])
            assert excerpt.startswith("a" * min(at, 100))


def test_error_document_message_is_redacted_before_it_is_bounded():
    from taskbox.entrypoint.commit import MAX_MESSAGE_BYTES, describe
    from taskbox.errors import UserError

    half = MAX_MESSAGE_BYTES // 2 - 64
    for offset in range(-40, 40, 7):
        message = "x" * (half - 40 + offset) + _u(SECRET) + "y" * MAX_MESSAGE_BYTES
        _code, _origin, _rec, text = describe(UserError(message))
        assert "\\u0074\\u006f\\u006b" not in text and "\\u0074\\u006F" not in text
