"""The ``http-job`` executor: start a job through an HTTP API, poll it, cancel it when the run stops.

Why: a long job behind a submit / poll / cancel API (``POST /jobs`` -> id, ``GET /jobs/{id}`` -> state,
``DELETE /jobs/{id}``) is the common case of an async executor that needs no code: the config
(:class:`taskbox.http.jobconfig.HTTPJobConfig`) says where to submit, which response fields identify the
job, where to poll and cancel, how the API's states map to phases, and where the outputs are. The
polling loop, the durable handle and the cleanup come from :class:`taskbox.executors.jobs.AsyncExecutor`;
each request goes through the ``http`` executor's machinery (:mod:`taskbox.http`).

Invariants:
    * Every request (submit, status, result, cancel) goes through the SSRF guard, with the same
      ``allow`` list / ``TASKBOX_HTTP_ALLOW`` as the ``http`` executor, retries and body caps.
    * The handle holds the job's fields and the status/cancel/result URLs rendered at submission; it
      never holds a secret (secrets go only into headers, at each request).
    * A status answer in ``gone_status`` (404/410) is :class:`~taskbox.executors.jobs.JobGone`; a cancel
      answer in ``cancel_ok_status`` (404/409/410: unknown or already finished) counts as cancelled.
    * Cancel requests ignore the run's ``cancelled`` event (they run because the run is stopping) and are
      bounded by ``cancel_grace_seconds``.
    * Messages and outputs are redacted of secret values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskbox.executors.jobs import AsyncExecutor, JobGone, JobHandle, JobNotCancellable, JobPhase, JobStatus, LogLink
from taskbox.http.jobconfig import HTTPJobConfig

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext
    from taskbox.http.client import Reply
    from taskbox.http.config import HTTPConfig

__all__ = ["HTTPJobExecutor", "HTTPJobHandle"]

log = logging.getLogger("taskbox.http")

_SUCCESS = tuple(range(200, 300))


class HTTPJobHandle(JobHandle):
    """An HTTP job: its fields (from the submit response) and its rendered URLs.

    Attributes:
        job: ``job_fields`` values from the submit response.
        status_url: Where the job's state is polled.
        cancel_url: Where the job is cancelled, if the API can.
        result_url: Where the outputs are read once the job succeeded, if not from the status.

    """

    job: dict[str, str | int | float | bool]
    status_url: str
    cancel_url: str | None = None
    result_url: str | None = None

    def label(self) -> str:
        """Name the job by its fields (``{"id": ...}``, compact JSON)."""
        return json.dumps(self.job, sort_keys=True, separators=(",", ":"))


def _call_config(config: HTTPJobConfig, method: str, url: str, *, expected: list[int], timeout_s: float | None = None,
                 outputs: Mapping[str, str] | None = None, **request: Any) -> HTTPConfig:
    """One request of the job, as the ``http`` executor's config (so its client and outputs apply)."""
    from taskbox.http.config import HTTPConfig  # noqa: PLC0415

    headers = {**config.headers, **request.pop("headers", {})}
    return HTTPConfig(
        method=method,
        url=url,
        headers=headers,
        secret_headers=config.secret_headers,
        auth=config.auth,
        connect_timeout_s=config.connect_timeout_s,
        read_timeout_s=config.read_timeout_s,
        timeout_s=timeout_s or config.request_timeout_s,
        expected_status=expected,
        retry=config.retry,
        outputs=dict(outputs or {}),
        max_body_bytes=config.max_body_bytes,
        file_threshold_bytes=config.file_threshold_bytes,
        allow=config.allow,
        **request,
    )


def _send(context: ExecutionContext, call: HTTPConfig, inputs: Mapping[str, Any], cancelled: Any) -> Reply:
    from taskbox.executors import http as http_executor  # noqa: PLC0415
    from taskbox.http.client import Caller  # noqa: PLC0415
    from taskbox.http.guard import AddressPolicy  # noqa: PLC0415

    url, headers, body, secret_names, _shown = http_executor.build_request(context, call, inputs)
    policy = AddressPolicy(call.allow, resolver=http_executor.RESOLVER)
    with Caller(policy, call, context.working_dir, secret_names, cancelled) as caller:
        return caller.request(call.method, url, headers=headers, **body)


