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
    * Nothing is written to the outputs on failure; errors are :mod:`taskbox.net.errors` types.
    * Requests are built by :mod:`taskbox.http.request` (shared with ``http-job``); this module's
      ``RESOLVER`` (the SSRF guard's test hook) reads and writes that module's.
"""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskbox.executors.base import Executor, placeholder_names
from taskbox.http import request as _request
from taskbox.http.config import HTTPConfig
from taskbox.http.request import build_request, check_header_value

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext

__all__ = ["HTTPExecutor", "build_request", "check_header_value"]

log = logging.getLogger("taskbox.http")

#: Outputs named by these config keys, and their types (``webhook`` is flytekit's ``info`` dict).
_NAMED_OUTPUTS = (("status_output", "int"), ("headers_output", "json"), ("webhook", "json"), ("body_output", "str"))


class HTTPExecutor(Executor):
    """Sends one templated HTTP request (plus pages) and maps the response onto the outputs."""

    task_type = "http"
    Config = HTTPConfig
    summary = "calls an HTTP API (SSRF-guarded, retried, size-capped); JSON pointers to outputs; runs webhook templates"
    requires = ("httpx",)

    @classmethod
    def config_inputs(cls, config: Mapping[str, Any]) -> list[str]:
        """Input names of the placeholders, in the config's ``placeholder_style`` (``{inputs.x}`` for webhook).

        A flytekit webhook config (``show_data``/``show_url``/``timeout_sec``) names inputs as its connector
        reads them: ``{inputs.x}`` and ``{inputs.x.key}`` in the values of ``url``, ``headers`` and ``data``.
        """
        from taskbox.http.config import WEBHOOK_MARKERS
        from taskbox.http.templating import placeholder_pattern

        if any(k in config for k in WEBHOOK_MARKERS):
            from taskbox.http.webhook import INPUT_NAMES

            return placeholder_names([config.get(k) for k in ("url", "headers", "data")], INPUT_NAMES)
        style = "webhook" if config.get("placeholder_style") == "webhook" else "flyte"
        return placeholder_names(config, placeholder_pattern(style))

    @classmethod
    def infer_outputs(
        cls, config: Mapping[str, Any], inputs: Mapping[str, Any], declared: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the declared outputs, plus those the config names.

        ``status_output`` is an ``int``, ``headers_output`` and ``webhook`` are ``json``, ``body_output`` is a
        ``str`` and ``pagination.output`` a ``list[json]``; a declaration wins.

        Raises:
            ConfigError: A JSON-pointer output (``outputs``) is not declared: its type cannot be told.

        """
        from taskbox.errors import ConfigError
        from taskbox.http.config import WEBHOOK_MARKERS
        from taskbox.typespec import parse_type

        out: dict[str, Any] = dict(declared)
        if any(k in config for k in WEBHOOK_MARKERS):
            config = {**config, "webhook": "info"}  # flytekit's webhook: its one output, ``info``
        for key, spec in _NAMED_OUTPUTS:
            if isinstance(config.get(key), str) and config[key] not in out:
                out[config[key]] = parse_type(spec)
        pagination = config.get("pagination")
        if isinstance(pagination, dict) and isinstance(pagination.get("output"), str):
            out.setdefault(pagination["output"], parse_type("list[json]"))
        pointers = config.get("outputs")
        if isinstance(pointers, dict):
            for name in pointers:
                if name not in out:
                    raise ConfigError(
                        f"the type of output {name!r} (a JSON pointer into the response) cannot be inferred; "
                        f"declare it: interface: {{outputs: {{{name}: int|str|json|list[json]|...}}}}"
                    )
        return out

    def execute(self, context: ExecutionContext, config: HTTPConfig, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Render the request, send it, follow pages, and collect the outputs."""
        from taskbox.http.client import Caller
        from taskbox.http.outputs import collect, paginate
        from taskbox.http.webhook import webhook_info
        from taskbox.net.guard import AddressPolicy

        url, headers, body, secret_names, shown = build_request(context, config, inputs)
        policy = AddressPolicy(config.allow, resolver=_request.resolver())
        origins = [url, *config.secret_origins]
        with Caller(policy, config, context.working_dir, secret_names, context.cancelled, origins) as caller:
            reply = caller.request(config.method, url, headers=headers, **body)
            items = None
            if config.pagination is not None:
                reply, items = paginate(caller, config, reply, config.method, headers, body)
            info = webhook_info(config, reply, url, shown) if config.webhook else None
            return collect(config, reply, items, context.output_types, context.working_dir, info)


class _HTTPExecutorModule(types.ModuleType):
    """This module, with ``RESOLVER`` forwarded to :data:`taskbox.http.request.RESOLVER`.

    ``taskbox.executors.http.RESOLVER`` is the documented test hook of the SSRF guard (tests set it to a
    stub resolver with ``monkeypatch.setattr``); the request code, shared with ``http-job``, lives in
    :mod:`taskbox.http.request`, so reading or setting the hook here reads or sets it there.
    """

    @property
    def RESOLVER(self) -> Any:
        return _request.RESOLVER

    @RESOLVER.setter
    def RESOLVER(self, value: Any) -> None:
        _request.RESOLVER = value


sys.modules[__name__].__class__ = _HTTPExecutorModule
