"""``SQLiteTask`` and ``SQLTask``: SQL tasks for the ``sqlite`` and ``sql`` executors, defined in Python.

Why: flytekit's ``SQLite3Task`` / ``SQLAlchemyTask`` collapse the query's white space when the task is
defined (so a ``--`` comment swallows the rest of the query), keep the database password in the URI
and only validate the configuration when the container runs. These classes keep the query as written,
validate the config with the executor's own model at definition time, request the secrets they use in
the template's security context, and produce templates that flytekit's propeller runs like any other.

Example::

    top = SQLiteTask(
        "top_tracks",
        "SELECT TrackId, Name FROM tracks WHERE Composer = {{ .inputs.composer }} LIMIT {{ .inputs.n }}",
        uri="s3://bucket/chinook.zip", compressed=True,
        inputs={"composer": str, "n": int},
    )
    template = top.to_template(version="v1")   # register it with Flyte
    top.run(composer="AC/DC", n=5)["results"].to_pandas()   # or run it here

Invariants:
    * Without ``outputs``, the task has one output ``results`` (a StructuredDataset), as flytekit's.
    * Passwords never go into the template: pass ``secret_connect_args``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskbox.authoring.base import TemplateTask

__all__ = ["SQLITE_IMAGE", "SQL_IMAGE", "SQLTask", "SQLiteTask"]


def _default_outputs(outputs: Mapping[str, Any] | None) -> dict[str, Any]:
    if outputs is not None:
        return dict(outputs)
    from taskbox.literals import StructuredDataset

    return {"results": StructuredDataset}


class SQLiteTask(TemplateTask):
    """A query on a SQLite file (task type ``sqlite``, flytekit's ``SQLite3Task`` contract).

    Args:
        name: Task name.
        query_template: The query, with ``{{ .inputs.name }}`` placeholders (kept as written).
        uri: The database file: a path in the image or any storage URI.
        compressed: The file is a zip/tar archive holding one database.
        inputs: Input name -> Python type.
        outputs: Output name -> Python type; default ``{"results": StructuredDataset}``. Primitive
            outputs take the columns of a single-row result.
        identifiers: Input name -> allowed identifiers, for inputs that name tables or columns.
        image: Container image (default: the catalog's ``sqlite`` image, pinned by digest once pushed).
        retries: Flyte retries.
        **options: Other fields of :class:`taskbox.executors.sqlite.SQLiteConfig` (``timeout_seconds``,
            ``batch_rows``, ``allow_triggers``...).

    """

    task_type = "sqlite"
    executor = "sqlite"

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
        image: str | None = None,
        retries: int = 0,
        **options: Any,
    ) -> None:
        from taskbox.executors.base import validate_config
        from taskbox.executors.sqlite import SQLiteExecutor

        fields = {
            "query_template": query_template,
            "uri": uri,
            "compressed": compressed,
            "identifiers": dict(identifiers or {}),
        }
        config = validate_config(SQLiteExecutor, {**fields, **options})  # ConfigError, as in the container
        super().__init__(
            name,
            config=config,
            inputs=inputs,
            outputs=_default_outputs(outputs),
            image=image,
            retries=retries,
        )


class SQLTask(TemplateTask):
    """A query on a SQLAlchemy database (task type ``sqlalchemy``, flytekit's ``SQLAlchemyTask`` contract).

    Args:
        name: Task name.
        query_template: The query, with ``{{ .inputs.name }}`` placeholders (kept as written).
        uri: SQLAlchemy URL without a password (``postgresql://reader@db:5432/sales``).
        connect_args: Driver connect arguments (no credentials).
        secret_connect_args: Driver arguments from Flyte secrets: ``{"password": {"group": "db",
            "key": "password"}}`` (or :class:`taskbox.sql.config.SecretRef`).
        read_only: Run in a read-only transaction (default); ``False`` commits writes.
        inputs: Input name -> Python type.
        outputs: As for :class:`SQLiteTask`; ``{}`` for a statement that returns nothing.
        identifiers: Input name -> allowed identifiers.
        image: Container image (default: the catalog's ``sql`` image, pinned by digest once pushed).
        retries: Flyte retries (timeouts and lost connections are recoverable).
        **options: Other fields of :class:`taskbox.executors.sql.SQLConfig`.

    """

    task_type = "sqlalchemy"
    executor = "sql"

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
        image: str | None = None,
        retries: int = 0,
        **options: Any,
    ) -> None:
        from taskbox.executors.base import validate_config
        from taskbox.executors.sql import SQLExecutor

        fields = {
            "query_template": query_template,
            "uri": uri,
            "connect_args": dict(connect_args or {}),
            "secret_connect_args": dict(secret_connect_args) if secret_connect_args is not None else None,
            "read_only": read_only,
            "identifiers": dict(identifiers or {}),
        }
        config = validate_config(SQLExecutor, {**fields, **options})  # ConfigError, as in the container
        secrets = [(ref.group, ref.key, ref.group_version) for ref in (config.secret_connect_args or {}).values()]
        super().__init__(
            name,
            config=config,
            inputs=inputs,
            outputs=_default_outputs(outputs),
            image=image,
            retries=retries,
            secrets=secrets,
        )


def _image(variant: str) -> str:
    from taskbox.authoring.base import default_image

    return default_image(variant)


#: Default image of SQLite tasks (the image catalog's, for the installed version, when this module was imported;
#: tasks look it up when they are made: :func:`taskbox.authoring.base.default_image`).
SQLITE_IMAGE = _image("sqlite")
#: Default image of SQL tasks (as :data:`SQLITE_IMAGE`).
SQL_IMAGE = _image("sql")
