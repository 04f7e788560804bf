"""The ``custom`` config of ``http`` (and ``webhook``) templates.

Why: a template outlives the image that first ran it, so the schema is versioned, strict, and
validated before any packet leaves. flytekit's ``WebhookTask`` templates are recognised by their
fields (``show_data``/``show_url``/``timeout_sec``) and converted to the same model, so one executor
serves both task types.

Invariants:
    * Secrets are never in the config: headers and auth name Flyte secrets (:class:`SecretRef`).
    * ``method`` is an HTTP token, upper-cased; URL schemes are http/https only.
    * Defaults follow docs/reliability-security.md section 3: redirects off, 2xx succeeds, 10 MiB body
      cap, bodies over 1 MiB go to File outputs, SSRF guard on.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskbox.configbase import ExecutorConfig

__all__ = ["AuthConfig", "HTTPConfig", "PaginationConfig", "RetryConfig", "SecretRef", "check_origins"]

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
WEBHOOK_MARKERS = ("show_data", "show_url", "timeout_sec")


def check_origins(values: list[str]) -> list[str]:
    """Validate ``secret_origins``: each an ``http(s)://host[:port]`` origin, nothing else.

    Args:
        values: The configured origins.

    Returns:
        The origins, unchanged.

    Raises:
        ValueError: An entry has another scheme, user info, a path, a query or a fragment, or no host.

    """
    from urllib.parse import urlsplit

    for value in values:
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"secret_origins: {value!r} is not an origin ({exc})") from None
        extra = parts.path not in ("", "/") or parts.query or parts.fragment or "?" in value or "#" in value
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc or extra or port == 0:
            raise ValueError(
                f"secret_origins: {value!r} is not an origin; write scheme://host[:port], e.g. https://api.example.com"
            )
    return values


class SecretRef(BaseModel):
    """A Flyte secret.

    Attributes:
        group: The secret's group.
        key: The key inside the group.
        group_version: Optional version of the group.
        env_var: A custom environment variable to read first.
        prefix: Text put before the value (``"Token "``), for header secrets.

    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str
    key: str | None = None
    group_version: str | None = None
    env_var: str | None = None
    prefix: str = ""


class AuthConfig(BaseModel):
    """Bearer or basic authentication from secrets.

    Attributes:
        type: ``bearer`` (``token``) or ``basic`` (``username`` + ``password``).
        token: The bearer token's secret.
        username: The basic-auth user name (plain text; not a secret).
        password: The basic-auth password's secret.

    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["bearer", "basic"]
    token: SecretRef | None = None
    username: str | None = None
    password: SecretRef | None = None

    @model_validator(mode="after")
    def _complete(self) -> AuthConfig:
        if self.type == "bearer" and self.token is None:
            raise ValueError("bearer auth needs a token secret")
        if self.type == "basic" and (self.username is None or self.password is None):
            raise ValueError("basic auth needs a username and a password secret")
        return self


class RetryConfig(BaseModel):
    """Retries of connect errors and 429/502/503/504.

    Attributes:
        max_attempts: Attempts in all (1 = no retry).
        backoff_base_s: Base of the full-jitter exponential backoff (``TASKBOX_HTTP_BACKOFF_BASE_S``
            overrides it for a whole container).
        backoff_max_s: Largest single backoff.
        retry_after_max_s: A ``Retry-After`` longer than this fails at once instead of waiting.
        budget_s: Total time spent waiting between attempts.
        statuses: The statuses retried.
        idempotency_key_header: A header (``Idempotency-Key``) that makes non-idempotent methods
            retryable; taskbox sends one random key, the same in every attempt.

    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=5, ge=1, le=50)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    retry_after_max_s: float = Field(default=60.0, ge=0)
    budget_s: float = Field(default=120.0, ge=0)
    statuses: list[int] = Field(default_factory=lambda: [429, 502, 503, 504])
    idempotency_key_header: str | None = None


