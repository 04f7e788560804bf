"""taskbox's built-in executors as flytekit tasks: ``SQLiteTask``, ``SQLTask``, ``HTTPTask``, ``HTTPJobTask``.

Why: a flytekit workflow calls these like any task (``top_tracks(n=5)``); they take the arguments of their
:mod:`taskbox.authoring` namesakes, which validate the configuration with the executor's own model when the
task is defined, and they are subclasses of :class:`~taskbox.flytekit.task.TaskboxTask` (flytekit pre-built
container tasks): serialized as flytekit's template-resolver args, run locally through the image's pipeline, run
in taskbox's executor images without flytekit. Their interfaces use flytekit's types: a SQL ``results`` table is a
flytekit ``StructuredDataset`` (``.open(pd.DataFrame).all()``).

Example::

    from flytekit import task, workflow
    from flytekit.types.structured import StructuredDataset
    from taskbox.flytekit import SQLiteTask

    top_tracks = SQLiteTask(
        "top_tracks",
        "SELECT TrackId, Name FROM tracks ORDER BY TrackId LIMIT {{ .inputs.n }}",
        uri="s3://bucket/chinook.zip", compressed=True, inputs={"n": int},
    )

    @workflow
    def wf(n: int = 5) -> StructuredDataset:
        return top_tracks(n=n)

Invariants:
    * Each class's own arguments and the executor config fields in ``**options`` go to the authoring class
      (one validation, the executor's); the flytekit options in ``**options``
      (:data:`~taskbox.flytekit.task.FLYTEKIT_OPTIONS`: ``timeout``, ``cache``, ``requests``...) go to flytekit.
    * A configuration that does not validate raises :class:`taskbox.errors.ConfigError` listing each field's
      problem, for every class (the HTTP models' pydantic errors are translated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskbox.executors.base import config_errors
from taskbox.flytekit.task import FLYTEKIT_OPTIONS, TaskboxTask

__all__ = ["HTTPJobTask", "HTTPTask", "SQLTask", "SQLiteTask"]


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``**options`` into flytekit task options and executor config fields."""
    flytekit_options = {k: v for k, v in options.items() if k in FLYTEKIT_OPTIONS}
    return flytekit_options, {k: v for k, v in options.items() if k not in FLYTEKIT_OPTIONS}


def _sql_outputs(outputs: Mapping[str, Any] | None) -> dict[str, Any]:
    if outputs is not None:
        return dict(outputs)
    from flytekit.types.structured import StructuredDataset

    return {"results": StructuredDataset}


class SQLiteTask(TaskboxTask):
    """A query on a SQLite file (task type ``sqlite``), as :class:`taskbox.authoring.SQLiteTask`.

    Args:
        name: Task name.
        query_template: The query, with ``{{ .inputs.name }}`` placeholders (kept as written; inputs are bound,
            never pasted).
        uri: The database file: a path in the image or any storage URI.
        compressed: The file is a zip/tar archive holding one database.
        inputs: Input name -> Python type.
        outputs: Output name -> Python type; default ``{"results": StructuredDataset}`` (flytekit's). Primitive
            outputs take the columns of a single-row result.
        identifiers: Input name -> allowed identifiers, for inputs that name tables or columns.
        image: Container image (default: the catalog's ``sqlite`` image).
        retries: Flyte retries.
        **options: flytekit options (:data:`~taskbox.flytekit.task.FLYTEKIT_OPTIONS`) and the other fields of
            :class:`taskbox.executors.sqlite.SQLiteConfig` (``timeout_seconds``, ``batch_rows``...).

    Raises:
        ConfigError: The configuration does not validate (each field's problem is listed).
    """

    def __init__(
        self,
        name: str,
        query_template: str,
        *,
        uri: str,
        compressed: bool = False,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        identifiers: Mapping[str, list[str]] | None = None,
        image: Any = None,
        retries: int = 0,
        **options: Any,
    ) -> None:
        from taskbox.authoring.sql import SQLiteTask as Authored

        flytekit_options, config = _split(options)
        authored = Authored(name, query_template, uri=uri, compressed=compressed, outputs={},
                            identifiers=identifiers, **config)  # fmt: skip
        super().__init__(name, executor=authored.executor, config=authored.config, inputs=inputs,
                         outputs=_sql_outputs(outputs), image=image, retries=retries, **flytekit_options)  # fmt: skip


