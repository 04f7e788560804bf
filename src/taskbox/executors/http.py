"""The ``http`` executor: call an API, check the answer, hand parts of it to the next task.

Why: the most common "task without code" is one HTTP call. flytekit's ``WebhookTask`` covers GET/POST
with only 200 succeeding, no retries, no secrets and no size cap; Airflow's ``HttpOperator`` and Argo's
HTTP template show what a task needs beyond that. This executor runs ``http`` templates
(:class:`taskbox.http.config.HTTPConfig`) and flytekit's ``webhook`` templates with one pipeline:
render the request from inputs, send it through the SSRF guard with retries, map the response (and
its pages) onto the declared outputs.

Invariants:
    * Secrets come only from Flyte's secret store (registered for redaction before use) and only go
      into headers.
    * The SSRF guard is always in the path; exceptions only via ``allow`` / ``TASKBOX_HTTP_ALLOW``.
    * Secret headers and ``auth`` go only to the origin of the rendered ``url`` and to ``secret_origins``
      (:class:`taskbox.http.client.Caller` applies the rule to every request).
    * A header whose value comes from an input must be sendable (printable ASCII, tab): anything else
      (non-ASCII, CR/LF, NUL) is ``USER:InvalidInput`` before any connection.
    * Nothing is written to the outputs on failure; errors are :mod:`taskbox.http.errors` types.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskbox.executors.base import Executor
from taskbox.http.config import HTTPConfig

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext

__all__ = ["HTTPExecutor", "build_request", "check_header_value"]

log = logging.getLogger("taskbox.http")
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
        from taskbox.errors import InputError  # noqa: PLC0415

        raise InputError(
            f"header {name!r}: an input made its value unsendable (only printable ASCII and tab may go into a "
            f"header; got {value!r})"
        )


def _secret(context: ExecutionContext, ref: Any) -> str:
    return context.secrets.get(ref.group, ref.key, ref.group_version or None, env_var=ref.env_var)


def build_request(context: ExecutionContext, config: HTTPConfig, inputs: Mapping[str, Any]) -> tuple[str, dict[str, str], dict[str, Any], set[str], Any]:
    """Render the request: ``(url, headers, httpx body kwargs, secret header names, data shown to webhooks)``."""
    from taskbox import redaction  # noqa: PLC0415
    from taskbox.http.templating import jsonable, render_text, render_url, render_value  # noqa: PLC0415

    style = config.placeholder_style
    url = render_url(config.url, inputs, style)
    headers = {k: render_text(v, inputs, style) for k, v in config.headers.items()}
    for name, value in headers.items():
        check_header_value(name, value, config.headers[name])
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
    body: dict[str, Any] = {}
    shown: Any = None
    if config.query:
        params = {k: render_value(v, inputs, style) for k, v in config.query.items()}
        import httpx  # noqa: PLC0415

        # Merged into the template's own query (httpx's params= would replace it), encoded by httpx.
        try:
            url = str(httpx.URL(url).copy_merge_params({k: _param(v) for k, v in params.items()}))
        except (httpx.InvalidURL, UnicodeError) as exc:
            from taskbox.errors import ConfigError  # noqa: PLC0415

            raise ConfigError(f"the request URL {url!r} is not a valid URL: {exc}") from None
        shown = params
    if config.json_body is not None:
        shown = body["json"] = jsonable(render_value(config.json_body, inputs, style))
    elif config.form_body is not None:
        shown = {k: _param(render_value(v, inputs, style)) for k, v in config.form_body.items()}
        body["data"] = shown
    return url, headers, body, secret_names, shown


def _param(value: Any) -> Any:
    if isinstance(value, list):
        return [_param(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict,)):
        import json  # noqa: PLC0415

        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


class HTTPExecutor(Executor):
    """Sends one templated HTTP request (plus pages) and maps the response onto the outputs."""

    task_type = "http"
    Config = HTTPConfig
    summary = "calls an HTTP API (SSRF-guarded, retried, size-capped); JSON pointers to outputs; runs webhook templates"

    def execute(self, context: ExecutionContext, config: HTTPConfig, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Render the request, send it, follow pages, and collect the outputs."""
        from taskbox.http.client import Caller  # noqa: PLC0415
        from taskbox.http.guard import AddressPolicy  # noqa: PLC0415
        from taskbox.http.outputs import collect, paginate  # noqa: PLC0415
        from taskbox.http.webhook import webhook_info  # noqa: PLC0415

        url, headers, body, secret_names, shown = build_request(context, config, inputs)
        policy = AddressPolicy(config.allow, resolver=_resolver_override())
        origins = [url, *config.secret_origins]
        with Caller(policy, config, context.working_dir, secret_names, context.cancelled, origins) as caller:
            reply = caller.request(config.method, url, headers=headers, **body)
            items = None
            if config.pagination is not None:
                reply, items = paginate(caller, config, reply, config.method, headers, body)
            info = webhook_info(config, reply, url, shown) if config.webhook else None
            return collect(config, reply, items, context.output_types, context.working_dir, info)


#: Tests of the SSRF guard set this to a stub resolver; ``None`` means the system resolver.
RESOLVER: Any = None


def _resolver_override() -> Any:
    return RESOLVER