class PaginationConfig(BaseModel):
    """Following pages.

    Attributes:
        next: ``link`` (``Link: <...>; rel="next"`` headers) or ``cursor`` (a JSON pointer to the next
            cursor, sent back as the query parameter ``cursor_param``).
        items_pointer: JSON pointer to each page's list of items.
        output: The output that gets all items (a list, or a StructuredDataset of records).
        cursor_pointer: JSON pointer to the next cursor (``cursor`` mode); absent/null/"" ends.
        cursor_param: Query parameter carrying the cursor.
        max_pages: Most pages fetched; more pages than that is an error unless ``truncate``.
        truncate: Stop quietly at ``max_pages``.

    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    next: Literal["link", "cursor"]
    items_pointer: str = ""
    output: str
    cursor_pointer: str | None = None
    cursor_param: str = "cursor"
    max_pages: int = Field(default=100, ge=1)
    truncate: bool = False

    @model_validator(mode="after")
    def _cursor(self) -> PaginationConfig:
        if self.next == "cursor" and self.cursor_pointer is None:
            raise ValueError("cursor pagination needs cursor_pointer")
        return self


class HTTPConfig(ExecutorConfig):
    """``custom`` of an ``http`` template.

    Attributes:
        method: Any HTTP method.
        url: URL template; ``{{ .inputs.x }}`` placeholders are percent-encoded for their component.
        query: Query parameters (values may be placeholders).
        headers: Plain headers (values may be placeholders).
        secret_headers: Header name -> Flyte secret; sent only to the origin (scheme, host, port) of
            ``url`` and to ``secret_origins``, whatever redirects and pages lead elsewhere.
        secret_origins: More origins (``https://host[:port]``) the secret headers and ``auth`` may be
            sent to (e.g. the host a first redirect or the pages move to).
        auth: Bearer/basic authentication from secrets (origin-bound like ``secret_headers``).
        json_body: A JSON body template: a string that is exactly one placeholder becomes the input's
            value (typed), placeholders inside strings are substituted as text within that string.
        form_body: A form body template (values may be placeholders).
        connect_timeout_s: Connect timeout.
        read_timeout_s: Read (and write, pool) timeout.
        timeout_s: Overall deadline, retries and redirects included.
        expected_status: Statuses that succeed; default 200-299.
        follow_redirects: Follow redirects (each hop re-checked by the guard; secret headers sent only
            to their origins).
        max_redirects: Most hops followed.
        retry: Retry policy.
        outputs: Output name -> JSON pointer into the response body (``""`` = the whole body).
        status_output: Output that gets the status code.
        headers_output: Output that gets the response headers (a dict).
        body_output: Output that gets the raw body (a File when declared as a blob, else text/JSON).
        file_threshold_bytes: A body larger than this cannot be a literal; declare a File output.
        max_body_bytes: Hard cap on the decoded body.
        pagination: Page following.
        allow: CIDRs and host names the SSRF guard lets through.
        placeholder_style: ``flyte`` (``{{ .inputs.x }}``) or ``webhook`` (``{inputs.x}``).
        webhook: flytekit ``WebhookTask`` compatibility: the output name of the ``info`` dict (the
            request is then rendered as flytekit's connector renders it: :mod:`taskbox.http.webhook`).
        webhook_data: Webhook: the template's ``data`` (GET: query parameters; POST: the JSON body).
        webhook_show_data: Webhook: include ``input_data`` in ``info``.
        webhook_show_url: Webhook: include ``url`` in ``info``.

    """

    method: str = "GET"
    url: str = Field(min_length=1)
    query: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: dict[str, SecretRef] = Field(default_factory=dict)
    secret_origins: list[str] = Field(default_factory=list)
    auth: AuthConfig | None = None
    json_body: Any = None
    form_body: dict[str, Any] | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    timeout_s: float = Field(default=300.0, gt=0)
    expected_status: list[int] | None = None
    follow_redirects: bool = False
    max_redirects: int = Field(default=5, ge=0, le=50)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    outputs: dict[str, str] = Field(default_factory=dict)
    status_output: str | None = None
    headers_output: str | None = None
    body_output: str | None = None
    file_threshold_bytes: int = Field(default=1024 * 1024, ge=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    pagination: PaginationConfig | None = None
    allow: list[str] = Field(default_factory=list)
    placeholder_style: Literal["flyte", "webhook"] = "flyte"
    webhook: str | None = None
    webhook_data: Any = None
    webhook_show_data: bool = False
    webhook_show_url: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_webhook(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in WEBHOOK_MARKERS):
            from taskbox.http.webhook import webhook_to_http

            return webhook_to_http(data)
        return data

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if not _TOKEN.match(value):
            raise ValueError(f"{value!r} is not an HTTP method")
        return value.upper()

    @field_validator("secret_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return check_origins(value)

    @field_validator("expected_status")
    @classmethod
    def _statuses(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(not 100 <= int(s) <= 599 for s in value):
            raise ValueError("status codes are 100-599")
        return [int(s) for s in value] if value is not None else None

    @field_validator("outputs")
    @classmethod
    def _pointers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pointer in value.items():
            if pointer and not pointer.startswith("/"):
                raise ValueError(f"output {name!r}: a JSON pointer is '' or starts with '/'")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> HTTPConfig:
        if self.json_body is not None and self.form_body is not None:
            raise ValueError("give json_body or form_body, not both")
        return self

    def is_success(self, status: int) -> bool:
        """Whether ``status`` counts as success."""
        return status in self.expected_status if self.expected_status is not None else 200 <= status < 300

    def retryable_method(self) -> bool:
        """Whether a failed request with this method may be sent again."""
        return self.method in IDEMPOTENT_METHODS or bool(self.retry.idempotency_key_header)

    def secret_refs(self) -> list[SecretRef]:
        """Every secret the config uses (for the template's security context)."""
        refs = list(self.secret_headers.values())
        if self.auth is not None:
            refs += [r for r in (self.auth.token, self.auth.password) if r is not None]
        return refs
