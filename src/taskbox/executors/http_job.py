"""The ``http-job`` executor: start a job through an HTTP API, poll it, cancel it when the run stops.

Why: a long job behind a submit / poll / cancel API (``POST /jobs`` -> id, ``GET /jobs/{id}`` -> state,
``DELETE /jobs/{id}``) is the common case of an async executor that needs no code: the config
(:class:`taskbox.http.jobconfig.HTTPJobConfig`) says where to submit, which response fields identify the
job, where to poll and cancel, how the API's states map to phases, and where the outputs are. The
polling loop, the durable handle and the cleanup come from :class:`taskbox.executors.jobs.AsyncExecutor`;
each request is built and sent as the ``http`` executor's are (:mod:`taskbox.http.request`, :mod:`taskbox.http.client`).

Invariants:
    * Every request (submit, status, result, cancel) goes through the SSRF guard, with the same
      ``allow`` list / ``TASKBOX_HTTP_ALLOW`` as the ``http`` executor, retries and body caps.
    * The handle holds the job's fields and the status/cancel/result URLs rendered at submission; it
      never holds a secret (secrets go only into headers, at each request).
    * A status answer in ``gone_status`` (404/410) is :class:`~taskbox.executors.jobs.JobGone`; a cancel
      answer in ``cancel_ok_status`` (404/409/410: unknown or already finished) counts as cancelled.
    * Cancel requests ignore the run's ``cancelled`` event (they run because the run is stopping) and are
      bounded by ``cancel_grace_seconds``.
    * Secret headers and ``auth`` go only to the configured origins: those of the submit, status, cancel and
      result URL templates whose scheme and host hold no ``{{ .job.x }}`` (a host the server chose is not
      configured), rendered with the inputs, plus ``secret_origins``. They are recorded in the handle.
    * A job field placed into a URL path must stay one path segment (``..``, ``.``, encoded forms are
      refused as ``USER:ResponseShape``): ``/v1/jobs/{id}/cancel`` never becomes ``/v1/cancel``.
    * Idempotent submit: the submit request carries ``idempotency_key_header`` (``Idempotency-Key``) with a
      key derived from the run's identity (execution project/domain/name, task, output prefix, checkpoint
      path, attempt), the config, and the job record this submission replaces, if any. A
      container killed between the submit and the checkpoint write and restarted into the same attempt
      sends the same key, so a server that honours it answers the job it already created. Without a
      checkpoint path and a Flyte execution id (nothing to resume from) the key is random per run.
    * Messages and outputs are redacted of secret values.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
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
        secret_origins: The configured origins secret headers may go to (rendered at submission;
            handles from older versions have none and use the config's placeholder-free URLs).

    """

    job: dict[str, str | int | float | bool]
    status_url: str
    cancel_url: str | None = None
    result_url: str | None = None
    secret_origins: list[str] = []

    def label(self) -> str:
        """Name the job by its fields (``{"id": ...}``, compact JSON)."""
        return json.dumps(self.job, sort_keys=True, separators=(",", ":"))