class SQLTask(TaskboxTask):
    """A query on a SQLAlchemy database (task type ``sqlalchemy``), as :class:`taskbox.authoring.SQLTask`.

    Args:
        name: Task name.
        query_template: The query, with ``{{ .inputs.name }}`` placeholders (kept as written).
        uri: SQLAlchemy URL without a password (``postgresql://reader@db:5432/sales``, ``sqlite:///x.db``).
        connect_args: Driver connect arguments (no credentials).
        secret_connect_args: Driver arguments from Flyte secrets: ``{"password": {"group": "db", "key":
            "password"}}``; requested with ``secret_requests``.
        read_only: Run in a read-only transaction (default); ``False`` commits writes.
        inputs: Input name -> Python type.
        outputs: As for :class:`SQLiteTask`; ``{}`` for a statement that returns nothing.
        identifiers: Input name -> allowed identifiers.
        image: Container image (default: the catalog's ``sql`` image).
        retries: Flyte retries (timeouts and lost connections are recoverable).
        **options: flytekit options and the other fields of :class:`taskbox.executors.sql.SQLConfig`.

    Raises:
        ConfigError: The configuration does not validate (each field's problem is listed).
    """

    def __init__(
        self,
        name: str,
        query_template: str,
        *,
        uri: str,
        connect_args: Mapping[str, Any] | None = None,
        secret_connect_args: Mapping[str, Any] | None = None,
        read_only: bool = True,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        identifiers: Mapping[str, list[str]] | None = None,
        image: Any = None,
        retries: int = 0,
        **options: Any,
    ) -> None:
        from taskbox.authoring.sql import SQLTask as Authored

        flytekit_options, config = _split(options)
        authored = Authored(name, query_template, uri=uri, connect_args=connect_args,
                            secret_connect_args=secret_connect_args, read_only=read_only, outputs={},
                            identifiers=identifiers, **config)  # fmt: skip
        super().__init__(name, executor=authored.executor, config=authored.config, inputs=inputs,
                         outputs=_sql_outputs(outputs), image=image, retries=retries, **flytekit_options)  # fmt: skip


class HTTPTask(TaskboxTask):
    """One HTTP request whose response parts become the outputs (``http``), as :class:`taskbox.authoring.HTTPTask`.

    Args:
        name: Task name.
        url: URL template with ``{{ .inputs.x }}`` placeholders (each value is quoted into its segment).
        method: HTTP method.
        inputs: Input name -> Python type.
        outputs: Output name -> Python type.
        output_pointers: Output name -> JSON pointer into the response (the config's ``outputs``).
        image: Container image (default: the catalog's ``http`` image).
        retries: Flyte retries (recoverable failures: 5xx, timeouts).
        **options: flytekit options and the other fields of :class:`taskbox.http.config.HTTPConfig`
            (``headers``, ``json_body``, ``secret_headers``, ``auth``, ``pagination``, ``status_output``...).

    Raises:
        ConfigError: The configuration does not validate (each field's problem is listed).
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        method: str = "GET",
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        output_pointers: Mapping[str, str] | None = None,
        image: Any = None,
        retries: int = 0,
        **options: Any,
    ) -> None:
        from taskbox.authoring.http import HTTPTask as Authored

        flytekit_options, config = _split(options)
        with config_errors("http"):
            authored = Authored(name, url, method=method, output_pointers=output_pointers, **config)
        super().__init__(name, executor=authored.executor, config=authored.config, inputs=inputs,
                         outputs=outputs, image=image, retries=retries, **flytekit_options)  # fmt: skip


class HTTPJobTask(TaskboxTask):
    """A job behind a submit / poll / cancel HTTP API (``http-job``), as :class:`taskbox.authoring.HTTPJobTask`.

    The job's handle is recorded in the task's checkpoint (the container args carry the checkpoint
    placeholders), so a retried attempt resumes the job instead of submitting a second one.

    Args:
        name: Task name.
        submit_url: URL template of the submit request (``{{ .inputs.x }}`` placeholders).
        status_url: URL template polled for the state (``{{ .job.<field> }}``, ``{{ .inputs.x }}``).
        submit_method: Method of the submit request.
        json_body: JSON body template of the submit request.
        form_body: Form body template of the submit request.
        submit_headers: Headers of the submit request only.
        inputs: Input name -> Python type.
        outputs: Output name -> Python type.
        output_pointers: Output name -> JSON pointer into the final status (or ``result_url``) response.
        image: Container image (default: the catalog's ``http`` image).
        retries: Flyte retries.
        **options: flytekit options and the other fields of :class:`taskbox.http.jobconfig.HTTPJobConfig`
            (``job_fields``, ``cancel_url``, ``states``, ``timeout_seconds``...).

    Raises:
        ConfigError: The configuration does not validate (each field's problem is listed).
    """

    def __init__(
        self,
        name: str,
        *,
        submit_url: str,
        status_url: str,
        submit_method: str = "POST",
        json_body: Any = None,
        form_body: Mapping[str, Any] | None = None,
        submit_headers: Mapping[str, str] | None = None,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        output_pointers: Mapping[str, str] | None = None,
        image: Any = None,
        retries: int = 0,
        **options: Any,
    ) -> None:
        from taskbox.authoring.http_job import HTTPJobTask as Authored

        flytekit_options, config = _split(options)
        with config_errors("http-job"):
            authored = Authored(name, submit_url=submit_url, status_url=status_url, submit_method=submit_method,
                                json_body=json_body, form_body=form_body, submit_headers=submit_headers,
                                output_pointers=output_pointers, **config)  # fmt: skip
        super().__init__(name, executor=authored.executor, config=authored.config, inputs=inputs,
                         outputs=outputs, image=image, retries=retries, **flytekit_options)  # fmt: skip
