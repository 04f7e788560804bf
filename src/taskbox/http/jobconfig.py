"""The ``custom`` config of ``http-job`` templates: an API of the submit / poll / cancel shape.

Why: most job services (batch schedulers, warehouses' REST APIs, ML platforms) look alike over HTTP:
``POST /jobs`` answers an id, ``GET /jobs/{id}`` answers a state, ``DELETE /jobs/{id}`` (or
``POST .../cancel``) cancels. This model describes one such API declaratively, so no code is needed: the
submit request (templated from inputs, like the ``http`` executor's), which fields of its response form
the job's handle, URL templates for status, cancel and (optionally) the result, how the API's states map
onto :class:`taskbox.configbase.JobPhase`, and JSON pointers for the message, log links and outputs.

Invariants:
    * Versioned and strict (unknown keys rejected), like every executor config.
    * ``status_url``, ``cancel_url`` and ``result_url`` may hold ``{{ .job.<field> }}`` (a field of
      ``job_fields``) and ``{{ .inputs.<name> }}``; both are percent-encoded for the URL component they
      land in, and rendered once, at submission, into the handle.
    * Headers shared by all requests (``headers``) are static; secrets only come through
      ``secret_headers``/``auth`` (Flyte secret references, never values).
    * State names are matched case-insensitively; an unmapped state is an error (``unknown_state``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskbox.configbase import JobConfig, JobPhase
from taskbox.http.config import AuthConfig, RetryConfig, SecretRef, check_origins

__all__ = ["DEFAULT_STATES", "HTTPJobConfig", "SubmitRequest", "has_job_field"]

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_JOB_FIELD = re.compile(r"\{\{\s*\.?job\.(\w+)\s*\}\}", re.IGNORECASE)
_ANY_PLACEHOLDER = re.compile(r"\{\{.*?\}\}")

#: States understood without a ``states`` mapping (lower case).
DEFAULT_STATES: dict[str, JobPhase] = {
    "pending": JobPhase.QUEUED,
    "queued": JobPhase.QUEUED,
    "submitted": JobPhase.QUEUED,
    "running": JobPhase.RUNNING,
    "in_progress": JobPhase.RUNNING,
    "succeeded": JobPhase.SUCCEEDED,
    "success": JobPhase.SUCCEEDED,
    "done": JobPhase.SUCCEEDED,
    "completed": JobPhase.SUCCEEDED,
    "failed": JobPhase.FAILED,
    "error": JobPhase.FAILED,
    "cancelled": JobPhase.ABORTED,
    "canceled": JobPhase.ABORTED,
    "aborted": JobPhase.ABORTED,
}


def has_job_field(text: str) -> bool:
    """Whether ``text`` holds a ``{{ .job.x }}`` placeholder (a value the job service chose)."""
    return bool(_JOB_FIELD.search(text))


def _method(value: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{value!r} is not an HTTP method")
    return value.upper()


def _pointer(value: str | None, what: str) -> str | None:
    if value and not value.startswith("/"):
        raise ValueError(f"{what}: a JSON pointer is '' or starts with '/'")
    return value


class SubmitRequest(BaseModel):
    """The request that starts the job (placeholders ``{{ .inputs.x }}`` as in the ``http`` executor).

    Attributes:
        method: HTTP method (default POST).
        url: URL template.
        query: Query parameters (values may be placeholders).
        headers: Headers of this request only (values may be placeholders).
        json_body: JSON body template (a string that is exactly one placeholder keeps the input's type).
        form_body: Form body template.
        expected_status: Statuses that mean "submitted"; default 200-299.

    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = "POST"
    url: str = Field(min_length=1)
    query: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = None
    form_body: dict[str, Any] | None = None
    expected_status: list[int] | None = None

    @field_validator("method")
    @classmethod
    def _check_method(cls, value: str) -> str:
        return _method(value)

    @model_validator(mode="after")
    def _one_body(self) -> SubmitRequest:
        if self.json_body is not None and self.form_body is not None:
            raise ValueError("give json_body or form_body, not both")
        return self


class HTTPJobConfig(JobConfig):
    """``custom`` of an ``http-job`` template.

    Attributes:
        submit: The request that starts the job.
        job_fields: Handle field -> JSON pointer into the submit response (default ``{"id": "/id"}``);
            each must be a string, number or boolean. They fill ``{{ .job.<field> }}``.
        status_url: URL template polled for the job's state.
        status_method: Method of the status request.
        cancel_url: URL template that cancels the job; without it the job cannot be cancelled (an early
            stop leaves it running and recorded, so a rerun resumes it).
        cancel_method: Method of the cancel request.
        cancel_ok_status: Statuses of the cancel request that count as done besides 2xx (already
            finished or unknown jobs).
        result_url: URL template fetched once the job SUCCEEDED; outputs are read from its response
            instead of the status response.
        state_pointer: JSON pointer to the state in the status response.
        states: API state (case-insensitive) -> phase; merged over :data:`DEFAULT_STATES`.
        unknown_state: ``error`` (fail the run, cancelling the job) or ``running`` (keep polling).
        message_pointer: JSON pointer to a human-readable message (the failure's message).
        log_links: Link name -> JSON pointer to a URL in the status response (logged; in failures).
        outputs: Output name -> JSON pointer into the final response (``""`` = the whole body).
        gone_status: Status-request statuses meaning the job no longer exists.
        headers: Static headers of every request.
        secret_headers: Header name -> Flyte secret, for every request to a configured origin: those of
            the URL templates whose host holds no ``{{ .job.x }}``, and ``secret_origins``.
        secret_origins: More origins (``https://host[:port]``) the secrets may be sent to.
        auth: Bearer/basic authentication from secrets, origin-bound like ``secret_headers``.
        idempotency_key_header: The header carrying the submit's deterministic idempotency key
            (``Idempotency-Key``; ``null`` sends none). A server that honours it answers a repeated
            submit of the same attempt with the job it already created.
        connect_timeout_s: Connect timeout of each request.
        read_timeout_s: Read timeout of each request.
        request_timeout_s: Overall deadline of one request, its retries included.
        retry: Retry policy of each request (the submit is retried only with an idempotency key header).
        max_body_bytes: Cap on each decoded response body.
        file_threshold_bytes: A final response larger than this can only go to File outputs.
        allow: CIDRs and host names the SSRF guard lets through (also ``TASKBOX_HTTP_ALLOW``).

    """

    submit: SubmitRequest
    job_fields: dict[str, str] = Field(default_factory=lambda: {"id": "/id"})
    status_url: str = Field(min_length=1)
    status_method: str = "GET"
    cancel_url: str | None = None
    cancel_method: str = "DELETE"
    cancel_ok_status: list[int] = Field(default_factory=lambda: [404, 409, 410])
    result_url: str | None = None
    state_pointer: str = "/state"
    states: dict[str, JobPhase] = Field(default_factory=dict)
    unknown_state: Literal["error", "running"] = "error"
    message_pointer: str | None = None
    log_links: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    gone_status: list[int] = Field(default_factory=lambda: [404, 410])
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: dict[str, SecretRef] = Field(default_factory=dict)
    secret_origins: list[str] = Field(default_factory=list)
    auth: AuthConfig | None = None
    idempotency_key_header: str | None = "Idempotency-Key"
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    request_timeout_s: float = Field(default=120.0, gt=0)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    file_threshold_bytes: int = Field(default=1024 * 1024, ge=0)
    allow: list[str] = Field(default_factory=list)

    @field_validator("status_method", "cancel_method")
    @classmethod
    def _methods(cls, value: str) -> str:
        return _method(value)

    @field_validator("secret_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return check_origins(value)

    @field_validator("idempotency_key_header")
    @classmethod
    def _key_header(cls, value: str | None) -> str | None:
        if value is not None and not _TOKEN.match(value):
            raise ValueError(f"idempotency_key_header: {value!r} is not a header name")
        return value

    @field_validator("states", mode="before")
    @classmethod
    def _lower_states(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).lower(): (v.upper() if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("headers")
    @classmethod
    def _static_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if _ANY_PLACEHOLDER.search(text):
                raise ValueError(f"header {name!r}: shared headers are static; put templated headers in submit.headers")
        return value

    @field_validator("job_fields", "outputs", "log_links")
    @classmethod
    def _pointers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pointer in value.items():
            _pointer(pointer, repr(name))
        return value

    @model_validator(mode="after")
    def _check(self) -> HTTPJobConfig:
        _pointer(self.state_pointer, "state_pointer")
        _pointer(self.message_pointer, "message_pointer")
        if not self.job_fields:
            raise ValueError("job_fields needs at least one field (the job's id)")
        for what in ("status_url", "cancel_url", "result_url"):
            template = getattr(self, what) or ""
            for name in _JOB_FIELD.findall(template):
                if name not in self.job_fields:
                    raise ValueError(f"{what} uses {{{{ .job.{name} }}}}, but job_fields has no {name!r}")
        return self

    def phase_of(self, state: str) -> JobPhase | None:
        """Map an API state to its phase (``None`` when unmapped)."""
        key = state.lower()
        return self.states.get(key) or DEFAULT_STATES.get(key)

    def secret_refs(self) -> list[SecretRef]:
        """Every secret the config uses (for the template's security context)."""
        refs = list(self.secret_headers.values())
        if self.auth is not None:
            refs += [r for r in (self.auth.token, self.auth.password) if r is not None]
        return refs
