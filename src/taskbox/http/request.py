"""Building an HTTP request from a config and the task's inputs, and the resolver hook of the SSRF guard.

Why: the ``http`` and ``http-job`` executors send requests the same way (placeholders rendered, header
values checked, secrets and auth added, query merged, body encoded); this is that one way, in the HTTP
library rather than in one executor, so neither executor imports the other.

Invariants:
    * Secrets come only from the context's secret store and only go into headers (a Basic token is
      registered for redaction before use).
    * A header whose value an input changed must be sendable (printable ASCII, tab): anything else is
      ``USER:InvalidInput`` before any connection; a bad literal URL is ``USER:InvalidConfig``.
    * :data:`RESOLVER` is ``None`` (the system resolver) except in tests, which set a stub through
      ``taskbox.executors.http.RESOLVER`` (the documented test hook, forwarded here) or this module's.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskbox.http.templating import check_header_value

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext
    from taskbox.http.config import HTTPConfig

__all__ = ["RESOLVER", "build_request", "check_header_value", "resolver"]

#: Tests of the SSRF guard set this to a stub resolver; ``None`` means the system resolver.
RESOLVER: Any = None


def _secret(context: ExecutionContext, ref: Any) -> str:
    return context.secrets.get(ref.group, ref.key, ref.group_version or None, env_var=ref.env_var)


def build_request(
    context: ExecutionContext, config: HTTPConfig, inputs: Mapping[str, Any]
) -> tuple[str, dict[str, str], dict[str, Any], set[str], Any]:
    """Render the request: ``(url, headers, httpx body kwargs, secret header names, data shown to webhooks)``.

    A flytekit webhook template (``config.webhook``) is rendered as flytekit's connector renders it
    (:func:`taskbox.http.webhook.render_webhook`); secret headers and ``auth`` are added the same way to both.
    """
    if config.webhook:
        from taskbox.http.webhook import render_webhook

        url, headers, body, shown = render_webhook(config, inputs, context.template)
    else:
        url, headers, body, shown = _render(config, inputs)
    return url, headers, body, _add_secrets(context, config, headers), shown


def _render(config: HTTPConfig, inputs: Mapping[str, Any]) -> tuple[str, dict[str, str], dict[str, Any], Any]:
    from taskbox.http.templating import jsonable, render_text, render_url, render_value

    style = config.placeholder_style
    url = render_url(config.url, inputs, style)
    headers = {k: render_text(v, inputs, style) for k, v in config.headers.items()}
    for name, value in headers.items():
        check_header_value(name, value, config.headers[name])
    body: dict[str, Any] = {}
    shown: Any = None
    if config.query:
        params = {k: render_value(v, inputs, style) for k, v in config.query.items()}
        import httpx

        # Merged into the template's own query (httpx's params= would replace it), encoded by httpx.
        try:
            url = str(httpx.URL(url).copy_merge_params({k: _param(v) for k, v in params.items()}))
        except (httpx.InvalidURL, UnicodeError) as exc:
            from taskbox.errors import ConfigError

            raise ConfigError(f"the request URL {url!r} is not a valid URL: {exc}") from None
        shown = params
    if config.json_body is not None:
        shown = body["json"] = jsonable(render_value(config.json_body, inputs, style))
    elif config.form_body is not None:
        shown = {k: _param(render_value(v, inputs, style)) for k, v in config.form_body.items()}
        body["data"] = shown
    return url, headers, body, shown


def _add_secrets(context: ExecutionContext, config: HTTPConfig, headers: dict[str, str]) -> set[str]:
    """Add the secret headers and ``auth`` to ``headers``; return the (lower-case) names of secret headers."""
    from taskbox import redaction

    secret_names: set[str] = set()
    for name, ref in config.secret_headers.items():
        headers[name] = ref.prefix + _secret(context, ref)
        secret_names.add(name.lower())
    if config.auth is not None:
        if config.auth.type == "bearer":
            headers["Authorization"] = "Bearer " + _secret(context, config.auth.token)
        else:
            pair = f"{config.auth.username}:{_secret(context, config.auth.password)}"
            token = base64.b64encode(pair.encode()).decode()
            redaction.register(token)
            headers["Authorization"] = "Basic " + token
        secret_names.add("authorization")
    return secret_names


def _param(value: Any) -> Any:
    if isinstance(value, list):
        return [_param(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict,)):
        import json

        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def resolver() -> Any:
    """Return the resolver the SSRF guard should use (:data:`RESOLVER`; ``None``: the system's)."""
    return RESOLVER