def _scalar(value: Any, name: str, pointer: str) -> str | int | float | bool:
    from taskbox.http.errors import ResponseShapeError  # noqa: PLC0415

    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None or value == "" or not isinstance(value, (str, int, float, bool)):
        raise ResponseShapeError(
            f"the submit response has no usable job field {name!r} at {pointer!r} (got {value!r}); "
            "job fields must be non-empty strings, numbers or booleans"
        )
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class HTTPJobExecutor(AsyncExecutor):
    """Submits a job over HTTP, polls its status URL, cancels it through its cancel URL."""

    task_type = "http-job"
    Config = HTTPJobConfig
    Handle = HTTPJobHandle
    summary = "starts a job through a submit/poll/cancel HTTP API; resumes it after restarts, cancels it on SIGTERM"

    def create(self, context: ExecutionContext, config: HTTPJobConfig, inputs: Mapping[str, Any]) -> HTTPJobHandle:
        """Send the submit request and build the handle from its response."""
        from taskbox.http.outputs import json_pointer, parse_body  # noqa: PLC0415
        from taskbox.http.templating import render_url  # noqa: PLC0415

        sub = config.submit
        call = _call_config(
            config, sub.method, sub.url, expected=sub.expected_status or list(_SUCCESS), query=sub.query,
            headers=sub.headers, json_body=sub.json_body, form_body=sub.form_body,
        )
        doc = parse_body(_send(context, call, inputs, context.cancelled))
        fields = {name: _scalar(json_pointer(doc, ptr, None), name, ptr) for name, ptr in config.job_fields.items()}

        def url(template: str | None) -> str | None:
            if template is None:
                return None
            return render_url(render_url(template, fields, "job"), inputs, "flyte")

        return HTTPJobHandle(
            job=fields, status_url=url(config.status_url) or "", cancel_url=url(config.cancel_url),
            result_url=url(config.result_url),
        )

    def get(self, context: ExecutionContext, config: HTTPJobConfig, handle: HTTPJobHandle) -> JobStatus:  # type: ignore[override]
        """Poll the status URL; on success, map the (status or result) response onto the outputs."""
        from taskbox.http.errors import ResponseShapeError  # noqa: PLC0415
        from taskbox.http.outputs import collect, json_pointer, parse_body, redacted  # noqa: PLC0415

        call = _call_config(config, config.status_method, handle.status_url, expected=[*_SUCCESS, *config.gone_status])
        reply = _send(context, call, {}, context.cancelled)
        if reply.status in config.gone_status:
            raise JobGone(
                f"{config.status_method} {handle.status_url} answered {reply.status}: the service does not know the job"
            )
        doc = parse_body(reply)
        state = json_pointer(doc, config.state_pointer, None)
        phase = config.phase_of(str(state)) if isinstance(state, (str, int, bool)) else None
        if phase is None:
            if config.unknown_state == "error":
                known = sorted({*config.states, *_default_states()})
                raise ResponseShapeError(
                    f"the job's state {state!r} (at {config.state_pointer!r}) maps to no phase; add it to 'states' "
                    f"(known: {', '.join(known)}) or set unknown_state: running"
                )
            phase = JobPhase.RUNNING
        message = redacted(_text(json_pointer(doc, config.message_pointer, None))) if config.message_pointer else ""
        links = [
            LogLink(name, redacted(_text(value)))
            for name, pointer in config.log_links.items()
            if (value := json_pointer(doc, pointer, None)) not in (None, "")
        ]
        outputs = None
        if phase is JobPhase.SUCCEEDED:
            final = reply
            final_call = call
            if handle.result_url:
                final_call = _call_config(config, "GET", handle.result_url, expected=list(_SUCCESS))
                final = _send(context, final_call, {}, context.cancelled)
            out_call = final_call.model_copy(update={"outputs": dict(config.outputs)})
            outputs = collect(out_call, final, None, context.output_types, context.working_dir)
        return JobStatus(phase, message, outputs=outputs, log_links=links)

    def delete(self, context: ExecutionContext, config: HTTPJobConfig, handle: HTTPJobHandle) -> None:  # type: ignore[override]
        """Send the cancel request (bounded by ``cancel_grace_seconds``; 404/409/410 count as done)."""
        if handle.cancel_url is None:
            raise JobNotCancellable("the config has no cancel_url, so the job cannot be cancelled; it keeps running")
        call = _call_config(
            config, config.cancel_method, handle.cancel_url, expected=[*_SUCCESS, *config.cancel_ok_status],
            timeout_s=config.cancel_grace_seconds,
        )
        reply = _send(context, call, {}, None)
        log.info("%s %s answered %d", config.cancel_method, handle.cancel_url, reply.status)


def _default_states() -> list[str]:
    from taskbox.http.jobconfig import DEFAULT_STATES  # noqa: PLC0415

    return list(DEFAULT_STATES)