def _call_config(
    config: HTTPJobConfig,
    method: str,
    url: str,
    *,
    expected: list[int],
    timeout_s: float | None = None,
    outputs: Mapping[str, str] | None = None,
    **request: Any,
) -> HTTPConfig:
    """One request of the job, as the ``http`` executor's config (so its client and outputs apply)."""
    from taskbox.http.config import HTTPConfig

    headers = {**config.headers, **request.pop("headers", {})}
    return HTTPConfig(
        method=method,
        url=url,
        headers=headers,
        secret_headers=config.secret_headers,
        secret_origins=config.secret_origins,
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


def _send(context: ExecutionContext, call: HTTPConfig, inputs: Mapping[str, Any], cancelled: Any,
          origins: list[str]) -> Reply:  # fmt: skip
    from taskbox.http.client import Caller
    from taskbox.http.request import build_request, resolver
    from taskbox.net.guard import AddressPolicy

    url, headers, body, secret_names, _shown = build_request(context, call, inputs)
    policy = AddressPolicy(call.allow, resolver=resolver())
    # Never empty: without a configured origin the secrets go nowhere (not to the first URL seen).
    bound = origins or ["https://taskbox.invalid"]
    with Caller(policy, call, context.working_dir, secret_names, cancelled, bound) as caller:
        return caller.request(call.method, url, headers=headers, **body)


def configured_origins(config: HTTPJobConfig, inputs: Mapping[str, Any]) -> list[str]:
    """The origins secrets may go to: the URL templates' whose host the config (and inputs) fix, and ``secret_origins``.

    Args:
        config: The job's config.
        inputs: The task's inputs (``{}`` after submission: templates with input placeholders in the
            host are then skipped; the handle recorded them).

    Returns:
        Origins as ``scheme://host[:port]`` text.

    """
    from urllib.parse import urlsplit

    from taskbox.errors import InputError
    from taskbox.http.jobconfig import has_job_field
    from taskbox.http.templating import render_url

    origins = list(config.secret_origins)
    for template in (config.submit.url, config.status_url, config.cancel_url, config.result_url):
        if not template:
            continue
        parts = urlsplit(template)
        head = f"{parts.scheme}://{parts.netloc}/"
        if has_job_field(head):
            continue
        try:
            origins.append(render_url(head, inputs, "flyte"))
        except InputError:
            continue
    return origins


def submit_key(context: ExecutionContext, config: HTTPJobConfig) -> str:
    """The idempotency key of this submission (see the module's invariants).

    The inputs are not part of it: they are fixed for an attempt (its output prefix), and a value read
    from a file input may differ between two pods of the same attempt (a local download path).
    """
    from taskbox import storage
    from taskbox.checkpoints import DATA_FILE
    from taskbox.errors import StorageNotFound
    from taskbox.executors.jobloop import fingerprint, load_record

    if not (context.checkpoint_path or context.execution.name):
        return uuid.uuid4().hex  # nothing to resume from: a rerun is a new run
    replaces = None
    if context.checkpoint_path:
        try:
            record = load_record(storage.read_bytes(storage.join(context.checkpoint_path, DATA_FILE)))
        except StorageNotFound:
            record = None
        replaces = record.get("handle") if record else None
    material = {
        "execution": list(context.execution), "task": list(context.task), "attempt": context.attempt,
        "output_prefix": context.output_prefix, "checkpoint": context.checkpoint_path or "",
        "config": fingerprint(HTTPJobExecutor.task_type, config), "replaces": replaces,
    }  # fmt: skip
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return "taskbox-" + hashlib.sha256(text.encode()).hexdigest()[:48]


def _scalar(value: Any, name: str, pointer: str) -> str | int | float | bool:
    from taskbox.net.errors import ResponseShapeError

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
    requires = ("httpx",)

    def create(self, context: ExecutionContext, config: HTTPJobConfig, inputs: Mapping[str, Any]) -> HTTPJobHandle:
        """Send the submit request and build the handle from its response."""
        from taskbox.errors import InputError
        from taskbox.http.outputs import json_pointer, parse_body
        from taskbox.http.templating import render_url
        from taskbox.net.errors import ResponseShapeError

        sub = config.submit
        headers = dict(sub.headers)
        key_headers = {h for h in (config.idempotency_key_header, config.retry.idempotency_key_header) if h}
        if key_headers:
            key = submit_key(context, config)
            headers.update(dict.fromkeys(key_headers, key))
            log.info("submitting with %s: %s", ", ".join(sorted(key_headers)), key)
        call = _call_config(
            config,
            sub.method,
            sub.url,
            expected=sub.expected_status or list(_SUCCESS),
            query=sub.query,
            headers=headers,
            json_body=sub.json_body,
            form_body=sub.form_body,
        )
        origins = configured_origins(config, inputs)
        doc = parse_body(_send(context, call, inputs, context.cancelled, origins))
        fields = {name: _scalar(json_pointer(doc, ptr, None), name, ptr) for name, ptr in config.job_fields.items()}

        def url(template: str | None, what: str) -> str | None:
            if template is None:
                return None
            try:
                with_job = render_url(template, fields, "job")
            except InputError as exc:  # the server's value, not the user's: the answer has the wrong shape
                raise ResponseShapeError(
                    f"the submit response's job fields {json.dumps(fields, sort_keys=True)} cannot be placed into "
                    f"{what}: {exc}; the job was submitted but cannot be addressed (not polled, not cancelled)"
                ) from None
            return render_url(with_job, inputs, "flyte")

        return HTTPJobHandle(
            job=fields,
            status_url=url(config.status_url, "status_url") or "",
            cancel_url=url(config.cancel_url, "cancel_url"),
            result_url=url(config.result_url, "result_url"),
            secret_origins=origins,
        )

    def get(self, context: ExecutionContext, config: HTTPJobConfig, handle: HTTPJobHandle) -> JobStatus:  # type: ignore[override]
        """Poll the status URL; on success, map the (status or result) response onto the outputs."""
        from taskbox.http.outputs import collect, json_pointer, parse_body, redacted
        from taskbox.net.errors import ResponseShapeError

        call = _call_config(config, config.status_method, handle.status_url, expected=[*_SUCCESS, *config.gone_status])
        origins = handle.secret_origins or configured_origins(config, {})
        reply = _send(context, call, {}, context.cancelled, origins)
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
                final = _send(context, final_call, {}, context.cancelled, origins)
            out_call = final_call.model_copy(update={"outputs": dict(config.outputs)})
            outputs = collect(out_call, final, None, context.output_types, context.working_dir)
        return JobStatus(phase, message, outputs=outputs, log_links=links)

    def delete(self, context: ExecutionContext, config: HTTPJobConfig, handle: HTTPJobHandle) -> None:  # type: ignore[override]
        """Send the cancel request (bounded by ``cancel_grace_seconds``; 404/409/410 count as done)."""
        if handle.cancel_url is None:
            raise JobNotCancellable("the config has no cancel_url, so the job cannot be cancelled; it keeps running")
        call = _call_config(
            config,
            config.cancel_method,
            handle.cancel_url,
            expected=[*_SUCCESS, *config.cancel_ok_status],
            timeout_s=config.cancel_grace_seconds,
        )
        reply = _send(context, call, {}, None, handle.secret_origins or configured_origins(config, {}))
        log.info("%s %s answered %d", config.cancel_method, handle.cancel_url, reply.status)


def _default_states() -> list[str]:
    from taskbox.http.jobconfig import DEFAULT_STATES

    return list(DEFAULT_STATES)
