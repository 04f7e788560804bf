"""Compatibility with flytekit's ``WebhookTask`` templates (task type ``webhook``).

Why: flytekit runs webhook tasks in its connector service; taskbox runs the same serialized templates
in a container, so a workflow can move without re-authoring. The template's ``custom`` is
``{url, method, headers, data, show_data, show_url, timeout_sec}`` with ``{inputs.x}`` placeholders;
the single output ``info`` is ``{status_code, response_data[, input_data][, url]}`` as the connector
builds it.

Invariants:
    * Same semantics as the connector: GET sends ``data`` as query parameters, POST as a JSON body,
      only status 200 succeeds, ``response_data`` is the body text.
    * What taskbox adds is on by default even here: the SSRF guard, the body cap, retries of GET.
      Other taskbox fields may be added to the template and are validated as usual.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WEBHOOK_FIELDS", "webhook_info", "webhook_to_http"]

WEBHOOK_FIELDS = ("url", "method", "headers", "data", "show_data", "show_url", "timeout_sec")


def webhook_to_http(custom: dict[str, Any]) -> dict[str, Any]:
    """Translate a WebhookTask ``custom`` mapping into :class:`taskbox.http.config.HTTPConfig` fields."""
    extra = {k: v for k, v in custom.items() if k not in WEBHOOK_FIELDS}
    method = str(custom.get("method") or "POST").upper()
    if method not in ("GET", "POST"):
        raise ValueError(f"a webhook's method is GET or POST, got {method!r}")
    timeout = float(custom.get("timeout_sec") or 10)
    config: dict[str, Any] = {
        "url": custom.get("url", ""),
        "method": method,
        "headers": {str(k): str(v) for k, v in (custom.get("headers") or {}).items()},
        "placeholder_style": "webhook",
        "expected_status": [200],
        "webhook": "info",
        "webhook_show_data": bool(custom.get("show_data", False)),
        "webhook_show_url": bool(custom.get("show_url", False)),
        "timeout_s": timeout,
        "read_timeout_s": timeout,
        "connect_timeout_s": min(timeout, 10.0),
    }
    data = custom.get("data") or {}
    if method == "GET":
        config["query"] = data
    else:
        config["json_body"] = data
    config.update(extra)
    return config


def webhook_info(config: Any, reply: Any, url: str, data: Any) -> dict[str, Any]:
    """The connector's ``info`` output."""
    info: dict[str, Any] = {
        "status_code": reply.status,
        "response_data": reply.body().decode("utf-8", errors="replace"),
    }
    if config.webhook_show_data:
        info["input_data"] = data
    if config.webhook_show_url:
        info["url"] = url
    return info
